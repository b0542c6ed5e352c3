"""Action chunks: RT-2 text with a horizon, OpenVLA tail tokens with a horizon, VLA-0 integer
text. Round trips, all-or-nothing decoding, the CLI, and hypothesis on the parsers: no
malformed chunk ever yields motion."""

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rt2_ros.cli import main as cli_main
from rt2_ros.codecs import (
    ActionBounds,
    ActionDecodeError,
    IntegerTextCodec,
    OpenVLAActionTokenizer,
    RT2ActionTokenizer,
    UnnormStats,
    make_codec,
)
from rt2_ros.config import ConfigError, load_config
from rt2_ros.policies.base import result_from_output

BOUNDS = ActionBounds(
    np.array([-0.05, -0.05, -0.05, -0.25, -0.25, -0.25, 0.0]),
    np.array([0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0]),
)
H = 4


def _chunk(rng, h=H):
    return rng.uniform(BOUNDS.low, BOUNDS.high, (h, 7))


# -- RT-2 with a horizon --------------------------------------------------------------------
def test_rt2_chunk_round_trips_with_a_terminate_per_step():
    rng = np.random.default_rng(0)
    c = RT2ActionTokenizer(BOUNDS, horizon=H)
    v = _chunk(rng)
    text = c.encode_chunk(v, [False, False, True, False])
    assert len(text.split()) == 8 * H
    actions = c.decode_output(text)
    assert [a.terminate for a in actions] == [False, False, True, False]
    got = np.array([a.vector for a in actions])
    assert np.all(np.abs(got - v) <= c.max_roundtrip_error + 1e-12)


def test_rt2_horizon_1_is_unchanged():
    c1, ch = RT2ActionTokenizer(BOUNDS), RT2ActionTokenizer(BOUNDS, horizon=1)
    text = "1 128 124 136 121 158 111 255"
    (a,) = ch.decode_output(text)
    np.testing.assert_array_equal(a.vector, c1.decode(text).vector)
    assert "horizon" not in ch.describe()


def test_rt2_chunk_with_chain_of_thought_keeps_the_plan_on_the_first_step():
    c = RT2ActionTokenizer(BOUNDS, horizon=2)
    actions = c.decode_output("Plan: pick the can. Action: 1 1 2 3 4 5 6 7 0 8 9 10 11 12 13 14")
    assert actions[0].plan == "pick the can" and actions[1].plan is None
    assert not actions[0].terminate and actions[1].terminate


@pytest.mark.parametrize(
    "text, why",
    [
        ("1 128 124 136 121 158 111 255", "expected 2 actions"),  # one action of two: truncated
        ("1 128 124 136 121 158 111 255 1 128 124", "expected 2 actions"),  # truncated mid-step
        ("1 128 124 136 121 158 111 255 1 128 124 136 121 158 111 256", "action 1 of the chunk"),
        ("1 128 124 136 121 158 111 255 1 128 124 136 x 158 111 2", "action 1 of the chunk"),
        ("1 128 124 136 121 158 111 255 1 128 124 136 121 158 111 2 9", "expected 2 actions"),
        ("", "empty"),
    ],
)
def test_rt2_malformed_chunk_is_rejected_whole_with_a_message(text, why):
    c = RT2ActionTokenizer(BOUNDS, horizon=2)
    with pytest.raises(ActionDecodeError, match=why):
        c.decode_output(text)
    r = result_from_output(c, text)
    assert r.actions == () and r.action is None and why.split()[0] in r.error


# -- OpenVLA with a horizon -----------------------------------------------------------------
STATS = UnnormStats(q01=BOUNDS.low.copy(), q99=BOUNDS.high.copy(), mask=np.array([True] * 6 + [False]))


def test_openvla_chunk_round_trips_and_a_bad_id_anywhere_rejects_it():
    c = OpenVLAActionTokenizer(32000, STATS, horizon=3)
    rng = np.random.default_rng(1)
    v = _chunk(rng, 3)
    text, ids = c.encode_chunk(v)
    assert len(ids) == 21 and all(31744 <= i < 32000 for i in ids)
    actions = c.decode_output(text, ids)
    got = np.array([a.vector for a in actions])
    # one bin of the [-1, 1] grid, in physical units (the gripper is not un-normalised)
    tol = 2 / 255 * np.where(STATS.mask, (BOUNDS.high - BOUNDS.low) / 2, 1.0)
    assert np.all(np.abs(got - v) <= tol + 1e-9)
    assert [a.vector.tolist() for a in c.decode_output(text)] == got.tolist()  # from the text alone
    for bad in (ids[:-1], ids + [31800], ids[:10] + [5] + ids[11:]):
        with pytest.raises(ActionDecodeError):
            c.decode_output(" ".join(map(str, bad)), bad)


# -- integer text (VLA-0) --------------------------------------------------------------------
def test_integer_text_follows_vla0_formulas_and_round_trips_within_half_a_step():
    c = IntegerTextCodec(BOUNDS, bins=1000, horizon=8)
    (a0, *_rest) = c.decode_output(" ".join(["0", "500", "1000", "250", "750", "0", "1000"] * 8))
    np.testing.assert_allclose(a0.vector, [-0.05, 0.0, 0.05, -0.125, 0.125, -0.25, 1.0], atol=1e-12)
    assert not a0.terminate and len(_rest) == 7
    rng = np.random.default_rng(2)
    v = _chunk(rng, 8)
    text = c.encode_chunk(v)
    assert len(text.split()) == 56 and max(int(f) for f in text.split()) <= 1000
    got = np.array([a.vector for a in c.decode_output(text)])
    assert np.all(np.abs(got - v) <= c.max_roundtrip_error + 1e-12)


@pytest.mark.parametrize(
    "fields, why",
    [
        (["500"] * 55, "expected 56 integers"),
        (["500"] * 57, "expected 56 integers"),
        (["500"] * 55 + ["1001"], "out of range"),
        (["500"] * 20 + ["-1"] + ["500"] * 35, "not a non-negative integer"),
        (["500"] * 20 + ["5.5"] + ["500"] * 35, "not a non-negative integer"),
    ],
)
def test_integer_text_malformed_chunk_is_rejected_whole(fields, why):
    c = IntegerTextCodec(BOUNDS, bins=1000, horizon=8)
    with pytest.raises(ActionDecodeError, match=why):
        c.decode_output(" ".join(fields))


# -- configuration, make_codec, CLI ------------------------------------------------------------
def test_make_codec_builds_every_format_with_its_horizon():
    cfg = load_config(overrides={"action.horizon": 8, "action.format": "int_text", "action.bins": 1000})
    c = make_codec(cfg.action)
    assert isinstance(c, IntegerTextCodec) and c.horizon == 8 and c.bins == 1000
    assert make_codec(load_config(overrides={"action.horizon": 5}).action).horizon == 5
    assert make_codec(load_config(overrides={"action.format": "openvla", "action.horizon": 2}).action).horizon == 2
    assert make_codec(load_config().action).horizon == 1  # default: RT-2 as published
    with pytest.raises(ValueError, match="fast_tokenizer_path"):
        make_codec(load_config(overrides={"action.format": "fast"}).action)
    for bad in ({"action.horizon": 0}, {"action.horizon": 65}, {"control.execute": "replay"}):
        with pytest.raises(ConfigError):
            load_config(overrides=bad)


def test_cli_decode_prints_a_json_list_for_a_chunk(capsys):
    text = " ".join(["1 128 124 136 121 158 111 255"] * 2 + ["0 128 128 128 128 128 128 0"])
    assert cli_main(["decode", "--horizon", "3", text]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out, list) and len(out) == 3 and [a["terminate"] for a in out] == [False, False, True]
    assert cli_main(["decode", "--format", "int_text", "--bins", "1000", "--horizon", "2", " ".join(["500"] * 14)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 2 and out[1]["delta_position_m"]["x"] == pytest.approx(0.0)
    assert cli_main(["decode", "--format", "openvla", "--horizon", "2", " ".join(["31872"] * 14)]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert cli_main(["decode", "--horizon", "3", text.rsplit(" ", 1)[0]]) == 1  # truncated
    assert "expected 3 actions" in capsys.readouterr().err


# -- hypothesis: no malformed chunk ever yields motion -------------------------------------------
RT2 = RT2ActionTokenizer(BOUNDS, horizon=3)
INT = IntegerTextCodec(BOUNDS, bins=1000, horizon=3)
OVLA = OpenVLAActionTokenizer(32000, STATS, horizon=3)
CHUNK_RE = {
    "rt2": re.compile(r"\s*(Plan:.*?Action:)?\s*([0-9]+\s+){23}[0-9]+\s*", re.DOTALL | re.ASCII),
    "int": re.compile(r"\s*([0-9]+\s+){20}[0-9]+\s*", re.ASCII),
}
JUNK = st.sampled_from(["-1", "1.5", "nan", "inf", "x", "", "1e2", "0x1", "½", "٣", "99999", "+3"])


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_decodes_unless_it_is_a_whole_chunk(text):
    for codec, pat in ((RT2, CHUNK_RE["rt2"]), (INT, CHUNK_RE["int"])):
        try:
            actions = codec.decode_output(text)
        except ActionDecodeError:
            continue
        assert pat.fullmatch(text), text
        assert len(actions) == 3
        assert all(np.all(a.vector >= BOUNDS.low) and np.all(a.vector <= BOUNDS.high) for a in actions)


def _corrupt(fields, idx, junk, how, bad_value):
    fields = list(fields)
    idx = min(idx, len(fields) - 1)
    if how == "replace":
        fields[idx] = junk if not (junk.isascii() and junk.isdigit()) or junk == "99999" else bad_value
        if fields[idx] in ("", "+3"):
            fields[idx] = bad_value
    elif how == "drop":
        del fields[idx]
    elif how == "truncate":
        fields = fields[:idx]
    else:
        fields.insert(idx, fields[0])
    return fields


HOW = st.sampled_from(["replace", "drop", "truncate", "extra"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=24, max_size=24), st.integers(0, 23), JUNK, HOW)
def test_rt2_chunk_with_one_bad_or_missing_field_is_rejected_whole(tokens, idx, junk, how):
    text = " ".join(_corrupt([str(t) for t in tokens], idx, junk, how, "256"))
    r = result_from_output(RT2, text)
    assert r.actions == () and r.error, text


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(31744, 31999), min_size=21, max_size=21), st.integers(0, 20), JUNK, HOW)
def test_openvla_chunk_with_one_bad_or_missing_id_is_rejected_whole(ids, idx, junk, how):
    fields = _corrupt([str(i) for i in ids], idx, junk, how, "31743")
    r = result_from_output(OVLA, " ".join(fields))  # from the text
    assert r.actions == () and r.error
    if all(f.isascii() and f.isdigit() for f in fields):  # from the ids
        r = result_from_output(OVLA, "", action_ids=[int(f) for f in fields])
        assert r.actions == () and r.error


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=21, max_size=21), st.integers(0, 20), JUNK)
def test_integer_text_one_bad_field_rejects_the_chunk(ks, idx, junk):
    fields = [str(k) for k in ks]
    fields[idx] = junk if not junk.isdigit() or int(junk) > 1000 else "1001"
    r = result_from_output(INT, " ".join(fields))
    assert r.actions == () and r.error

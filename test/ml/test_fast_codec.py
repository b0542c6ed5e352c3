"""FAST action tokens (DCT + BPE) with a tokenizer trained here, offline, on synthetic
trajectories (``tokenizers`` library, as FAST's own ``fit``)."""

import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("tokenizers")

from rt2_ros.cli import main as cli_main  # noqa: E402
from rt2_ros.codecs import (  # noqa: E402
    ActionBounds,
    ActionDecodeError,
    FASTActionCodec,
    load_fast_tokenizer,
    make_codec,
)
from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.policies.base import result_from_output  # noqa: E402
from rt2_ros.testing.fast_tokenizer import synthetic_chunks, train_fast_tokenizer  # noqa: E402

BOUNDS = ActionBounds(
    np.array([-0.05, -0.05, -0.05, -0.25, -0.25, -0.25, 0.0]),
    np.array([0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0]),
)
H = 8


@pytest.fixture(scope="module")
def fast_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fast")
    info = train_fast_tokenizer(d, horizon=H, scale=10.0, vocab_size=400, n_chunks=1500, seed=0)
    return d, info


def _codec(fast_dir, **kw):
    d, info = fast_dir
    args = dict(horizon=H, scale=10.0, min_token=info["min_token"], vocab_size=info["vocab_size"])
    args.update(kw)
    return FASTActionCodec(load_fast_tokenizer(str(d)), BOUNDS, **args)


def _physical(x):
    return BOUNDS.low + (x + 1) / 2 * (BOUNDS.high - BOUNDS.low)


def test_round_trip_is_within_the_quantisation_error(fast_dir):
    c = _codec(fast_dir, id_offset=1000)
    held_out = synthetic_chunks(50, H, seed=123)  # not the training trajectories
    lengths = []
    for x in held_out:
        v = _physical(x)
        text, ids = c.encode_chunk(v)
        lengths.append(len(ids))
        assert all(1000 <= i < 1000 + c.vocab_size for i in ids)
        actions = c.decode_output(text, ids)
        assert len(actions) == H and not any(a.terminate for a in actions)
        got = np.array([a.vector for a in actions])
        assert np.all(np.abs(got - v) <= c.max_roundtrip_error + 1e-12)
    assert np.mean(lengths) < H * 7  # BPE compresses the 56 coefficients


def test_pi0_fast_reversed_id_mapping(fast_dir):
    c = _codec(fast_dir, id_offset=257152 - 1 - 128, id_reversed=True)  # PaliGemma vocab - 1 - skip
    v = _physical(synthetic_chunks(1, H, seed=9)[0])
    text, ids = c.encode_chunk(v)
    assert all(257023 - c.vocab_size < i <= 257023 for i in ids)
    got = np.array([a.vector for a in c.decode_output(text)])  # from the text of ids
    assert np.all(np.abs(got - v) <= c.max_roundtrip_error + 1e-12)


def test_truncated_extended_or_foreign_tokens_are_rejected_whole(fast_dir):
    c = _codec(fast_dir)
    _, ids = c.encode_chunk(_physical(synthetic_chunks(1, H, seed=5)[0]))
    cases = {
        "truncated": ids[:-1],
        "extra": ids + ids[:1],
        "foreign id": ids[:-1] + [c.vocab_size + 3],
        "empty": [],
    }
    for name, bad in cases.items():
        r = result_from_output(c, "", action_ids=bad)
        assert r.actions == () and r.error, name
    with pytest.raises(ActionDecodeError, match="needs 56"):
        c.decode_output("", ids[:-1])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-5, 420), max_size=40))
def test_arbitrary_token_lists_decode_only_to_a_whole_bounded_chunk(fast_dir, ids):
    c = _codec(fast_dir)
    try:
        actions = c.decode_output("", ids)
    except ActionDecodeError:
        return
    # A whole chunk: exactly H x 7 coefficients; never a prefix, never out of bounds.
    assert len(c.tokenizer.decode(ids)) == H * 7 and len(actions) == H
    for a in actions:
        assert np.all(a.vector >= BOUNDS.low) and np.all(a.vector <= BOUNDS.high)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 49), st.data())
def test_every_prefix_of_a_valid_chunk_is_rejected(fast_dir, seed, data):
    c = _codec(fast_dir)
    _, ids = c.encode_chunk(_physical(synthetic_chunks(50, H, seed=77)[seed]))
    cut = data.draw(st.integers(0, len(ids) - 1))
    assert result_from_output(c, "", action_ids=ids[:cut]).actions == ()


def test_make_codec_loads_the_checkpoint_tokenizer_and_checks_its_settings(fast_dir, tmp_path):
    d, info = fast_dir
    over = {
        "action.format": "fast",
        "action.horizon": H,
        "action.fast_tokenizer_path": str(d),
        "action.fast_min_token": info["min_token"],
        "action.fast_vocab_size": info["vocab_size"],
    }
    c = make_codec(load_config(overrides=over).action)
    assert isinstance(c, FASTActionCodec) and c.horizon == H
    with pytest.raises(ValueError, match="time_horizon"):
        make_codec(load_config(overrides={**over, "action.horizon": 4}).action)
    with pytest.raises(ValueError, match="min_token"):
        make_codec(load_config(overrides={**over, "action.fast_min_token": 0}).action)
    with pytest.raises(ValueError, match="no FAST tokenizer"):
        make_codec(load_config(overrides={**over, "action.fast_tokenizer_path": str(tmp_path / "none")}).action)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot load"):
        make_codec(load_config(overrides={**over, "action.fast_tokenizer_path": str(bad)}).action)
    # without processor_config.json the configured values are taken as they are
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(d / "tokenizer.json", plain / "tokenizer.json")
    assert make_codec(load_config(overrides={**over, "action.fast_tokenizer_path": str(plain)}).action)


def test_cli_decodes_fast_tokens_to_a_json_list(fast_dir, tmp_path, capsys):
    d, info = fast_dir
    cfg = tmp_path / "rt2.yaml"
    cfg.write_text(json.dumps({"action": {"fast_min_token": info["min_token"], "fast_vocab_size": info["vocab_size"]}}))
    c = _codec(fast_dir)
    text, _ = c.encode_chunk(_physical(synthetic_chunks(1, H, seed=3)[0]))
    args = ["decode", "--config", str(cfg), "--format", "fast", "--horizon", str(H), "--fast-tokenizer", str(d)]
    assert cli_main(args + [text]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out, list) and len(out) == H
    assert cli_main(args + [text.rsplit(" ", 1)[0]]) == 1
    assert "DCT coefficients" in capsys.readouterr().err


def test_the_remote_client_decodes_a_fast_answer_from_all_its_ids(fast_dir):
    """A FAST answer has no fixed length: the robot decodes every id the server reports
    (``decodes_ids``), with its own codec, to the same chunk the codec gives."""
    pytest.importorskip("websockets")
    from rt2_ros.remote.client import RemotePolicy

    d, info = fast_dir
    cfg = load_config(
        overrides={
            "action.format": "fast",
            "action.horizon": H,
            "action.fast_tokenizer_path": str(d),
            "action.fast_min_token": info["min_token"],
            "action.fast_vocab_size": info["vocab_size"],
            "action.fast_id_offset": 1000,
        }
    )
    codec = make_codec(cfg.action)
    assert codec.decodes_ids
    text, ids = codec.encode_chunk(_physical(np.random.default_rng(5).uniform(-1.0, 1.0, (H, 7))))
    want = np.array([a.vector for a in codec.decode_output(text, ids)])
    client = RemotePolicy("ws://127.0.0.1:9", cfg.action)  # never connects: only its decoding runs
    frame = {"type": "result", "id": 1, "text": text, "token_ids": list(ids), "action": {"terminate": False}}
    r = client._to_result(frame, rtt_ms=1.0)
    assert r.error is None and len(r.actions) == H
    np.testing.assert_allclose([a.vector for a in r.actions], want)
    # a truncated answer is no action (never the chunk of a suffix or prefix)
    bad = client._to_result({**frame, "token_ids": list(ids[3:])}, rtt_ms=1.0)
    assert bad.actions == () and bad.error

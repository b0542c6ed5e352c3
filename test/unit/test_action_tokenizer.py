"""RT-2 action codec: the paper's strings, bins, round trips, terminate, chain of thought."""

import math

import numpy as np
import pytest

from rt2_ros.codecs import (
    ActionBounds,
    ActionDecodeError,
    RT2ActionTokenizer,
    split_chain_of_thought,
)

PAPER_COT = "Plan: pick rxbar chocolate. Action: 1 128 124 136 121 158 111 255"
BOUNDS = ActionBounds(
    np.array([-0.05, -0.05, -0.05, -0.25, -0.25, -0.25, 0.0]),
    np.array([0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0]),
)


def test_paper_chain_of_thought_example_gives_plan_and_action():
    tok = RT2ActionTokenizer(BOUNDS)
    a = tok.decode(PAPER_COT)
    assert a.plan == "pick rxbar chocolate"
    assert a.tokens == (1, 128, 124, 136, 121, 158, 111, 255)
    assert a.terminate is False  # 1 = continue under RT-1's one-hot convention
    w = (BOUNDS.high - BOUNDS.low) / 256
    # bin 128 of dx: centre = low + 128.5 w = +w/2 (no bin is centred on zero with 256 bins)
    assert a.delta_position[0] == pytest.approx(0.05 / 256)
    assert a.delta_position[1] == pytest.approx(-0.05 + 124.5 * w[1])
    assert a.delta_rotation[1] == pytest.approx(-0.25 + 158.5 * w[4])
    assert a.gripper == pytest.approx(1.0 - 0.5 / 256)  # 255: fully open side


def test_paper_short_example_has_one_field_missing_and_is_rejected():
    # Fig. of RT-2 drops one field: "1 128 91 241 5 101 127" has 7, the canonical string 8.
    with pytest.raises(ActionDecodeError, match="expected 8 integers"):
        RT2ActionTokenizer(BOUNDS).decode("1 128 91 241 5 101 127")


def test_terminate_token_default_is_zero_and_configurable():
    tok = RT2ActionTokenizer(BOUNDS)
    assert tok.decode("0 128 128 128 128 128 128 128").terminate is True
    assert tok.decode("1 128 128 128 128 128 128 128").terminate is False
    with pytest.raises(ActionDecodeError, match="terminate"):  # neither terminate nor continue: no action
        tok.decode("2 128 128 128 128 128 128 128")
    alt = RT2ActionTokenizer(BOUNDS, terminate_token=1, continue_token=0)
    assert alt.decode("1 128 128 128 128 128 128 128").terminate is True
    assert alt.encode(np.zeros(7), terminate=False).startswith("0 ")


def test_extreme_bins_decode_inside_bounds_to_centres():
    tok = RT2ActionTokenizer(BOUNDS)
    lo = tok.decode("1 0 0 0 0 0 0 0").vector
    hi = tok.decode("1 255 255 255 255 255 255 255").vector
    w = tok.bin_width
    np.testing.assert_allclose(lo, BOUNDS.low + w / 2)
    np.testing.assert_allclose(hi, BOUNDS.high - w / 2)


def test_edge_mode_matches_rt1_decode_formula():
    # RT-1: decode t / 255 * (max - min) + min (robotics_transformer tokenizers/action_tokenizer.py)
    tok = RT2ActionTokenizer(ActionBounds.rt1_default(), decode_to="edge")
    a = tok.decode("1 0 255 51 128 0 255 204")
    lo, hi = ActionBounds.rt1_default().low, ActionBounds.rt1_default().high
    k = np.array([0, 255, 51, 128, 0, 255, 204])
    np.testing.assert_allclose(a.vector, k / 255 * (hi - lo) + lo)
    assert a.delta_position[0] == -1.0 and a.delta_position[1] == 1.0
    assert a.delta_rotation[1] == pytest.approx(-math.pi / 2)


@pytest.mark.parametrize("mode", ["center", "edge"])
def test_round_trip_within_half_a_bin(mode):
    tok = RT2ActionTokenizer(BOUNDS, decode_to=mode)
    rng = np.random.default_rng(0)
    values = rng.uniform(BOUNDS.low, BOUNDS.high, size=(2000, 7))
    values[:7] = BOUNDS.low  # exact bounds included
    values[7:14] = BOUNDS.high
    for v in values:
        back = tok.decode(tok.encode(v)).vector
        assert np.all(np.abs(back - v) <= tok.max_roundtrip_error + 1e-12)
    span = BOUNDS.high - BOUNDS.low
    half = span / 256 / 2 if mode == "center" else span / 255 / 2  # half a bin / half a grid step
    np.testing.assert_allclose(tok.max_roundtrip_error, half)


def test_encode_clips_out_of_bounds_and_rejects_nan():
    tok = RT2ActionTokenizer(BOUNDS)
    assert tok.encode([1, -1, 0, 0, 0, 0, 9]).split()[1:3] == ["255", "0"]
    with pytest.raises(ActionDecodeError, match="non-finite"):
        tok.encode([np.nan, 0, 0, 0, 0, 0, 0])
    with pytest.raises(ActionDecodeError, match="7 values"):
        tok.encode([0, 0, 0])


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("1 128 128 128 128 128 128", "got 7 fields"),
        ("1 128 128 128 128 128 128 128 128", "got 9 fields"),
        ("1 128 128 128 128 128 128 256", "out of range"),
        ("1 128 128 128 -3 128 128 128", "not a non-negative integer"),
        ("1 128 128 128 12.5 128 128 128", "not a non-negative integer"),
        ("1 128 nan 128 128 128 128 128", "not a non-negative integer"),
        ("1 128 128 128 128 128 128 128 done", "got 9 fields"),
        ("Action: 1 128 128 128 128 128 128 128", "got 9 fields"),
        ("1,128,128,128,128,128,128,128", "got 1 fields"),
        ("1 128 128 128 128 128 128 １２", "not a non-negative integer"),  # full-width digits
        ("Plan: grab it but never say the action", "no 'Action:' part"),
        ("x" * 5000, "too long"),
    ],
)
def test_malformed_output_raises_one_error_type_saying_what(text, match):
    with pytest.raises(ActionDecodeError, match=match):
        RT2ActionTokenizer(BOUNDS).decode(text)


def test_non_string_output_is_rejected():
    with pytest.raises(ActionDecodeError, match="must be str"):
        RT2ActionTokenizer(BOUNDS).decode(None)  # type: ignore[arg-type]


def test_padding_and_runs_of_spaces_are_accepted():
    """The tolerated variants: ASCII whitespace around the integers, runs of ASCII spaces
    between them (issue 21 keeps these; the separators themselves must be ASCII spaces)."""
    a = RT2ActionTokenizer(BOUNDS).decode(" \t 1  128 128 128 128 128 128 128\r\n")
    assert a.tokens == (1,) + (128,) * 7


def test_the_chain_of_thought_prefix_is_accepted():
    a = RT2ActionTokenizer(BOUNDS).decode("Plan: pick rxbar chocolate. Action: 1 128 124 136 121 158 111 255\n")
    assert a.plan == "pick rxbar chocolate" and a.tokens == (1, 128, 124, 136, 121, 158, 111, 255)


@pytest.mark.parametrize(
    "text, why",
    [
        ("1 128\u00a0128 128 128 128 128 128", "U\\+00A0"),  # no-break space
        ("1 128\u2003128 128 128 128 128 128", "U\\+2003"),  # em space
        ("1 128\u3000128 128 128 128 128 128", "U\\+3000"),  # ideographic space
        ("1 128\t128 128 128 128 128 128", "U\\+0009"),  # a tab between fields
        ("1 128\n128 128 128 128 128 128", "U\\+000A"),
        ("1 0128 128 128 128 128 128 128", "leading zero"),
        ("01 128 128 128 128 128 128 128", "leading zero"),
        ("1 128 \u0661\u0662\u0668 128 128 128 128 128", "not a non-negative integer"),  # Arabic-Indic digits
        ("1 128 \uff11\uff12\uff18 128 128 128 128 128", "not a non-negative integer"),  # fullwidth digits
    ],
)
def test_only_ascii_digits_separated_by_ascii_spaces_decode(text, why):
    """RT-2's output is ASCII digits separated by ASCII spaces (what a tokenizer's number
    tokens produce); look-alike separators, leading zeros and other digits are refused."""
    with pytest.raises(ActionDecodeError, match=why):
        RT2ActionTokenizer(BOUNDS).decode(text)
    with pytest.raises(ActionDecodeError, match=why):
        RT2ActionTokenizer(BOUNDS, horizon=2).decode_chunk(text + " 0 128 128 128 128 128 128 128")


def test_a_single_zero_is_not_a_leading_zero():
    assert RT2ActionTokenizer(BOUNDS).decode("0 0 255 0 0 0 0 0").tokens == (0, 0, 255, 0, 0, 0, 0, 0)


def test_split_chain_of_thought_without_plan():
    assert split_chain_of_thought("1 2 3") == (None, "1 2 3")
    assert split_chain_of_thought("Plan: go. Action: 1") == ("go", "1")


@pytest.mark.parametrize(
    "kwargs", [{"bins": 1}, {"decode_to": "middle"}, {"terminate_token": 256}, {"terminate_token": 1}]
)
def test_bad_codec_settings_are_errors(kwargs):
    with pytest.raises(ValueError):
        RT2ActionTokenizer(BOUNDS, **kwargs)


def test_bounds_validation():
    with pytest.raises(ValueError, match="high > low"):
        ActionBounds(np.zeros(7), np.zeros(7))
    with pytest.raises(ValueError, match="7 values"):
        ActionBounds(np.zeros(6), np.ones(6))
    with pytest.raises(ValueError, match="finite"):
        ActionBounds(np.full(7, -np.inf), np.ones(7))

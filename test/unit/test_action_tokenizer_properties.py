"""Property-based tests (hypothesis): no malformed model output ever yields a motion."""

import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rt2_ros.codecs import ActionBounds, ActionDecodeError, OpenVLAActionTokenizer, RT2ActionTokenizer

BOUNDS = ActionBounds(
    np.array([-0.05, -0.05, -0.05, -0.25, -0.25, -0.25, 0.0]),
    np.array([0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0]),
)
TOK = RT2ActionTokenizer(BOUNDS)
VALID = re.compile(r"\s*(Plan:.*?Action:)?\s*([0-9]+\s+){7}[0-9]+\s*", re.DOTALL | re.ASCII)

# Field 0 is the terminate field: only the terminate (0) and continue (1) tokens are valid.
valid_tokens = st.tuples(st.sampled_from([0, 1]), st.lists(st.integers(0, 255), min_size=7, max_size=7)).map(
    lambda t: [t[0], *t[1]]
)


def _valid_text(tokens):
    return " ".join(map(str, tokens))


@settings(max_examples=600, deadline=None)
@given(st.text(max_size=120))
def test_arbitrary_text_either_raises_decode_error_or_is_a_well_formed_action(text):
    try:
        a = TOK.decode(text)
    except ActionDecodeError:
        return
    # Only a well-formed 8-integer string may decode, and then to a bounded action.
    assert VALID.fullmatch(text), text
    assert a.tokens[0] in (0, 1)
    assert np.all(a.vector >= BOUNDS.low) and np.all(a.vector <= BOUNDS.high)


@settings(max_examples=400, deadline=None)
@given(
    valid_tokens,
    st.integers(0, 7),
    st.sampled_from(["-1", "1.5", "nan", "inf", "x", "256", "", "1e2", "0x1", "½", "٣"]),
)
def test_one_corrupted_field_is_always_rejected(tokens, idx, junk):
    fields = [str(t) for t in tokens]
    fields[idx] = junk
    text = " ".join(fields)
    try:
        TOK.decode(text)
    except ActionDecodeError:
        return
    raise AssertionError(f"corrupted output decoded: {text!r}")


@settings(max_examples=300, deadline=None)
@given(valid_tokens, st.text(alphabet=st.characters(blacklist_categories=("Zs", "Cc")), min_size=1, max_size=10))
def test_extra_text_after_the_action_is_rejected(tokens, extra):
    try:
        TOK.decode(_valid_text(tokens) + " " + extra)
    except ActionDecodeError:
        return
    raise AssertionError("extra text accepted")


@settings(max_examples=300, deadline=None)
@given(valid_tokens, st.integers(0, 7))
def test_missing_field_is_rejected(tokens, idx):
    del tokens[idx]
    try:
        TOK.decode(_valid_text(tokens))
    except ActionDecodeError:
        return
    raise AssertionError("7 fields accepted")


@settings(max_examples=300, deadline=None)
@given(valid_tokens)
def test_valid_strings_round_trip_exactly(tokens):
    a = TOK.decode(_valid_text(tokens))
    assert a.tokens == tuple(tokens)
    # Decoding to bin centres and encoding again gives back the very same bins.
    assert TOK.encode(a).split()[1:] == [str(t) for t in tokens[1:]]
    assert a.terminate == (tokens[0] == 0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-(2**40), 2**40), min_size=0, max_size=10))
def test_openvla_ids_outside_the_action_range_never_decode(ids):
    tok = OpenVLAActionTokenizer(32000)
    try:
        a = tok.decode(ids)
    except ActionDecodeError:
        return
    assert len(ids) == 7 and all(31744 <= i <= 31999 for i in ids)
    assert np.all(np.abs(a.vector) < 1.0)


@settings(max_examples=300, deadline=None)
@given(valid_tokens, st.integers(2, 10**6))
def test_a_terminate_field_other_than_terminate_or_continue_is_always_rejected(tokens, first):
    tokens[0] = first
    try:
        TOK.decode(_valid_text(tokens))
    except ActionDecodeError:
        return
    raise AssertionError(f"terminate field {first} decoded")

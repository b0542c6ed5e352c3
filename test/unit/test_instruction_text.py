"""Issue 21: instructions are checked strictly (``check_instruction``): invisible, reordering
and control characters are refused with the code point named, never executed."""

import pytest

from rt2_ros.policies.prompts import check_instruction


@pytest.mark.parametrize(
    "text, why",
    [
        ("pick up\x00 the block", "U+0000, a control character"),
        ("pick up\x7f the block", "U+007F, a control character"),
        ("pick up\x9b the block", "U+009B, a control character"),  # C1 (CSI)
        ("pick up the \u202ekcolb der", "U+202E, a bidi control"),
        ("pick up the \u2066red\u2069 block", "U+2066, a bidi control"),
        ("pick up the \u200fred block", "U+200F, a bidi control"),
        ("pick up the r\u200bed block", "U+200B, a zero-width character"),
        ("pick up the r\u200ded block", "U+200D, a zero-width character"),
        ("\ufeffpick up the red block", "U+FEFF, a zero-width character"),
        ("pick up the r\u00aded block", "U+00AD, an invisible format character"),  # soft hyphen
        ("pick up the \ufffd block", "U+FFFD, the replacement character"),
        ("pick up the \udcff block", "U+DCFF, a lone surrogate"),
    ],
)
def test_control_bidi_zero_width_and_replacement_characters_are_refused(text, why):
    with pytest.raises(ValueError, match=why.replace("+", r"\+")):
        check_instruction(text)


@pytest.mark.parametrize(
    "text, cleaned",
    [
        ("  pick up\tthe\nred block. ", "pick up the red block"),
        ("pick\u00a0up the\u3000red block", "pick up the red block"),  # Unicode spaces: one ASCII space
        ("place the crème brûlée on the plate", "place the crème brûlée on the plate"),
        ("赤いブロックを持ち上げて", "赤いブロックを持ち上げて"),
    ],
)
def test_whitespace_is_normalised_and_ordinary_text_passes(text, cleaned):
    assert check_instruction(text) == cleaned

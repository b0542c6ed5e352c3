"""Prompt templates for vision-language-action models (ROS-free, torch-free).

Three templates, each from its source:

* ``rt2``: RT-2's VQA form (Brohan et al. 2023, arXiv:2307.15818, section 3.2):
  ``Q: what action should the robot take to [task instruction]? A:``
* ``openvla``: OpenVLA's prompt (openvla/openvla README and
  ``vla-scripts/deploy.py``): ``In: What action should the robot take to
  {instruction.lower()}?\\nOut:``
* ``cot``: RT-2's chain-of-thought variant (section 4.4). The question is the
  ``rt2`` one; the *answer* is ``Plan: <text>. Action: <8 ints>``. The backend
  forces the answer to begin with :data:`COT_PLAN_PREFIX`, lets the model write
  free text until it writes :data:`COT_ACTION_MARKER` (or forces the marker
  after a token budget), then constrains decoding to action tokens.

This module only builds strings; the backend adds whatever the checkpoint's
processor needs (image tokens, BOS, PaliGemma's ``\\n`` separator).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PROMPT_TEMPLATES",
    "COT_PLAN_PREFIX",
    "COT_ACTION_MARKER",
    "MAX_INSTRUCTION_CHARS",
    "check_instruction",
    "build_prompt",
]

#: Template per ``policy.prompt`` value. ``{instruction}`` is the cleaned
#: instruction; ``{instruction_lower}`` the same, lower-cased (OpenVLA lower-cases).
PROMPT_TEMPLATES: dict[str, str] = {
    "rt2": "Q: what action should the robot take to {instruction}? A:",
    "openvla": "In: What action should the robot take to {instruction_lower}?\nOut:",
    "cot": "Q: what action should the robot take to {instruction}? A:",
}

#: Forced start of a chain-of-thought answer (RT-2 section 4.4).
COT_PLAN_PREFIX = "Plan:"
#: Text that ends the free-form plan; the action tokens follow it.
COT_ACTION_MARKER = "Action:"

#: Longest instruction accepted (characters). Real instructions are a sentence;
#: anything longer is a bug upstream and would only cost inference time.
MAX_INSTRUCTION_CHARS = 1000


#: Invisible or reordering characters refused in an instruction besides the control
#: characters (Unicode category Cf covers most; listed here for the error message):
#: bidi controls (the text would read differently from what the model gets), zero-width
#: characters and the BOM (words that look alike but are not), the replacement character
#: (what invalid UTF-8 decodes to).
_NAMED = {
    **{c: "a bidi control" for c in "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"},
    **{c: "a zero-width character" for c in "\u200b\u200c\u200d\u2060\ufeff"},
    "\ufffd": "the replacement character (invalid UTF-8 decodes to it)",
}


def _refused(c: str) -> str | None:
    """Why the character ``c`` is refused in an instruction, or None."""
    import unicodedata

    if c in _NAMED:
        return _NAMED[c]
    cat = unicodedata.category(c)
    if cat == "Cc":
        return "a control character"
    if cat == "Cf":
        return "an invisible format character"
    if cat == "Cs":
        return "a lone surrogate (not valid UTF-8)"
    return None


def check_instruction(instruction: Any) -> str:
    """Validate and clean a task instruction.

    Surrounding whitespace is removed, inner runs of whitespace (newlines, tabs and
    Unicode spaces such as U+00A0 included: ``str.split``) become one ASCII space, and one
    trailing ``.``, ``?`` or ``!`` is dropped (the templates add their own ``?``).

    Returns:
        The cleaned instruction.

    Raises:
        ValueError: not a ``str``, empty (after cleaning), longer than
            :data:`MAX_INSTRUCTION_CHARS`, or containing (named in the message, with its
            code point) a control character other than whitespace (NUL included; category
            Cc), a bidi control (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C), a
            zero-width or other invisible format character (U+200B-U+200D, U+2060, U+FEFF;
            category Cf), a lone surrogate, or U+FFFD (what invalid UTF-8 decodes to).
    """
    if not isinstance(instruction, str):
        raise ValueError(f"instruction must be a str, got {type(instruction).__name__}")
    if len(instruction) > MAX_INSTRUCTION_CHARS:
        raise ValueError(f"instruction too long ({len(instruction)} > {MAX_INSTRUCTION_CHARS} characters)")
    text = " ".join(instruction.split())
    for i, c in enumerate(text):
        why = _refused(c) if (ord(c) < 32 or ord(c) >= 127) else None
        if why is not None:
            raise ValueError(f"instruction contains U+{ord(c):04X}, {why}, at character {i}")
    if text and text[-1] in ".?!":
        text = text[:-1].rstrip()
    if not text:
        raise ValueError("instruction is empty")
    return text


def build_prompt(template: str, instruction: str) -> str:
    """Fill a prompt template with an instruction.

    Args:
        template: a key of :data:`PROMPT_TEMPLATES` (``rt2``, ``openvla``, ``cot``)
            or a custom template string containing ``{instruction}`` or
            ``{instruction_lower}``.
        instruction: the task, e.g. ``"pick up the red block"``.

    Returns:
        The prompt text, e.g.
        ``"Q: what action should the robot take to pick up the red block? A:"``.

    Raises:
        ValueError: bad instruction (see :func:`check_instruction`) or a custom
            template without an instruction field.
    """
    text = check_instruction(instruction)
    fmt = PROMPT_TEMPLATES.get(template, template)
    if "{instruction}" not in fmt and "{instruction_lower}" not in fmt:
        raise ValueError(
            f"unknown prompt template {template!r}: use one of {sorted(PROMPT_TEMPLATES)} "
            "or a format string with {instruction}"
        )
    try:
        return fmt.format(instruction=text, instruction_lower=text.lower())
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(f"bad prompt template {fmt!r}: {e!r}") from None

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


def check_instruction(instruction: Any) -> str:
    """Validate and clean a task instruction.

    Surrounding whitespace is removed, inner runs of whitespace (newlines
    included) become one space, and one trailing ``.``, ``?`` or ``!`` is dropped
    (the templates add their own ``?``).

    Returns:
        The cleaned instruction.

    Raises:
        ValueError: not a ``str``, empty (after cleaning), longer than
            :data:`MAX_INSTRUCTION_CHARS`, or containing control characters
            other than whitespace.
    """
    if not isinstance(instruction, str):
        raise ValueError(f"instruction must be a str, got {type(instruction).__name__}")
    if len(instruction) > MAX_INSTRUCTION_CHARS:
        raise ValueError(f"instruction too long ({len(instruction)} > {MAX_INSTRUCTION_CHARS} characters)")
    text = " ".join(instruction.split())
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("instruction contains control characters")
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

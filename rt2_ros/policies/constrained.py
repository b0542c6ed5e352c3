"""Constrained decoding of action tokens (part of the transformers backend; imports torch).

RT-2 (arXiv:2307.15818, section 3.3): "when prompted with a robot action, the
decoding is restricted to valid action tokens only", so the model *always*
returns a well-formed action. :class:`ActionLogitsProcessor` does that inside
``model.generate``: at action position ``i`` every token id outside
``allowed[i]`` gets a score of ``-inf``, whatever the weights say.

Two action vocabularies are supported:

* **RT-2**: one token per integer ``0 .. bins-1`` (PaLI-X has one token per integer
  up to 1000, reference section "Token mapping"). Which token spells which
  integer is found in the tokenizer's vocabulary with a pattern
  (:func:`find_rt2_action_token_ids`), e.g. ``"▁{k}"`` (sentencepiece word
  pieces ``▁0 .. ▁255``), ``"<act_{k}>"`` (added tokens) or ``"<loc{k:04d}>"``
  (PaliGemma location tokens reused as bins). Position 0 (``terminate``) is
  restricted to the terminate and continue values, positions 1..7 to all bins.
* **OpenVLA**: the last ``n_bins`` ids of the un-padded vocabulary,
  ``[vocab_size - 256, vocab_size - 1]`` (openvla ``prismatic/vla/action_tokenizer.py``),
  for each of the 7 positions.
* **Chunks** (``action.horizon`` H > 1): the positions of one action repeat H times, so
  exactly ``H x 8`` (RT-2, each step's terminate field restricted), ``H x 7`` (OpenVLA,
  integer text with one token per integer ``0 .. bins``) tokens are generated.
* **FAST**: every position allows the FAST vocabulary's model ids; end-of-sequence is
  allowed after the first token (``stop_after``), up to the chunk's longest encoding.

Chain of thought (RT-2 section 4.4) is a schedule in the same processor: the
answer is forced to begin with ``Plan:``, then free text (end-of-sequence and
special tokens banned) runs until the decoded text contains ``Action:``; after
``max_plan_tokens`` free tokens the marker is forced; then the action positions
are constrained as above.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import torch
from transformers import LogitsProcessor

__all__ = [
    "DEFAULT_ACTION_TOKEN_PATTERNS",
    "ActionTokensMissingError",
    "find_rt2_action_token_ids",
    "rt2_allowed_ids",
    "openvla_action_ids",
    "CotSchedule",
    "ActionLogitsProcessor",
]

#: Patterns tried, in order, to find the token of integer ``k`` when none is
#: configured: sentencepiece word piece, byte-level BPE word, bare number,
#: added action tokens.
DEFAULT_ACTION_TOKEN_PATTERNS: tuple[str, ...] = ("▁{k}", "Ġ{k}", "{k}", "<act_{k}>", "<action_{k}>")


class ActionTokensMissingError(ValueError):
    """The tokenizer has no complete set of action tokens (one per bin)."""


def find_rt2_action_token_ids(
    tokenizer: Any, bins: int, patterns: Sequence[str] | str | None = None
) -> tuple[str, list[int]]:
    """Find the token id of every integer ``0 .. bins-1``.

    A pattern is a ``str.format`` template with field ``k``; it matches when each
    ``pattern.format(k=k)`` is a single vocabulary entry and the ``bins`` ids are
    distinct. The first matching pattern wins.

    Args:
        tokenizer: a Hugging Face tokenizer (``get_vocab()`` is used).
        bins: number of bins (RT-2: 256).
        patterns: one pattern, several, or None for :data:`DEFAULT_ACTION_TOKEN_PATTERNS`.

    Returns:
        ``(pattern, ids)`` with ``ids[k]`` the token id of integer ``k``.

    Raises:
        ActionTokensMissingError: no pattern matches; the message says, per
            pattern, how many integers were found.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    patterns = list(patterns) if patterns else list(DEFAULT_ACTION_TOKEN_PATTERNS)
    vocab = tokenizer.get_vocab()
    report = []
    for pat in patterns:
        try:
            pieces = [pat.format(k=k) for k in range(bins)]
        except (KeyError, IndexError, ValueError) as e:
            raise ActionTokensMissingError(f"bad action token pattern {pat!r}: {e!r}") from None
        ids = [vocab.get(p) for p in pieces]
        found = sum(i is not None for i in ids)
        if found == bins and len(set(ids)) == bins:
            return pat, [int(i) for i in ids]
        report.append(f"{pat!r}: {found}/{bins}")
    raise ActionTokensMissingError(
        f"the checkpoint's tokenizer has no action tokens: RT-2 decoding needs one token per "
        f"integer 0..{bins - 1}; tried patterns ({', '.join(report)}). Use a checkpoint trained "
        "with action tokens, or name their spelling (pattern with {k}, e.g. '<loc{k:04d}>')."
    )


def rt2_allowed_ids(bin_ids: Sequence[int], terminate_values: Sequence[int] | None) -> list[list[int]]:
    """Allowed ids for the 8 RT-2 positions.

    Args:
        bin_ids: ``bin_ids[k]`` is the token id of integer ``k``.
        terminate_values: integers allowed in field 0 (``terminate``), e.g.
            ``(0, 1)``; None allows every bin.

    Returns:
        8 lists of token ids.
    """
    first = list(bin_ids) if terminate_values is None else [bin_ids[v] for v in terminate_values]
    return [first] + [list(bin_ids) for _ in range(7)]


def openvla_action_ids(vocab_size: int, n_bins: int = 256) -> list[int]:
    """OpenVLA's action ids ``[vocab_size - n_bins, vocab_size - 1]``.

    ``vocab_size`` is the tokenizer size without padding, as in openvla
    ``modeling_prismatic.py`` (``text_config.vocab_size - pad_to_multiple_of``).

    Raises:
        ValueError: ``vocab_size <= n_bins``.
    """
    if vocab_size <= n_bins:
        raise ValueError(f"vocab_size ({vocab_size}) must exceed n_bins ({n_bins})")
    return list(range(vocab_size - n_bins, vocab_size))


@dataclasses.dataclass(frozen=True)
class CotSchedule:
    """Chain-of-thought decoding schedule (RT-2 section 4.4).

    Attributes:
        prefix_ids: forced first tokens of the answer (``Plan:``).
        marker_ids: tokens forced when the plan runs out of budget (``" Action:"``, its leading space included).
        max_plan_tokens: free tokens allowed after the prefix.
        decode: token ids -> text, used to spot the marker in free text.
        marker: the text that ends the plan (``Action:``).
        banned_ids: ids never allowed in free text (end-of-sequence, padding,
            image and other special tokens).
    """

    prefix_ids: tuple[int, ...]
    marker_ids: tuple[int, ...]
    max_plan_tokens: int
    decode: Callable[[list[int]], str]
    marker: str = "Action:"
    banned_ids: tuple[int, ...] = ()


class ActionLogitsProcessor(LogitsProcessor):
    """Restrict ``generate`` to valid action tokens (one instance per ``generate`` call).

    Args:
        prompt_length: length of the (padded) prompt ``input_ids`` given to
            ``generate``; generated position ``j`` is column ``prompt_length + j``.
        allowed: ``allowed[i]`` are the ids allowed at action position ``i``;
            ``len(allowed)`` is the number of action tokens (8 RT-2, 7 OpenVLA).
        eos_token_id: forced after the last action token (so ``generate`` stops);
            None: no constraint after the action.
        cot: chain-of-thought schedule, or None for action tokens from the first
            generated position.
        stop_after: variable-length actions (FAST): end-of-sequence is also allowed at
            action positions ``>= stop_after``, so ``len(allowed)`` is then the most
            action tokens; None (fixed length, RT-2, OpenVLA, integer text): exactly
            ``len(allowed)`` action tokens.

    After ``generate`` returns, :attr:`action_start` holds per row the generated
    position of the first action token (0 without chain of thought).

    Input/output: ``input_ids`` ``int64 (B, T)``, ``scores`` ``float (B, V)``;
    returns ``scores`` plus an additive mask of ``0`` / ``-inf``.

    Raises:
        ValueError: an allowed id is outside the model's vocabulary ``V`` (first call).
    """

    def __init__(
        self,
        prompt_length: int,
        allowed: Sequence[Sequence[int]],
        eos_token_id: int | None = None,
        cot: CotSchedule | None = None,
        stop_after: int | None = None,
    ) -> None:
        if not allowed or any(len(a) == 0 for a in allowed):
            raise ValueError("every action position needs at least one allowed token id")
        if stop_after is not None and (eos_token_id is None or not 1 <= stop_after <= len(allowed)):
            raise ValueError("stop_after needs an eos_token_id and must be in [1, number of action positions]")
        self.stop_after = stop_after
        self.prompt_length = int(prompt_length)
        self.allowed = [sorted(set(int(i) for i in a)) for a in allowed]
        self.n_actions = len(self.allowed)
        self.eos_token_id = eos_token_id
        self.cot = cot
        self.action_start: list[int | None] = []
        self._forcing_from: list[int | None] = []
        self._masks: list[torch.Tensor] | None = None
        self._free_mask: torch.Tensor | None = None
        self._vocab = 0

    # -- masks ------------------------------------------------------------------------

    def _build(self, vocab: int, device: torch.device, batch: int) -> None:
        bad = [i for a in self.allowed for i in a if not 0 <= i < vocab]
        if bad:
            raise ValueError(f"action token ids {bad[:5]} are outside the model's vocabulary of {vocab}")
        cache: dict[tuple[int, ...], torch.Tensor] = {}
        masks = []
        for pos, a in enumerate(self.allowed):
            if self.stop_after is not None and pos >= self.stop_after and 0 <= int(self.eos_token_id) < vocab:
                a = sorted(set(a) | {int(self.eos_token_id)})
            key = tuple(a)
            if key not in cache:
                cache[key] = self._only(a, vocab, device)
            masks.append(cache[key])
        self._masks = masks
        self._vocab = vocab
        if self.cot is not None:
            free = torch.zeros(vocab, device=device)
            banned = [i for i in self.cot.banned_ids if 0 <= i < vocab]
            if banned:
                free[banned] = float("-inf")
            self._free_mask = free
        if self.cot is None:
            self.action_start = [0] * batch
        else:
            self.action_start = [None] * batch
            self._forcing_from = [None] * batch

    @staticmethod
    def _only(ids: Sequence[int], vocab: int, device: torch.device) -> torch.Tensor:
        m = torch.full((vocab,), float("-inf"), device=device)
        m[list(ids)] = 0.0
        return m

    def _after_action(self, device: torch.device) -> torch.Tensor | None:
        if self.eos_token_id is None or not 0 <= self.eos_token_id < self._vocab:
            return None
        return self._only([self.eos_token_id], self._vocab, device)

    # -- generate hook ----------------------------------------------------------------

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        batch, vocab = scores.shape
        if self._masks is None or vocab != self._vocab:
            self._build(vocab, scores.device, batch)
        assert self._masks is not None
        gen_len = input_ids.shape[1] - self.prompt_length
        if self.cot is None:
            if gen_len < self.n_actions:
                return scores + self._masks[gen_len].to(scores.dtype)
            after = self._after_action(scores.device)
            return scores if after is None else scores + after.to(scores.dtype)
        rows = [self._cot_row_mask(r, input_ids, gen_len, scores.device) for r in range(batch)]
        mask = torch.stack([m if m is not None else torch.zeros(vocab, device=scores.device) for m in rows])
        return scores + mask.to(scores.dtype)

    def _cot_row_mask(self, r: int, input_ids: torch.Tensor, gen_len: int, device: torch.device) -> torch.Tensor | None:
        cot = self.cot
        assert cot is not None and self._masks is not None
        start = self.action_start[r]
        if start is None:
            n_prefix = len(cot.prefix_ids)
            if gen_len < n_prefix:
                return self._only([cot.prefix_ids[gen_len]], self._vocab, device)
            forcing = self._forcing_from[r]
            if forcing is not None:
                k = gen_len - forcing
                if k < len(cot.marker_ids):
                    return self._only([cot.marker_ids[k]], self._vocab, device)
                start = self.action_start[r] = gen_len
            else:
                plan_ids = input_ids[r, self.prompt_length + n_prefix :].tolist()
                if plan_ids and cot.marker in cot.decode(plan_ids):
                    start = self.action_start[r] = gen_len
                elif len(plan_ids) >= cot.max_plan_tokens:
                    self._forcing_from[r] = gen_len
                    if cot.marker_ids:
                        return self._only([cot.marker_ids[0]], self._vocab, device)
                    start = self.action_start[r] = gen_len
                else:
                    return self._free_mask
        pos = gen_len - start
        if pos < self.n_actions:
            return self._masks[pos]
        return self._after_action(device)

    def max_new_tokens(self) -> int:
        """Upper bound on generated tokens for this schedule (plus one for EOS)."""
        n = self.n_actions
        if self.cot is not None:
            n += len(self.cot.prefix_ids) + self.cot.max_plan_tokens + len(self.cot.marker_ids) + 1
        return n

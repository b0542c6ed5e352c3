"""RT-2's action string (Brohan et al. 2023, arXiv:2307.15818, section 3.2).

The model answers 8 integers joined by spaces, ``terminate dx dy dz drx dry drz gripper``;
every continuous dimension is discretised uniformly into ``bins`` (256) bins over
per-dimension bounds. The chain-of-thought form (section 4.4) is
``Plan: <text>. Action: <8 ints>``. Imports numpy only.

Strict text (issue 21): the integers are ASCII digits, without leading zeros, separated
by ASCII spaces (0x20), which is what a tokenizer's number and space tokens produce.
Tolerated: padding (ASCII whitespace before and after the integers), runs of spaces
between them, and the chain-of-thought prefix. Refused: any other separator (a tab, a
newline, U+00A0 no-break space, U+2003 em space, ...), leading zeros (``007``), and
non-ASCII digits.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rt2_ros.codecs.base import (
    _INT_RE,
    DIM_NAMES,
    Action,
    ActionBounds,
    ActionDecodeError,
    _check_horizon,
    _check_text,
    _chunk_values,
    split_chain_of_thought,
)

__all__ = ["RT2ActionTokenizer"]

#: Padding tolerated around RT-2 action text (ASCII whitespace).
_PADDING = " \t\r\n"


def _fields(text: str) -> list[str]:
    """The integer fields of RT-2 action text: padding stripped, split on ASCII spaces.

    Raises:
        ActionDecodeError: a separator other than ASCII spaces (named by code point).
    """
    core = text.strip(_PADDING)
    for i, c in enumerate(core):
        if c != " " and c.isspace():
            raise ActionDecodeError(
                f"the integers must be separated by ASCII spaces, found U+{ord(c):04X} at character {i}: {text[:80]!r}"
            )
    return [f for f in core.split(" ") if f]


class RT2ActionTokenizer:
    """RT-2 action string codec (arXiv:2307.15818 section 3.2).

    ``terminate dx dy dz drx dry drz gripper``: 8 integers. The 7 continuous
    dimensions are split uniformly into ``bins`` bins over ``bounds``: bin ``k``
    of dimension ``i`` covers ``[low_i + k*w_i, low_i + (k+1)*w_i)`` with
    ``w_i = (high_i - low_i) / bins``.

    Args:
        bounds: per-dimension bounds (m, rad, gripper units).
        bins: number of bins per dimension (RT-2: 256).
        terminate_token: the value of the first field that means "terminate".
            Default **0**: RT-2 inherits RT-1's action space, whose
            ``terminate_episode`` is a 3-way one-hot where ``[1, 0, 0]`` means
            terminate; RT-1's tokenizer turns discrete fields into their argmax
            (google-research/robotics_transformer ``tokenizers/action_tokenizer.py``),
            so token 0 terminates and 1 continues. Both example strings of the
            RT-2 paper are mid-task and start with ``1``, which agrees.
        continue_token: the value :meth:`encode` writes for a non-terminal action (1).
            Field 0 must be one of the two; any other value is an
            :class:`ActionDecodeError` (never "keep going").
        decode_to: ``"center"`` (default) decodes bin ``k`` to its centre
            ``low + (k + 0.5) * w``, so encode/decode round-trips within half a bin
            ``w/2``. ``"edge"`` decodes as RT-1 does, ``low + k / (bins - 1) *
            (high - low)`` (the grid includes both bounds); :meth:`encode` then
            rounds to the nearest grid point (RT-1 truncates), so the round trip is
            within half a grid step ``(high - low) / (bins - 1) / 2``.

        horizon: actions per model output: ``horizon`` consecutive 8-integer actions
            (``8 * horizon`` integers, each step with its own terminate field). 1 is
            RT-2 as published.

    Raises:
        ValueError: bad ``bins``, ``terminate_token``, ``decode_to`` or ``horizon``.
    """

    n_fields = 8
    format = "rt2"
    decodes_ids = False
    action_dim = 7
    tokens_per_action = n_fields

    def __init__(
        self,
        bounds: ActionBounds | None = None,
        bins: int = 256,
        terminate_token: int = 0,
        continue_token: int = 1,
        decode_to: str = "center",
        horizon: int = 1,
    ) -> None:
        self.horizon = _check_horizon(horizon)
        if not isinstance(bins, (int, np.integer)) or bins < 2:
            raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
        if decode_to not in ("center", "edge"):
            raise ValueError(f"decode_to must be 'center' or 'edge', got {decode_to!r}")
        for name, tok in (("terminate_token", terminate_token), ("continue_token", continue_token)):
            if not 0 <= tok < bins:
                raise ValueError(f"{name} must be in [0, {bins - 1}], got {tok}")
        if terminate_token == continue_token:
            raise ValueError("terminate_token and continue_token must differ")
        self.bounds = bounds if bounds is not None else ActionBounds.rt1_default()
        self.bins = int(bins)
        self.terminate_token = int(terminate_token)
        self.continue_token = int(continue_token)
        self.decode_to = decode_to

    @property
    def gripper_range(self) -> tuple[float, float]:
        """``(low, high)`` of the gripper dimension (gripper units)."""
        return float(self.bounds.low[6]), float(self.bounds.high[6])

    def decode_output(self, text: str = "", token_ids: Sequence[int] | None = None) -> tuple[Action, ...]:
        """:class:`ActionCodec`: RT-2 decodes the text (token ids are the tokenizer's,
        not bins); ``horizon`` actions per output.

        Raises:
            ActionDecodeError: see :meth:`decode` and :meth:`decode_chunk`.
        """
        if self.horizon == 1:
            return (self.decode(text),)
        return self.decode_chunk(text)

    def describe(self) -> dict[str, Any]:
        """Format, number of tokens, bins and bounds (``{"low", "high"}``, m / rad / gripper units);
        ``horizon`` when it is not 1."""
        d = {
            "action_format": self.format,
            "action_dim": self.tokens_per_action,
            "bins": self.bins,
            "bounds": {"low": self.bounds.low.tolist(), "high": self.bounds.high.tolist()},
        }
        if self.horizon != 1:
            d["horizon"] = self.horizon
        return d

    def decode_chunk(self, text: str) -> tuple[Action, ...]:
        """Decode ``horizon`` consecutive actions, ``8 * horizon`` integers (plain or after
        ``Plan: ... Action:``), all or none.

        Returns:
            ``horizon`` :class:`Action` s in execution order; each has its own ``terminate``;
            the first carries the plan and every one the whole text.

        Raises:
            ActionDecodeError: wrong count (a truncated chunk included), or any bad field in
                any step (the message names the step).
        """
        text = _check_text(text)
        plan, action_text = split_chain_of_thought(text)
        fields = _fields(action_text)
        n = self.n_fields * self.horizon
        if len(fields) != n:
            raise ActionDecodeError(
                f"expected {self.horizon} actions x {self.n_fields} integers = {n} "
                f"'terminate dx dy dz drx dry drz gripper' each, got {len(fields)} fields: {text[:80]!r}"
            )
        out = []
        for k in range(self.horizon):
            try:
                toks = self.parse_tokens(" ".join(fields[k * self.n_fields : (k + 1) * self.n_fields]))
            except ActionDecodeError as e:
                raise ActionDecodeError(f"action {k} of the chunk: {e}") from None
            out.append(self.decode_tokens(toks, text=text, plan=plan if k == 0 else None))
        return tuple(out)

    def encode_chunk(self, values: np.ndarray, terminate: Sequence[bool] | None = None) -> str:
        """Encode ``float (horizon, 7)`` values (dx dy dz [m] drx dry drz [rad] gripper) and a
        terminate flag per step as the model text of one chunk.

        Raises:
            ActionDecodeError: wrong shape or non-finite values.
        """
        v = _chunk_values(values, self.horizon)
        term = [False] * self.horizon if terminate is None else [bool(t) for t in terminate]
        if len(term) != self.horizon:
            raise ActionDecodeError(f"expected {self.horizon} terminate flags, got {len(term)}")
        return " ".join(self.encode(v[k], terminate=term[k]) for k in range(self.horizon))

    @property
    def bin_width(self) -> np.ndarray:
        """``float64 (7,)`` width of one bin per dimension (units of the dimension)."""
        return (self.bounds.high - self.bounds.low) / self.bins

    @property
    def max_roundtrip_error(self) -> np.ndarray:
        """``float64 (7,)`` bound on ``|decode(encode(a)) - a|`` for ``a`` within bounds."""
        if self.decode_to == "center":
            return self.bin_width / 2
        return (self.bounds.high - self.bounds.low) / (self.bins - 1) / 2

    # -- decoding ---------------------------------------------------------------------

    def parse_tokens(self, text: str) -> tuple[int, ...]:
        """Parse the 8 integers of an action string, strictly: ASCII digits without leading
        zeros, separated by ASCII spaces (runs of them allowed), ASCII whitespace around.

        Raises:
            ActionDecodeError: empty, another separator (a tab, U+00A0, U+2003, ...), wrong
                count, non-integer, a leading zero, out of range, or a terminate field that
                is neither ``terminate_token`` nor ``continue_token``.
        """
        text = _check_text(text)
        fields = _fields(text)
        if len(fields) != self.n_fields:
            raise ActionDecodeError(
                f"expected {self.n_fields} integers 'terminate dx dy dz drx dry drz gripper', "
                f"got {len(fields)} fields: {text[:80]!r}"
            )
        tokens = []
        for i, f in enumerate(fields):
            if not _INT_RE.fullmatch(f):
                raise ActionDecodeError(
                    f"field {i} ({(('terminate',) + DIM_NAMES)[i]}) is not a non-negative integer: {f[:20]!r}"
                )
            if len(f) > 1 and f[0] == "0":
                raise ActionDecodeError(
                    f"field {i} ({(('terminate',) + DIM_NAMES)[i]}) has a leading zero: {f[:20]!r} "
                    "(a tokenizer writes numbers without them)"
                )
            v = int(f)
            if v >= self.bins:
                raise ActionDecodeError(
                    f"field {i} ({(('terminate',) + DIM_NAMES)[i]}) = {v} is out of range [0, {self.bins - 1}]"
                )
            tokens.append(v)
        self._check_terminate_field(tokens[0])
        return tuple(tokens)

    def _check_terminate_field(self, value: int) -> None:
        """Field 0 may only be ``terminate_token`` or ``continue_token`` (RT-1's
        ``terminate_episode`` one-hot written as its argmax has no other meaning).

        Raises:
            ActionDecodeError: any other value (it must never decode as "keep going").
        """
        if value not in (self.terminate_token, self.continue_token):
            raise ActionDecodeError(
                f"field 0 (terminate) = {value} is neither the terminate token ({self.terminate_token}) "
                f"nor the continue token ({self.continue_token})"
            )

    def bins_to_values(self, bins: Sequence[int] | np.ndarray) -> np.ndarray:
        """Map 7 bin indices to ``float64 (7,)`` values (bin centres or edges, see class doc)."""
        k = np.asarray(bins, dtype=np.float64)
        lo, hi = self.bounds.low, self.bounds.high
        if self.decode_to == "center":
            return lo + (k + 0.5) * (hi - lo) / self.bins
        return lo + k / (self.bins - 1) * (hi - lo)

    def decode_tokens(self, tokens: Sequence[int], text: str = "", plan: str | None = None) -> Action:
        """Decode 8 already-parsed integers.

        Raises:
            ActionDecodeError: wrong count, out-of-range values, or a terminate field
                that is neither ``terminate_token`` nor ``continue_token``.
        """
        tokens = tuple(int(t) for t in tokens)
        if len(tokens) != self.n_fields:
            raise ActionDecodeError(f"expected {self.n_fields} tokens, got {len(tokens)}")
        bad = [t for t in tokens if not 0 <= t < self.bins]
        if bad:
            raise ActionDecodeError(f"tokens out of range [0, {self.bins - 1}]: {bad}")
        self._check_terminate_field(tokens[0])
        values = self.bins_to_values(tokens[1:])
        return Action(
            terminate=tokens[0] == self.terminate_token,
            delta_position=values[0:3],
            delta_rotation=values[3:6],
            gripper=float(values[6]),
            tokens=tokens,
            text=text,
            plan=plan,
        )

    def decode(self, text: str) -> Action:
        """Decode model text: plain ``"t x y z rx ry rz g"`` or ``"Plan: ... Action: ..."``.

        Returns:
            The :class:`Action`; ``plan`` is set for chain-of-thought output.

        Raises:
            ActionDecodeError: any malformed output (see the exception's doc).
        """
        text = _check_text(text)
        plan, action_text = split_chain_of_thought(text)
        return self.decode_tokens(self.parse_tokens(action_text), text=text, plan=plan)

    # -- encoding ---------------------------------------------------------------------

    def values_to_bins(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """Map ``(7,)`` values to ``int64 (7,)`` bins; values outside bounds are clipped.

        Raises:
            ActionDecodeError: NaN/inf or wrong shape.
        """
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if v.shape != (7,):
            raise ActionDecodeError(f"expected 7 values, got {v.size}")
        if not np.all(np.isfinite(v)):
            raise ActionDecodeError(f"cannot encode non-finite values: {v.tolist()}")
        lo, hi = self.bounds.low, self.bounds.high
        frac = (np.clip(v, lo, hi) - lo) / (hi - lo)
        if self.decode_to == "center":
            k = np.floor(frac * self.bins)
        else:
            k = np.rint(frac * (self.bins - 1))
        return np.clip(k, 0, self.bins - 1).astype(np.int64)

    def encode(self, action: Action | Sequence[float] | np.ndarray, terminate: bool | None = None) -> str:
        """Encode an action (or 7 values) as the RT-2 string of 8 integers.

        Args:
            action: an :class:`Action`, or ``(7,)`` values dx dy dz (m) drx dry drz (rad) gripper.
            terminate: overrides/sets the terminate flag (default: the action's, or False).

        Raises:
            ActionDecodeError: non-finite values or wrong shape.
        """
        if isinstance(action, Action):
            values = action.vector
            term = action.terminate if terminate is None else terminate
        else:
            values = action
            term = bool(terminate)
        k = self.values_to_bins(values)
        first = self.terminate_token if term else self.continue_token
        return " ".join(str(int(t)) for t in (first, *k))

"""Plain integer text, VLA-0 style (NVlabs/vla0 ``rv_train/models/qwen/model.py``:
``get_text_action`` / ``get_action_from_text_action``).

``horizon x 7`` integers in ``[0, bins]`` as plain text, ``a = k / bins * (max - min) + min``.
Imports numpy only.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rt2_ros.codecs.base import (
    DIM_NAMES,
    Action,
    ActionBounds,
    ActionDecodeError,
    _action_from_values,
    _check_horizon,
    _check_text,
    _chunk_values,
    _parse_uints,
)

__all__ = ["IntegerTextCodec"]


class IntegerTextCodec:
    """Plain integer text, VLA-0 style (NVlabs/vla0, ``rv_train/models/qwen/model.py``:
    ``get_text_action`` encodes, ``get_action_from_text_action`` decodes; 1000 bins,
    7 dims x 8 steps in ``rv_train/configs.py``).

    The model answers ``horizon x 7`` integers joined by spaces, step after step
    (``dx dy dz drx dry drz gripper`` each). Upstream formulas, with min/max bounds
    per dimension::

        encode:  k = round((a - min) / (max - min) * bins)        # k in [0, bins]
        decode:  a = k / bins * (max - min) + min

    so the round trip is within half a step ``(max - min) / bins / 2``. Upstream
    repairs a short answer (repeats the last step) and truncates a long one; here a
    chunk with a wrong count or any bad field is rejected whole. No terminate field:
    episodes end by step or time limit.

    Args:
        bounds: min/max per dimension (m, rad, gripper units).
        bins: largest integer (VLA-0 ``num_bins_actions``: 1000); ``bins + 1`` values.
        horizon: actions per output (VLA-0: 8).

    Raises:
        ValueError: ``bins`` < 1 or a bad ``horizon``.
    """

    format = "int_text"
    decodes_ids = False
    action_dim = 7
    tokens_per_action = 7

    def __init__(self, bounds: ActionBounds | None = None, bins: int = 1000, horizon: int = 8):
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
            raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
        self.bounds = bounds if bounds is not None else ActionBounds.rt1_default()
        self.bins = int(bins)
        self.horizon = _check_horizon(horizon)

    @property
    def gripper_range(self) -> tuple[float, float]:
        """``(min, max)`` of the gripper dimension (gripper units)."""
        return float(self.bounds.low[6]), float(self.bounds.high[6])

    @property
    def max_roundtrip_error(self) -> np.ndarray:
        """``float64 (7,)`` bound on ``|decode(encode(a)) - a|`` within bounds: half a step."""
        return (self.bounds.high - self.bounds.low) / self.bins / 2

    def describe(self) -> dict[str, Any]:
        """Format, integers per action, horizon, bins and bounds."""
        return {
            "action_format": self.format,
            "action_dim": self.tokens_per_action,
            "horizon": self.horizon,
            "bins": self.bins,
            "bounds": {"low": self.bounds.low.tolist(), "high": self.bounds.high.tolist()},
        }

    def decode_output(self, text: str = "", token_ids: Sequence[int] | None = None) -> tuple[Action, ...]:
        """:class:`ActionCodec`: decode the text (token ids are the tokenizer's, not integers).

        Raises:
            ActionDecodeError: empty, wrong count, a field that is not a base-10
                non-negative integer, or an integer above ``bins``.
        """
        text = _check_text(text)
        n = self.horizon * self.action_dim
        ks = _parse_uints(text, n, f"{self.horizon} actions x {self.action_dim} 'dx dy dz drx dry drz gripper'")
        bad = [(i, k) for i, k in enumerate(ks) if k > self.bins]
        if bad:
            i, k = bad[0]
            raise ActionDecodeError(
                f"action {i // self.action_dim} of the chunk: field {i % self.action_dim} "
                f"({DIM_NAMES[i % self.action_dim]}) = {k} is out of range [0, {self.bins}]"
            )
        lo, hi = self.bounds.low, self.bounds.high
        out = []
        for s in range(self.horizon):
            k = np.asarray(ks[s * self.action_dim : (s + 1) * self.action_dim], dtype=np.float64)
            out.append(_action_from_values(k / self.bins * (hi - lo) + lo, ks[s * 7 : (s + 1) * 7], text))
        return tuple(out)

    def encode_chunk(self, values: np.ndarray, terminate: Sequence[bool] | None = None) -> str:
        """``float (horizon, 7)`` values -> the text of one chunk (clipped to the bounds;
        ``terminate`` is ignored: the format has none).

        Raises:
            ActionDecodeError: wrong shape or non-finite values.
        """
        v = _chunk_values(values, self.horizon)
        lo, hi = self.bounds.low, self.bounds.high
        k = np.rint((np.clip(v, lo, hi) - lo) / (hi - lo) * self.bins).astype(np.int64)
        return " ".join(str(int(x)) for x in np.clip(k, 0, self.bins).reshape(-1))

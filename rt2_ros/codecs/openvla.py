"""OpenVLA's action tokens and un-normalisation (openvla/openvla
``prismatic/vla/action_tokenizer.py`` and
``prismatic/extern/hf/modeling_prismatic.py::predict_action``).

7 token ids at the tail of the vocabulary, decoded to 255 bin centres on [-1, 1] and then
un-normalised with per-dataset q01/q99 statistics (:class:`UnnormStats`, chosen by
``unnorm_key`` with :func:`select_unnorm_stats`). Imports numpy only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from rt2_ros.codecs.base import (
    _INT_RE,
    Action,
    ActionDecodeError,
    _check_horizon,
    _check_text,
    _chunk_values,
    _parse_uints,
)

__all__ = ["OpenVLAActionTokenizer", "UnnormStats", "select_unnorm_stats"]


@dataclasses.dataclass(frozen=True)
class UnnormStats:
    """OpenVLA action statistics for one dataset (``dataset_statistics.json[key]["action"]``).

    Attributes:
        q01, q99: ``float64 (7,)`` 1st and 99th percentiles of each action dimension.
        mask: ``bool (7,)``; dimensions with False are not un-normalised (the gripper
            in OpenVLA's datasets). Defaults to all True, as ``predict_action`` does.
    """

    q01: np.ndarray
    q99: np.ndarray
    mask: np.ndarray

    @classmethod
    def from_dict(cls, action_stats: Mapping[str, Any], dim: int = 7) -> "UnnormStats":
        """Build from ``{"q01": [...], "q99": [...], "mask": [...]?}``.

        Raises:
            ValueError: missing keys, wrong length, non-finite values.
        """
        try:
            q01 = np.asarray(action_stats["q01"], dtype=np.float64)
            q99 = np.asarray(action_stats["q99"], dtype=np.float64)
        except KeyError as e:
            raise ValueError(f"action statistics need 'q01' and 'q99' (missing {e})") from None
        mask = np.asarray(action_stats.get("mask", np.ones(dim, dtype=bool)), dtype=bool)
        for name, arr in (("q01", q01), ("q99", q99), ("mask", mask)):
            if arr.shape != (dim,):
                raise ValueError(f"action statistics '{name}' must have {dim} values, got shape {arr.shape}")
        if not (np.all(np.isfinite(q01)) and np.all(np.isfinite(q99))):
            raise ValueError("action statistics q01/q99 must be finite")
        return cls(q01=q01, q99=q99, mask=mask)


def select_unnorm_stats(norm_stats: Mapping[str, Any], unnorm_key: str | None) -> tuple[str, UnnormStats]:
    """Pick the statistics of one dataset from a ``dataset_statistics.json``-style dict.

    Mirrors ``_check_unnorm_key`` in OpenVLA's ``modeling_prismatic.py``: with one
    dataset the key may be omitted; with several it is required.

    Returns:
        ``(key, stats)``.

    Raises:
        ValueError: empty dict, key required but not given, or key not present
            (the message lists the available keys).
    """
    if not norm_stats:
        raise ValueError("no action statistics given (dataset_statistics.json is empty)")
    keys = sorted(norm_stats)
    if not unnorm_key:
        if len(keys) != 1:
            raise ValueError(f"the model has statistics for several datasets; set unnorm_key to one of {keys}")
        unnorm_key = keys[0]
    if unnorm_key not in norm_stats:
        raise ValueError(f"unnorm_key {unnorm_key!r} not in the model's statistics; available: {keys}")
    entry = norm_stats[unnorm_key]
    action = entry.get("action", entry) if isinstance(entry, Mapping) else None
    if not isinstance(action, Mapping):
        raise ValueError(f"statistics for {unnorm_key!r} have no 'action' entry")
    return unnorm_key, UnnormStats.from_dict(action)


class OpenVLAActionTokenizer:
    """OpenVLA action token codec and un-normalisation.

    Upstream formulas (openvla/openvla ``prismatic/vla/action_tokenizer.py`` and
    ``prismatic/extern/hf/modeling_prismatic.py::predict_action``)::

        bins        = linspace(-1, 1, n_bins)            # 256 edges
        bin_centers = (bins[:-1] + bins[1:]) / 2         # 255 centres
        encode:  token_id = vocab_size - digitize(clip(a, -1, 1), bins)
        decode:  idx = clip(vocab_size - token_id - 1, 0, 254); a = bin_centers[idx]
        unnorm:  a = where(mask, 0.5 * (a + 1) * (q99 - q01) + q01, a)

    ``vocab_size`` is the tokenizer's size **without** padding: ``predict_action``
    uses ``config.text_config.vocab_size - config.pad_to_multiple_of`` (32000 for
    the Llama-2 tokenizer of ``openvla-7b``).

    Unlike upstream, which clips any id into range, ids outside the 256 action ids
    ``[vocab_size - 256, vocab_size - 1]`` are rejected: they mean the model did
    not emit an action.

    Args:
        vocab_size: tokenizer vocabulary size without padding.
        stats: statistics for un-normalisation, or None to return normalised [-1, 1].
        n_bins: 256 as upstream.
        action_dim: 7 as upstream.
        horizon: actions per model output: ``horizon x action_dim`` ids in execution
            order (OpenVLA-OFT / MiniVLA-style chunks of the same tail tokens); 1 as upstream.
    """

    format = "openvla"
    decodes_ids = True

    def __init__(
        self,
        vocab_size: int,
        stats: UnnormStats | None = None,
        n_bins: int = 256,
        action_dim: int = 7,
        horizon: int = 1,
    ):
        self.horizon = _check_horizon(horizon)
        if vocab_size <= n_bins:
            raise ValueError(f"vocab_size ({vocab_size}) must exceed n_bins ({n_bins})")
        self.vocab_size = int(vocab_size)
        self.n_bins = int(n_bins)
        self.action_dim = int(action_dim)
        self.stats = stats
        self.bins = np.linspace(-1.0, 1.0, self.n_bins)
        self.bin_centers = (self.bins[:-1] + self.bins[1:]) / 2.0

    @property
    def tokens_per_action(self) -> int:
        """One token per dimension (7)."""
        return self.action_dim

    @property
    def gripper_range(self) -> tuple[float, float]:
        """OpenVLA's data: 0 = close, 1 = open (``shared/docs/rt2-reference.md``)."""
        return 0.0, 1.0

    def decode_output(self, text: str = "", token_ids: Sequence[int] | None = None) -> tuple[Action, ...]:
        """:class:`ActionCodec`: decode the action token ids; without ids, the text holds
        them as whitespace-separated integers (``rt2-ros decode --format openvla``).

        Raises:
            ActionDecodeError: see :meth:`decode` and :meth:`decode_text`.
        """
        if self.horizon == 1:
            if token_ids is None:
                return (self.decode_text(text),)
            return (self.decode(token_ids, text=text),)
        if token_ids is None:
            text = _check_text(text)
            token_ids = _parse_uints(text, self.horizon * self.action_dim, f"{self.horizon} x {self.action_dim} ids")
        return self.decode_chunk(token_ids, text=text)

    def decode_chunk(self, token_ids: Sequence[int] | np.ndarray, text: str = "") -> tuple[Action, ...]:
        """``horizon x action_dim`` token ids -> ``horizon`` actions, all or none.

        Raises:
            ActionDecodeError: wrong count (a truncated chunk included) or a non-action id
                anywhere in the chunk.
        """
        try:
            ids = np.asarray(token_ids)
        except Exception as e:  # noqa: BLE001 - anything unconvertible is malformed
            raise ActionDecodeError(f"token ids not convertible to an array: {e}") from None
        n = self.horizon * self.action_dim
        if ids.ndim != 1 or ids.shape[0] != n:
            raise ActionDecodeError(
                f"expected {self.horizon} actions x {self.action_dim} = {n} action token ids, got shape {ids.shape}"
            )
        out = []
        for k in range(self.horizon):
            try:
                out.append(self.decode(ids[k * self.action_dim : (k + 1) * self.action_dim], text=text))
            except ActionDecodeError as e:
                raise ActionDecodeError(f"action {k} of the chunk: {e}") from None
        return tuple(out)

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`unnormalize`: ``(..., action_dim)`` values -> normalised [-1, 1] (clipped)."""
        v = np.asarray(values, dtype=np.float64)
        if self.stats is None:
            return np.clip(v, -1.0, 1.0)
        s = self.stats
        span = np.where(s.q99 - s.q01 == 0, 1.0, s.q99 - s.q01)
        return np.clip(np.where(s.mask, 2.0 * (v - s.q01) / span - 1.0, v), -1.0, 1.0)

    def encode_chunk(self, values: np.ndarray, terminate: Sequence[bool] | None = None) -> tuple[str, list[int]]:
        """``float (horizon, action_dim)`` values -> ``(text, ids)`` of one chunk (OpenVLA has no
        terminate: ``terminate`` is ignored).

        Raises:
            ActionDecodeError: wrong shape or non-finite values.
        """
        v = _chunk_values(values, self.horizon, self.action_dim)
        ids = [int(i) for k in range(self.horizon) for i in self.encode_normalized(self.normalize(v[k]))]
        return " ".join(map(str, ids)), ids

    def describe(self) -> dict[str, Any]:
        """Format, number of tokens, vocabulary size and the un-normalisation statistics."""
        s = self.stats
        d = {
            "action_format": self.format,
            "action_dim": self.tokens_per_action,
            "vocab_size": self.vocab_size,
            "statistics": None
            if s is None
            else {"q01": s.q01.tolist(), "q99": s.q99.tolist(), "mask": s.mask.tolist()},
        }
        if self.horizon != 1:
            d["horizon"] = self.horizon
        return d

    @property
    def action_token_ids(self) -> range:
        """The token ids that encode actions: ``[vocab_size - n_bins, vocab_size - 1]``."""
        return range(self.vocab_size - self.n_bins, self.vocab_size)

    def decode_normalized(self, token_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Token ids -> ``float64 (action_dim,)`` normalised actions in [-1, 1].

        Raises:
            ActionDecodeError: wrong count, non-integer or non-action ids.
        """
        try:
            ids = np.asarray(token_ids)
        except Exception as e:  # noqa: BLE001 - anything unconvertible is malformed
            raise ActionDecodeError(f"token ids not convertible to an array: {e}") from None
        if ids.ndim != 1 or ids.shape[0] != self.action_dim:
            raise ActionDecodeError(f"expected {self.action_dim} action token ids, got shape {ids.shape}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise ActionDecodeError(f"token ids must be integers, got dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        lo, hi = self.vocab_size - self.n_bins, self.vocab_size - 1
        bad = ids[(ids < lo) | (ids > hi)]
        if bad.size:
            raise ActionDecodeError(f"token ids {bad.tolist()} are not action tokens [{lo}, {hi}]")
        idx = np.clip(self.vocab_size - ids - 1, 0, self.bin_centers.shape[0] - 1)
        return self.bin_centers[idx]

    def unnormalize(self, normalized: np.ndarray) -> np.ndarray:
        """Apply q01/q99 un-normalisation (identity without statistics)."""
        if self.stats is None:
            return np.asarray(normalized, dtype=np.float64)
        s = self.stats
        return np.where(s.mask, 0.5 * (normalized + 1.0) * (s.q99 - s.q01) + s.q01, normalized)

    def decode(self, token_ids: Sequence[int] | np.ndarray, text: str = "") -> Action:
        """Token ids -> :class:`Action` (terminate always False: OpenVLA has no done
        token, openvla issue #45; episodes end by step or time limit).

        Raises:
            ActionDecodeError: see :meth:`decode_normalized`.
        """
        a = self.unnormalize(self.decode_normalized(token_ids))
        return Action(
            terminate=False,
            delta_position=a[0:3].copy(),
            delta_rotation=a[3:6].copy(),
            gripper=float(a[6]),
            tokens=tuple(int(t) for t in np.asarray(token_ids).tolist()),
            text=text,
        )

    def decode_text(self, text: str) -> Action:
        """Decode whitespace-separated token ids (the CLI's ``--format openvla``).

        Raises:
            ActionDecodeError: malformed text or ids.
        """
        text = _check_text(text)
        fields = text.split()
        for f in fields:
            if not _INT_RE.fullmatch(f):
                raise ActionDecodeError(f"token id is not a non-negative integer: {f[:20]!r}")
        return self.decode(np.array([int(f) for f in fields], dtype=np.int64), text=text)

    def encode_normalized(self, normalized: Sequence[float] | np.ndarray) -> np.ndarray:
        """Normalised actions in [-1, 1] -> ``int64 (action_dim,)`` token ids (upstream encode).

        Raises:
            ActionDecodeError: non-finite values or wrong shape.
        """
        a = np.asarray(normalized, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_dim,) or not np.all(np.isfinite(a)):
            raise ActionDecodeError(f"expected {self.action_dim} finite values, got {a.tolist()}")
        return (self.vocab_size - np.digitize(np.clip(a, -1.0, 1.0), self.bins)).astype(np.int64)

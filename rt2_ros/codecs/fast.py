"""FAST action tokens (Pertsch et al. 2025, physical-intelligence/fast
``processing_action_tokenizer.py``; openpi ``models/tokenizer.py`` for the model-id mapping).

BPE tokens -> string -> quantised DCT coefficients -> inverse DCT -> chunk. Imports numpy;
scipy (the DCT) and the ``tokenizers`` library (the checkpoint's BPE tokenizer) are imported
when they are first needed.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from rt2_ros.codecs.base import (
    Action,
    ActionBounds,
    ActionDecodeError,
    _action_from_values,
    _check_horizon,
    _check_text,
    _chunk_values,
    _parse_uints,
)

__all__ = ["FASTActionCodec", "load_fast_tokenizer"]


def load_fast_tokenizer(path: str) -> Any:
    """Load the FAST BPE tokenizer shipped with a checkpoint: ``tokenizer.json`` itself, or a
    directory holding one (FAST's ``save_pretrained`` layout), with the ``tokenizers`` library.

    Returns:
        A ``tokenizers.Tokenizer`` (``decode(ids) -> str``, ``encode(str).ids``).

    Raises:
        ValueError: no path, no such file, not a tokenizer, or ``tokenizers`` not installed.
    """
    import os

    if not path:
        raise ValueError("action.format 'fast' needs action.fast_tokenizer_path (the checkpoint's FAST tokenizer)")
    file = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise ValueError(f"no FAST tokenizer at {path!r} (expected tokenizer.json or a directory holding one)")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ValueError("action.format 'fast' needs the tokenizers library (pip install tokenizers)") from None
    try:
        return Tokenizer.from_file(file)
    except Exception as e:  # noqa: BLE001 - any loader failure is a config error with its message
        raise ValueError(f"cannot load the FAST tokenizer {file!r}: {e}") from None


class FASTActionCodec:
    """FAST action tokens (Pertsch et al. 2025, "FAST: Efficient Action Tokenization for
    Vision-Language-Action Models"; physical-intelligence/fast
    ``processing_action_tokenizer.py``, used by pi0-FAST and NORA).

    Upstream encoding of a normalised chunk ``x`` (``horizon x D``, values in [-1, 1])::

        coeff = round(dct(x, axis=0, norm="ortho") * scale)          # per dimension, over time
        text  = "".join(chr(max(c - min_token, 0)) for c in coeff.flatten())   # row-major:
                                                                       # low frequencies first
        ids   = bpe_tokenizer(text)                                     # FAST ids in [0, vocab_size)

    Decoding reverses it: ``ord(c) + min_token``, reshape ``(horizon, D)``,
    ``idct(coeff / scale, axis=0, norm="ortho")``. Upstream's decoder pads, truncates or
    returns zeros on a bad sequence; here any sequence that does not give exactly
    ``horizon x D`` coefficients is an :class:`ActionDecodeError` (never a chunk of zeros).

    Model ids -> FAST ids: ``fast = id - id_offset`` (NORA: FAST+ ids start at 151665), or
    with ``id_reversed`` ``fast = id_offset - id`` (pi0-FAST on PaliGemma:
    ``vocab_size - 1 - 128 - id``, openpi ``models/tokenizer.py``). The normalised values
    map to physical units with the min/max bounds, ``a = low + (x + 1) / 2 * (high - low)``
    (clipped to the bounds: FAST's inverse DCT is not bounded). No terminate field.

    Args:
        tokenizer: the checkpoint's FAST BPE tokenizer (:func:`load_fast_tokenizer`):
            ``decode(list[int]) -> str``; ``encode`` is needed by :meth:`encode_chunk` only.
        bounds: the [-1, 1] range of each dimension in m, rad, gripper units.
        horizon: actions per chunk (time steps).
        scale: DCT coefficient scale (FAST default 10).
        min_token: smallest quantised coefficient (FAST ``min_token``, from its fit).
        vocab_size: FAST BPE vocabulary size (FAST default 1024).
        id_offset, id_reversed: the model-id mapping above.

    Raises:
        ValueError: bad horizon, scale or vocabulary size.
    """

    format = "fast"
    decodes_ids = True
    action_dim = 7
    tokens_per_action = 7

    def __init__(
        self,
        tokenizer: Any,
        bounds: ActionBounds | None = None,
        horizon: int = 8,
        scale: float = 10.0,
        min_token: int = 0,
        vocab_size: int = 1024,
        id_offset: int = 0,
        id_reversed: bool = False,
    ):
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"FAST scale must be > 0, got {scale}")
        if vocab_size < 1:
            raise ValueError(f"FAST vocab_size must be >= 1, got {vocab_size}")
        self.tokenizer = tokenizer
        self.bounds = bounds if bounds is not None else ActionBounds.rt1_default()
        self.horizon = _check_horizon(horizon)
        self.scale = float(scale)
        self.min_token = int(min_token)
        self.vocab_size = int(vocab_size)
        self.id_offset = int(id_offset)
        self.id_reversed = bool(id_reversed)

    @property
    def gripper_range(self) -> tuple[float, float]:
        """``(low, high)`` of the gripper dimension (gripper units)."""
        return float(self.bounds.low[6]), float(self.bounds.high[6])

    @property
    def max_output_tokens(self) -> int:
        """Most model tokens one chunk can take: one per UTF-8 byte of its coefficient
        string (byte-level BPE), at most 3 bytes per coefficient."""
        return 3 * self.horizon * self.action_dim

    @property
    def model_token_ids(self) -> list[int]:
        """The model ids of the FAST vocabulary (what the output constraint allows)."""
        return [self.to_model_id(i) for i in range(self.vocab_size)]

    def to_model_id(self, fast_id: int) -> int:
        return self.id_offset - fast_id if self.id_reversed else fast_id + self.id_offset

    def to_fast_id(self, model_id: int) -> int:
        return self.id_offset - model_id if self.id_reversed else model_id - self.id_offset

    @property
    def max_roundtrip_error(self) -> np.ndarray:
        """``float64 (7,)`` bound on the round-trip error per value within bounds: every
        coefficient is off by at most ``0.5 / scale``; the orthonormal inverse DCT keeps
        the L2 norm, so one dimension's ``horizon`` values are off by at most
        ``sqrt(horizon) * 0.5 / scale`` each (normalised), times half the range."""
        return math.sqrt(self.horizon) * 0.5 / self.scale * (self.bounds.high - self.bounds.low) / 2

    def describe(self) -> dict[str, Any]:
        """Format, horizon, FAST parameters and bounds."""
        return {
            "action_format": self.format,
            "action_dim": self.tokens_per_action,
            "horizon": self.horizon,
            "fast": {
                "scale": self.scale,
                "min_token": self.min_token,
                "vocab_size": self.vocab_size,
                "id_offset": self.id_offset,
                "id_reversed": self.id_reversed,
            },
            "bounds": {"low": self.bounds.low.tolist(), "high": self.bounds.high.tolist()},
        }

    def decode_output(self, text: str = "", token_ids: Sequence[int] | None = None) -> tuple[Action, ...]:
        """:class:`ActionCodec`: decode the FAST tokens (model ids); without ids, the text holds
        them as whitespace-separated integers (``rt2-ros decode --format fast``).

        Raises:
            ActionDecodeError: no tokens, an id outside the FAST vocabulary, a sequence
                the BPE tokenizer cannot decode, one that gives other than ``horizon x 7``
                coefficients (a truncated chunk included), or non-finite values.
        """
        if token_ids is None:
            text = _check_text(text)
            fields = text.split()
            if len(fields) > self.max_output_tokens:
                raise ActionDecodeError(f"{len(fields)} FAST tokens, more than a chunk can take")
            token_ids = _parse_uints(text, len(fields), "FAST token ids")
        ids = [int(i) for i in token_ids]
        if not ids:
            raise ActionDecodeError("no FAST action tokens")
        fast = [self.to_fast_id(i) for i in ids]
        bad = [m for m, f in zip(ids, fast) if not 0 <= f < self.vocab_size]
        if bad:
            raise ActionDecodeError(f"token ids {bad[:5]} are not FAST action tokens")
        try:
            decoded = self.tokenizer.decode(fast)
        except Exception as e:  # noqa: BLE001 - a tokenizer failure is malformed output
            raise ActionDecodeError(f"the FAST tokenizer cannot decode these tokens: {e}") from None
        if not isinstance(decoded, str):
            raise ActionDecodeError("the FAST tokenizer did not return text")
        n = self.horizon * self.action_dim
        if len(decoded) != n:
            raise ActionDecodeError(
                f"FAST tokens decode to {len(decoded)} DCT coefficients; a {self.horizon} x {self.action_dim} "
                f"chunk needs {n}"
            )
        coeff = np.array([ord(c) for c in decoded], dtype=np.float64) + self.min_token
        x = _idct(coeff.reshape(self.horizon, self.action_dim) / self.scale)
        if not np.all(np.isfinite(x)):
            raise ActionDecodeError("FAST chunk decodes to non-finite values")
        lo, hi = self.bounds.low, self.bounds.high
        a = np.clip(lo + (x + 1.0) / 2.0 * (hi - lo), lo, hi)
        return tuple(_action_from_values(a[k], ids, text) for k in range(self.horizon))

    def encode_chunk(self, values: np.ndarray, terminate: Sequence[bool] | None = None) -> tuple[str, list[int]]:
        """``float (horizon, 7)`` values -> ``(text, model ids)`` of one chunk (FAST's encoder;
        ``terminate`` is ignored: the format has none).

        Raises:
            ActionDecodeError: wrong shape or non-finite values.
        """
        v = _chunk_values(values, self.horizon)
        lo, hi = self.bounds.low, self.bounds.high
        x = 2.0 * (np.clip(v, lo, hi) - lo) / (hi - lo) - 1.0
        coeff = np.rint(_dct(x) * self.scale).astype(np.int64).reshape(-1)
        string = "".join(chr(int(max(c - self.min_token, 0))) for c in coeff)
        enc = self.tokenizer.encode(string)
        fast_ids = list(getattr(enc, "ids", enc))
        ids = [self.to_model_id(int(i)) for i in fast_ids]
        return " ".join(map(str, ids)), ids


def _check_fast_processor_config(action: Any, horizon: int) -> None:
    """FAST's ``save_pretrained`` writes ``processor_config.json`` next to the tokenizer; when
    it is there, its scale, min_token, vocab_size, time_horizon and action_dim must agree with
    the configuration (a silent mismatch would decode every chunk to the wrong values).

    Raises:
        ValueError: a value that differs (all named).
    """
    import json
    import os

    path = action.fast_tokenizer_path
    cfg_file = os.path.join(path if os.path.isdir(path) else os.path.dirname(path), "processor_config.json")
    if not os.path.isfile(cfg_file):
        return
    try:
        with open(cfg_file) as f:
            pc = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {cfg_file}: {e}") from None
    want = {
        "scale": ("action.fast_scale", action.fast_scale),
        "min_token": ("action.fast_min_token", action.fast_min_token),
        "vocab_size": ("action.fast_vocab_size", action.fast_vocab_size),
        "time_horizon": ("action.horizon", horizon),
        "action_dim": ("7 action dimensions", 7),
    }
    bad = [
        f"{name}={ours} but the checkpoint's {key}={pc[key]}"
        for key, (name, ours) in want.items()
        if pc.get(key) is not None and not math.isclose(float(pc[key]), float(ours))
    ]
    if bad:
        raise ValueError(f"FAST settings disagree with {cfg_file}: " + "; ".join(bad))


def _dct(x: np.ndarray) -> np.ndarray:
    from scipy.fft import dct

    return dct(x, axis=0, norm="ortho")


def _idct(c: np.ndarray) -> np.ndarray:
    from scipy.fft import idct

    return idct(c, axis=0, norm="ortho")

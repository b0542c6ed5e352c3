"""Action codec: model output text / token ids <-> end-effector actions.

Four formats are supported, all from ``shared/docs/rt2-reference.md``; each decodes a
chunk of ``horizon`` actions per model output (1 = one action per inference, as RT-2
and OpenVLA were published):

* **RT-2** (Brohan et al. 2023, arXiv:2307.15818, section 3.2): the model answers
  8 integers joined by spaces, ``terminate dx dy dz drx dry drz gripper``; every
  continuous dimension is discretised uniformly into ``bins`` (256) bins over
  per-dimension bounds. The chain-of-thought form (section 4.4) is
  ``Plan: <text>. Action: <8 ints>``.
* **OpenVLA** (openvla/openvla, ``prismatic/vla/action_tokenizer.py`` and
  ``prismatic/extern/hf/modeling_prismatic.py::predict_action``): 7 token ids at
  the tail of the vocabulary, decoded to 255 bin centres on [-1, 1] and then
  un-normalised with per-dataset q01/q99 statistics.
* **Integer text** (:class:`IntegerTextCodec`, VLA-0, NVlabs/vla0
  ``rv_train/models/qwen/model.py``: ``get_text_action`` / ``get_action_from_text_action``):
  ``horizon x 7`` integers in ``[0, bins]`` as plain text, ``a = k / bins * (max - min) + min``.
* **FAST** (:class:`FASTActionCodec`, Pertsch et al. 2025, physical-intelligence/fast
  ``processing_action_tokenizer.py``; openpi ``models/tokenizer.py`` for the model-id
  mapping): BPE tokens -> string -> quantised DCT coefficients -> inverse DCT -> chunk.

All implement one :class:`ActionCodec` interface (``decode_output`` from text and/or
token ids, ``action_dim``, ``horizon``, bounds), built by :func:`make_codec` from the
``action`` section of the configuration. ``decode_output`` returns a tuple of actions
(an action chunk of ``horizon`` actions, in execution order).

Why the new codecs live here and not in a package of their own: :func:`make_codec`
builds every format and import-linter forbids import cycles, so the formats share
this module (FAST's ``tokenizers`` import happens only when a FAST codec is built).

Malformed output of any kind raises :class:`ActionDecodeError` and never yields a
partial action (nor a partial chunk: a chunk with one bad step is rejected whole).
This module imports numpy and scipy (FAST's inverse DCT); FAST also needs the
``tokenizers`` library (imported when a FAST codec is built).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # the config schema imports nothing from here; no cycle at run time
    from rt2_ros.config import ActionConfig

__all__ = [
    "ActionDecodeError",
    "Action",
    "ActionBounds",
    "ActionCodec",
    "make_codec",
    "RT2ActionTokenizer",
    "OpenVLAActionTokenizer",
    "IntegerTextCodec",
    "FASTActionCodec",
    "load_fast_tokenizer",
    "ACTION_FORMATS",
    "UnnormStats",
    "select_unnorm_stats",
    "split_chain_of_thought",
    "DIM_NAMES",
]

#: ``action.format`` names :func:`make_codec` builds.
ACTION_FORMATS = ("rt2", "openvla", "int_text", "fast")

#: Names of the 7 continuous dimensions, in RT-2's order (after ``terminate``).
DIM_NAMES = ("dx", "dy", "dz", "drx", "dry", "drz", "gripper")

#: Longest model output we are willing to parse (characters). A model constrained
#: to action tokens emits far less; anything longer is garbage.
MAX_TEXT_CHARS = 4096

_INT_RE = re.compile(r"[0-9]+", re.ASCII)
_COT_RE = re.compile(r"^\s*Plan:\s*(?P<plan>.*?)\s*Action:\s*(?P<action>.*)$", re.DOTALL)


class ActionDecodeError(ValueError):
    """Model output that is not a valid action. The message says what was wrong.

    Raised for: empty output, wrong number of fields, a field that is not a
    non-negative base-10 integer (signs, decimals, ``nan``, words), a value out of
    ``[0, bins - 1]`` (or outside the action-token range for OpenVLA), text beyond
    the action, or non-finite values given to an encoder.
    """


@dataclasses.dataclass(frozen=True)
class Action:
    """One decoded action: an end-effector displacement for one control step.

    Attributes:
        terminate: True when the model asked to end the episode.
        delta_position: ``float64 (3,)`` translation (dx, dy, dz) in metres, in the
            command frame.
        delta_rotation: ``float64 (3,)`` rotation delta (drx, dry, drz) in radians;
            how it composes (roll-pitch-yaw or rotation vector) is a config choice,
            see :func:`rt2_ros.motion.rotation_delta_to_rotvec`.
        gripper: gripper value in the configured gripper units (RT-2 default:
            extension in [0, 1], 1 = open; OpenVLA: 0 = close, 1 = open).
        tokens: the integers the model emitted (RT-2 bins, or OpenVLA token ids).
        text: the raw model text the action came from (``""`` if from ids).
        plan: the chain-of-thought plan text, or None.
    """

    terminate: bool
    delta_position: np.ndarray
    delta_rotation: np.ndarray
    gripper: float
    tokens: tuple[int, ...] = ()
    text: str = ""
    plan: str | None = None

    @property
    def vector(self) -> np.ndarray:
        """``float64 (7,)``: dx, dy, dz (m), drx, dry, drz (rad), gripper."""
        return np.concatenate([self.delta_position, self.delta_rotation, [self.gripper]])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the unit in every field name."""
        dp, dr = self.delta_position.tolist(), self.delta_rotation.tolist()
        return {
            "terminate": bool(self.terminate),
            "delta_position_m": {"x": dp[0], "y": dp[1], "z": dp[2]},
            "delta_rotation_rad": {"x": dr[0], "y": dr[1], "z": dr[2]},
            "gripper": float(self.gripper),
            "tokens": list(self.tokens),
            "plan": self.plan,
        }


@dataclasses.dataclass(frozen=True)
class ActionBounds:
    """Per-dimension bounds of the 7 continuous dimensions.

    Attributes:
        low, high: ``float64 (7,)``: dx, dy, dz in m; drx, dry, drz in rad;
            gripper in gripper units. ``high > low`` everywhere.

    Raises:
        ValueError: wrong shape, non-finite, or ``high <= low``.
    """

    low: np.ndarray
    high: np.ndarray

    def __post_init__(self) -> None:
        low = np.asarray(self.low, dtype=np.float64).reshape(-1)
        high = np.asarray(self.high, dtype=np.float64).reshape(-1)
        if low.shape != (7,) or high.shape != (7,):
            raise ValueError(f"action bounds need 7 values each (got {low.size} low, {high.size} high)")
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError("action bounds must be finite")
        if np.any(high <= low):
            bad = [DIM_NAMES[i] for i in np.flatnonzero(high <= low)]
            raise ValueError(f"action bounds need high > low; not so for {bad}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @classmethod
    def rt1_default(cls) -> "ActionBounds":
        """Bounds used in RT-1's tokenizer tests: world_vector [-1, 1] m,
        rotation_delta [-pi/2, pi/2] rad, gripper [-1, 1]
        (google-research/robotics_transformer, ``tokenizers/action_tokenizer_test.py``)."""
        h = math.pi / 2
        return cls(np.array([-1, -1, -1, -h, -h, -h, -1.0]), np.array([1, 1, 1, h, h, h, 1.0]))


@runtime_checkable
class ActionCodec(Protocol):
    """The one interface of every action format: model output -> actions.

    A codec turns what a model generated (its text, its token ids, or both) into a
    chunk of ``horizon`` actions, each an end-effector displacement over one control
    step. Backends call only :meth:`decode_output` (through
    :func:`rt2_ros.policies.base.result_from_output`), so a new format needs no
    change in any backend, the controller or the server.

    Attributes:
        format: the ``action.format`` name (``"rt2"``, ``"openvla"``).
        action_dim: continuous dimensions per action (7: dx dy dz [m], drx dry drz
            [rad], gripper).
        horizon: actions per model output (1 for RT-2 and OpenVLA; a chunk for newer
            formats).
        tokens_per_action: model tokens per action (RT-2: 8 incl. terminate; OpenVLA: 7).
        decodes_ids: True when the codec decodes the model's token ids (OpenVLA, FAST);
            False when it reads the text (RT-2, integer text). A caller that has both
            passes all the answer's ids to the former (a FAST answer has no fixed length).
        gripper_range: ``(closed-most, open-most)`` decoded gripper values, used to
            map the gripper to the [0, 1] command.
    """

    format: str
    action_dim: int
    horizon: int
    tokens_per_action: int
    decodes_ids: bool

    @property
    def gripper_range(self) -> tuple[float, float]: ...

    def decode_output(self, text: str = "", token_ids: Sequence[int] | None = None) -> tuple["Action", ...]:
        """Decode one model output into ``horizon`` actions, all or none.

        Raises:
            ActionDecodeError: the output is not a whole, valid chunk.
        """
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts a server sends its clients (format, dims, bounds or statistics)."""
        ...


def split_chain_of_thought(text: str) -> tuple[str | None, str]:
    """Split ``Plan: <text>. Action: <ints>`` (RT-2 section 4.4) into (plan, action text).

    Text without a ``Plan:`` prefix is returned as ``(None, text)``. The plan has its
    trailing full stop removed.

    Raises:
        ActionDecodeError: ``Plan:`` present but no ``Action:`` part.
    """
    if not text.lstrip().startswith("Plan:"):
        return None, text
    m = _COT_RE.match(text)
    if m is None:
        raise ActionDecodeError(f"chain-of-thought output has a plan but no 'Action:' part: {text[:80]!r}")
    plan = m.group("plan").rstrip()
    if plan.endswith("."):
        plan = plan[:-1].rstrip()
    return plan, m.group("action")


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise ActionDecodeError(f"model output must be str, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise ActionDecodeError(f"model output too long ({len(text)} > {MAX_TEXT_CHARS} characters)")
    if not text.strip():
        raise ActionDecodeError("model output is empty")
    return text


#: Largest chunk a codec accepts (actions per model output).
MAX_HORIZON = 64


def _check_horizon(horizon: Any) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or not 1 <= horizon <= MAX_HORIZON:
        raise ValueError(f"horizon must be an integer in [1, {MAX_HORIZON}], got {horizon!r}")
    return int(horizon)


def _chunk_values(values: Any, horizon: int, dim: int = 7) -> np.ndarray:
    """``float64 (horizon, dim)`` from an array-like; raises ActionDecodeError otherwise."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (horizon, dim):
        raise ActionDecodeError(f"expected a ({horizon}, {dim}) chunk, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ActionDecodeError("cannot encode non-finite values")
    return v


def _parse_uints(text: str, n: int, what: str) -> list[int]:
    """Exactly ``n`` whitespace-separated base-10 non-negative integers, else ActionDecodeError."""
    text = _check_text(text)
    fields = text.split()
    if len(fields) != n:
        raise ActionDecodeError(f"expected {n} integers ({what}), got {len(fields)} fields: {text[:80]!r}")
    out = []
    for i, f in enumerate(fields):
        if not _INT_RE.fullmatch(f) or len(f) > 12:
            raise ActionDecodeError(f"field {i} is not a non-negative integer: {f[:20]!r}")
        out.append(int(f))
    return out


def _action_from_values(values: np.ndarray, tokens: Sequence[int], text: str) -> Action:
    return Action(
        terminate=False,
        delta_position=values[0:3].copy(),
        delta_rotation=values[3:6].copy(),
        gripper=float(values[6]),
        tokens=tuple(int(t) for t in tokens),
        text=text,
    )


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
        fields = action_text.split()
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
        """Parse the 8 integers of an action string, strictly.

        Whitespace between and around fields is accepted; anything else is not.

        Raises:
            ActionDecodeError: empty, wrong count, non-integer, out of range, or a
                terminate field that is neither ``terminate_token`` nor ``continue_token``.
        """
        text = _check_text(text)
        fields = text.split()
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


def make_codec(
    action: "ActionConfig",
    *,
    statistics: Mapping[str, Any] | UnnormStats | None = None,
    vocab_size: int | None = None,
    fast_tokenizer: Any = None,
) -> ActionCodec:
    """The codec described by the ``action`` section of the configuration.

    Every format decodes ``action.horizon`` actions per model output.

    Args:
        action: the ``action`` section (:class:`rt2_ros.config.ActionConfig`).
        statistics: OpenVLA only: a ``dataset_statistics.json``-style dict (the entry
            is chosen by ``action.unnorm_key``) or an :class:`UnnormStats`; None
            decodes to normalised [-1, 1] values.
        vocab_size: OpenVLA only: un-padded vocabulary size; default
            ``action.openvla_vocab_size``.
        fast_tokenizer: FAST only: the BPE tokenizer; default loaded from
            ``action.fast_tokenizer_path`` (:func:`load_fast_tokenizer`).

    Raises:
        ValueError: an unknown format, statistics that do not fit, or (FAST) no
            tokenizer.
    """
    horizon = getattr(action, "horizon", 1)
    bounds = ActionBounds(np.array(action.low), np.array(action.high))
    if action.format == "rt2":
        return RT2ActionTokenizer(
            bounds,
            bins=action.bins,
            terminate_token=action.terminate_token,
            continue_token=action.continue_token,
            decode_to=action.decode_to,
            horizon=horizon,
        )
    if action.format == "openvla":
        stats = statistics
        if stats is not None and not isinstance(stats, UnnormStats):
            _, stats = select_unnorm_stats(stats, action.unnorm_key or None)
        dim = 7 if stats is None else int(stats.q01.shape[0])
        return OpenVLAActionTokenizer(
            int(vocab_size or action.openvla_vocab_size), stats, action_dim=dim, horizon=horizon
        )
    if action.format == "int_text":
        return IntegerTextCodec(bounds, bins=action.bins, horizon=horizon)
    if action.format == "fast":
        tok = fast_tokenizer
        if tok is None:
            tok = load_fast_tokenizer(action.fast_tokenizer_path)
            _check_fast_processor_config(action, horizon)
        return FASTActionCodec(
            tok,
            bounds,
            horizon=horizon,
            scale=action.fast_scale,
            min_token=action.fast_min_token,
            vocab_size=action.fast_vocab_size,
            id_offset=action.fast_id_offset,
            id_reversed=action.fast_id_reversed,
        )
    raise ValueError(f"unknown action format {action.format!r} ({' | '.join(ACTION_FORMATS)})")

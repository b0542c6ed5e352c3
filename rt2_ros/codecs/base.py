"""The shared vocabulary of every action format: :class:`Action`, :class:`ActionBounds`,
the :class:`ActionCodec` protocol, :class:`ActionDecodeError`, and the strict parsing helpers
the format modules use.

Malformed output of any kind raises :class:`ActionDecodeError` and never yields a partial
action (nor a partial chunk: a chunk with one bad step is rejected whole). Imports numpy only.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = [
    "ACTION_FORMATS",
    "DIM_NAMES",
    "MAX_HORIZON",
    "MAX_TEXT_CHARS",
    "Action",
    "ActionBounds",
    "ActionCodec",
    "ActionDecodeError",
    "split_chain_of_thought",
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

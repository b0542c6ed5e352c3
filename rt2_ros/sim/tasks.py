"""Instructions -> tasks, and the success check of each task. ROS-free, numpy only.

Three task kinds, all about one named block (the colour picks the block):

* ``pick``  - "pick up the red block", "lift the red block", "grasp the red cube":
  success when the block's bottom is at least :data:`LIFT_HEIGHT_M` above the table.
* ``push``  - "push the blue block left" (left/right/forward/backward = +y/-y/+x/-x of
  the planning frame ``panda_link0``, REP 103: x forward, y left): success when the
  block moved at least :data:`PUSH_DISTANCE_M` along that direction since the episode
  started and still rests on the table.
* ``reach`` - "move to the green block", "reach the green block", "touch the green
  block": success when the tool centre point (between the fingertips) is within
  :data:`REACH_TOLERANCE_M` of the centre of the block's top face.

Ground truth comes as the dict :meth:`rt2_ros.sim.scene.Scene.ground_truth` returns
(positions in m in ``panda_link0``; quaternions x, y, z, w).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

import numpy as np

__all__ = [
    "Task",
    "TaskCheck",
    "parse_instruction",
    "check_task",
    "LIFT_HEIGHT_M",
    "PUSH_DISTANCE_M",
    "REACH_TOLERANCE_M",
    "DIRECTIONS",
    "COLORS",
    "COLOR_SYNONYMS",
]

#: Pick succeeds when the block bottom is this far above the table top [m].
LIFT_HEIGHT_M = 0.05
#: Push succeeds when the block moved this far along the named direction [m].
PUSH_DISTANCE_M = 0.08
#: Reach succeeds when the TCP is this close to the block's top-face centre [m].
REACH_TOLERANCE_M = 0.02
#: A pushed block must still rest on the table: bottom at most this high [m].
_ON_TABLE_M = 0.01

#: Unit vectors in the planning frame (REP 103: x forward, y left, z up).
DIRECTIONS: dict[str, tuple[float, float, float]] = {
    "left": (0.0, 1.0, 0.0),
    "right": (0.0, -1.0, 0.0),
    "forward": (1.0, 0.0, 0.0),
    "away": (1.0, 0.0, 0.0),
    "backward": (-1.0, 0.0, 0.0),
    "back": (-1.0, 0.0, 0.0),
    "closer": (-1.0, 0.0, 0.0),
}

#: Block colours the scene knows, with their RGBA.
COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.12, 0.10, 1.0),
    "green": (0.15, 0.70, 0.20, 1.0),
    "blue": (0.12, 0.30, 0.90, 1.0),
    "yellow": (0.95, 0.80, 0.10, 1.0),
}

#: Other words for the block colours, accepted in instructions ("lift the crimson block"):
#: paraphrases for testing a policy's language generalisation (the task uses the colour).
COLOR_SYNONYMS: dict[str, str] = {
    "crimson": "red",
    "scarlet": "red",
    "emerald": "green",
    "lime": "green",
    "navy": "blue",
    "azure": "blue",
    "golden": "yellow",
}

_OBJ = r"(?:the\s+)?(?P<color>[a-z]+)\s+(?:block|cube|box)"
_PATTERNS = [
    ("pick", re.compile(rf"^(?:pick\s+up|pick|lift|grasp|grab|raise)\s+{_OBJ}(?:\s+up)?$")),
    ("push", re.compile(rf"^(?:push|slide|shove)\s+{_OBJ}\s+(?:to\s+the\s+)?(?P<direction>[a-z]+)$")),
    ("reach", re.compile(rf"^(?:move\s+to|go\s+to|reach(?:\s+for)?|touch|point\s+at)\s+{_OBJ}$")),
]


@dataclasses.dataclass(frozen=True)
class Task:
    """A parsed instruction.

    Attributes:
        kind: ``"pick"``, ``"push"`` or ``"reach"``.
        color: the named block's colour (a key of :data:`COLORS`).
        direction: for ``push``, a key of :data:`DIRECTIONS`; else None.
        instruction: the normalised instruction text.
    """

    kind: str
    color: str
    direction: str | None
    instruction: str

    @property
    def direction_vector(self) -> np.ndarray:
        """``float64 (3,)`` unit vector of a push (planning frame); zeros otherwise."""
        if self.direction is None:
            return np.zeros(3)
        return np.asarray(DIRECTIONS[self.direction], dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class TaskCheck:
    """Result of :func:`check_task`.

    Attributes:
        success: the task is done.
        detail: the measured quantity, e.g. ``"lifted 0.071 m"``.
        value: that quantity as a number (m).
    """

    success: bool
    detail: str
    value: float


def _normalise(text: str) -> str:
    t = text.strip().lower()
    t = re.sub(r"[^a-z ]+", " ", t)  # drop punctuation ("pick up the red block.")
    t = re.sub(r"\s+", " ", t).strip()
    t = re.sub(r"^(?:please |robot |now )+", "", t)
    return t


def parse_instruction(text: str) -> Task:
    """Parse an instruction into a :class:`Task`.

    Accepted forms (case and punctuation ignored; colours also by the words of
    :data:`COLOR_SYNONYMS`): ``pick up|pick|lift|grasp|grab the <color> block|cube``; ``push|slide the <color> block [to the]
    left|right|forward|backward``; ``move to|reach|touch the <color> block``.

    Raises:
        ValueError: empty text, an unknown form, colour or direction (the message
            lists what is accepted).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("instruction is empty")
    t = _normalise(text)
    for kind, pat in _PATTERNS:
        m = pat.match(t)
        if m is None:
            continue
        color = COLOR_SYNONYMS.get(m.group("color"), m.group("color"))
        if color not in COLORS:
            raise ValueError(f"unknown block colour {color!r} in {text!r} (known: {', '.join(COLORS)})")
        direction = m.groupdict().get("direction")
        if kind == "push" and direction not in DIRECTIONS:
            raise ValueError(f"unknown push direction {direction!r} in {text!r} (known: {', '.join(DIRECTIONS)})")
        return Task(kind, color, direction, t)
    raise ValueError(
        f"cannot parse instruction {text!r}; use e.g. 'pick up the red block', "
        "'push the blue block left', 'move to the green block'"
    )


def _m(x: float) -> str:
    """Metres with 3 decimals, never "-0.000"."""
    return f"{round(x, 3) + 0.0:.3f}"


def _block(gt: Mapping[str, Any], color: str) -> Mapping[str, Any]:
    try:
        return gt["blocks"][color]
    except KeyError:
        raise ValueError(f"there is no {color} block in the scene") from None


def check_task(task: Task, gt: Mapping[str, Any], start_gt: Mapping[str, Any] | None = None) -> TaskCheck:
    """Evaluate ``task`` on ground truth ``gt``.

    Args:
        task: the parsed task.
        gt: ground truth now (see :meth:`rt2_ros.sim.scene.Scene.ground_truth`).
        start_gt: ground truth when the episode started (needed for ``push``;
            without it a push is measured from ``gt["blocks"][c]["initial_position"]``).

    Raises:
        ValueError: the named block is not in the scene.
    """
    b = _block(gt, task.color)
    pos = np.asarray(b["position"], dtype=np.float64)
    half = float(b["size_m"]) / 2.0
    table_z = float(gt.get("table_z_m", 0.0))
    bottom = pos[2] - half - table_z
    if task.kind == "pick":
        return TaskCheck(bottom >= LIFT_HEIGHT_M, f"block bottom {_m(bottom)} m above table", bottom)
    if task.kind == "push":
        if start_gt is not None:
            p0 = np.asarray(_block(start_gt, task.color)["position"], dtype=np.float64)
        else:
            p0 = np.asarray(b.get("initial_position", b["position"]), dtype=np.float64)
        moved = float(np.dot(pos - p0, task.direction_vector))
        ok = moved >= PUSH_DISTANCE_M and bottom <= _ON_TABLE_M
        return TaskCheck(ok, f"moved {_m(moved)} m {task.direction}", moved)
    if task.kind == "reach":
        tcp = np.asarray(gt["tcp"]["position"], dtype=np.float64)
        top = pos + np.array([0.0, 0.0, half])
        d = float(np.linalg.norm(tcp - top))
        return TaskCheck(d <= REACH_TOLERANCE_M, f"TCP {_m(d)} m from block top", d)
    raise ValueError(f"unknown task kind {task.kind!r}")

"""The shared vocabulary of reading recordings (:mod:`rt2_ros.training.bags`): topic names,
options, the :class:`Segment` s and :class:`Problem` s a bag gives, and the per-topic message
:class:`Stream` that the MCAP reader (:mod:`rt2_ros.training.bag_reader`) fills and the
step builder (:mod:`rt2_ros.training.bags`) samples. ROS-free, no file access.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

__all__ = [
    "BagTopics",
    "ReadOptions",
    "Segment",
    "Problem",
    "BagResult",
    "Stream",
    "camera_name",
    "select",
    "STATE_NAMES",
    "ACTION_NAMES",
]

#: Names of ``observation.state``: end-effector position (m) and orientation
#: (unit quaternion x y z w, ``w >= 0``) in the planning frame, gripper in [0, 1] (1 = open).
STATE_NAMES = ("x", "y", "z", "qx", "qy", "qz", "qw", "gripper")
STATE_NAMES = ("x", "y", "z", "qx", "qy", "qz", "qw", "gripper")
#: Names of ``action`` (RT-2 order after ``terminate``): m, m, m, rad, rad, rad, gripper units.
ACTION_NAMES = ("dx", "dy", "dz", "drx", "dry", "drz", "gripper")

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/Image")
COMPRESSED_TYPES = ("sensor_msgs/msg/CompressedImage", "sensor_msgs/CompressedImage")
COMPRESSED_TYPES = ("sensor_msgs/msg/CompressedImage", "sensor_msgs/CompressedImage")
#: Time tolerance of lookups (float seconds from integer nanoseconds), s.
EPS = 1e-6


def camera_name(topic: str) -> str:
    """Camera name of an image topic: ``/camera/image_raw`` -> ``camera``,
    ``/wrist/color/image_raw/compressed`` -> ``wrist_color``."""
    parts = [p for p in topic.strip("/").split("/") if p]
    drop = {"image_raw", "image", "compressed", "image_rect", "image_rect_color", "image_color"}
    keep = [p for p in parts if p not in drop] or parts or ["camera"]
    return "_".join(keep)


@dataclasses.dataclass
class BagTopics:
    """Topic names to read.

    Attributes:
        images: camera topics (raw or compressed), one dataset camera each.
        instruction, ee_pose, gripper_command, episode, action: see the module doc.
        gripper_state: optional gripper state topic ("" = use the command).
        tf, tf_static: used for the end-effector pose when ``ee_pose`` has no messages.
    """

    images: tuple[str, ...] = ("/camera/image_raw",)
    instruction: str = "/rt2/instruction"
    ee_pose: str = "/rt2/ee_pose"
    gripper_command: str = "/rt2/gripper_command"
    gripper_state: str = ""
    episode: str = "/rt2/episode"
    action: str = "/rt2/action"
    tf: str = "/tf"
    tf_static: str = "/tf_static"

    @classmethod
    def from_config(cls, cfg: Any, images: Sequence[str] | None = None, gripper_state: str = "") -> "BagTopics":
        """Topic names from an :class:`~rt2_ros.config.RT2Config` (``topics`` section)."""
        t = cfg.topics
        cams = tuple(images) if images else ((t.compressed_image,) if t.compressed_image else (t.image,))
        return cls(
            images=cams,
            instruction=t.instruction,
            ee_pose=t.ee_pose,
            gripper_command=t.gripper,
            gripper_state=gripper_state,
            episode=t.episode,
            action=t.action,
        )


@dataclasses.dataclass
class ReadOptions:
    """How recordings become control steps.

    Attributes:
        period_s: control period (``control.period_s``), s.
        planning_frame, ee_frame, command_frame: ``frames`` section.
        rotation_convention: ``"rpy"`` or ``"rotvec"`` (``action.rotation_convention``).
        action_source: ``"auto"`` (recorded actions where the episode has them, else
            from poses), ``"recorded"`` or ``"poses"``.
        max_image_age_s: oldest camera frame a step may use, s (None: one period).
        max_pose_gap_s: widest spacing of two pose samples interpolated between, s (None: one period).
        clock_jump_tolerance_s: a message this much older than one before it (file
            order) is a clock jump, s.
        gripper_joints, gripper_open_width_m: JointState gripper state: joints summed,
            divided by the open width (Panda: two fingers, 0.08 m).
        default_gripper: gripper value when a bag has no gripper topic (1 = open).
    """

    period_s: float = 0.2
    planning_frame: str = "panda_link0"
    ee_frame: str = "panda_hand"
    command_frame: str = "panda_link0"
    rotation_convention: str = "rpy"
    action_source: str = "auto"
    max_image_age_s: float | None = None
    max_pose_gap_s: float | None = None
    clock_jump_tolerance_s: float = 0.1
    gripper_joints: tuple[str, ...] = ("panda_finger_joint1", "panda_finger_joint2")
    gripper_open_width_m: float = 0.08
    default_gripper: float = 1.0

    def __post_init__(self) -> None:
        if not (self.period_s > 0 and math.isfinite(self.period_s)):
            raise ValueError(f"period_s must be > 0, got {self.period_s}")
        if self.action_source not in ("auto", "recorded", "poses"):
            raise ValueError(f"action_source must be auto, recorded or poses, got {self.action_source!r}")
        if self.rotation_convention not in ("rpy", "rotvec"):
            raise ValueError(f"rotation_convention must be rpy or rotvec, got {self.rotation_convention!r}")
        if self.command_frame not in (self.planning_frame, self.ee_frame):
            raise ValueError(
                f"frames.command_frame {self.command_frame!r} must be the planning frame "
                f"({self.planning_frame!r}) or the end-effector frame ({self.ee_frame!r}) to derive actions from poses"
            )

    @classmethod
    def from_config(cls, cfg: Any, **kw: Any) -> "ReadOptions":
        """Options from an :class:`rt2_ros.config.RT2Config` (period, frames, rotation convention, topics); ``kw`` overrides."""
        f = cfg.frames
        return cls(
            period_s=cfg.control.period_s,
            planning_frame=f.planning_frame,
            ee_frame=f.ee_frame,
            command_frame=f.command_frame,
            rotation_convention=cfg.action.rotation_convention,
            **kw,
        )

    @property
    def image_age_s(self) -> float:
        """Oldest camera frame a step may use (s): ``max_image_age_s``, default one period."""
        return self.period_s if self.max_image_age_s is None else self.max_image_age_s

    @property
    def pose_gap_s(self) -> float:
        """Largest gap between pose samples bridged (s): ``max_pose_gap_s``, default one period."""
        return self.period_s if self.max_pose_gap_s is None else self.max_pose_gap_s


@dataclasses.dataclass
class Problem:
    """One bad stretch of input, skipped.

    Attributes:
        bag: file name.
        time_s: time into the bag (s since its first message) where it starts.
        kind: ``no_image_topic``, ``no_pose``, ``no_instruction``, ``image_gap``,
            ``pose_gap``, ``nan_pose``, ``clock_jump``, ``bad_image``, ``bad_message``.
        message: what was wrong, for people.
        steps: control steps lost (0 when none was due there).
    """

    bag: str
    time_s: float
    kind: str
    message: str
    steps: int = 0

    def __str__(self) -> str:
        lost = f" ({self.steps} control step{'s' if self.steps != 1 else ''} skipped)" if self.steps else ""
        return f"{self.bag} at {self.time_s:.2f} s: {self.message}{lost}"


@dataclasses.dataclass
class Segment:
    """Consecutive valid control steps of one recorded episode: one dataset episode.

    Attributes:
        bag: source file name.
        task: the cleaned instruction.
        images: camera name -> list of ``uint8 (H, W, 3)`` frames, one per step.
        state: ``float64 (N, 8)`` :data:`STATE_NAMES`.
        action: ``float64 (N, 7)`` :data:`ACTION_NAMES`.
        terminate: ``bool (N,)`` the RT-2 terminate field of each step's action.
        done: the last step is the end of the recorded episode (not cut by a gap).
        start_time_s: time into the bag of the first step, s.
        step_times_s: ``float64 (N,)`` time into the bag of every step, s.
        reason: how the recorded episode ended (``terminate``, ``step_limit``, ``stop``,
            ``bag_end``, ...).
        episode_in_bag, segment_in_episode: indices (0-based) for tracing.
        action_source: ``"recorded"`` or ``"poses"``.
    """

    bag: str
    task: str
    images: dict[str, list[np.ndarray]]
    state: np.ndarray
    action: np.ndarray
    terminate: np.ndarray
    done: bool
    start_time_s: float
    step_times_s: np.ndarray
    reason: str
    episode_in_bag: int
    segment_in_episode: int
    action_source: str

    def __len__(self) -> int:
        return int(self.state.shape[0])


@dataclasses.dataclass
class BagResult:
    """What one bag gave: its segments and its problems."""

    bag: str
    segments: list[Segment]
    problems: list[Problem]
    episodes: int = 0
    messages: int = 0


@dataclasses.dataclass
class Stream:
    """Messages of one topic (or one TF link): log times (s into the bag), clock segments, values."""

    t: list[float] = dataclasses.field(default_factory=list)
    seg: list[int] = dataclasses.field(default_factory=list)
    v: list[Any] = dataclasses.field(default_factory=list)


def select(st: Stream | None, seg: int) -> tuple[np.ndarray, list[Any]]:
    """Times (``float64 (N,)``, s, sorted) and values of ``st`` in clock segment ``seg``
    (``/tf_static`` samples, segment -1, in every segment)."""
    if st is None:
        return np.zeros(0), []
    idx = [k for k, s in enumerate(st.seg) if s == seg or s == -1]
    t = np.asarray([st.t[k] for k in idx], dtype=np.float64)
    vals = [st.v[k] for k in idx]
    order = np.argsort(t, kind="stable")
    return t[order], [vals[k] for k in order]

"""Read ROS 2 MCAP recordings into control steps: image, end-effector state, action, task.

ROS-free: the ``mcap`` and ``mcap-ros2-support`` libraries read the files and decode the
CDR messages from the message definitions stored in them, so no ROS installation is
needed. Input: MCAP files (``rt2-ros demo --record``, ``ros2 bag record -s mcap``; a
rosbag2 directory is searched for its ``*.mcap`` files).

Topics read (names from the ``topics`` section of ``config/rt2.yaml`` unless given):

* camera: ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) or
  ``sensor_msgs/CompressedImage`` (``<image topic>/compressed`` is used when the raw
  topic has no messages); one or more cameras, each becomes
  ``observation.images.<camera>``;
* instruction: ``std_msgs/String``;
* end-effector pose: ``geometry_msgs/PoseStamped`` in ``frames.planning_frame``;
  when that topic is absent, ``/tf`` + ``/tf_static`` (``tf2_msgs/TFMessage``) from
  ``planning_frame`` to ``ee_frame``;
* gripper: command ``std_msgs/Float64`` in [0, 1] (1 = open, the node's output); an
  optional state topic, ``std_msgs/Float64`` in [0, 1] or ``sensor_msgs/JointState``
  (finger joint positions summed and divided by the open width);
* episode status ``rt2_ros/EpisodeStatus`` and the node's ``rt2_ros/RT2Action``, when
  recorded.

Episodes: from ``/rt2/episode`` transitions (RUNNING starts one, FINISHED ends it with
its reason). Without that topic: a non-empty instruction starts an episode; the next
instruction, an empty one or ``stop`` ends it. An episode still running when the bag
ends is cut there (not terminal).

Time: the recorder's log time of every message (one clock for all topics). Control
steps: the recorded ``/rt2/action`` steps (observation time = log time minus the
step's inference latency) where that topic has valid actions, else a grid of
``control.period_s`` from the first moment every stream has data. Per step: the latest
camera frame not older than ``max_image_age_s`` (default one period), the end-effector
pose interpolated (linear, slerp) between two samples at most ``max_pose_gap_s``
(default one period) apart, the gripper value in effect. Nothing is interpolated across
a longer gap: such steps are skipped and reported, and the episode's steps on either
side become separate dataset episodes.

Action (7 values, the RT-2 order ``dx dy dz drx dry drz gripper``): the recorded
action (e.g. the scripted expert's), else the displacement between the poses of this
step and the next, in ``frames.command_frame`` (the planning frame, or the
end-effector frame for body-frame commands), rotation as ``action.rotation_convention``
(roll-pitch-yaw extrinsic xyz, or a rotation vector): ``R_delta = R_next R^T``, the
rotation :func:`rt2_ros.motion.delta_to_twist` turns back into the angular velocity.
The gripper value is the command in effect at the end of the step. The episode's last
step has no next pose: it gets zero motion and ``terminate`` when the episode ended by
``terminate`` (or the operator's stop), else it is dropped.

Bad input never raises for one bag: every problem becomes a :class:`Problem` (bag, time
into the bag, what, control steps lost) and the rest of the data is used.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from rt2_ros.images import decode_compressed, raw_to_rgb

__all__ = [
    "BagTopics",
    "ReadOptions",
    "Segment",
    "Problem",
    "BagResult",
    "find_bags",
    "read_bag",
    "camera_name",
    "STATE_NAMES",
    "ACTION_NAMES",
]

log = logging.getLogger(__name__)

#: Names of ``observation.state``: end-effector position (m) and orientation
#: (unit quaternion x y z w, ``w >= 0``) in the planning frame, gripper in [0, 1] (1 = open).
STATE_NAMES = ("x", "y", "z", "qx", "qy", "qz", "qw", "gripper")
#: Names of ``action`` (RT-2 order after ``terminate``): m, m, m, rad, rad, rad, gripper units.
ACTION_NAMES = ("dx", "dy", "dz", "drx", "dry", "drz", "gripper")

#: Instruction texts that end an episode when no episode topic was recorded.
STOP_WORDS = ("", "stop", "cancel", "done")
_RUNNING, _FINISHED = 1, 2
_IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/Image")
_COMPRESSED_TYPES = ("sensor_msgs/msg/CompressedImage", "sensor_msgs/CompressedImage")
#: Time tolerance of lookups (float seconds from integer nanoseconds), s.
_EPS = 1e-6


def camera_name(topic: str) -> str:
    """Camera name of an image topic: ``/camera/image_raw`` -> ``camera``,
    ``/wrist/color/image_raw/compressed`` -> ``wrist_color``."""
    parts = [p for p in topic.strip("/").split("/") if p]
    drop = {"image_raw", "image", "compressed", "image_rect", "image_rect_color", "image_color"}
    keep = [p for p in parts if p not in drop] or parts or ["camera"]
    return "_".join(keep)


@dataclasses.dataclass(frozen=True)
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


@dataclasses.dataclass(frozen=True)
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


def find_bags(inputs: Iterable[str | Path]) -> list[Path]:
    """MCAP files among ``inputs`` (files, or directories searched recursively), sorted.

    Raises:
        FileNotFoundError: an input does not exist, or nothing was found.
        ValueError: a rosbag2 SQLite file (``.db3``) was given.
    """
    out: list[Path] = []
    for item in inputs:
        p = Path(item).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"no such file or directory: {p}")
        if p.is_dir():
            found = sorted(p.rglob("*.mcap"))
            if not found and list(p.rglob("*.db3")):
                raise ValueError(
                    f"{p} holds rosbag2 SQLite files (.db3): convert them with "
                    "`ros2 bag convert` to MCAP, or record with `ros2 bag record -s mcap`"
                )
            out.extend(found)
        elif p.suffix == ".db3":
            raise ValueError(f"{p} is a rosbag2 SQLite file: convert it to MCAP with `ros2 bag convert`")
        else:
            out.append(p)
    if not out:
        raise FileNotFoundError(f"no .mcap files in {[str(i) for i in inputs]}")
    return sorted(dict.fromkeys(out))


# -- message decoding -------------------------------------------------------------------------


def decode_image(msg: Any, compressed: bool) -> np.ndarray:
    """A decoded ``sensor_msgs/Image`` or ``CompressedImage`` -> ``uint8 (H, W, 3)`` RGB, the
    node's own decoding (:mod:`rt2_ros.images`), as a writable copy.

    Raises:
        ValueError: unsupported encoding, sizes that do not match the data, undecodable bytes.
    """
    if compressed:
        return np.array(decode_compressed(msg.data, msg.format))
    return np.array(raw_to_rgb(bytes(msg.data), msg.height, msg.width, msg.step, msg.encoding))


def _pose_from_msg(pose: Any) -> np.ndarray:
    p, q = pose.position, pose.orientation
    return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], dtype=np.float64)


def _valid_pose(v: np.ndarray) -> bool:
    if not np.all(np.isfinite(v)):
        return False
    n = float(np.linalg.norm(v[3:7]))
    return abs(n - 1.0) < 0.1


# -- scanning ----------------------------------------------------------------------------------


@dataclasses.dataclass
class _Stream:
    t: list[float] = dataclasses.field(default_factory=list)
    seg: list[int] = dataclasses.field(default_factory=list)
    v: list[Any] = dataclasses.field(default_factory=list)


class _Scan:
    """Pass 1 over a bag: every wanted message's time, clock segment and value
    (images: only their position, decoded in pass 2)."""

    def __init__(self, path: Path, topics: BagTopics, opts: ReadOptions):
        self.path, self.topics, self.opts = path, topics, opts
        self.streams: dict[str, _Stream] = {}
        self.types: dict[str, str] = {}
        self.events: list[tuple[float, int, str, Any]] = []  # (t, seg, kind, value) in file order
        self.jumps: list[tuple[float, float]] = []  # (time before, time after), s into the bag
        self.t0_ns: int | None = None
        self.count = 0
        self.bad: list[Problem] = []

    def run(self) -> None:
        from mcap.reader import make_reader
        from mcap_ros2.decoder import DecoderFactory

        factory = DecoderFactory()
        decoders: dict[int, Any] = {}
        with open(self.path, "rb") as f:
            reader = make_reader(f)
            summary = reader.get_summary()
            if summary is None:
                raise ValueError("the file has no summary section (unfinished recording?); `mcap recover` fixes it")
            for ch in summary.channels.values():
                sch = summary.schemas.get(ch.schema_id)
                self.types[ch.topic] = sch.name if sch is not None else ""
            wanted = self._wanted_topics()
            seg, tmax = 0, -math.inf
            tol = self.opts.clock_jump_tolerance_s
            image_seq: dict[str, int] = {}
            for schema, channel, message in reader.iter_messages(topics=wanted, log_time_order=False):
                self.count += 1
                if self.t0_ns is None:  # times are "into the bag": since the first message in the file
                    self.t0_ns = int(message.log_time)
                t = (message.log_time - self.t0_ns) * 1e-9
                if t < tmax - tol:
                    self.jumps.append((tmax, t))
                    seg += 1
                    tmax = t
                else:
                    tmax = max(tmax, t)
                topic = channel.topic
                st = self.streams.setdefault(topic, _Stream())
                if topic in self._image_topics:
                    k = image_seq.get(topic, 0)
                    image_seq[topic] = k + 1
                    st.t.append(t)
                    st.seg.append(seg)
                    st.v.append(k)
                    continue
                dec = decoders.get(schema.id)
                if dec is None:
                    dec = factory.decoder_for(channel.message_encoding, schema)
                    if dec is None:
                        raise ValueError(f"cannot decode {topic} ({schema.name}, {channel.message_encoding})")
                    decoders[schema.id] = dec
                try:
                    msg = dec(message.data)
                    value = self._value(topic, msg)
                except Exception as e:  # noqa: BLE001 - one bad message is a problem, not a crash
                    self.bad.append(Problem(self.path.name, t, "bad_message", f"undecodable message on {topic}: {e}"))
                    continue
                if value is None:
                    continue
                if topic in (self.topics.episode, self.topics.instruction):
                    self.events.append((t, seg, "episode" if topic == self.topics.episode else "instruction", value))
                if topic in (self.topics.tf, self.topics.tf_static):
                    for item in value:
                        self.streams.setdefault(f"tf:{item[0]}>{item[1]}", _Stream())
                        s2 = self.streams[f"tf:{item[0]}>{item[1]}"]
                        s2.t.append(-math.inf if topic == self.topics.tf_static else t)
                        s2.seg.append(-1 if topic == self.topics.tf_static else seg)
                        s2.v.append(item[2])
                    continue
                st.t.append(t)
                st.seg.append(seg)
                st.v.append(value)

    @property
    def _image_topics(self) -> set[str]:
        return set(self._resolved_images().values())

    def _resolved_images(self) -> dict[str, str]:
        """camera name -> topic actually read (raw, or its /compressed sibling)."""
        out = {}
        for topic in self.topics.images:
            use = topic
            if topic not in self.types and f"{topic}/compressed" in self.types:
                use = f"{topic}/compressed"
            out[camera_name(topic)] = use
        return out

    def _wanted_topics(self) -> list[str]:
        t = self.topics
        names = [t.instruction, t.ee_pose, t.gripper_command, t.gripper_state, t.episode, t.action, t.tf, t.tf_static]
        names += list(self._image_topics)
        return [n for n in dict.fromkeys(names) if n and n in self.types]

    def _value(self, topic: str, msg: Any) -> Any:
        t = self.topics
        if topic == t.instruction:
            return str(msg.data)
        if topic == t.ee_pose:
            return (_pose_from_msg(msg.pose), str(msg.header.frame_id))
        if topic in (t.gripper_command, t.gripper_state):
            if hasattr(msg, "name") and hasattr(msg, "position"):  # JointState
                pos = dict(zip(list(msg.name), list(msg.position)))
                if not all(j in pos for j in self.opts.gripper_joints):
                    return None
                return sum(float(pos[j]) for j in self.opts.gripper_joints) / self.opts.gripper_open_width_m
            return float(msg.data)
        if topic == t.episode:
            return (int(msg.state), str(msg.reason), str(msg.instruction))
        if topic == t.action:
            if not bool(msg.valid):
                return None
            vec = np.concatenate([np.asarray(msg.delta_position), np.asarray(msg.delta_rotation), [msg.gripper]])
            return (vec.astype(np.float64), bool(msg.terminate), float(msg.inference_latency_ms) * 1e-3)
        if topic in (t.tf, t.tf_static):
            items = []
            for tr in msg.transforms:
                tt, rr = tr.transform.translation, tr.transform.rotation
                v = np.array([tt.x, tt.y, tt.z, rr.x, rr.y, rr.z, rr.w], dtype=np.float64)
                items.append((str(tr.header.frame_id).lstrip("/"), str(tr.child_frame_id).lstrip("/"), v))
            return items
        return None


# -- pose series ----------------------------------------------------------------------------------


class _PoseSeries:
    """Pose samples of one clock segment: times, ``(N, 7)`` values (NaN rows = invalid)."""

    def __init__(self, t: np.ndarray, v: np.ndarray):
        order = np.argsort(t, kind="stable")
        self.t, self.v = t[order], v[order]
        self.ok = np.array([_valid_pose(x) for x in self.v], dtype=bool) if len(self.v) else np.zeros(0, bool)

    def __len__(self) -> int:
        return len(self.t)

    def at(self, tq: np.ndarray, max_gap: float) -> tuple[np.ndarray, np.ndarray]:
        """Interpolated poses ``(M, 7)`` and per-query status: 0 ok, 1 gap, 2 invalid sample."""
        n = len(self.t)
        out = np.full((len(tq), 7), np.nan)
        status = np.ones(len(tq), dtype=np.int8)
        if n == 0:
            return out, status
        eps = _EPS
        i = np.searchsorted(self.t, tq + eps, side="right") - 1
        for k, (q, a) in enumerate(zip(tq, i)):
            if a < 0:
                continue
            if abs(self.t[a] - q) <= eps:
                if self.ok[a]:
                    out[k], status[k] = self.v[a], 0
                else:
                    status[k] = 2
                continue
            b = a + 1
            if b >= n or self.t[b] - self.t[a] > max_gap + eps:
                continue
            if not (self.ok[a] and self.ok[b]):
                status[k] = 2
                continue
            w = (q - self.t[a]) / (self.t[b] - self.t[a])
            pa, pb = self.v[a], self.v[b]
            pos = pa[:3] + w * (pb[:3] - pa[:3])
            ra, rb = Rotation.from_quat(pa[3:]), Rotation.from_quat(pb[3:])
            rot = ra * Rotation.from_rotvec(w * (ra.inv() * rb).as_rotvec())
            out[k, :3], out[k, 3:] = pos, rot.as_quat()
            status[k] = 0
        return out, status


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pose ``a * b`` (each x y z qx qy qz qw)."""
    ra = Rotation.from_quat(a[3:])
    return np.concatenate([a[:3] + ra.apply(b[:3]), (ra * Rotation.from_quat(b[3:])).as_quat()])


def _tf_pose_stream(scan: _Scan, planning: str, ee: str) -> _Stream | None:
    """End-effector poses in ``planning`` from the recorded TF tree (chain of parent links).

    Each link is held at its latest sample of the same clock segment (``/tf_static``
    always applies); a pose is produced at every sample time of a dynamic link of the
    chain once every link has a sample. None when the chain does not exist."""
    parent: dict[str, str] = {}
    for key in scan.streams:
        if key.startswith("tf:"):
            p, c = key[3:].split(">", 1)
            parent[c] = p
    chain, f = [], ee
    while f != planning:
        if f not in parent or len(chain) > 64:
            return None
        chain.append((parent[f], f))
        f = parent[f]
    chain.reverse()
    links = [scan.streams[f"tf:{p}>{c}"] for p, c in chain]
    out = _Stream()
    segs = sorted({s for st in links for s in st.seg if s >= 0})
    for seg in segs:
        series = [_select(st, seg) for st in links]
        times = np.unique(np.concatenate([t[np.isfinite(t)] for t, _ in series]))
        for t in times:
            pose = np.array([0, 0, 0, 0, 0, 0, 1.0])
            for lt, lv in series:
                i = int(np.searchsorted(lt, t + 1e-9, side="right")) - 1
                if i < 0:
                    break
                pose = _compose(pose, lv[i])
            else:
                out.t.append(float(t))
                out.seg.append(seg)
                out.v.append((pose, planning))
    return out


# -- episodes ---------------------------------------------------------------------------------


@dataclasses.dataclass
class _Episode:
    t_start: float
    seg_start: int
    instruction: str
    t_end: float = math.inf
    seg_end: int = -1
    reason: str = "bag_end"


def _episodes(scan: _Scan) -> list[_Episode]:
    has_status = any(k == "episode" for _, _, k, _ in scan.events)
    out: list[_Episode] = []
    cur: _Episode | None = None
    last_instruction = ""

    def close(t: float, seg: int, reason: str) -> None:
        nonlocal cur
        if cur is not None:
            cur.t_end, cur.seg_end, cur.reason = t, seg, reason
            out.append(cur)
            cur = None

    for t, seg, kind, value in scan.events:
        if kind == "instruction":
            text = value.strip()
            if has_status:
                last_instruction = text or last_instruction
                continue
            stop = text.lower() in STOP_WORDS
            close(t, seg, "stop" if stop else "next_instruction")
            if not stop:
                cur = _Episode(t, seg, text)
            continue
        state, reason, instruction = value
        if state == _RUNNING:
            instr = instruction.strip() or last_instruction
            if cur is not None and cur.instruction == instr:
                continue
            close(t, seg, "preempted")
            cur = _Episode(t, seg, instr)
        elif state == _FINISHED:
            close(t, seg, reason or "finished")
    if cur is not None:
        last_seg = max((s for st in scan.streams.values() for s in st.seg), default=cur.seg_start)
        cur.seg_end = last_seg
        out.append(cur)
    return out


#: End reasons whose last step carries the terminate flag (the task was declared done).
TERMINAL_REASONS = ("terminate", "stop", "next_instruction")


# -- the reader -----------------------------------------------------------------------------------


def read_bag(path: str | Path, topics: BagTopics, opts: ReadOptions) -> BagResult:
    """Read one MCAP file into :class:`Segment` s (see the module doc).

    Never raises for bad data in the file: problems are returned in
    :attr:`BagResult.problems` (a bag without camera or pose gets no segments).

    Raises:
        OSError: the file cannot be read.
    """
    path = Path(path)
    name = path.name
    scan = _Scan(path, topics, opts)
    try:
        scan.run()
    except OSError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt file is one bad bag
        return BagResult(name, [], [Problem(name, 0.0, "bad_message", f"cannot read the file: {e}")])
    problems = list(scan.bad)
    for before, after in scan.jumps:
        problems.append(
            Problem(
                name,
                before,
                "clock_jump",
                f"clock jumped back {before - after:.2f} s (to {after:.2f} s); "
                "episodes running across it are cut there",
                1,
            )
        )
    result = BagResult(name, [], problems, messages=scan.count)
    cams = scan._resolved_images()
    missing = [t for c, t in cams.items() if not scan.streams.get(t) or not scan.streams[t].t]
    if missing:
        have = sorted(k for k, v in scan.types.items() if v in _IMAGE_TYPES + _COMPRESSED_TYPES)
        problems.append(
            Problem(name, 0.0, "no_image_topic", f"no messages on image topic(s) {missing} (image topics here: {have})")
        )
        return result
    pose_stream = scan.streams.get(topics.ee_pose)
    if pose_stream is None or not pose_stream.t:
        pose_stream = _tf_pose_stream(scan, opts.planning_frame, opts.ee_frame)
        if pose_stream is None or not pose_stream.t:
            problems.append(
                Problem(
                    name,
                    0.0,
                    "no_pose",
                    f"no end-effector pose: {topics.ee_pose} has no messages and {topics.tf} has no "
                    f"{opts.planning_frame} -> {opts.ee_frame} chain",
                )
            )
            return result
    frames = {f for _, f in pose_stream.v if f}
    if frames and frames != {opts.planning_frame}:
        problems.append(
            Problem(
                name,
                pose_stream.t[0],
                "bad_message",
                f"end-effector poses are in {sorted(frames)}, not the planning frame {opts.planning_frame!r}; "
                "actions are derived as if they were",
            )
        )
    episodes = _episodes(scan)
    result.episodes = len(episodes)
    need_images: dict[str, dict[int, list[tuple[int, int]]]] = {c: {} for c in cams}
    pending: list[tuple[_Episode, int, int, dict[str, Any]]] = []
    for e_idx, ep in enumerate(episodes):
        try:
            from rt2_ros.policies.prompts import check_instruction

            task = check_instruction(ep.instruction)
        except ValueError as err:
            problems.append(
                Problem(
                    name,
                    ep.t_start,
                    "no_instruction",
                    f"episode {e_idx + 1} has no usable instruction ({err}); the whole episode is skipped",
                    max(
                        0,
                        int(
                            round(((ep.t_end if math.isfinite(ep.t_end) else ep.t_start) - ep.t_start) / opts.period_s)
                        ),
                    )
                    + 1,
                )
            )
            continue
        ep.instruction = task
        for piece, (seg, lo, hi) in enumerate(_pieces(ep)):
            steps = _steps_for_piece(scan, pose_stream, cams, ep, seg, lo, hi, opts, problems, name)
            for s_idx, st in enumerate(steps):
                pending.append((ep, e_idx, piece * 1000 + s_idx, st))
                for c in cams:
                    for k, img_seq in enumerate(st["image_seq"][c]):
                        need_images[c].setdefault(img_seq, []).append((len(pending) - 1, k))
    if not pending:
        return result
    images = _decode_images(path, cams, need_images, problems, name, scan)
    for p_idx, (ep, e_idx, seg_idx, st) in enumerate(pending):
        frames_ok = np.ones(len(st["t"]), dtype=bool)
        per_cam: dict[str, list[np.ndarray]] = {}
        for c in cams:
            lst = []
            for k, img_seq in enumerate(st["image_seq"][c]):
                img = images[c].get(img_seq)
                if img is None:
                    frames_ok[k] = False
                lst.append(img)
            per_cam[c] = lst
        # a bad image splits the run like a gap
        for run in _runs(frames_ok):
            lo, hi = run
            last = hi == len(frames_ok) and st["done"]
            result.segments.append(
                Segment(
                    bag=name,
                    task=ep.instruction,
                    images={c: per_cam[c][lo:hi] for c in cams},
                    state=st["state"][lo:hi],
                    action=st["action"][lo:hi],
                    terminate=st["terminate"][lo:hi],
                    done=bool(last),
                    start_time_s=float(st["t"][lo]),
                    step_times_s=np.asarray(st["t"][lo:hi]),
                    reason=ep.reason,
                    episode_in_bag=e_idx,
                    segment_in_episode=seg_idx,
                    action_source=st["source"],
                )
            )
    by_ep: dict[int, int] = {}
    for s in result.segments:
        s.segment_in_episode = by_ep.get(s.episode_in_bag, 0)
        by_ep[s.episode_in_bag] = s.segment_in_episode + 1
    return result


def _pieces(ep: _Episode) -> list[tuple[int, float, float]]:
    """(clock segment, from, to) pieces of an episode; several when it spans clock jumps."""
    end_seg = ep.seg_end if ep.seg_end >= 0 else ep.seg_start
    if end_seg == ep.seg_start:
        return [(ep.seg_start, ep.t_start, ep.t_end)]
    out = [(ep.seg_start, ep.t_start, math.inf)]
    out += [(s, -math.inf, math.inf) for s in range(ep.seg_start + 1, end_seg)]
    out.append((end_seg, -math.inf, ep.t_end))
    return out


def _runs(ok: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) index ranges of consecutive True values."""
    out, start = [], None
    for i, v in enumerate(ok):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(ok)))
    return out


def _select(st: _Stream | None, seg: int) -> tuple[np.ndarray, list[Any]]:
    if st is None:
        return np.zeros(0), []
    idx = [k for k, s in enumerate(st.seg) if s == seg or s == -1]
    t = np.asarray([st.t[k] for k in idx], dtype=np.float64)
    vals = [st.v[k] for k in idx]
    order = np.argsort(t, kind="stable")
    return t[order], [vals[k] for k in order]


def _held(t: np.ndarray, vals: list[float], tq: np.ndarray) -> np.ndarray:
    """Latest value at or before each query; before the first: the first (NaN when none)."""
    if len(t) == 0:
        return np.full(len(tq), np.nan)
    v = np.asarray(vals, dtype=np.float64)
    i = np.searchsorted(t, tq + _EPS, side="right") - 1
    return v[np.clip(i, 0, len(v) - 1)]


def _steps_for_piece(
    scan: _Scan,
    pose_stream: _Stream,
    cams: dict[str, str],
    ep: _Episode,
    seg: int,
    lo: float,
    hi: float,
    opts: ReadOptions,
    problems: list[Problem],
    bag: str,
) -> list[dict[str, Any]]:
    """Valid runs of control steps of one episode piece (one clock segment)."""
    T = opts.period_s
    cam_t = {c: _select(scan.streams[t], seg) for c, t in cams.items()}
    pt, pv = _select(pose_stream, seg)
    poses = _PoseSeries(pt, np.asarray([p for p, _ in pv], dtype=np.float64).reshape(-1, 7))
    at, av = _select(scan.streams.get(scan.topics.action), seg)
    if len(poses) == 0 or any(len(ct) == 0 for ct, _ in cam_t.values()):
        return []
    # Leading/trailing trim: an episode starts where every stream has data near it (a
    # recording that begins with the instruction has its first frame a little later).
    age, gap = opts.image_age_s, opts.pose_gap_s
    firsts, lasts = [], []
    for ct, _ in cam_t.values():
        after = ct[ct >= lo - age]
        before = ct[ct <= hi]
        if len(after) == 0 or len(before) == 0:
            return []
        firsts.append(after[0])
        lasts.append(before[-1] + age)
    p_after, p_before = poses.t[poses.t >= lo - gap], poses.t[poses.t <= hi + gap]
    if len(p_after) == 0 or len(p_before) == 0:
        return []
    cover_lo = max([lo, p_after[0]] + firsts)
    cover_hi = min([hi, p_before[-1]] + lasts)
    if cover_hi < cover_lo:
        return []
    t_obs = np.asarray([at[k] - av[k][2] for k in range(len(at))], dtype=np.float64)
    in_ep = (t_obs >= lo - _EPS) & (t_obs <= hi + _EPS) if len(at) else np.zeros(0, bool)
    use_recorded = opts.action_source == "recorded" or (opts.action_source == "auto" and bool(np.any(in_ep)))
    terminal = ep.reason in TERMINAL_REASONS and hi == ep.t_end
    if use_recorded:
        sel = [k for k in np.flatnonzero(in_ep)]
        tq = t_obs[sel]
        keep = (tq >= cover_lo - _EPS) & (tq <= cover_hi + _EPS)
        sel = [k for k, ok in zip(sel, keep) if ok]
        tq = tq[keep]
        actions = np.asarray([av[k][0] for k in sel], dtype=np.float64).reshape(-1, 7)
        term = np.asarray([av[k][1] for k in sel], dtype=bool)
        source = "recorded"
    else:
        n = int(math.floor((cover_hi - cover_lo) / T + 1e-6)) + 1
        tq = cover_lo + T * np.arange(n)
        source = "poses"
    if len(tq) == 0:
        return []
    # images: latest frame not older than the allowed age
    status = np.zeros(len(tq), dtype=np.int8)  # 0 ok, 1 image gap, 2 nan pose, 3 pose gap
    gap_cam = [""] * len(tq)
    img_seq: dict[str, np.ndarray] = {}
    for c, (ct, cv) in cam_t.items():
        j = np.searchsorted(ct, tq + _EPS, side="right") - 1
        ok = (j >= 0) & ((tq - ct[np.clip(j, 0, None)]) <= opts.image_age_s + _EPS)
        for k in np.flatnonzero(~ok):
            if status[k] == 0:
                status[k], gap_cam[k] = 1, cams[c]
        img_seq[c] = np.asarray([cv[x] if x >= 0 else -1 for x in j], dtype=np.int64)
    pose, pst = poses.at(tq, opts.pose_gap_s)
    status[(status == 0) & (pst == 2)] = 2
    status[(status == 0) & (pst == 1)] = 3
    # gripper
    gs_t, gs_v = (
        _select(scan.streams.get(scan.topics.gripper_state), seg)
        if scan.topics.gripper_state
        else (
            np.zeros(0),
            [],
        )
    )
    gc_t, gc_v = _select(scan.streams.get(scan.topics.gripper_command), seg)
    if len(gs_t):
        grip_state = _held(gs_t, gs_v, tq)
    elif len(gc_t):
        grip_state = _held(gc_t, gc_v, tq)
    else:
        grip_state = np.full(len(tq), float(opts.default_gripper))
    if source == "poses":
        t_next = tq + T
        if len(gc_t):
            grip_act = _held(gc_t, gc_v, t_next - 1e-6)
        elif len(gs_t):
            grip_act = _held(gs_t, gs_v, t_next)
        else:
            grip_act = np.full(len(tq), float(opts.default_gripper))
        actions = np.full((len(tq), 7), np.nan)
        term = np.zeros(len(tq), dtype=bool)
        for k in range(len(tq)):
            if status[k] != 0:
                continue
            if k + 1 < len(tq):
                if pst[k + 1] == 0:
                    actions[k] = _delta(pose[k], pose[k + 1], grip_act[k], opts)
                else:  # no pose at the end of this step: no action for it
                    status[k] = 2 if pst[k + 1] == 2 else 3
            elif terminal:
                actions[k] = np.concatenate([np.zeros(6), [grip_state[k]]])
                term[k] = True
            else:
                status[k] = 5  # last step of a cut episode: no next pose, dropped silently
    _report_bad(status, tq, gap_cam, pose, problems, bag, T, cam_t, poses)
    state = np.concatenate([pose, grip_state[:, None]], axis=1)
    flip = state[:, 6] < 0
    state[flip, 3:7] *= -1
    out = []
    ok_all = status == 0
    runs = _runs(ok_all)
    for r_lo, r_hi in runs:
        last_step = bool(np.all(status[r_hi:] == 5))  # nothing but the undroppable tail after it
        out.append(
            {
                "t": tq[r_lo:r_hi],
                "state": state[r_lo:r_hi],
                "action": actions[r_lo:r_hi],
                "terminate": term[r_lo:r_hi],
                "image_seq": {c: img_seq[c][r_lo:r_hi] for c in cams},
                "done": bool(last_step and hi == ep.t_end and math.isfinite(ep.t_end)),
                "source": source,
            }
        )
    return out


def _delta(p0: np.ndarray, p1: np.ndarray, gripper: float, opts: ReadOptions) -> np.ndarray:
    r0, r1 = Rotation.from_quat(p0[3:]), Rotation.from_quat(p1[3:])
    if opts.command_frame == opts.planning_frame:
        dp, rd = p1[:3] - p0[:3], r1 * r0.inv()
    else:  # end-effector (body) frame
        dp, rd = r0.inv().apply(p1[:3] - p0[:3]), r0.inv() * r1
    rot = rd.as_euler("xyz") if opts.rotation_convention == "rpy" else rd.as_rotvec()
    return np.concatenate([dp, rot, [gripper]])


_KIND = {1: "image_gap", 2: "nan_pose", 3: "pose_gap"}


def _report_bad(status, tq, gap_cam, pose, problems, bag, T, cam_t, poses) -> None:
    k, n = 0, len(status)
    while k < n:
        s = int(status[k])
        if s in (0, 5):
            k += 1
            continue
        kind = _KIND[s]
        j = k
        while j < n and _KIND.get(int(status[j])) == kind:
            j += 1
        t_from, t_to = float(tq[k]), float(tq[j - 1])
        if kind == "image_gap":
            topic = gap_cam[k]
            msg = f"no camera frame on {topic} for {t_to - t_from + T:.2f} s (frames older than {T:.2f} s are not used)"
        elif kind == "nan_pose":
            msg = "end-effector pose is NaN or not a unit quaternion"
        else:
            msg = f"no end-effector pose for more than {T:.2f} s (nothing is interpolated across a gap)"
        problems.append(Problem(bag, t_from, kind, msg + f", until {t_to:.2f} s", j - k))
        k = j


def _decode_images(
    path: Path,
    cams: dict[str, str],
    need: dict[str, dict[int, list[tuple[int, int]]]],
    problems: list[Problem],
    bag: str,
    scan: _Scan,
) -> dict[str, dict[int, np.ndarray]]:
    """Pass 2: decode only the camera frames that steps use."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    factory = DecoderFactory()
    topic_cam = {t: c for c, t in cams.items()}
    out: dict[str, dict[int, np.ndarray]] = {c: {} for c in cams}
    seq: dict[str, int] = {}
    decoders: dict[int, Any] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    with open(path, "rb") as f:
        reader = make_reader(f)
        for schema, channel, message in reader.iter_messages(topics=list(topic_cam), log_time_order=False):
            c = topic_cam[channel.topic]
            k = seq.get(channel.topic, 0)
            seq[channel.topic] = k + 1
            if k not in need[c]:
                continue
            dec = decoders.get(schema.id)
            if dec is None:
                dec = decoders[schema.id] = factory.decoder_for(channel.message_encoding, schema)
            t = (message.log_time - (scan.t0_ns or 0)) * 1e-9
            try:
                img = decode_image(dec(message.data), compressed=schema.name in _COMPRESSED_TYPES)
                if c in shapes and img.shape != shapes[c]:
                    raise ValueError(f"frame size {img.shape} differs from the first frame's {shapes[c]}")
                shapes.setdefault(c, img.shape)
            except Exception as e:  # noqa: BLE001
                problems.append(Problem(bag, t, "bad_image", f"bad frame on {channel.topic}: {e}", len(need[c][k])))
                continue
            out[c][k] = img
    return out

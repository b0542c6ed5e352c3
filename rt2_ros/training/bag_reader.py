"""Reading MCAP recordings: finding the files, pass 1 over a bag's messages (:class:`Scan`:
time, clock segment and decoded value of every wanted message; camera frames only counted),
the end-effector pose from the recorded TF tree, and pass 2 that decodes only the camera
frames the control steps use. What the messages mean (episodes, control steps, actions) is
:mod:`rt2_ros.training.bags`.

ROS-free: the ``mcap`` and ``mcap-ros2-support`` libraries read the files and decode the
CDR messages from the message definitions stored in them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from scipy.spatial.transform import Rotation

from rt2_ros.images import decode_compressed, raw_to_rgb
from rt2_ros.training.bag_types import COMPRESSED_TYPES, BagTopics, Problem, ReadOptions, Stream, camera_name, select

__all__ = ["find_bags", "decode_image", "Scan", "tf_pose_stream", "decode_images"]


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


# -- message decoding ----------------------------------------------------------------------


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


# -- scanning ------------------------------------------------------------------------------


class Scan:
    """Pass 1 over a bag: every wanted message's time, clock segment and value
    (images: only their position, decoded in pass 2)."""

    def __init__(self, path: Path, topics: BagTopics, opts: ReadOptions):
        self.path, self.topics, self.opts = path, topics, opts
        self.streams: dict[str, Stream] = {}
        self.types: dict[str, str] = {}
        self.events: list[tuple[float, int, str, Any]] = []  # (t, seg, kind, value) in file order
        self.jumps: list[tuple[float, float]] = []  # (time before, time after), s into the bag
        self.t0_ns: int | None = None
        self.count = 0
        self.bad: list[Problem] = []

    def run(self) -> None:
        """Read the file once, filling ``streams``, ``events``, ``jumps``, ``count`` and ``bad``
        (undecodable messages).

        Raises:
            OSError: the file cannot be read.
            ValueError: no summary section (unfinished recording), or a topic's schema cannot be decoded.
        """
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
                st = self.streams.setdefault(topic, Stream())
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
                        self.streams.setdefault(f"tf:{item[0]}>{item[1]}", Stream())
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
        return set(self.resolved_images().values())

    def resolved_images(self) -> dict[str, str]:
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


# -- TF ------------------------------------------------------------------------------------


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pose ``a * b`` (each x y z qx qy qz qw)."""
    ra = Rotation.from_quat(a[3:])
    return np.concatenate([a[:3] + ra.apply(b[:3]), (ra * Rotation.from_quat(b[3:])).as_quat()])


def tf_pose_stream(scan: Scan, planning: str, ee: str) -> Stream | None:
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
    out = Stream()
    segs = sorted({s for st in links for s in st.seg if s >= 0})
    for seg in segs:
        series = [select(st, seg) for st in links]
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


# -- pass 2: camera frames -----------------------------------------------------------------


def decode_images(
    path: Path,
    cams: dict[str, str],
    need: dict[str, dict[int, list[tuple[int, int]]]],
    problems: list[Problem],
    bag: str,
    scan: Scan,
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
                img = decode_image(dec(message.data), compressed=schema.name in COMPRESSED_TYPES)
                if c in shapes and img.shape != shapes[c]:
                    raise ValueError(f"frame size {img.shape} differs from the first frame's {shapes[c]}")
                shapes.setdefault(c, img.shape)
            except Exception as e:  # noqa: BLE001
                problems.append(Problem(bag, t, "bad_image", f"bad frame on {channel.topic}: {e}", len(need[c][k])))
                continue
            out[c][k] = img
    return out

"""Write small ROS 2 MCAP recordings for the dataset tests (mcap-ros2 writer, real message definitions)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

T0_NS = 1_700_000_000_000_000_000


class BagWriter:
    """An MCAP file with the rt2 topics; times are seconds after :data:`T0_NS` (the log time)."""

    def __init__(self, path: str | Path, sort: bool = True):
        """``sort``: write the messages in log-time order at :meth:`close` (as a recorder
        does); False writes them in call order (to fake a clock jump)."""
        from mcap_ros2.writer import Writer

        from rt2_ros.sim.recording import message_definition

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "wb")
        self._w = Writer(self._f)
        self._schemas: dict[str, object] = {}
        self._defs = message_definition
        self._sort = sort
        self._pending: list[tuple[int, int, str, object, dict]] = []

    def _schema(self, datatype: str):
        if datatype not in self._schemas:
            if datatype == "tf2_msgs/msg/TFMessage":  # tf2_msgs is not installed here: its one-line definition
                sep = "=" * 80
                text = (
                    "geometry_msgs/TransformStamped[] transforms\n"
                    f"{sep}\nMSG: geometry_msgs/TransformStamped\n" + self._defs("geometry_msgs/msg/TransformStamped")
                )
            else:
                text = self._defs(datatype)
            self._schemas[datatype] = self._w.register_msgdef(datatype, text)
        return self._schemas[datatype]

    def write(self, topic: str, datatype: str, msg: dict, t: float) -> None:
        ns = T0_NS + int(round(t * 1e9))
        self._pending.append((ns, len(self._pending), topic, self._schema(datatype), msg))

    @staticmethod
    def _header(t: float, frame: str = "") -> dict:
        ns = T0_NS + int(round(t * 1e9))
        return {"stamp": {"sec": ns // 10**9, "nanosec": ns % 10**9}, "frame_id": frame}

    def image(self, t: float, img: np.ndarray, topic: str = "/camera/image_raw") -> None:
        h, w, _ = img.shape
        msg = {
            "header": self._header(t, "camera"),
            "height": h,
            "width": w,
            "encoding": "rgb8",
            "is_bigendian": 0,
            "step": w * 3,
            "data": np.ascontiguousarray(img, np.uint8).tobytes(),
        }
        self.write(topic, "sensor_msgs/msg/Image", msg, t)

    def compressed(self, t: float, img: np.ndarray, topic: str = "/camera/image_raw/compressed") -> None:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        msg = {"header": self._header(t, "camera"), "format": "png", "data": buf.getvalue()}
        self.write(topic, "sensor_msgs/msg/CompressedImage", msg, t)

    def pose(self, t: float, pos, quat_xyzw, frame: str = "panda_link0", topic: str = "/rt2/ee_pose") -> None:
        p = [float(v) for v in pos]
        q = [float(v) for v in quat_xyzw]
        msg = {
            "header": self._header(t, frame),
            "pose": {
                "position": {"x": p[0], "y": p[1], "z": p[2]},
                "orientation": {"x": q[0], "y": q[1], "z": q[2], "w": q[3]},
            },
        }
        self.write(topic, "geometry_msgs/msg/PoseStamped", msg, t)

    def tf(self, t: float, parent: str, child: str, pos, quat_xyzw, static: bool = False) -> None:
        p, q = [float(v) for v in pos], [float(v) for v in quat_xyzw]
        tr = {
            "header": self._header(t, parent),
            "child_frame_id": child,
            "transform": {
                "translation": {"x": p[0], "y": p[1], "z": p[2]},
                "rotation": {"x": q[0], "y": q[1], "z": q[2], "w": q[3]},
            },
        }
        self.write("/tf_static" if static else "/tf", "tf2_msgs/msg/TFMessage", {"transforms": [tr]}, t)

    def gripper(self, t: float, value: float, topic: str = "/rt2/gripper_command") -> None:
        self.write(topic, "std_msgs/msg/Float64", {"data": float(value)}, t)

    def instruction(self, t: float, text: str) -> None:
        self.write("/rt2/instruction", "std_msgs/msg/String", {"data": text}, t)

    def episode(self, t: float, state: int, instruction: str, reason: str = "", step: int = 0) -> None:
        msg = {
            "header": self._header(t),
            "state": state,
            "reason": reason,
            "detail": "",
            "step": step,
            "elapsed_s": 0.0,
            "instruction": instruction,
        }
        self.write("/rt2/episode", "rt2_ros/msg/EpisodeStatus", msg, t)

    def action(self, t: float, values, terminate: bool = False, latency_s: float = 0.0, valid: bool = True) -> None:
        v = [float(x) for x in values]
        msg = {
            "header": self._header(t, "panda_link0"),
            "instruction": "",
            "raw_text": "",
            "tokens": [],
            "delta_position": v[:3],
            "delta_rotation": v[3:6],
            "gripper": v[6],
            "terminate": terminate,
            "plan": "",
            "inference_latency_ms": latency_s * 1e3,
            "preprocess_ms": 0.0,
            "model_ms": 0.0,
            "decode_ms": 0.0,
            "network_ms": 0.0,
            "server_ms": 0.0,
            "valid": valid,
            "error": "",
        }
        self.write("/rt2/action", "rt2_ros/msg/RT2Action", msg, t)

    def close(self) -> Path:
        items = sorted(self._pending, key=lambda e: (e[0], e[1])) if self._sort else self._pending
        for ns, _, topic, schema, msg in items:
            self._w.write_message(topic, schema, msg, log_time=ns, publish_time=ns)
        self._w.finish()
        self._f.close()
        return self.path

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- a synthetic arm: straight line at constant velocity, turning about z at a constant rate --------

VELOCITY_MPS = np.array([0.05, -0.02, 0.01])
YAW_RATE_RADPS = 0.5
START_M = np.array([0.4, 0.1, 0.3])
IMAGE_HW = (24, 32)


def pose_at(t: float) -> tuple[np.ndarray, np.ndarray]:
    """Position (m) and quaternion (x y z w) of the synthetic arm at ``t`` (s into its episode)."""
    rot = Rotation.from_euler("z", 0.2 + YAW_RATE_RADPS * t) * Rotation.from_euler("x", math.pi)
    return START_M + VELOCITY_MPS * t, rot.as_quat()


def frame_image(k: int) -> np.ndarray:
    """Camera frame number ``k``: its number in pixel (0, 0, 0), so tests can tell frames apart."""
    img = np.full((*IMAGE_HW, 3), 90, np.uint8)
    img[:, :, 1] = 30 + (k % 7) * 20
    img[0, 0, 0] = k % 256
    return img


def synth_episode(
    w: BagWriter,
    t_start: float,
    duration_s: float,
    instruction: str,
    *,
    reason: str = "terminate",
    episode_topic: bool = True,
    camera_period_s: float = 0.1,
    pose_period_s: float = 0.02,
    image_gap: tuple[float, float] | None = None,
    pose_gap: tuple[float, float] | None = None,
    nan_pose_at: tuple[float, float] | None = None,
    gripper: float = 1.0,
    frame_offset_s: float = 0.01,
    camera: bool = True,
    first_frame: int = 0,
) -> None:
    """One episode of the synthetic arm: camera, pose, gripper, instruction (+ episode status).

    Gaps are ``(from, to)`` in seconds into the episode where the stream is silent.
    """

    def inside(t: float, span) -> bool:
        return span is not None and span[0] <= t < span[1]

    w.instruction(t_start, instruction)
    if episode_topic:
        w.episode(t_start, 1, instruction)
    w.gripper(t_start, gripper)
    n_pose = int(round(duration_s / pose_period_s)) + 1
    n_img = int(math.floor((duration_s - frame_offset_s) / camera_period_s + 1e-9)) + 1
    events = []
    for k in range(n_pose):
        t = k * pose_period_s
        if not inside(t, pose_gap):
            events.append((t, "pose", k))
    for k in range(n_img):
        t = frame_offset_s + k * camera_period_s
        if camera and not inside(t, image_gap):
            events.append((t, "image", k))
    for t, kind, k in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == "pose":
            p, q = pose_at(t)
            if inside(t, nan_pose_at):
                p = np.array([math.nan, 0.0, 0.0])
            w.pose(t_start + t, p, q)
        else:
            w.image(t_start + t, frame_image(first_frame + k))
    if episode_topic:
        w.episode(t_start + duration_s, 2, instruction, reason=reason)
    else:
        w.instruction(t_start + duration_s, "stop" if reason == "stop" else "")

"""ROS message <-> numpy / core-type conversions for the rt2 node (rclpy message types).

* Images: ``sensor_msgs/Image`` / ``CompressedImage`` -> ``uint8 (H, W, 3)`` RGB with
  :mod:`rt2_ros.images` (zero-copy for unpadded ``rgb8``), or ``cv_bridge`` for the
  channel conversion when it is importable.
* Stamps: ``builtin_interfaces/Time`` <-> seconds (float).
* ``std_msgs/String`` from its serialised bytes, strictly (:func:`string_from_cdr`).
* Core types (:class:`~rt2_ros.motion.Twist`, :class:`~rt2_ros.controller.StepOutcome`,
  :class:`~rt2_ros.episode.Transition`) -> ``TwistStamped``, ``RT2Action``,
  ``EpisodeStatus``.

Every converter raises :class:`ValueError` with the reason on bad input, so the node
can log a rejection and keep its safe state.
"""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import CompressedImage, Image

from rt2_ros.images import MAX_IMAGE_PIXELS, SUPPORTED_ENCODINGS, decode_compressed, pixel_view, raw_to_rgb
from rt2_ros.motion import Twist

__all__ = [
    "SUPPORTED_ENCODINGS",
    "MAX_IMAGE_PIXELS",
    "image_msg_to_rgb",
    "compressed_msg_to_rgb",
    "rgb_to_image_msg",
    "stamp_to_s",
    "s_to_stamp",
    "string_from_cdr",
    "twist_to_msg",
    "quaternion_to_matrix",
    "import_rt2_msgs",
    "outcome_to_action_msg",
    "transition_to_episode_msg",
    "HAVE_CV_BRIDGE",
]

try:  # pragma: no cover - cv_bridge is not installable on the project's machines
    from cv_bridge import CvBridge, CvBridgeError  # type: ignore

    HAVE_CV_BRIDGE = True
    _BRIDGE = CvBridge()
except ImportError:
    HAVE_CV_BRIDGE = False
    _BRIDGE = None
    CvBridgeError = Exception  # type: ignore[misc,assignment]


def image_msg_to_rgb(msg: Image) -> np.ndarray:
    """``sensor_msgs/Image`` -> ``uint8 (H, W, 3)`` RGB (:func:`rt2_ros.images.raw_to_rgb`:
    zero-copy for unpadded ``rgb8``). Uses ``cv_bridge`` for the channel conversion when
    it is importable.

    Raises:
        ValueError: unsupported encoding (16-bit and float images such as depth
            ``16UC1``/``32FC1``, Bayer), empty or oversized image, or data that is not
            ``step * height`` bytes.
    """
    enc = str(msg.encoding)
    if HAVE_CV_BRIDGE and enc not in ("rgb8", "8UC3"):  # pragma: no cover - no cv_bridge here
        pixel_view(msg.data, msg.height, msg.width, msg.step, enc)  # same checks as the numpy path
        try:
            out = _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8")
        except CvBridgeError as e:
            raise ValueError(f"cv_bridge could not convert {enc} image: {e}") from None
        return np.ascontiguousarray(out, dtype=np.uint8)
    return raw_to_rgb(msg.data, msg.height, msg.width, msg.step, enc)


def compressed_msg_to_rgb(msg: CompressedImage) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (JPEG, PNG, ...) -> ``uint8 (H, W, 3)`` RGB
    (:func:`rt2_ros.images.decode_compressed`: OpenCV when importable, else Pillow).

    Raises:
        ValueError: empty or undecodable data, or an oversized image.
    """
    return decode_compressed(msg.data, msg.format)


def rgb_to_image_msg(image: np.ndarray, stamp: TimeMsg | None = None, frame_id: str = "") -> Image:
    """``uint8 (H, W, 3)`` RGB -> ``sensor_msgs/Image`` (``rgb8``; data assigned as bytes).

    Raises:
        ValueError: not a uint8 (H, W, 3) array.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"expected uint8 (H, W, 3), got {getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}"
        )
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = int(image.shape[1]) * 3
    msg.data = np.ascontiguousarray(image).tobytes()
    return msg


def string_from_cdr(raw: bytes) -> str:
    """The text of a serialised ``std_msgs/String`` (one CDR string), decoded strictly.

    rclpy's own conversion would hide what is wrong with a bad instruction: invalid UTF-8
    becomes U+FFFD, and the C string copy stops at a NUL byte, silently cutting the text.
    Layout (OMG DDS-XTypes 1.3, 7.4.3 and 10.2; ``rmw_fastrtps`` and ``rmw_cyclonedds``
    write it): a 4-byte encapsulation header whose second byte's low bit says little
    endian (CDR / XCDR2, plain), the string's length (uint32, its NUL terminator
    included), its bytes, the NUL.

    Raises:
        ValueError: malformed bytes, a NUL inside the text, or text that is not valid
            UTF-8 (the reason says which byte where).
    """
    if len(raw) < 9:
        raise ValueError(f"a serialised String of {len(raw)} bytes is too short")
    if raw[0] != 0 or raw[1] not in (0, 1, 6, 7, 8, 9, 10, 11):
        raise ValueError(f"unknown CDR encapsulation {raw[:2].hex()}")
    n = int.from_bytes(raw[4:8], "little" if raw[1] & 1 else "big")
    if n < 1 or 8 + n > len(raw) or raw[8 + n - 1] != 0:
        raise ValueError("malformed serialised String (length or terminator)")
    data = bytes(raw[8 : 8 + n - 1])
    if b"\x00" in data:
        raise ValueError(f"the text contains a NUL byte at byte {data.index(0)} (a C string would be cut there)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"the text is not valid UTF-8 (byte 0x{data[e.start]:02x} at byte {e.start}: {e.reason})"
        ) from None


def stamp_to_s(stamp: TimeMsg) -> float:
    """``builtin_interfaces/Time`` -> seconds (float)."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def s_to_stamp(t_s: float) -> TimeMsg:
    """Seconds (>= 0, finite) -> ``builtin_interfaces/Time``.

    Raises:
        ValueError: negative or non-finite time.
    """
    if not (math.isfinite(t_s) and t_s >= 0):
        raise ValueError(f"time must be finite and >= 0 s, got {t_s}")
    ns = int(round(t_s * 1e9))
    return TimeMsg(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def twist_to_msg(twist: Twist, stamp: TimeMsg, frame_id: str) -> TwistStamped:
    """:class:`~rt2_ros.motion.Twist` (m/s, rad/s) -> ``TwistStamped`` in ``frame_id``.

    Raises:
        ValueError: empty ``frame_id`` (MoveIt Servo on Jazzy rejects it,
            ``shared/docs/rt2-reference.md``).
    """
    if not frame_id:
        raise ValueError("a twist for MoveIt Servo needs a non-empty frame_id")
    msg = TwistStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    lin, ang = twist.linear, twist.angular
    msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = float(lin[0]), float(lin[1]), float(lin[2])
    msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = float(ang[0]), float(ang[1]), float(ang[2])
    return msg


def quaternion_to_matrix(q) -> np.ndarray:
    """``geometry_msgs/Quaternion`` (x, y, z, w) -> ``float64 (3, 3)`` rotation matrix (scipy).

    Raises:
        ValueError: non-finite or zero-norm quaternion.
    """
    from scipy.spatial.transform import Rotation

    v = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    if not np.all(np.isfinite(v)) or np.linalg.norm(v) < 1e-9:
        raise ValueError(f"invalid quaternion {v.tolist()}")
    return Rotation.from_quat(v).as_matrix()


def import_rt2_msgs():
    """Import the generated ``rt2_ros.msg`` (``RT2Action``, ``EpisodeStatus``) and return it.

    Raises:
        ImportError: the messages were never built (the message says how to build them).
    """
    import importlib

    try:
        return importlib.import_module("rt2_ros.msg")
    except ImportError as e:
        raise ImportError(
            "rt2_ros.msg (RT2Action, EpisodeStatus) is not built: run `colcon build` "
            "(or `bash scripts/bootstrap.sh`) and `source install/setup.bash`"
        ) from e


_TIMING_FIELDS = {
    "preprocess": "preprocess_ms",
    "model": "model_ms",
    "decode": "decode_ms",
    "network": "network_ms",
    "server": "server_ms",
}


def outcome_to_action_msg(outcome, stamp: TimeMsg, frame_id: str):
    """:class:`~rt2_ros.controller.StepOutcome` -> ``rt2_ros/RT2Action``.

    ``valid`` is True only when the step produced an accepted action; ``error`` then
    is "". Deltas are in ``frame_id`` (the command frame), m and rad. An accepted answer
    also fills ``horizon``, ``chunk`` (``horizon x 7`` values, row-major) and
    ``chunk_terminate`` (horizon 1: the one action).
    """
    msgs = import_rt2_msgs()
    m = msgs.RT2Action()
    m.header.stamp = stamp
    m.header.frame_id = frame_id
    m.instruction = outcome.instruction
    res, act = outcome.result, outcome.action
    if res is not None:
        m.raw_text = res.text[:4096]
        for key, field in _TIMING_FIELDS.items():
            v = res.timings_ms.get(key)
            if v is not None and math.isfinite(v):
                setattr(m, field, float(v))
    if act is not None:
        m.tokens = [int(t) for t in act.tokens]
        m.delta_position = [float(v) for v in act.delta_position]
        m.delta_rotation = [float(v) for v in act.delta_rotation]
        m.gripper = float(act.gripper)
        m.terminate = bool(act.terminate)
        m.plan = act.plan or ""
    elif res is not None and res.token_ids:
        m.tokens = [int(t) for t in res.token_ids[:64] if -(2**31) <= int(t) < 2**31]
    if act is not None and res is not None and res.actions:
        m.horizon = len(res.actions)
        m.chunk = [float(v) for a in res.actions for v in a.vector]
        m.chunk_terminate = [bool(a.terminate) for a in res.actions]
    m.inference_latency_ms = float(outcome.latency_ms)
    m.valid = act is not None and outcome.rejected is None
    m.error = outcome.rejected or ""
    return m


def transition_to_episode_msg(t, stamp: TimeMsg):
    """:class:`~rt2_ros.episode.Transition` -> ``rt2_ros/EpisodeStatus``."""
    msgs = import_rt2_msgs()
    m = msgs.EpisodeStatus()
    m.header.stamp = stamp
    m.state = int(t.state)
    m.reason = t.reason.value if t.reason is not None else ""
    m.detail = t.detail
    m.step = int(t.step)
    m.elapsed_s = float(t.elapsed_s)
    m.instruction = t.instruction
    return m

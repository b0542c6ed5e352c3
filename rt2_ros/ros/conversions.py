"""ROS message <-> numpy / core-type conversions for the rt2 node (rclpy message types).

* Images: ``sensor_msgs/Image`` -> ``uint8 (H, W, 3)`` RGB. With ``cv_bridge``
  importable its ``imgmsg_to_cv2`` does the conversion; otherwise (and always for the
  rgb8 fast path) ``np.frombuffer`` over the message buffer, which is zero-copy for
  ``rgb8`` without row padding (``shared/docs/ros2-on-this-machine.md``: microseconds
  against milliseconds for a list copy). Channel-order changes (bgr8, rgba8, ...)
  cost one copy so the policy always gets a C-contiguous array.
* ``sensor_msgs/CompressedImage`` decodes with OpenCV when importable, else Pillow
  (both well-kept decoders; we never parse JPEG/PNG ourselves).
* Stamps: ``builtin_interfaces/Time`` <-> seconds (float).
* Core types (:class:`~rt2_ros.motion.Twist`, :class:`~rt2_ros.controller.StepOutcome`,
  :class:`~rt2_ros.episode.Transition`) -> ``TwistStamped``, ``RT2Action``,
  ``EpisodeStatus``.

Every converter raises :class:`ValueError` with the reason on bad input, so the node
can log a rejection and keep its safe state.
"""

from __future__ import annotations

import io
import math

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import CompressedImage, Image

from rt2_ros.motion import Twist

__all__ = [
    "SUPPORTED_ENCODINGS",
    "MAX_IMAGE_PIXELS",
    "image_msg_to_rgb",
    "compressed_msg_to_rgb",
    "rgb_to_image_msg",
    "stamp_to_s",
    "s_to_stamp",
    "twist_to_msg",
    "quaternion_to_matrix",
    "import_rt2_msgs",
    "outcome_to_action_msg",
    "transition_to_episode_msg",
    "HAVE_CV_BRIDGE",
    "HAVE_CV2",
]

#: Encodings we turn into RGB (sensor_msgs/image_encodings.hpp names); channels per pixel.
SUPPORTED_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC3": 3, "8UC1": 1}

#: Largest image accepted (pixels); a bigger frame is a misconfigured camera or a
#: decompression bomb, not a policy input.
MAX_IMAGE_PIXELS = 4096 * 4096

try:  # pragma: no cover - cv_bridge is not installable on the project's machines
    from cv_bridge import CvBridge, CvBridgeError  # type: ignore

    HAVE_CV_BRIDGE = True
    _BRIDGE = CvBridge()
except ImportError:
    HAVE_CV_BRIDGE = False
    _BRIDGE = None
    CvBridgeError = Exception  # type: ignore[misc,assignment]

try:  # pragma: no cover - OpenCV is optional
    import cv2  # type: ignore

    HAVE_CV2 = True
except ImportError:
    cv2 = None
    HAVE_CV2 = False


def _check_dims(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"image has no pixels ({width}x{height})")
    if height * width > MAX_IMAGE_PIXELS:
        raise ValueError(f"image too large ({width}x{height} > {MAX_IMAGE_PIXELS} pixels)")


def _numpy_view(msg: Image, channels: int) -> np.ndarray:
    """``uint8 (H, W, channels)`` view on ``msg.data`` honouring ``step`` padding."""
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row = w * channels
    if step < row:
        raise ValueError(f"image step {step} is smaller than width*channels = {row} ({msg.encoding})")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size != step * h:
        raise ValueError(f"image data has {buf.size} bytes; {w}x{h} {msg.encoding} with step {step} needs {step * h}")
    if step == row:
        return buf.reshape(h, w, channels)
    rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row), strides=(step, 1), writeable=False)
    return rows.reshape(h, w, channels)


def image_msg_to_rgb(msg: Image) -> np.ndarray:
    """``sensor_msgs/Image`` -> ``uint8 (H, W, 3)`` RGB.

    Zero-copy for ``rgb8`` (and ``8UC3``, taken as RGB) without row padding; one copy
    for ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``/``8UC1`` and padded rows. Uses
    ``cv_bridge`` for the channel conversion when it is importable.

    Raises:
        ValueError: unsupported encoding (16-bit and float images such as depth
            ``16UC1``/``32FC1``, Bayer), empty or oversized image, or data shorter
            than ``step * height``.
    """
    enc = str(msg.encoding)
    if enc not in SUPPORTED_ENCODINGS:
        hint = ""
        if enc.startswith(("16", "32", "64", "mono16")) or "FC" in enc:
            hint = " (a depth or 16-bit image? the policy needs the colour stream: remap the camera topic)"
        raise ValueError(f"unsupported image encoding {enc!r}{hint}; supported: {sorted(SUPPORTED_ENCODINGS)}")
    _check_dims(int(msg.height), int(msg.width))
    channels = SUPPORTED_ENCODINGS[enc]
    if HAVE_CV_BRIDGE and enc not in ("rgb8", "8UC3"):  # pragma: no cover - no cv_bridge here
        _numpy_view(msg, channels)  # same size checks as the numpy path
        try:
            out = _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8")
        except CvBridgeError as e:
            raise ValueError(f"cv_bridge could not convert {enc} image: {e}") from None
        return np.ascontiguousarray(out, dtype=np.uint8)
    view = _numpy_view(msg, channels)
    if enc in ("rgb8", "8UC3"):
        return view if view.flags.c_contiguous else np.ascontiguousarray(view)
    if enc == "bgr8":
        return np.ascontiguousarray(view[:, :, ::-1])
    if enc == "rgba8":
        return np.ascontiguousarray(view[:, :, :3])
    if enc == "bgra8":
        return np.ascontiguousarray(view[:, :, 2::-1])
    return np.repeat(view, 3, axis=2)  # mono8 / 8UC1: grey to RGB (a new array)


def compressed_msg_to_rgb(msg: CompressedImage) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (JPEG, PNG, ...) -> ``uint8 (H, W, 3)`` RGB.

    Decodes with OpenCV when importable, else Pillow; both read the format from the
    data, so ``msg.format`` is informational.

    Raises:
        ValueError: empty or undecodable data, or an oversized image.
    """
    data = bytes(msg.data)
    if not data:
        raise ValueError("compressed image is empty")
    if HAVE_CV2:  # pragma: no cover - OpenCV is not installed here
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if arr is None:
            raise ValueError(f"cannot decode compressed image (format {msg.format!r})")
        _check_dims(arr.shape[0], arr.shape[1])
        return np.ascontiguousarray(arr[:, :, ::-1])
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(data)) as im:
            _check_dims(im.height, im.width)  # before decoding the pixels
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, PILImage.DecompressionBombError) as e:
        raise ValueError(f"cannot decode compressed image (format {msg.format!r}): {e}") from None
    return np.asarray(rgb, dtype=np.uint8)


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

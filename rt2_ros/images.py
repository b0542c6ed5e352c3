"""Camera frames -> ``uint8 (H, W, 3)`` RGB, from raw pixel buffers or compressed bytes.

ROS-free: the node's message conversions (:mod:`rt2_ros.ros.conversions`, live
``sensor_msgs/Image``) and the dataset builder (:mod:`rt2_ros.training.bags`, recorded
messages) decode the same way. Raw buffers use ``np.frombuffer`` (zero-copy for
``rgb8`` without row padding; ``shared/docs/ros2-on-this-machine.md``: microseconds
against milliseconds for a list copy); compressed ones OpenCV when importable, else
Pillow (both well-kept decoders; we never parse JPEG/PNG ourselves). Every function
raises :class:`ValueError` with the reason on bad input.
"""

from __future__ import annotations

import io

import numpy as np

__all__ = ["SUPPORTED_ENCODINGS", "MAX_IMAGE_PIXELS", "check_dims", "raw_to_rgb", "decode_compressed"]

#: Encodings we turn into RGB (sensor_msgs/image_encodings.hpp names); channels per pixel.
SUPPORTED_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC3": 3, "8UC1": 1}

#: Largest image accepted (pixels); a bigger frame is a misconfigured camera or a
#: decompression bomb, not a policy input.
MAX_IMAGE_PIXELS = 4096 * 4096

try:  # pragma: no cover - OpenCV is optional (not installed on the project's machines)
    import cv2  # type: ignore
except ImportError:
    cv2 = None


def check_dims(height: int, width: int) -> None:
    """Raises ValueError for an image without pixels or above :data:`MAX_IMAGE_PIXELS`."""
    if height < 1 or width < 1:
        raise ValueError(f"image has no pixels ({width}x{height})")
    if height * width > MAX_IMAGE_PIXELS:
        raise ValueError(f"image too large ({width}x{height} > {MAX_IMAGE_PIXELS} pixels)")


def check_encoding(encoding: str) -> int:
    """Channels of a supported encoding.

    Raises:
        ValueError: unsupported encoding (16-bit and float images such as depth
            ``16UC1``/``32FC1``, Bayer), with a hint for depth streams.
    """
    enc = str(encoding)
    if enc not in SUPPORTED_ENCODINGS:
        hint = ""
        if enc.startswith(("16", "32", "64", "mono16")) or "FC" in enc:
            hint = " (a depth or 16-bit image? the policy needs the colour stream: remap the camera topic)"
        raise ValueError(f"unsupported image encoding {enc!r}{hint}; supported: {sorted(SUPPORTED_ENCODINGS)}")
    return SUPPORTED_ENCODINGS[enc]


def pixel_view(data, height: int, width: int, step: int, encoding: str) -> np.ndarray:
    """``uint8 (H, W, channels)`` view on a raw buffer, honouring ``step`` (row) padding.

    Raises:
        ValueError: see :func:`check_encoding` and :func:`check_dims`; ``step`` below
            ``width * channels``; a buffer that is not ``step * height`` bytes.
    """
    channels = check_encoding(encoding)
    h, w, step = int(height), int(width), int(step)
    check_dims(h, w)
    row = w * channels
    if step < row:
        raise ValueError(f"image step {step} is smaller than width*channels = {row} ({encoding})")
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != step * h:
        raise ValueError(f"image data has {buf.size} bytes; {w}x{h} {encoding} with step {step} needs {step * h}")
    if step == row:
        return buf.reshape(h, w, channels)
    rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row), strides=(step, 1), writeable=False)
    return rows.reshape(h, w, channels)


def raw_to_rgb(data, height: int, width: int, step: int, encoding: str) -> np.ndarray:
    """A raw ``sensor_msgs/Image`` buffer -> ``uint8 (H, W, 3)`` RGB, C-contiguous.

    Zero-copy (a read-only view on ``data``) for ``rgb8`` (and ``8UC3``, taken as RGB)
    without row padding; one copy for ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``/``8UC1``
    and padded rows.

    Raises:
        ValueError: see ``pixel_view``.
    """
    view = pixel_view(data, height, width, step, encoding)
    enc = str(encoding)
    if enc in ("rgb8", "8UC3"):
        return view if view.flags.c_contiguous else np.ascontiguousarray(view)
    if enc == "bgr8":
        return np.ascontiguousarray(view[:, :, ::-1])
    if enc == "rgba8":
        return np.ascontiguousarray(view[:, :, :3])
    if enc == "bgra8":
        return np.ascontiguousarray(view[:, :, 2::-1])
    return np.repeat(view, 3, axis=2)  # mono8 / 8UC1: grey to RGB (a new array)


def decode_compressed(data: bytes, fmt: str = "") -> np.ndarray:
    """Compressed bytes (JPEG, PNG, ...) -> ``uint8 (H, W, 3)`` RGB.

    OpenCV when importable, else Pillow; both read the format from the data, so ``fmt``
    (``CompressedImage.format``) only goes into error messages.

    Raises:
        ValueError: empty or undecodable data, or an oversized image (checked before
            the pixels are decoded where the decoder allows).
    """
    data = bytes(data)
    if not data:
        raise ValueError("compressed image is empty")
    if cv2 is not None:  # pragma: no cover - OpenCV is not installed here
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if arr is None:
            raise ValueError(f"cannot decode compressed image (format {fmt!r})")
        check_dims(arr.shape[0], arr.shape[1])
        return np.ascontiguousarray(arr[:, :, ::-1])
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(data)) as im:
            check_dims(im.height, im.width)  # before decoding the pixels
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, PILImage.DecompressionBombError) as e:
        raise ValueError(f"cannot decode compressed image (format {fmt!r}): {e}") from None
    return np.asarray(rgb, dtype=np.uint8)

"""openpi's policy-server wire format, both directions, with this project's limits.

openpi (Physical Intelligence, Apache-2.0) serves its policies over one websocket
protocol; its own files define it (``shared/fixtures/openpi/``:
``openpi_client/websocket_client_policy.py``, ``openpi_client/msgpack_numpy.py``,
``src/openpi/serving/websocket_policy_server.py``):

* the server sends its metadata first: one binary frame, a msgpack map;
* each request is one binary frame: a msgpack map (the observation, e.g.
  ``{"observation/image": uint8 (224, 224, 3), "observation/state": float (8,),
  "prompt": str}``) whose numpy arrays are packed by ``msgpack_numpy`` as
  ``{b"__ndarray__": True, b"data": bytes, b"dtype": str, b"shape": tuple}`` (the
  keys are *bytes*: msgpack's bin type) and numpy scalars as
  ``{b"__npgeneric__": True, b"data": item, b"dtype": str}``;
* each answer is one binary frame of the same kind with at least ``actions`` (float
  ``[horizon, dim]``) and ``server_timing`` (``{"infer_ms": float,
  "prev_total_ms": float}``, ms);
* a server error is a text frame (the traceback), then close code 1011;
* ``Authorization: Api-Key <key>`` on the handshake when the client has a key;
  ``GET /healthz`` answers 200.

openpi's ``msgpack_numpy`` trusts its peer: any dtype, any shape, unbounded sizes.
This module speaks the same bytes but, like :mod:`rt2_ros.remote.protocol`, accepts
only bool/int/uint/float arrays whose data length matches dtype x shape, bounds
containers, strings and binaries while msgpack parses (so an oversized header is
refused before its payload is read), and never unpickles anything.

Depends on numpy and msgpack only.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import msgpack
import numpy as np

from rt2_ros.remote.protocol import ProtocolError

__all__ = [
    "OPENPI_HEALTH_PATH",
    "MAX_CONTAINER_LEN",
    "pack",
    "unpack",
    "unpack_limits",
    "to_uint8_hwc",
]

#: openpi's health endpoint (``websocket_policy_server._health_check``).
OPENPI_HEALTH_PATH = "/healthz"
#: Most entries in any map or array of a frame (an openpi observation has 4-6 keys, an
#: array 4, a shape at most :data:`_MAX_NDIM`; metadata maps a few dozen).
MAX_CONTAINER_LEN = 64
_MAX_NDIM = 8
_ALLOWED_DTYPE_KINDS = frozenset("biuf")
_ND = b"__ndarray__"
_GEN = b"__npgeneric__"


def _default(obj: Any) -> Any:
    """``msgpack_numpy.pack_array`` (bytes keys), restricted to bool/int/uint/float."""
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind not in _ALLOWED_DTYPE_KINDS:
        raise TypeError(f"cannot send numpy data of dtype {obj.dtype}")
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        return {_ND: True, b"data": a.tobytes(), b"dtype": a.dtype.str, b"shape": tuple(a.shape)}
    if isinstance(obj, np.generic):
        return {_GEN: True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def pack(obj: Any) -> bytes:
    """Serialise a frame exactly as openpi's ``msgpack_numpy.packb`` does (maps, lists,
    str, bytes, numbers, None, numpy arrays and scalars).

    Raises:
        TypeError: object, void or string arrays, or types msgpack cannot carry.
    """
    return msgpack.packb(obj, default=_default, use_bin_type=True)


def _dtype(raw: Any) -> np.dtype:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if not isinstance(raw, str) or len(raw) > 16:
        raise ProtocolError("bad_frame", "array dtype must be a short string")
    try:
        dt = np.dtype(raw)
    except TypeError:
        raise ProtocolError("bad_frame", f"unknown array dtype {raw!r}") from None
    if dt.kind not in _ALLOWED_DTYPE_KINDS or dt.hasobject:
        raise ProtocolError("bad_frame", f"array dtype {dt} not allowed (bool, int, uint, float only)")
    return dt


def _object_hook(obj: dict) -> Any:
    if obj.get(_ND) is True:
        data, shape = obj.get(b"data"), obj.get(b"shape")
        dt = _dtype(obj.get(b"dtype"))
        if not isinstance(data, bytes) or not isinstance(shape, list):
            raise ProtocolError("bad_frame", "array needs bytes data and a shape")
        if len(shape) > _MAX_NDIM or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise ProtocolError("bad_frame", f"bad array shape {shape[:10]!r}")
        n = math.prod(shape)
        if n * dt.itemsize != len(data):
            raise ProtocolError(
                "bad_frame", f"array data is {len(data)} bytes, shape {shape} x {dt} needs {n * dt.itemsize}"
            )
        return np.frombuffer(data, dtype=dt).reshape(shape)
    if obj.get(_GEN) is True:
        dt = _dtype(obj.get(b"dtype"))
        item = obj.get(b"data")
        if not isinstance(item, (bool, int, float)):
            raise ProtocolError("bad_frame", "numpy scalar needs a number")
        try:
            return dt.type(item)
        except (OverflowError, ValueError):
            raise ProtocolError("bad_frame", f"numpy scalar {item!r} does not fit {dt}") from None
    return obj


def unpack_limits(max_frame_bytes: int) -> dict[str, int]:
    """``msgpack.unpackb`` bounds for a frame of at most ``max_frame_bytes``: maps and
    arrays of :data:`MAX_CONTAINER_LEN` entries, strings of 64 KiB (a prompt, a
    traceback), binaries up to the frame size, no extension types."""
    return {
        "max_map_len": MAX_CONTAINER_LEN,
        "max_array_len": MAX_CONTAINER_LEN,
        "max_str_len": 64 * 1024,
        "max_bin_len": int(max_frame_bytes),
        "max_ext_len": 0,
    }


def unpack(data: Any, max_frame_bytes: int) -> Any:
    """Parse one openpi frame; arrays come back as read-only numpy views on its bytes.

    Args:
        data: the received binary frame.
        max_frame_bytes: the largest frame this side accepts (bounds every binary).

    Raises:
        ProtocolError: ``bad_frame``: a text frame, too large, not msgpack, a malformed
            or disallowed array, or a container beyond :func:`unpack_limits`.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError("bad_frame", f"expected a binary msgpack frame, got {type(data).__name__}")
    if len(data) > max_frame_bytes:
        raise ProtocolError("bad_frame", f"frame of {len(data)} bytes exceeds {max_frame_bytes}")
    try:
        return msgpack.unpackb(
            data, object_hook=_object_hook, raw=False, strict_map_key=True, **unpack_limits(max_frame_bytes)
        )
    except ProtocolError:
        raise
    except Exception as e:  # noqa: BLE001 - msgpack raises several types
        raise ProtocolError("bad_frame", f"not a valid msgpack frame: {type(e).__name__}: {str(e)[:200]}") from None


def to_uint8_hwc(image: Any, what: str = "image") -> np.ndarray:
    """An openpi image as uint8 (H, W, 3), as openpi's policy transforms read it
    (``_parse_image`` in ``src/openpi/policies/libero_policy.py``): floats are
    ``(255 * x).astype(uint8)`` (``image_tools.convert_to_uint8``), a leading
    3-channel axis is moved last.

    Raises:
        ProtocolError: ``bad_image``: not an array, not 3-D with 3 channels, float values
            outside [0, 1] or not finite.
    """
    if not isinstance(image, np.ndarray):
        raise ProtocolError("bad_image", f"{what} must be an array, got {type(image).__name__}")
    if image.ndim != 3:
        raise ProtocolError("bad_image", f"{what} must be (H, W, 3) or (3, H, W), got shape {tuple(image.shape)}")
    if image.shape[0] == 3 and image.shape[2] != 3:
        image = np.moveaxis(image, 0, -1)
    if image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ProtocolError("bad_image", f"{what} must be (H, W, 3) or (3, H, W), got shape {tuple(image.shape)}")
    if np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)) or image.min() < 0.0 or image.max() > 1.0:
            raise ProtocolError("bad_image", f"float {what} must hold finite values in [0, 1]")
        image = (255 * image).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ProtocolError("bad_image", f"{what} must be uint8 or float in [0, 1], got {image.dtype}")
    return np.ascontiguousarray(image)


def plain(obj: Any) -> Any:
    """``obj`` with str keys and numpy scalars as Python numbers (metadata, logs)."""
    if isinstance(obj, Mapping):
        return {(k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj

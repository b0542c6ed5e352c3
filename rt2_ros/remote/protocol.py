"""Wire protocol of the remote inference server (version 1).

Every frame is one binary websocket message holding one msgpack map. Numpy arrays
travel as raw bytes with their dtype and shape (the same idea as openpi's
``openpi_client/msgpack_numpy.py``, re-implemented here with a dtype whitelist and a
size check); nothing is ever pickled, so a frame can carry data but never code.

Frames (``type`` field):

* server -> client, once on connect: ``metadata``
  ``{"type": "metadata", "protocol": 1, "server_version": str, "metadata":
  PolicyMetadata.to_dict(), "limits": {...}, "batching": {...}}``
* client -> server: ``infer``
  ``{"type": "infer", "id": int, "image": uint8 (H, W, 3), "instruction": str}``
* server -> client: ``result`` (one per ``infer``, same ``id``)
  ``{"type": "result", "id", "text", "token_ids", "action" (or None), "error",
  "timings_ms", "server_ms", "batch_size"}``
* server -> client: ``error`` (bad request, overload, model failure)
  ``{"type": "error", "id": int or None, "code": str, "message": str}``

The ``action`` in a result is the server's own decoding, for logs and non-Python
clients; :class:`rt2_ros.remote.client.RemotePolicy` decodes ``text`` /
``token_ids`` again with its own codec and does not use it.

Depends on numpy and msgpack only (no websockets), so a server on another
framework (:mod:`rt2_ros.serving.ray_app`) speaks exactly the same protocol.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any, Mapping

import msgpack
import numpy as np

from rt2_ros.codecs import Action
from rt2_ros.policies.base import Observation, PolicyResult

__all__ = [
    "PROTOCOL_VERSION",
    "ProtocolError",
    "Limits",
    "packb",
    "unpackb",
    "parse_infer_request",
    "result_frame",
    "error_frame",
    "metadata_frame",
    "to_plain",
]

#: Bumped on any incompatible change of the frames above.
PROTOCOL_VERSION = 1

#: Array dtypes a frame may carry: booleans, integers, floats (never object, void
#: or strings, which could smuggle structure past the size check).
_ALLOWED_DTYPE_KINDS = frozenset("biuf")
_MAX_NDIM = 8
_ND_KEY = "__ndarray__"
#: Most entries of any map / array in a request frame (an ``infer`` frame has 4 keys,
#: an array 4 keys and a shape of at most ``_MAX_NDIM``): msgpack refuses a larger
#: header at once, so a frame of a million tiny keys costs nothing to reject.
MAX_REQUEST_CONTAINER_LEN = 16
#: Objects (maps, arrays, scalars, strings, binaries) in a whole request frame. A request
#: holds about 20 (its map, the image's map and shape, the scalars); nested 16-entry
#: containers could still pack millions of 1-byte objects into 8 MiB, and building
#: them holds the GIL for a second, slowing every robot the server serves (issue 21,
#: 7.6x p50). :func:`unpackb` counts the objects first, in a walk that stops at this many.
MAX_REQUEST_OBJECTS = 256


class ProtocolError(ValueError):
    """A frame that is not a valid request. ``code`` is sent back in the error frame.

    Codes: ``bad_frame`` (not msgpack / not a map), ``bad_request`` (missing or
    wrong fields), ``bad_image`` (not uint8 (H, W, 3) or too large).
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Limits:
    """Request limits the server enforces (sent to clients in the metadata frame).

    Args:
        max_request_bytes: largest frame accepted, bytes (default 8 MiB: a
            1920x1080 RGB image is 6.2 MB). Larger frames close the connection
            with websocket code 1009 ("message too big") before they are read.
        max_image_side: largest image height or width, pixels.
        max_instruction_chars: longest instruction, characters.
    """

    def __init__(
        self, max_request_bytes: int = 8 * 2**20, max_image_side: int = 2048, max_instruction_chars: int = 1000
    ):
        if max_request_bytes < 1024:
            raise ValueError(f"max_request_bytes must be >= 1024, got {max_request_bytes}")
        if max_image_side < 1 or max_instruction_chars < 1:
            raise ValueError("max_image_side and max_instruction_chars must be >= 1")
        self.max_request_bytes = int(max_request_bytes)
        self.max_image_side = int(max_image_side)
        self.max_instruction_chars = int(max_instruction_chars)

    def to_dict(self) -> dict[str, int]:
        """The limits as the metadata frame sends them."""
        return {
            "max_request_bytes": self.max_request_bytes,
            "max_image_side": self.max_image_side,
            "max_instruction_chars": self.max_instruction_chars,
        }

    def unpack_limits(self) -> dict[str, int]:
        """``msgpack.unpackb`` limits for a request frame: maps and arrays of at most
        ``MAX_REQUEST_CONTAINER_LEN`` entries, strings of at most 64 bytes per
        allowed instruction character plus 1 KiB (so a somewhat long instruction still
        gets its precise ``bad_request`` reply, a multi-megabyte one is refused at its
        header), binaries up to the frame size, no extension types. Nesting is bounded
        by msgpack's own 1024-level stack."""
        return {
            "max_map_len": MAX_REQUEST_CONTAINER_LEN,
            "max_array_len": MAX_REQUEST_CONTAINER_LEN,
            "max_str_len": 64 * self.max_instruction_chars + 1024,
            "max_bin_len": self.max_request_bytes,
            "max_ext_len": 0,
        }


# -- msgpack with numpy arrays ------------------------------------------------------------


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _ALLOWED_DTYPE_KINDS:
            raise TypeError(f"cannot send arrays of dtype {obj.dtype}")
        a = np.ascontiguousarray(obj)  # no copy when already contiguous (camera images are)
        # msgpack reads the buffer in place: no intermediate bytes copy of the image.
        return {_ND_KEY: True, "data": a.reshape(-1).view(np.uint8).data, "dtype": a.dtype.str, "shape": list(a.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _object_hook(obj: dict) -> Any:
    if obj.get(_ND_KEY) is not True:
        return obj
    data, dtype, shape = obj.get("data"), obj.get("dtype"), obj.get("shape")
    if not isinstance(data, bytes) or not isinstance(dtype, str) or not isinstance(shape, list):
        raise ProtocolError("bad_frame", "array needs bytes 'data', str 'dtype' and list 'shape'")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ProtocolError("bad_frame", f"unknown array dtype {dtype[:20]!r}") from None
    if dt.kind not in _ALLOWED_DTYPE_KINDS or dt.hasobject:
        raise ProtocolError("bad_frame", f"array dtype {dt} not allowed (bool, int, uint, float only)")
    if len(shape) > _MAX_NDIM or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ProtocolError("bad_frame", f"bad array shape {shape[:10]!r}")
    n = math.prod(shape)
    if n * dt.itemsize != len(data):
        raise ProtocolError(
            "bad_frame", f"array data is {len(data)} bytes, shape {shape} x {dt} needs {n * dt.itemsize}"
        )
    return np.frombuffer(data, dtype=dt).reshape(shape)


def packb(obj: Any) -> bytes:
    """Serialise a frame (maps, lists, str, bytes, numbers, None, numpy arrays) to msgpack.

    Raises:
        TypeError: an object msgpack cannot carry (and arrays of object/void dtype).
    """
    return msgpack.packb(obj, default=_default, use_bin_type=True)


def unpackb(data: bytes, limits: Limits | None = None) -> Any:
    """Parse one frame; arrays come back as read-only numpy views on the frame bytes.

    Args:
        data: the frame.
        limits: the server's request limits: containers, strings and binaries are
            then bounded by :meth:`Limits.unpack_limits` (a frame beyond them is
            refused as soon as msgpack reads the offending header). None: msgpack's
            defaults (bounded by the frame size; the client reading its server).

    Raises:
        ProtocolError: ``bad_frame`` for anything that is not valid msgpack, holds
            a malformed array, or exceeds ``limits``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError("bad_frame", f"expected a binary msgpack frame, got {type(data).__name__}")
    bounds = limits.unpack_limits() if limits is not None else {}
    if limits is not None:
        _check_object_count(data, bounds)
    try:
        return msgpack.unpackb(data, object_hook=_object_hook, raw=False, strict_map_key=True, **bounds)
    except ProtocolError:
        raise
    except Exception as e:  # noqa: BLE001 - msgpack raises several types (ExtraData, FormatError, StackError, ValueError, ...)
        raise ProtocolError("bad_frame", f"not a valid msgpack frame: {type(e).__name__}: {str(e)[:200]}") from None


def _check_object_count(data, bounds: dict[str, int], most: int = MAX_REQUEST_OBJECTS) -> None:
    """Walk a frame's structure without building it (container headers read, everything
    else skipped) and refuse it at its ``most + 1``-th object: at most ``most`` steps."""
    u = msgpack.Unpacker(max_buffer_size=max(len(data), 1), **bounds)
    u.feed(data)
    view = data if isinstance(data, (bytes, bytearray)) else memoryview(data).cast("B")
    pending, seen = 1, 0  # objects still to read: the frame itself
    try:
        while pending:
            pending -= 1
            seen += 1
            if seen > most:
                raise ProtocolError("bad_frame", f"more than {most} objects in one request frame")
            b = view[u.tell()]
            if 0x80 <= b <= 0x8F or b in (0xDE, 0xDF):
                pending += 2 * u.read_map_header()
            elif 0x90 <= b <= 0x9F or b in (0xDC, 0xDD):
                pending += u.read_array_header()
            else:
                u.skip()
    except ProtocolError:
        raise
    except Exception:  # noqa: BLE001 - truncated or invalid msgpack: unpackb says precisely what
        return


def to_plain(obj: Any) -> Any:
    """Convert numpy scalars/arrays and tuples inside ``obj`` to msgpack/JSON-ready types."""
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


# -- requests -----------------------------------------------------------------------------


def parse_infer_request(frame: Any, limits: Limits) -> tuple[int, Observation]:
    """Validate an ``infer`` frame (already unpacked) into ``(id, Observation)``.

    Raises:
        ProtocolError: ``bad_request`` (not a map, wrong ``type``, missing/invalid
            ``id`` or ``instruction``), ``bad_image`` (not uint8 (H, W, 3), or a side
            beyond ``limits.max_image_side``).
    """
    if not isinstance(frame, dict):
        raise ProtocolError("bad_request", f"a request must be a map, got {type(frame).__name__}")
    if frame.get("type") != "infer":
        raise ProtocolError("bad_request", f"unknown request type {str(frame.get('type'))[:40]!r} (expected 'infer')")
    rid = frame.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool) or not 0 <= rid < 2**63:
        raise ProtocolError("bad_request", "'id' must be an integer in [0, 2**63)")
    instruction = frame.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise ProtocolError("bad_request", "'instruction' must be a non-empty string")
    if len(instruction) > limits.max_instruction_chars:
        raise ProtocolError("bad_request", f"instruction longer than {limits.max_instruction_chars} characters")
    image = frame.get("image")
    if not isinstance(image, np.ndarray):
        raise ProtocolError("bad_image", "'image' must be an array (uint8 (H, W, 3))")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ProtocolError("bad_image", f"image must be uint8 (H, W, 3), got {image.dtype} {tuple(image.shape)}")
    if max(image.shape[:2]) > limits.max_image_side:
        raise ProtocolError(
            "bad_image", f"image {image.shape[1]}x{image.shape[0]} exceeds {limits.max_image_side} px per side"
        )
    return rid, Observation(image=image, instruction=instruction)


def _action_plain(a: Action | None) -> dict | None:
    if a is None:
        return None
    return {
        "terminate": bool(a.terminate),
        "vector": a.vector.tolist(),
        "tokens": [int(t) for t in a.tokens],
        "plan": a.plan,
    }


def result_frame(rid: int, result: PolicyResult, server_ms: float, batch_size: int) -> dict:
    """The ``result`` frame for request ``rid``.

    Args:
        server_ms: time from receiving the request to sending the reply, ms.
        batch_size: how many requests shared the model call.
    """
    return {
        "type": "result",
        "id": rid,
        "text": result.text,
        "token_ids": [int(t) for t in result.token_ids],
        "action": _action_plain(result.action),
        "error": result.error,
        "timings_ms": {str(k): float(v) for k, v in result.timings_ms.items()},
        "server_ms": float(server_ms),
        "batch_size": int(batch_size),
    }


def error_frame(rid: int | None, code: str, message: str) -> dict:
    """The ``error`` frame (``rid`` None when the request had no readable id)."""
    return {"type": "error", "id": rid, "code": code, "message": message[:1000]}


def metadata_frame(
    metadata: Mapping[str, Any], server_version: str, limits: Limits, batching: Mapping[str, Any]
) -> dict:
    """The frame sent once on connect (action format, bounds, statistics key, model id, version)."""
    return {
        "type": "metadata",
        "protocol": PROTOCOL_VERSION,
        "server_version": server_version,
        "metadata": to_plain(metadata),
        "limits": limits.to_dict(),
        "batching": to_plain(batching),
    }

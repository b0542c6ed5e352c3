"""The inference service, independent of the network framework.

:class:`InferenceService` holds the policy, the dynamic batcher, the request limits
and the API key, and turns one received frame into one reply frame
(:meth:`InferenceService.answer`). The websocket server
(:mod:`rt2_ros.serving.ws_server`) and the Ray Serve deployment
(:mod:`rt2_ros.serving.ray_app`) are thin adapters around it, so both speak exactly
the same protocol (:mod:`rt2_ros.remote.protocol`) with the same checks.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any, Mapping

import rt2_ros
from rt2_ros.policies.base import Policy
from rt2_ros.remote.protocol import (
    PROTOCOL_VERSION,
    Limits,
    ProtocolError,
    error_frame,
    metadata_frame,
    packb,
    parse_infer_request,
    result_frame,
    unpackb,
)
from rt2_ros.serving.batching import DynamicBatcher, Overloaded

__all__ = ["InferenceService", "DEGRADED_AFTER_FAILURES", "HEALTH_PATH"]

HEALTH_PATH = "/healthz"
#: Model failures in a row after which the health check answers 503.
DEGRADED_AFTER_FAILURES = 3


class InferenceService:
    """Policy + batcher + limits + key; framework-agnostic request handling.

    Args:
        policy: the backend (``infer_batch`` is called from one worker thread).
        api_key: required key, or None for no authentication.
        max_batch_size, max_wait_ms, max_queue: see :class:`DynamicBatcher`.
        limits: request limits.
        extra_metadata: added to the metadata's ``extra`` (e.g. the replica name).

    Raises:
        ValueError: an empty ``api_key`` or bad batching settings.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        api_key: str | None = None,
        max_batch_size: int = 8,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        limits: Limits | None = None,
        extra_metadata: Mapping[str, Any] | None = None,
    ):
        if api_key is not None and not api_key:
            raise ValueError("api_key must be a non-empty string or None")
        self.policy = policy
        self.limits = limits or Limits()
        self.batcher = DynamicBatcher(policy, max_batch_size, max_wait_ms, max_queue)
        self._api_key = api_key.encode() if api_key else None
        self._t_start = time.monotonic()
        self.clients = 0
        md = policy.metadata.to_dict()
        if extra_metadata:
            md["extra"] = {**(md.get("extra") or {}), **extra_metadata}
        self.metadata_bytes = packb(
            metadata_frame(
                md,
                rt2_ros.__version__,
                self.limits,
                {"max_batch_size": self.batcher.max_batch_size, "max_wait_ms": self.batcher.max_wait_s * 1e3},
            )
        )

    @property
    def auth_required(self) -> bool:
        """True when clients must send the API key."""
        return self._api_key is not None

    def check_key(self, authorization: str | None) -> bool:
        """True when no key is configured or ``authorization`` is ``"Bearer <key>"`` or
        ``"Api-Key <key>"`` (openpi's ``WebsocketClientPolicy``).

        The scheme name is case-insensitive and followed by one or more spaces (RFC 7235
        section 2.1, RFC 6750 section 2.1: ``"Bearer" 1*SP b64token``); the key must match
        exactly, nothing stripped or added (a trailing space is a different key), in
        constant time (:func:`hmac.compare_digest`)."""
        if self._api_key is None:
            return True
        scheme, sep, rest = (authorization or "").partition(" ")
        if not sep or scheme.lower() not in ("bearer", "api-key"):
            return False
        return hmac.compare_digest(rest.lstrip(" ").encode("utf-8", "surrogateescape"), self._api_key)

    def client_connected(self) -> None:
        """Count a connection (each sends one request at a time: see :meth:`answer`)."""
        self.clients += 1
        self.batcher.clients = self.clients

    def client_disconnected(self) -> None:
        """Count a client that left (the batcher stops waiting for it)."""
        self.clients = max(0, self.clients - 1)
        self.batcher.clients = self.clients

    def health(self) -> tuple[int, dict[str, Any]]:
        """``(http status, body)`` of ``GET /healthz``: 503 when the batcher is not
        running or the model failed :data:`DEGRADED_AFTER_FAILURES` times in a row.
        Tells nothing about the model (it needs no key)."""
        st = self.batcher.stats
        degraded = st.consecutive_failures >= DEGRADED_AFTER_FAILURES or not self.batcher.running
        body = {
            "status": "degraded" if degraded else "ok",
            "server_version": rt2_ros.__version__,
            "protocol": PROTOCOL_VERSION,
            "clients": self.clients,
            "pending": self.batcher.pending,
            "batches": st.batches,
            "requests": st.requests,
            "mean_batch_size": round(st.mean_batch_size, 3),
            "uptime_s": round(time.monotonic() - self._t_start, 1),
        }
        return (503 if degraded else 200), body

    async def answer(self, message: bytes | str) -> tuple[bytes, str | None]:
        """Answer one received frame; the caller sends the returned bytes.

        Call it for one connection's frames one at a time (await each before the
        next): the batcher relies on at most one request in flight per client.

        Returns:
            ``(reply frame, problem)``: ``problem`` is a log line for a rejected
            request, else None. Never raises for bad input or model failures (they
            become ``error`` frames).
        """
        t0 = time.perf_counter()
        rid = None
        if not self.batcher.running:
            self.batcher.start()
        try:
            # Parsing runs in a worker thread (bounded by the unpack limits): a client
            # sending frames that are slow to parse cannot stall the event loop, which
            # serves every other robot.
            rid, obs = await asyncio.to_thread(self.parse_request, message)
        except ProtocolError as e:
            rid = getattr(e, "rid", None)
            return packb(error_frame(rid, e.code, str(e))), f"bad request ({e.code}): {e}"
        try:
            result, batch_size = await self.batcher.submit(obs)
        except Overloaded as e:
            return packb(error_frame(rid, "overloaded", str(e))), str(e)
        except ValueError as e:
            return packb(error_frame(rid, "bad_request", str(e))), f"policy rejected the request: {e}"
        except Exception as e:  # noqa: BLE001 - PolicyError or a backend bug: reply, keep serving
            return packb(error_frame(rid, "policy_failed", f"{type(e).__name__}: {e}")), None
        server_ms = (time.perf_counter() - t0) * 1e3
        return packb(result_frame(rid, result, server_ms, batch_size)), None

    def parse_request(self, message: bytes | str):
        """Unpack (with :meth:`~rt2_ros.remote.protocol.Limits.unpack_limits`) and
        validate one request frame into ``(id, Observation)``. Thread-safe.

        Raises:
            ProtocolError: a bad frame; its ``rid`` attribute is the request id when
                the frame had one (for the error reply).
        """
        rid = None
        try:
            if isinstance(message, str):
                raise ProtocolError("bad_frame", "text frames are not accepted; send binary msgpack frames")
            frame = unpackb(message, self.limits)
            if isinstance(frame, dict) and isinstance(frame.get("id"), int) and not isinstance(frame.get("id"), bool):
                rid = frame["id"]
            return parse_infer_request(frame, self.limits)
        except ProtocolError as e:
            e.rid = rid
            raise

    async def close(self) -> None:
        """Stop the batcher (requests still queued get no answer)."""
        await self.batcher.stop()

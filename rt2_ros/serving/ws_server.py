"""The websocket inference server behind ``rt2-ros serve``.

Built on the ``websockets`` library (asyncio server): it is small, well kept, has
no other dependencies, and gives every option this server needs as a standard
argument: ``process_request`` (the ``/healthz`` HTTP endpoint and the API-key check
during the opening handshake, so a refused client never gets a websocket),
``max_size`` (request size limit: a larger frame closes that connection with code
1009 before it is buffered), ``ssl`` (TLS), keepalive pings. openpi's policy
server uses the same design (websocket, msgpack-numpy frames, metadata on connect,
``/healthz``); this one adds authentication, limits and dynamic batching.

Behaviour:

* binds to 127.0.0.1 unless told otherwise;
* API key (optional): ``Authorization: Bearer <key>`` on the handshake, compared in
  constant time (:func:`hmac.compare_digest`); wrong or missing -> HTTP 401;
* ``GET /healthz`` -> 200 ``{"status": "ok", ...}`` (503 ``"degraded"`` after 3
  model failures in a row); needs no key and tells nothing about the model;
* on connect the server sends the ``metadata`` frame
  (:func:`rt2_ros.remote.protocol.metadata_frame`);
* each connection's requests are answered in order; requests of all connections
  share model calls through :class:`~rt2_ros.serving.batching.DynamicBatcher`;
* a malformed request gets an ``error`` frame and the connection stays open; a
  frame over the size limit closes only that connection (code 1009); a model
  failure gets an ``error`` frame (the client then commands no motion);
* frames are unpacked with limits (map/array entries, string and binary lengths)
  in a worker thread, and the model runs in the batcher's thread: one client's
  pathological frames cannot stall the event loop that serves the others;
* a connection that sends no request for ``idle_timeout_s`` is closed (code 1000,
  reason "idle timeout"), so idle clients cannot hold every slot of ``max_clients``.

Request handling itself is :class:`~rt2_ros.serving.service.InferenceService`,
shared with the Ray Serve deployment (:mod:`rt2_ros.serving.ray_app`).

``protocol="openpi"`` speaks openpi's frames instead
(:class:`~rt2_ros.serving.openpi_service.OpenPIService`: metadata first, ``actions``
answers, an error as a text frame then close 1011), with the same batching, key
(``Authorization: Api-Key <key>``, openpi's header, or ``Bearer``), ``/healthz``,
size limit and idle timeout.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import ssl as ssl_module
import threading
import time
from typing import Any, Sequence

from websockets.asyncio.server import ServerConnection, serve, unix_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

import rt2_ros
from rt2_ros.policies.base import Policy
from rt2_ros.remote.protocol import Limits
from rt2_ros.serving.openpi_service import DEFAULT_IMAGE_KEYS, OpenPIService
from rt2_ros.serving.service import HEALTH_PATH, InferenceService

__all__ = ["PolicyServer", "BackgroundServer", "make_ssl_context", "HEALTH_PATH"]

log = logging.getLogger("rt2_ros.server")


def make_ssl_context(certfile: str, keyfile: str | None = None) -> ssl_module.SSLContext:
    """Server TLS context from a PEM certificate (chain) and private key (stdlib ssl).

    Raises:
        OSError: unreadable or mismatching files (``ssl.SSLError`` is one).
    """
    ctx = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl_module.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


class PolicyServer:
    """Serve one :class:`~rt2_ros.policies.base.Policy` to many websocket clients.

    Args:
        policy: the backend (its ``infer_batch`` is called from one worker thread).
        host: bind address; default loopback only.
        port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
        api_key: required key, or None for no authentication.
        max_batch_size, max_wait_ms, max_queue: see
            :class:`~rt2_ros.serving.batching.DynamicBatcher`.
        limits: request limits (:class:`~rt2_ros.remote.protocol.Limits`).
        max_clients: most concurrent connections; more get HTTP 503.
        ssl: server TLS context (:func:`make_ssl_context`), or None for plain ``ws://``.
        ping_interval_s: keepalive ping interval, s (a dead peer is dropped after
            about twice this).
        idle_timeout_s: a connection that sends no request for this long is closed, s.
        unix_socket: listen on this Unix domain socket path instead of ``host:port``
            (the node's policy child, :mod:`rt2_ros.remote.child`); access is the
            file system's (put it in a private directory).
        protocol: ``"rt2"`` (:mod:`rt2_ros.remote.protocol`) or ``"openpi"``
            (:mod:`rt2_ros.serving.openpi_service`).
        openpi_image_keys: openpi observation keys tried for the image (None: the default).
        rotation_convention: the served ``action.rotation_convention`` (openpi metadata).

    Raises:
        ValueError: a bad setting.
    """

    def __init__(
        self,
        policy: Policy,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        api_key: str | None = None,
        max_batch_size: int = 8,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        limits: Limits | None = None,
        max_clients: int = 64,
        ssl: ssl_module.SSLContext | None = None,
        ping_interval_s: float = 10.0,
        idle_timeout_s: float = 60.0,
        unix_socket: str | None = None,
        protocol: str = "rt2",
        openpi_image_keys: Sequence[str] | None = None,
        rotation_convention: str = "rpy",
    ):
        if protocol not in ("rt2", "openpi"):
            raise ValueError(f"protocol must be 'rt2' or 'openpi', got {protocol!r}")
        self.protocol = protocol
        self.service = InferenceService(
            policy,
            api_key=api_key,
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            limits=limits,
        )
        self.policy = policy
        self.host = host
        self._port = int(port)
        self.max_clients = int(max_clients)
        self.ssl = ssl
        self.ping_interval_s = float(ping_interval_s)
        if not idle_timeout_s > 0:
            raise ValueError(f"idle_timeout_s must be > 0, got {idle_timeout_s}")
        self.idle_timeout_s = float(idle_timeout_s)
        self.unix_socket = unix_socket
        self._server = None
        self.openpi: OpenPIService | None = None
        if protocol == "openpi":
            self.openpi = OpenPIService(self.service, openpi_image_keys or DEFAULT_IMAGE_KEYS, rotation_convention)

    @property
    def batcher(self):
        """The :class:`~rt2_ros.serving.batching.DynamicBatcher` (its ``stats``)."""
        return self.service.batcher

    @property
    def limits(self) -> Limits:
        """The request limits the server enforces."""
        return self.service.limits

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0)."""
        if self._server is not None and not self.unix_socket:
            for sock in self._server.sockets:
                return int(sock.getsockname()[1])
        return self._port

    @property
    def url(self) -> str:
        """``ws://host:port`` (``wss://`` with TLS), or ``unix:PATH`` on a Unix socket."""
        if self.unix_socket:
            return f"unix:{self.unix_socket}"
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"{'wss' if self.ssl else 'ws'}://{host}:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind and start serving (returns once listening)."""
        self.batcher.start()
        where = (self.unix_socket,) if self.unix_socket else (self.host, self._port)
        self._server = await (unix_serve if self.unix_socket else serve)(
            self._handler,
            *where,
            process_request=self._process_request,
            max_size=self.limits.max_request_bytes,
            ssl=self.ssl,
            ping_interval=self.ping_interval_s,
            ping_timeout=self.ping_interval_s,
            compression=None,  # camera images do not deflate well; saves CPU on both ends
            server_header=f"rt2_ros/{rt2_ros.__version__}",
        )
        log.info(
            "serving %s on %s, %s protocol (auth %s, batch <= %d, wait <= %.1f ms)",
            self.policy.metadata.model_id,
            self.url,
            self.protocol,
            "on" if self.service.auth_required else "OFF",
            self.batcher.max_batch_size,
            self.batcher.max_wait_s * 1e3,
        )

    async def stop(self) -> None:
        """Close all connections and stop the batcher."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.service.close()

    async def serve_forever(self, stop: asyncio.Event | None = None) -> None:
        """:meth:`start`, then serve until ``stop`` is set (or the task is cancelled)."""
        await self.start()
        try:
            if stop is None:
                await asyncio.Future()
            else:
                await stop.wait()
        finally:
            await self.stop()

    # -- handshake: health endpoint, API key, connection limit --------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        """``(http status, body)`` of ``GET /healthz``."""
        return self.service.health()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        peer = connection.remote_address
        if request.path.split("?", 1)[0] == HEALTH_PATH:
            status, body = self.health()
            resp = connection.respond(status, json.dumps(body) + "\n")
            resp.headers["Content-Type"] = "application/json"
            return resp
        if not self.service.check_key(request.headers.get("Authorization")):
            log.warning("refused %s: missing or wrong API key", peer)
            resp = connection.respond(http.HTTPStatus.UNAUTHORIZED, "missing or wrong API key\n")
            resp.headers["WWW-Authenticate"] = 'Api-Key realm="rt2_ros"' if self.openpi else 'Bearer realm="rt2_ros"'
            return resp
        if self.service.clients >= self.max_clients:
            log.warning("refused %s: %d clients connected (max_clients)", peer, self.service.clients)
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "too many clients\n")
        return None

    # -- one connection -------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        peer = ws.remote_address
        self.service.client_connected()
        log.info("client %s connected (%d now)", peer, self.service.clients)
        try:
            if self.openpi is not None:
                await self._serve_openpi(ws, self.openpi)
                return
            await ws.send(self.service.metadata_bytes)
            while True:  # one request at a time per connection (the batcher relies on it)
                message = await self._recv_or_idle(ws)
                if message is None:
                    break
                reply, problem = await self.service.answer(message)
                if problem:
                    log.warning("client %s: %s", peer, problem)
                await ws.send(reply)
        except ConnectionClosed as e:
            if (e.rcvd is not None and e.rcvd.code == 1009) or (e.sent is not None and e.sent.code == 1009):
                log.warning(
                    "client %s sent a frame over %d bytes; connection closed (1009)",
                    peer,
                    self.limits.max_request_bytes,
                )
        finally:
            self.service.client_disconnected()
            log.info("client %s disconnected (%d now)", peer, self.service.clients)

    async def _recv_or_idle(self, ws: ServerConnection) -> Any:
        """The next frame, or None after closing an idle connection (code 1000)."""
        try:
            return await asyncio.wait_for(ws.recv(), self.idle_timeout_s)
        except TimeoutError:
            log.warning(
                "client %s sent nothing for %.0f s: closing (idle timeout)", ws.remote_address, self.idle_timeout_s
            )
            await ws.close(1000, "idle timeout")
            return None

    async def _serve_openpi(self, ws: ServerConnection, openpi: OpenPIService) -> None:
        """openpi's loop (``websocket_policy_server.py``): metadata, then one answer per
        request; an error is a text frame and close 1011 (the client reconnects)."""
        await ws.send(openpi.metadata_bytes)
        prev_total_ms = None
        while True:
            message = await self._recv_or_idle(ws)
            if message is None:
                return
            t0 = time.perf_counter()
            reply, error = await openpi.answer(message, prev_total_ms)
            if error is not None:
                log.warning("client %s: %s; closing (1011)", ws.remote_address, error)
                await ws.send(error)
                await ws.close(1011, "Internal server error. Error included in previous frame.")
                return
            await ws.send(reply)
            prev_total_ms = (time.perf_counter() - t0) * 1e3


class BackgroundServer:
    """A :class:`PolicyServer` on its own event loop in a daemon thread (tests, benchmarks).

    Use as a context manager; :attr:`url` is ready on entry. Arguments as
    :class:`PolicyServer` (``port`` defaults to 0: a free port).

    Raises:
        RuntimeError: the server did not start within 10 s (the cause is chained).
    """

    def __init__(self, policy: Policy, host: str = "127.0.0.1", port: int = 0, **kwargs: Any):
        self.server = PolicyServer(policy, host, port, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The server's ``ws://`` URL."""
        return self.server.url

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self.server.port

    def start(self) -> "BackgroundServer":
        """Start the server in its thread and wait until it listens (10 s); returns ``self``.

        Raises:
            RuntimeError: it did not start."""
        self._thread = threading.Thread(target=self._main, name="rt2-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10.0) or self._error is not None:
            raise RuntimeError("inference server did not start") from self._error
        return self

    def _main(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                await self.server.start()
            except BaseException as e:
                self._error = e
                self._ready.set()
                raise
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.server.stop()

        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(main())
        except BaseException:  # noqa: BLE001 - reported through start()
            pass
        finally:
            self._loop.close()

    def stop(self) -> None:
        """Stop the server and join its thread (10 s at most)."""
        if self._loop is not None and self._stop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10.0)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

"""Remote backend (``policy.backend: remote``): the model runs in ``rt2-ros serve``.

The client uses the ``websockets`` library's synchronous client
(``websockets.sync.client``): :class:`~rt2_ros.controller.Controller` calls
:meth:`RemotePolicy.infer` from its worker thread, and a blocking call with a
deadline is the simplest correct thing there (no private event loop to manage).

Safety rules (a server fault can never leave the robot moving):

* every call has one deadline, ``timeout_s``, covering connect, send and reply; a
  reply that is late, a send that cannot finish (a server that stopped reading: the
  connection is then aborted), an error frame, a lost connection or a refused
  handshake raise :class:`~rt2_ros.policies.base.PolicyError`, which the controller
  turns into "no action" (zero twist). :meth:`RemotePolicy.close` returns within
  ``CLOSE_TIMEOUT_S`` whatever the server does. Nothing is cached, so an old action is never replayed;
  a late reply that arrives during a later call is recognised by its request id
  and dropped.
* reconnects use exponential backoff with jitter (``backoff_initial_s`` doubling up
  to ``backoff_max_s``); between attempts calls fail at once, without waiting.
* the client decodes the model's raw output itself, with the codec built from
  *its own* ``action`` configuration (the same one the local backend would use).
  The server's decoded values are not used; an action needs both decodings to
  succeed (the server may know more, e.g. that an id was not an action token). On connect the server's metadata must
  agree with that configuration (action format, number of action tokens, RT-2
  bounds when the server reports them); a server that disagrees is refused, so a
  server configured for larger bounds cannot make this robot move further than
  its configuration says. For OpenVLA the un-normalisation statistics come from
  ``action.statistics_path`` when set, else from the server's metadata.

Timings (``PolicyResult.timings_ms``, ms): ``preprocess``, ``model``, ``decode`` as
reported by the server (a batched call reports the batch's times; ``decode`` also
includes this client's decode); ``server``: the rest of the server's time (waiting
for a batch, (de)serialisation); ``network``: round trip minus server time
(transfer both ways + client serialisation). The keys add up to the wall time of
the request.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import socket
import ssl as ssl_module
import threading
import time
from typing import Any, Sequence
from urllib.parse import urlparse

import numpy as np

from rt2_ros.codecs import ActionCodec, UnnormStats, make_codec, select_unnorm_stats
from rt2_ros.config import ActionConfig
from rt2_ros.policies.base import (
    Observation,
    Policy,
    PolicyError,
    PolicyMetadata,
    PolicyResult,
    check_image,
    result_from_output,
)
from rt2_ros.remote.protocol import PROTOCOL_VERSION, ProtocolError, is_loopback, packb, unpackb
from rt2_ros.remote.send_failures import send_failures

__all__ = ["RemotePolicy"]

log = logging.getLogger("rt2_ros.remote")

#: After this many late replies in a row the connection is dropped and re-opened
#: (a server that answers nothing in time may be wedged; a new connection may
#: reach a healthy replica behind a load balancer).
RECONNECT_AFTER_TIMEOUTS = 3

#: :meth:`RemotePolicy.close` returns within about this long, whatever the server does:
#: a polite close when it answers, else the connection is aborted [s].
CLOSE_TIMEOUT_S = 1.0


def _abort(ws) -> None:
    """End a connection at once, without taking any of its locks.

    ``shutdown`` wakes a thread blocked in ``send`` on a server that stopped reading
    (closing the descriptor alone does not, on Linux); the library's own
    ``close_socket`` takes the connection's lock, which that blocked send holds, so it
    runs in a daemon thread that finishes once the send has failed.
    """
    sock = getattr(ws, "socket", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed or never connected
            pass
    closer = ws.close_socket if hasattr(ws, "close_socket") else ws.close
    threading.Thread(target=_quietly, args=(closer,), name="rt2-remote-abort", daemon=True).start()


def _quietly(fn) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - already broken
        pass


@functools.lru_cache(maxsize=1)
def _legacy_kwargs() -> dict[str, Any]:
    """websockets >= 15 wants ``legacy=True`` to return a plain connection (no warning)."""
    try:
        import inspect

        from websockets.sync.client import connect

        return {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}
    except Exception:  # noqa: BLE001
        return {}


class RemotePolicy(Policy):
    """Client of the ``rt2-ros serve`` websocket server.

    Args:
        server_url: ``ws://host:port`` or ``wss://host:port`` (TLS).
        action_cfg: this robot's ``action`` configuration; the codec is built from it.
        api_key: sent as ``Authorization: Bearer <key>``; None sends no key.
        timeout_s: deadline of one :meth:`infer_batch` call (connect + send +
            reply), s.
        ca_file: PEM CA bundle to verify a ``wss://`` server (e.g. a self-signed
            certificate); default: the system's trust store (``SSL_CERT_FILE``).
        backoff_initial_s, backoff_max_s: reconnect backoff, s.
        ping_interval_s: keepalive ping interval, s; a silent server is detected
            after about twice this.
        proxy: HTTP/SOCKS proxy URL; default None connects directly (environment
            proxy variables are ignored: a robot talks to its server directly).
        unix_socket: connect to a server on this Unix domain socket path (``rt2-ros
            serve --unix-socket``; ``server_url`` then only names it, e.g.
            ``ws://localhost``); None: TCP to ``server_url``.

    Raises:
        ValueError: bad URL or settings.
    """

    def __init__(
        self,
        server_url: str,
        action_cfg: ActionConfig | None = None,
        *,
        api_key: str | None = None,
        timeout_s: float = 1.0,
        ca_file: str | None = None,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 2.0,
        ping_interval_s: float = 5.0,
        proxy: str | None = None,
        unix_socket: str | None = None,
    ):
        u = urlparse(server_url)
        if u.scheme not in ("ws", "wss") or not u.hostname:
            raise ValueError(f"server_url must be ws://host:port or wss://host:port, got {server_url!r}")
        if not timeout_s > 0 or not math.isfinite(timeout_s):
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        self.server_url = server_url
        self.action_cfg = action_cfg if action_cfg is not None else ActionConfig()
        self.timeout_s = float(timeout_s)
        self.backoff_initial_s = float(backoff_initial_s)
        self.backoff_max_s = float(backoff_max_s)
        self.ping_interval_s = float(ping_interval_s)
        self.proxy = proxy
        self.unix_socket = unix_socket
        #: ``time.monotonic()`` of the newest frame received (late replies included): the
        #: server is alive, even when it is too slow (None before the first frame).
        self.last_frame_s: float | None = None
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        if api_key and u.scheme == "ws" and not is_loopback(u.hostname):
            log.warning(
                "the API key goes to %s unencrypted (ws://); use wss:// (server --tls-cert) off this host", u.hostname
            )
        self._ssl = ssl_module.create_default_context(cafile=ca_file) if u.scheme == "wss" else None

        fmt = self.action_cfg.format
        self._local_stats: UnnormStats | None = None
        if fmt == "openvla" and self.action_cfg.statistics_path:
            try:
                with open(self.action_cfg.statistics_path) as f:
                    _, self._local_stats = select_unnorm_stats(json.load(f), self.action_cfg.unnorm_key)
            except (OSError, ValueError) as e:
                raise ValueError(f"cannot load action.statistics_path: {e}") from None
        #: This robot's codec. OpenVLA's is rebuilt on connect with the statistics in use
        #: (this robot's, else the server's); nothing is decoded before a connect succeeds.
        self._codec: ActionCodec = make_codec(self.action_cfg, statistics=self._local_stats)
        #: Until connected: what this client's configuration implies. After: the server's.
        self.metadata = PolicyMetadata(
            action_format=fmt,
            model_id=f"remote:{server_url}",
            action_dim=self._codec.tokens_per_action,
            bounds={"low": list(self.action_cfg.low), "high": list(self.action_cfg.high)} if fmt == "rt2" else None,
            unnorm_key=self.action_cfg.unnorm_key or None,
            extra={"server_url": server_url, "connected": False},
        )
        self.server_info: dict[str, Any] = {}
        self.limits: dict[str, int] = {}
        #: Largest frame accepted from the server; a larger one closes the connection (1009).
        self.max_reply_bytes = 2**22
        self._lock = threading.RLock()
        self._ws = None
        self._next_id = 1
        self._backoff_s = self.backoff_initial_s
        self._next_attempt_s = 0.0
        self._last_error = ""
        self._timeouts_in_row = 0
        self._mismatch_warned = False

    # -- connection ---------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while a connection to the server is open."""
        return self._ws is not None

    def connect(self, timeout_s: float | None = None) -> None:
        """Connect now (otherwise the first :meth:`infer` does); no-op when connected.

        Raises:
            PolicyError: the server is unreachable, refuses the key, or its metadata
                does not match this robot's action configuration.
        """
        with self._lock:
            if self._ws is None:
                self._connect(time.monotonic() + (self.timeout_s if timeout_s is None else float(timeout_s)))

    def _fail(self, message: str, *, reconnect: bool, level: int = logging.WARNING) -> PolicyError:
        """Record a failure (logged once per distinct message) and build the error."""
        if reconnect:
            self._drop_connection()
            delay = self._backoff_s * random.uniform(0.8, 1.2)
            self._next_attempt_s = time.monotonic() + delay
            self._backoff_s = min(self.backoff_max_s, self._backoff_s * 2)
        if message != self._last_error:
            log.log(level, "remote policy: %s", message)
            self._last_error = message
        return PolicyError(message)

    def _drop_connection(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            _abort(ws)
        self.metadata = PolicyMetadata(
            **{**self.metadata.to_dict(), "extra": {**self.metadata.extra, "connected": False}}
        )

    def _connect(self, deadline: float) -> None:
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect, unix_connect

        if self.unix_socket:
            connect = functools.partial(unix_connect, self.unix_socket)  # noqa: F811
        now = time.monotonic()
        if now < self._next_attempt_s:
            raise PolicyError(
                f"not connected to {self.server_url} (next attempt in {self._next_attempt_s - now:.2f} s; "
                f"last error: {self._last_error})"
            )
        try:
            ws = connect(
                self.server_url,
                additional_headers=self._headers,
                ssl=self._ssl,
                open_timeout=max(0.001, deadline - now),
                ping_interval=self.ping_interval_s,
                ping_timeout=self.ping_interval_s,
                close_timeout=0.5,
                max_size=self.max_reply_bytes,  # replies are small; metadata with statistics < 4 MiB
                compression=None,
                proxy=self.proxy,
                user_agent_header="rt2_ros-remote",
                **_legacy_kwargs(),
            )
        except InvalidStatus as e:
            code = e.response.status_code
            if code == 401:
                raise self._fail(
                    f"server {self.server_url} refused the API key (HTTP 401); check the key's "
                    "environment variable (policy.api_key_env)",
                    reconnect=True,
                    level=logging.ERROR,
                ) from None
            hint = " (Ray Serve answers a refused API key with 403)" if code == 403 else ""
            raise self._fail(
                f"server {self.server_url} refused the connection (HTTP {code}){hint}",
                reconnect=True,
                level=logging.ERROR if code == 403 else logging.WARNING,
            ) from None
        except TimeoutError:
            raise self._fail(f"connecting to {self.server_url} timed out", reconnect=True) from None
        except Exception as e:  # noqa: BLE001 - OSError, InvalidHandshake, ssl errors, ...
            raise self._fail(f"cannot connect to {self.server_url}: {type(e).__name__}: {e}", reconnect=True) from None
        self._ws = ws
        try:
            frame = self._recv(deadline)
            self._accept_metadata(frame)
        except TimeoutError:
            raise self._fail(f"server {self.server_url} sent no metadata in time", reconnect=True) from None
        except PolicyError as e:
            raise self._fail(str(e), reconnect=True, level=logging.ERROR) from None
        self._backoff_s = self.backoff_initial_s
        self._timeouts_in_row = 0
        log.info(
            "connected to %s (model %s, server %s)",
            self.server_url,
            self.metadata.model_id,
            self.server_info.get("server_version"),
        )

    def _accept_metadata(self, frame: Any) -> None:
        """Check the server's metadata frame against this robot's action configuration."""
        if not isinstance(frame, dict) or frame.get("type") != "metadata":
            raise PolicyError("server did not send its metadata frame first")
        if frame.get("protocol") != PROTOCOL_VERSION:
            raise PolicyError(f"server speaks protocol {frame.get('protocol')}, this client {PROTOCOL_VERSION}")
        md = frame.get("metadata")
        if not isinstance(md, dict):
            raise PolicyError("server metadata is missing")
        fmt = self.action_cfg.format
        if md.get("action_format") != fmt:
            raise PolicyError(
                f"server model emits {md.get('action_format')!r} actions, this robot is configured for {fmt!r}"
            )
        want_dim = self._codec.tokens_per_action
        if md.get("action_dim") not in (None, want_dim):
            raise PolicyError(f"server model emits {md.get('action_dim')} action tokens, {fmt} needs {want_dim}")
        bounds = md.get("bounds")
        if fmt == "rt2" and bounds:
            try:
                same = np.allclose(bounds["low"], self.action_cfg.low, rtol=0, atol=1e-9) and np.allclose(
                    bounds["high"], self.action_cfg.high, rtol=0, atol=1e-9
                )
            except (KeyError, TypeError, ValueError):
                same = False
            if not same:
                raise PolicyError(
                    f"server action bounds {bounds} differ from this robot's action.low/high "
                    f"{self.action_cfg.low}/{self.action_cfg.high}; refusing to decode with either"
                )
        extra = md.get("extra") if isinstance(md.get("extra"), dict) else {}
        if fmt == "rt2" and "bins" in extra and extra["bins"] != self.action_cfg.bins:
            raise PolicyError(f"server uses {extra['bins']} bins, this robot {self.action_cfg.bins}")
        if fmt == "openvla":
            want_key, got_key = self.action_cfg.unnorm_key, md.get("unnorm_key")
            if want_key and got_key and want_key != got_key:
                raise PolicyError(f"server un-normalises with statistics {got_key!r}, this robot wants {want_key!r}")
            stats = self._local_stats
            if stats is None and md.get("statistics"):
                try:
                    stats = UnnormStats.from_dict(md["statistics"])
                except ValueError as e:
                    raise PolicyError(f"server statistics invalid: {e}") from None
                log.info("OpenVLA un-normalisation statistics %r from the server", md.get("unnorm_key"))
            if stats is None:
                raise PolicyError(
                    "no OpenVLA un-normalisation statistics: set action.statistics_path or serve a "
                    "model with statistics"
                )
            vocab = int(extra.get("vocab_size", self.action_cfg.openvla_vocab_size))
            if vocab != self.action_cfg.openvla_vocab_size:
                raise PolicyError(
                    f"server vocab_size {vocab} != action.openvla_vocab_size {self.action_cfg.openvla_vocab_size}"
                )
            self._codec = make_codec(self.action_cfg, statistics=stats, vocab_size=vocab)
        self.server_info = {"server_version": frame.get("server_version"), "batching": frame.get("batching")}
        self.limits = dict(frame.get("limits") or {})
        self.metadata = PolicyMetadata(
            action_format=fmt,
            model_id=str(md.get("model_id", "")),
            action_dim=want_dim,
            bounds=bounds if fmt == "rt2" else md.get("bounds"),
            unnorm_key=md.get("unnorm_key"),
            statistics=md.get("statistics"),
            extra={
                **extra,
                "server_url": self.server_url,
                "server_version": frame.get("server_version"),
                "connected": True,
            },
        )

    def _recv(self, deadline: float) -> Any:
        from websockets.exceptions import ConnectionClosed

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        try:
            msg = self._ws.recv(timeout=remaining)
        except TimeoutError:
            raise
        except ConnectionClosed as e:
            raise self._fail(f"connection to {self.server_url} lost ({e})", reconnect=True) from None
        except Exception as e:  # noqa: BLE001
            raise self._fail(
                f"connection to {self.server_url} failed: {type(e).__name__}: {e}", reconnect=True
            ) from None
        self.last_frame_s = time.monotonic()
        return self._decode_frame(msg)

    def _decode_frame(self, msg: Any) -> Any:
        """One received frame, parsed (subclasses speaking another wire override it).

        Raises:
            PolicyError: a malformed frame (the connection is dropped).
        """
        try:
            return unpackb(msg)
        except ProtocolError as e:
            raise self._fail(f"server sent a malformed frame: {e}", reconnect=True) from None

    # -- inference ------------------------------------------------------------------------
    def _check_limits(self, obs: Observation) -> None:
        """The server's limits (from its metadata), checked before sending."""
        side = self.limits.get("max_image_side")
        if side and max(obs.image.shape[:2]) > side:
            raise ValueError(f"image {obs.image.shape[1]}x{obs.image.shape[0]} exceeds the server's {side} px per side")
        chars = self.limits.get("max_instruction_chars")
        if chars and len(obs.instruction) > chars:
            raise ValueError(f"instruction longer than the server's {chars} characters")
        size = self.limits.get("max_request_bytes")
        if size and obs.image.nbytes + len(obs.instruction.encode()) + 256 > size:
            raise ValueError(f"image of {obs.image.nbytes} bytes exceeds the server's request limit of {size} bytes")

    def infer_batch(self, observations: Sequence[Observation]) -> list[PolicyResult]:
        """Send the observations, wait for all replies (one deadline of ``timeout_s``).

        Raises:
            ValueError: a bad image or instruction (checked before sending, also
                against the server's limits).
            PolicyError: not connected (and reconnecting failed or is backing off),
                connection lost, late reply, or an error reply from the server.
        """
        observations = list(observations)
        if not observations:
            return []
        for obs in observations:  # garbage is refused before any network traffic
            check_image(obs.image)
            if not isinstance(obs.instruction, str) or not obs.instruction.strip():
                raise ValueError("instruction must be a non-empty string")
        with self._lock:
            t_start = time.monotonic()
            deadline = t_start + self.timeout_s
            if self._ws is not None and not self._is_open(self._ws):
                # The server closed it between steps (e.g. its idle timeout): reconnect now, no backoff.
                log.info("remote policy: %s closed the connection; reconnecting", self.server_url)
                self._drop_connection()
            if self._ws is None:
                self._connect(deadline)
            for obs in observations:
                self._check_limits(obs)
            ids = []
            sent_at: dict[int, float] = {}
            with send_failures(self._fail, self.server_url, self.timeout_s):
                for obs in observations:
                    rid = self._next_id
                    self._next_id += 1
                    data = packb(
                        {
                            "type": "infer",
                            "id": rid,
                            "image": np.ascontiguousarray(obs.image),
                            "instruction": obs.instruction,
                        }
                    )
                    sent_at[rid] = time.perf_counter()
                    self._send(data, deadline)
                    ids.append(rid)

            replies: dict[int, tuple[dict, float]] = {}
            wanted = set(ids)
            while wanted - replies.keys():
                try:
                    frame = self._recv(deadline)
                except TimeoutError:
                    self._timeouts_in_row += 1
                    drop = self._timeouts_in_row >= RECONNECT_AFTER_TIMEOUTS
                    raise self._fail(
                        f"no reply from {self.server_url} within {self.timeout_s:.3f} s"
                        + ("; reconnecting" if drop else ""),
                        reconnect=drop,
                    ) from None
                t_rx = time.perf_counter()
                rid = frame.get("id") if isinstance(frame, dict) else None
                if not isinstance(frame, dict) or frame.get("type") not in ("result", "error"):
                    raise self._fail("server sent an unexpected frame", reconnect=True)
                if rid not in wanted:
                    if frame.get("type") == "error" and rid is None:
                        raise self._fail(f"server error {frame.get('code')}: {frame.get('message')}", reconnect=False)
                    log.debug("dropping late reply %s", rid)
                    continue
                if frame["type"] == "error":
                    # Remaining replies of this call are dropped by id on later calls.
                    raise self._fail(f"server error {frame.get('code')}: {frame.get('message')}", reconnect=False)
                replies[rid] = (frame, (t_rx - sent_at[rid]) * 1e3)
            self._timeouts_in_row = 0
            self._last_error = ""
            return [self._to_result(*replies[rid]) for rid in ids]

    @staticmethod
    def _is_open(ws) -> bool:
        from websockets.protocol import State

        return getattr(ws, "state", State.OPEN) is State.OPEN

    def _send(self, data: bytes, deadline: float) -> None:
        """Send one frame by ``deadline`` (monotonic s). The library's send blocks while
        the server does not read; it runs in a helper thread, and when the deadline
        passes the connection is aborted (:func:`_abort`), which also ends that thread.

        Raises:
            TimeoutError: not sent in time (the connection is aborted).
            ConnectionClosed / OSError: the send failed.
        """
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        ws = self._ws
        box: dict[str, BaseException] = {}

        def run() -> None:
            try:
                ws.send(data)
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                box["error"] = e

        t = threading.Thread(target=run, name="rt2-remote-send", daemon=True)
        t.start()
        t.join(remaining)
        if t.is_alive():
            self._ws = None
            _abort(ws)
            raise TimeoutError
        if "error" in box:
            raise box["error"]

    def _to_result(self, frame: dict, rtt_ms: float) -> PolicyResult:
        """Decode the reply with this client's codec and add the latency split."""
        t0 = time.perf_counter()
        text = frame.get("text") or ""
        ids = frame.get("token_ids") or []
        if not isinstance(text, str) or not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise self._fail("server sent a malformed result", reconnect=False)
        # Id formats decode every id the server reports (its answer: the generated ids, the
        # prompt excluded; a FAST chunk has no fixed length); text formats read the text.
        decoded = result_from_output(self._codec, text, ids, action_ids=ids if self._codec.decodes_ids else None)
        actions, error = decoded.actions, decoded.error
        self._check_server_decoding(frame.get("action"), decoded.action)
        if frame.get("action") is None and actions:
            # The server found no valid action (e.g. ids that are not action tokens,
            # which the text alone cannot show): no motion, whatever the text parses to.
            actions, error = (), str(frame.get("error") or "the server reported no valid action")
        decode_ms = (time.perf_counter() - t0) * 1e3
        srv = frame.get("timings_ms") if isinstance(frame.get("timings_ms"), dict) else {}
        timings = {k: float(v) for k, v in srv.items() if isinstance(v, (int, float))}
        server_ms = float(frame.get("server_ms") or 0.0)
        timings["decode"] = timings.get("decode", 0.0) + decode_ms
        timings["server"] = max(0.0, server_ms - sum(v for k, v in srv.items() if isinstance(v, (int, float))))
        timings["network"] = max(0.0, rtt_ms - server_ms)
        return PolicyResult(text=text, token_ids=tuple(ids), actions=actions, error=error, timings_ms=timings)

    def _check_server_decoding(self, server_action: Any, action: Any) -> None:
        """Warn once when the server decoded differently (its configuration differs)."""
        if self._mismatch_warned:
            return
        if (server_action is None) != (action is None):
            same = False
        elif action is None:
            same = True
        else:
            try:
                same = bool(
                    server_action.get("terminate") == action.terminate
                    and np.allclose(server_action.get("vector"), action.vector, rtol=0, atol=1e-9)
                )
            except (AttributeError, TypeError, ValueError):
                same = False
        if not same:
            self._mismatch_warned = True
            log.warning(
                "the server decodes model output differently from this robot (its action configuration "
                "differs); using this robot's decoding"
            )

    def close(self) -> None:
        """Close the connection; returns within about ``CLOSE_TIMEOUT_S`` whatever
        the server does (a step blocked on the network is not waited for: the
        connection is aborted under it, and that step fails as "no action")."""
        got = self._lock.acquire(timeout=0.1)
        try:
            ws, self._ws = self._ws, None
        finally:
            if got:
                self._lock.release()
        if ws is None:
            return
        if got:  # no step in flight: a polite close (closing handshake), bounded
            t = threading.Thread(target=_quietly, args=(ws.close,), name="rt2-remote-close", daemon=True)
            t.start()
            t.join(CLOSE_TIMEOUT_S)
            if not t.is_alive():
                return
        _abort(ws)

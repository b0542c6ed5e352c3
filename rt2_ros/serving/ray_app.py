"""Scale-out: the inference server as a Ray Serve deployment, N replicas behind one address.

When a fleet outgrows one GPU, run the same model in several replicas (one per
GPU, or several per large GPU) behind one URL, with no change to the robots:

    # one machine, 4 GPUs, one replica each (Ray's own CLI)
    serve run rt2_ros.serving.ray_app:build model=/models/rt2 num_replicas=4 num_gpus=1 port=8000

    # or the rt2 command
    rt2-ros serve --model /models/rt2 --ray-replicas 4 --ray-gpus-per-replica 1 --host 0.0.0.0

Robots keep ``server_url: ws://<host>:8000``. Ray Serve (https://docs.ray.io/en/latest/serve/)
was chosen because it runs locally with no extra infrastructure (``pip install
"ray[serve]"``), scales the same application to a multi-node cluster, routes each
new connection to the least-loaded replica, restarts replicas that fail their
health check, and supports websockets through its FastAPI ingress.

Every replica is an :class:`~rt2_ros.serving.service.InferenceService`: the same
protocol, API key check, limits and dynamic batching as ``rt2-ros serve``. A robot's
websocket stays on one replica for its lifetime; batching happens among the robots
of a replica. The metadata frame's ``extra["replica"]`` names the replica.

Differences from the plain server, all from the framework:

* a refused API key closes the handshake with HTTP 403 (Starlette's answer to a
  websocket closed before it was accepted), not 401;
* ``max_ongoing_requests`` is raised to ``max_clients`` per replica: Serve counts
  an open websocket as an ongoing request, and its default (5) would make the 6th
  robot of a replica wait at the proxy;
* TLS is Serve's ``http_options`` (``ssl_certfile``/``ssl_keyfile``);
* the listen address is Serve's proxy (``host``/``port`` below), not ``--host``.

Needs ``ray[serve]`` (not a dependency of rt2_ros: ~500 MB installed). This module
imports ray only inside its functions.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the handlers' type
# annotations (``websocket: WebSocket``) at runtime, and WebSocket is imported locally.
import asyncio
import logging
import os
import signal
import sys
import threading
from typing import Any

from rt2_ros.remote.protocol import Limits
from rt2_ros.serving.settings import ServeSettings

__all__ = ["make_deployment", "build", "run"]

log = logging.getLogger("rt2_ros.serving.ray_app")


def make_deployment(settings: ServeSettings, *, num_replicas: int = 2, num_gpus: float = 0.0, num_cpus: float = 1.0):
    """The Ray Serve application: ``num_replicas`` replicas of the inference service.

    Args:
        settings: ``rt2-ros serve`` settings (``model`` or ``policy``, ``config``,
            batching, limits, ``api_key_env`` / ``api_key_file``); each replica
            builds its policy from them (:func:`rt2_ros.serving.settings.build_policy`)
            and reads the API key in its own process.
        num_replicas: replicas behind the one address.
        num_gpus, num_cpus: Ray resources per replica (``num_gpus=1``: one GPU each).

    Returns:
        A bound Serve application for ``serve.run``.
    """
    from fastapi import FastAPI, WebSocket
    from fastapi.responses import JSONResponse
    from ray import serve
    from starlette.websockets import WebSocketDisconnect

    app = FastAPI()

    @serve.deployment(
        name="rt2_policy",
        num_replicas=int(num_replicas),
        ray_actor_options={"num_gpus": float(num_gpus), "num_cpus": float(num_cpus)},
        max_ongoing_requests=settings.max_clients,
        health_check_period_s=5.0,
    )
    @serve.ingress(app)
    class RT2Replica:
        def __init__(self, s: ServeSettings):
            from rt2_ros.serving.service import InferenceService
            from rt2_ros.serving.settings import build_policy, read_api_key

            try:
                replica = serve.get_replica_context().replica_id.unique_id
            except Exception:  # noqa: BLE001 - older/newer Ray: any stable name will do
                replica = str(os.getpid())
            self.max_request_bytes = s.max_request_bytes
            self.idle_timeout_s = s.idle_timeout_s
            self.service = InferenceService(
                build_policy(s),
                api_key=read_api_key(s.api_key_env, s.api_key_file),
                max_batch_size=s.max_batch_size,
                max_wait_ms=s.max_wait_ms,
                max_queue=s.max_queue,
                limits=Limits(self.max_request_bytes, s.max_image_side),
                extra_metadata={"replica": replica},
            )

        def check_health(self) -> None:
            """Ray Serve calls this periodically; raising makes Serve replace the replica."""
            from rt2_ros.serving.service import DEGRADED_AFTER_FAILURES

            if self.service.batcher.stats.consecutive_failures >= DEGRADED_AFTER_FAILURES:
                raise RuntimeError("the model failed several times in a row")

        @app.get("/healthz")
        async def healthz(self):
            if not self.service.batcher.running:
                self.service.batcher.start()
            status, body = self.service.health()
            return JSONResponse(body, status_code=status)

        @app.websocket("/")
        async def robot(self, websocket: WebSocket) -> None:
            if not self.service.check_key(websocket.headers.get("authorization")):
                log.warning("refused %s: missing or wrong API key", websocket.client)
                await websocket.close(code=1008)  # before accept: the handshake fails (HTTP 403)
                return
            await websocket.accept()
            self.service.client_connected()
            try:
                await websocket.send_bytes(self.service.metadata_bytes)
                while True:
                    try:
                        msg = await asyncio.wait_for(websocket.receive(), self.idle_timeout_s)
                    except TimeoutError:  # idle clients must not hold every slot
                        log.warning("client %s idle for %.0f s: closing", websocket.client, self.idle_timeout_s)
                        await websocket.close(code=1000)
                        break
                    if msg["type"] == "websocket.disconnect":
                        break
                    data = msg.get("bytes")
                    if data is None:
                        data = msg.get("text") or ""
                    elif len(data) > self.max_request_bytes:
                        await websocket.close(code=1009)  # message too big, as the plain server
                        break
                    reply, problem = await self.service.answer(data)
                    if problem:
                        log.warning("client %s: %s", websocket.client, problem)
                    await websocket.send_bytes(reply)
            except WebSocketDisconnect:
                pass
            finally:
                self.service.client_disconnected()

    return RT2Replica.bind(settings)


def build(args: dict[str, Any]):
    """Application builder for Ray's CLI: ``serve run rt2_ros.serving.ray_app:build key=value ...``.

    Keys: ``num_replicas`` (2), ``num_gpus`` (0), ``num_cpus`` (1), and any
    ``rt2-ros serve`` option by its long name (``model``, ``policy``, ``config``,
    ``max_batch_size``, ``api_key_env``, ...). The proxy's host/port are Serve's
    (``serve run --host/--port`` or a config file's ``http_options``).
    """
    args = dict(args)
    replicas = int(args.pop("num_replicas", 2))
    gpus = float(args.pop("num_gpus", 0.0))
    cpus = float(args.pop("num_cpus", 1.0))
    settings = ServeSettings(**{k.replace("-", "_"): v for k, v in args.items()})  # converts "8" -> 8, checks names
    return make_deployment(settings, num_replicas=replicas, num_gpus=gpus, num_cpus=cpus)


def run(settings: ServeSettings) -> int:
    """``rt2-ros serve --ray-replicas N``: a local Ray instance, Serve's proxy on
    ``settings.host:settings.port``, N replicas; serves until SIGINT/SIGTERM."""
    try:
        import ray
        from ray import serve
    except ImportError:
        print('error: --ray-replicas needs Ray Serve: pip install "ray[serve]"', file=sys.stderr)
        return 1
    http: dict[str, Any] = {"host": settings.host, "port": int(settings.port)}
    if settings.tls_cert:
        http.update(ssl_certfile=settings.tls_cert, ssl_keyfile=settings.tls_key or settings.tls_cert)
    ray.init(include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        serve.start(http_options=http)
        serve.run(
            make_deployment(
                settings,
                num_replicas=settings.ray_replicas,
                num_gpus=settings.ray_gpus_per_replica,
                num_cpus=settings.ray_cpus_per_replica,
            ),
            name="rt2",
            route_prefix="/",
        )
        scheme = "wss" if settings.tls_cert else "ws"
        print(
            f"rt2-ros serve: listening on {scheme}://{settings.host}:{settings.port} (Ray Serve, {settings.ray_replicas} replicas)",
            flush=True,
        )
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0

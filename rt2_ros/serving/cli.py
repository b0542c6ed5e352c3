"""``rt2-ros serve``: the remote inference server (one model, many robots).

    rt2-ros serve --model DIR --port 8000                  # loopback only, no key
    RT2_API_KEY=... rt2-ros serve --model DIR --host 0.0.0.0 --tls-cert c.pem --tls-key k.pem

Robots connect with ``policy.backend: remote`` and ``policy.server_url``. The server
itself is :class:`rt2_ros.serving.ws_server.PolicyServer` (websockets + msgpack, see
there for the protocol and why). The API key is read from the environment variable
named by ``--api-key-env`` (default ``RT2_API_KEY``) or from ``--api-key-file``,
never from a command-line value (which ``ps`` would show to every user).

Binding to a non-loopback address without a key is refused unless
``--allow-unauthenticated`` is given.

``--protocol openpi`` answers openpi's ``WebsocketClientPolicy`` (openpi's frames,
``Authorization: Api-Key <key>``; see :mod:`rt2_ros.serving.openpi_service` and
docs/openpi.md) instead of this project's protocol.

``--ray-replicas N`` serves N replicas of the model behind the same address with
Ray Serve (:mod:`rt2_ros.serving.ray_app`), for fleets that outgrow one GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from rt2_ros.serving.settings import ServeSettings, build_policy_and_config, read_api_key

__all__ = ["add_arguments", "run"]

log = logging.getLogger("rt2_ros.server")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rt2-ros serve``."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", metavar="DIR", help="checkpoint directory for the local transformers backend")
    src.add_argument(
        "--policy",
        metavar="MODULE:CALLABLE",
        help="serve any Policy: CALLABLE(cfg: RT2Config) -> Policy (e.g. a custom backend)",
    )
    p.add_argument("--config", default=None, help="parameters file (default: config/rt2.yaml)")
    p.add_argument("--device", default=None, help="override policy.device (cpu, cuda, cuda:N)")
    p.add_argument("--dtype", default=None, choices=["fp32", "bf16", "fp16"], help="override policy.dtype")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 = any free port)")
    p.add_argument(
        "--unix-socket",
        default=None,
        metavar="PATH",
        help="listen on this Unix domain socket instead of --host/--port (the node's policy child)",
    )
    p.add_argument(
        "--stop-on-stdin-eof",
        action="store_true",
        help="stop when stdin reaches end of file (a child that must not outlive its parent)",
    )
    p.add_argument(
        "--api-key-env",
        default="RT2_API_KEY",
        metavar="NAME",
        help="environment variable holding the API key (default RT2_API_KEY; unset = no key)",
    )
    p.add_argument("--api-key-file", default=None, metavar="PATH", help="file holding the API key (first line)")
    p.add_argument(
        "--allow-unauthenticated", action="store_true", help="allow a non-loopback --host without an API key"
    )
    p.add_argument("--max-batch-size", type=int, default=8, help="most requests per model call (1 = no batching)")
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        help="longest wait of the oldest request for a batch to fill, ms (default 5)",
    )
    p.add_argument("--max-queue", type=int, default=256, help="most queued requests; more get 'overloaded'")
    p.add_argument("--max-clients", type=int, default=64, help="most concurrent connections; more get HTTP 503")
    p.add_argument("--max-request-mb", type=float, default=8.0, help="largest request frame, MiB (default 8)")
    p.add_argument("--max-image-side", type=int, default=2048, help="largest image height/width, px")
    p.add_argument(
        "--idle-timeout-s",
        type=float,
        default=60.0,
        help="close a connection that sends no request for this long, s (frees its client slot; default 60)",
    )
    p.add_argument("--tls-cert", default=None, metavar="PEM", help="TLS certificate chain (serves wss://)")
    p.add_argument("--tls-key", default=None, metavar="PEM", help="TLS private key (default: in --tls-cert)")
    p.add_argument("--no-warmup", action="store_true", help="skip the warm-up inference before listening")
    p.add_argument(
        "--ray-replicas",
        type=int,
        default=0,
        metavar="N",
        help="serve N replicas behind --host:--port with Ray Serve (needs ray[serve]; 0 = plain server)",
    )
    p.add_argument("--ray-gpus-per-replica", type=float, default=0.0, help="Ray: GPUs per replica (e.g. 1)")
    p.add_argument("--ray-cpus-per-replica", type=float, default=1.0, help="Ray: CPUs per replica")
    p.add_argument(
        "--protocol",
        default="rt2",
        choices=["rt2", "openpi"],
        help="rt2: this project's frames (policy.backend remote); openpi: openpi's WebsocketClientPolicy",
    )
    p.add_argument(
        "--openpi-image-key",
        action="append",
        default=None,
        metavar="KEY",
        help="openpi: observation key of the image (repeat to try several in order; default: "
        "observation/image, observation/exterior_image_1_left, observation/images/cam_high, image)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def run(args: argparse.Namespace) -> int:
    """``rt2-ros serve``: serve until SIGINT/SIGTERM; 0 on a clean stop, 1 on a start-up error."""
    logging.basicConfig(
        level=getattr(logging, args.log_level), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from rt2_ros.remote.protocol import Limits, is_loopback
    from rt2_ros.serving.ws_server import PolicyServer, make_ssl_context

    try:
        settings = ServeSettings.from_mapping(vars(args))
        api_key = read_api_key(settings.api_key_env, settings.api_key_file)
        remote_ok = settings.unix_socket or is_loopback(settings.host) or settings.allow_unauthenticated
        if api_key is None and not remote_ok:
            raise ValueError(
                f"refusing to serve on {settings.host} without an API key: set ${settings.api_key_env} or "
                "--api-key-file (or pass --allow-unauthenticated)"
            )
    except Exception as e:  # noqa: BLE001 - any start-up failure: message, exit 1
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if settings.ray_replicas > 0:  # each replica builds the policy and reads the key in its own process
        from rt2_ros.serving.ray_app import run as run_ray

        return run_ray(settings)
    try:
        ssl_ctx = make_ssl_context(settings.tls_cert, settings.tls_key) if settings.tls_cert else None
        limits = Limits(settings.max_request_bytes, settings.max_image_side)
        policy, cfg = build_policy_and_config(settings)
        server = PolicyServer(
            policy,
            settings.host,
            settings.port,
            api_key=api_key,
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
            limits=limits,
            max_clients=settings.max_clients,
            ssl=ssl_ctx,
            idle_timeout_s=settings.idle_timeout_s,
            unix_socket=settings.unix_socket,
            protocol=settings.protocol,
            openpi_image_keys=settings.openpi_image_key,
            rotation_convention=cfg.action.rotation_convention,
        )
    except Exception as e:  # noqa: BLE001 - any start-up failure: message, exit 1
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if not settings.no_warmup:
        _warmup(policy)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if settings.stop_on_stdin_eof:
            _stop_on_eof(loop, stop)
        await server.start()
        print(
            f"rt2-ros serve: listening on {server.url} (model {policy.metadata.model_id}, {settings.protocol} protocol)",
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            await server.stop()
            policy.close()

    try:
        asyncio.run(main())
    except OSError as e:  # e.g. address in use
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _stop_on_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin reaches end of file: the parent holding its other end died
    (even by SIGKILL), so a policy child never outlives its node."""
    import threading

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        log.info("stdin closed (parent gone): stopping")
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch, name="stdin-eof", daemon=True).start()


def _warmup(policy) -> None:
    """One inference on a grey 224x224 image, so the first robot does not pay for lazy initialisation."""
    import time

    import numpy as np

    from rt2_ros.policies.base import Observation

    t0 = time.perf_counter()
    try:
        policy.infer_batch([Observation(np.full((224, 224, 3), 128, np.uint8), "warm up")])
        log.info("warm-up inference took %.0f ms", (time.perf_counter() - t0) * 1e3)
    except Exception as e:  # noqa: BLE001 - a failing model is reported to clients per request
        log.warning("warm-up inference failed: %s: %s", type(e).__name__, e)


if __name__ == "__main__":
    from rt2_ros.cli import main as _main

    sys.exit(_main(["serve", *sys.argv[1:]]))

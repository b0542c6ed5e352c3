"""openpi's own client and server, read in place from ``shared/fixtures/openpi``.

The fixture (openpi's ``openpi-client`` package, its ``websocket_policy_server.py``
and the LIBERO / DROID example runtimes) is never copied: ``$RT2_OPENPI_FIXTURE`` if
set, else ``../shared/fixtures/openpi`` next to the repository. :func:`require` puts
its client package and server module on ``sys.path`` or skips with one reason.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_ENV = "RT2_OPENPI_FIXTURE"
SKIP_REASON = "openpi fixture absent (shared/fixtures/openpi, or $RT2_OPENPI_FIXTURE)"


def fixture_dir() -> Path:
    """The fixture directory (it may not exist)."""
    env = os.environ.get(FIXTURE_ENV)
    return Path(env) if env else ROOT.parent / "shared" / "fixtures" / "openpi"


def require() -> Path:
    """The fixture directory with openpi's client and server importable; skip when absent."""
    d = fixture_dir()
    client_src = d / "openpi-client" / "src"
    server_dir = d / "server"
    if (
        not (client_src / "openpi_client" / "websocket_client_policy.py").is_file()
        or not (server_dir / "websocket_policy_server.py").is_file()
    ):
        pytest.skip(SKIP_REASON)
    for p in (client_src, server_dir):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    return d


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OpenPIServer:
    """openpi's own ``WebsocketPolicyServer`` (the fixture's module, unchanged) serving
    ``policy`` (an ``openpi_client.base_policy.BasePolicy``) on a free loopback port, on
    its own event loop in a daemon thread. A context manager; :attr:`url` is ready (its
    ``/healthz`` answered) on entry. Call :func:`require` first."""

    def __init__(self, policy, metadata: dict | None = None):
        import websocket_policy_server

        self.port = free_port()
        self.server = websocket_policy_server.WebsocketPolicyServer(policy, "127.0.0.1", self.port, metadata)
        self.url = f"ws://127.0.0.1:{self.port}"
        self._loop = None
        self._task = None
        self._thread = None

    def __enter__(self) -> "OpenPIServer":
        import asyncio
        import threading
        import time
        import urllib.request

        ready = threading.Event()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self._task = self._loop.create_task(self.server.run())
            ready.set()
            try:
                self._loop.run_until_complete(self._task)
            except BaseException:  # noqa: BLE001 - cancelled on exit
                pass

        self._thread = threading.Thread(target=main, name="openpi-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        deadline = time.monotonic() + 30
        while True:  # readiness: the health endpoint answers
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("openpi server did not start") from None
                time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread is not None:
            self._thread.join(10)

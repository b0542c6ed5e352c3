"""Start ``rt2-ros serve`` in a subprocess and wait for its address (tests, benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Mapping, Sequence

__all__ = ["start_server"]


def start_server(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    timeout_s: float = 60.0,
) -> tuple[subprocess.Popen, str]:
    """Run ``python -m rt2_ros.cli serve --port 0 *args`` and wait for its "listening on" line.

    Args:
        args: further ``rt2-ros serve`` arguments (a later ``--port`` wins).
        env: the whole environment of the server (default: this process's).
        cwd: its working directory.
        timeout_s: how long to wait for the server to listen, s.

    Returns:
        ``(process, url)``; the process's output keeps being drained in the background.

    Raises:
        RuntimeError: the server exited or did not listen in time (with its last output).
    """
    env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
    p = subprocess.Popen(
        [sys.executable, "-m", "rt2_ros.cli", "serve", "--port", "0", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + timeout_s
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "rt2-ros serve: listening on" in line:
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()  # keep the pipe drained
            return p, line.split("listening on ")[1].split()[0]
    p.kill()
    raise RuntimeError("server did not start:\n" + "".join(lines[-30:]))

"""``rt2-ros serve`` as a real subprocess on a free port, for the tests of every layer that talk
to it (test/ml/test_server.py, test/ros/test_remote_policy.py)."""

from __future__ import annotations

import os
from pathlib import Path

from rt2_ros.testing.serve import start_server

ROOT = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).resolve().parent


def serve_subprocess(*args, env=None):
    """Start ``rt2-ros serve`` on a free port (test helpers importable); returns (process, url)."""
    e = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(HELPERS), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **(env or {}),
    )
    return start_server(args, env=e, cwd=ROOT, timeout_s=60.0)

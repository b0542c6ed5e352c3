"""The ROS-free core imports neither rclpy nor torch (checked in a fresh interpreter)."""

import subprocess
import sys

import pytest

CORE = [
    "rt2_ros.action_tokenizer",
    "rt2_ros.codecs",
    "rt2_ros.config",
    "rt2_ros.motion",
    "rt2_ros.safety",
    "rt2_ros.episode",
    "rt2_ros.controller",
    "rt2_ros.servo_interface",
    "rt2_ros.servo_stream",
    "rt2_ros.throttle",
    "rt2_ros.overlay",
    "rt2_ros.frames",
    "rt2_ros.images",
    "rt2_ros.factory",
    "rt2_ros.cli",
    "rt2_ros.policies.base",
]

#: Need the ``remote`` extra (websockets, msgpack), still no ML stack: a robot on the
#: remote backend, and the server's framing, run without torch.
REMOTE = [
    "rt2_ros.remote.client",
    "rt2_ros.remote.protocol",
    "rt2_ros.serving.cli",
    "rt2_ros.serving.batching",
]


def _imported_heavy(modules: list[str]) -> str:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "bad = [m for m in ('rclpy', 'torch', 'transformers') if m in sys.modules]\n"
        + "print(','.join(bad))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_core_pulls_in_no_rclpy_and_no_torch():
    assert _imported_heavy(CORE) == "", "the core imported a heavy module"


def test_remote_side_pulls_in_no_rclpy_and_no_torch():
    pytest.importorskip("websockets", reason="needs the remote extra (pip install -e .[remote])")
    pytest.importorskip("msgpack", reason="needs the remote extra (pip install -e .[remote])")
    assert _imported_heavy(REMOTE) == "", "the remote client or the server's framing imported a heavy module"

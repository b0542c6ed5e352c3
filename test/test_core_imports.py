"""The ROS-free core imports neither rclpy nor torch (checked in a fresh interpreter)."""

import subprocess
import sys

CORE = [
    "rt2_ros.action_tokenizer",
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
    "rt2_ros.factory",
    "rt2_ros.cli",
    "rt2_ros.policies.base",
    "rt2_ros.remote.client",  # a robot on the remote backend needs no ML stack
    "rt2_ros.serving.cli",
    "rt2_ros.remote.protocol",
    "rt2_ros.serving.batching",
]


def test_core_pulls_in_no_rclpy_and_no_torch():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + "bad = [m for m in ('rclpy', 'torch', 'transformers') if m in sys.modules]\n"
        + "print(','.join(bad))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "", f"core imported: {p.stdout.strip()}"

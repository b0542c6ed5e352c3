"""End to end over DDS through openpi's protocol: ``rt2-ros demo --policies openpi,openpi_joint``
(real sim process with the Servo stand-in, ``rt2-ros serve --protocol openpi`` serving the
experts, real rt2 node on ``policy.backend: openpi``). The end-effector expert succeeds
with the ``rt2_ros`` profile as the scripted policy does; the joint-velocity expert
(DROID layout, ``droid`` profile) reaches the named blocks through JointJog."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("pybullet")

from ros_helpers import DOMAIN_ID, ros_env  # noqa: E402

from rt2_ros.ros.joint_jog import HAVE_JOINT_JOG  # noqa: E402

EPISODES = 3


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    if not HAVE_JOINT_JOG:
        pytest.skip("control_msgs (JointJog) is not importable: build the ROS 2 tools kit")
    out = tmp_path_factory.mktemp("demo_openpi")
    cmd = [sys.executable, "-m", "rt2_ros.cli", "demo", "--policies", "openpi,openpi_joint"]
    cmd += ["--episodes", str(EPISODES), "--seed", "300", "--out", str(out), "--no-progress"]
    cmd += ["--domain-id", str(DOMAIN_ID)]
    proc = subprocess.run(cmd, env=ros_env(), capture_output=True, text=True, timeout=600)
    report = out / "report.json"
    assert report.is_file(), f"no report; exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc, out, json.loads(report.read_text())["episodes"]


@pytest.mark.parametrize("policy", ["openpi", "openpi_joint"])
def test_the_experts_succeed_through_openpis_protocol(demo, policy):
    proc, out, rows = demo
    rows = [r for r in rows if r["backend"] == policy]
    assert len(rows) == EPISODES, proc.stdout[-2000:] + proc.stderr[-2000:]
    ok = [r for r in rows if r["success"]]
    assert len(ok) >= EPISODES - 1, "\n".join(f"{r['instruction']}: {r['reason']} {r['detail']}" for r in rows)
    assert all(r["reason"] == "terminate" for r in ok)


def test_the_joint_run_drove_servo_by_joint_jog(demo):
    proc, out, rows = demo
    log = (out / "logs" / "rt2_node_openpi_joint.log").read_text()
    assert "JointJog on /servo_node/delta_joint_cmds" in log

"""The rt2 node across process boundaries: real DDS between processes, main(), Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from geometry_msgs.msg import TwistStamped
from ros_helpers import (
    Collector,
    ImageStreamer,
    RosHarness,
    is_zero_twist,
    ros_env,
    stamp_s,
    wait_for_publishers,
    wait_for_subscribers,
    wait_until,
)
from scripted_policy import ScriptedTextPolicy
from std_msgs.msg import String

from rt2_ros.action_tokenizer import make_codec
from rt2_ros.config import RT2Config
from rt2_ros.ros.conversions import import_rt2_msgs
from rt2_ros.ros.node import Rt2Node

ROOT = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).resolve().parents[1] / "helpers"
msgs = import_rt2_msgs()
RUNNING, FINISHED = msgs.EpisodeStatus.STATE_RUNNING, msgs.EpisodeStatus.STATE_FINISHED
CFG = RT2Config()
MOVE = make_codec(CFG.action).encode([0.01, 0, 0, 0, 0, 0, 1.0])


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def test_camera_and_instruction_from_another_process_drive_the_node():
    with RosHarness() as h:
        node = h.add_node(
            Rt2Node(
                ScriptedTextPolicy(CFG, [MOVE]),
                context=h.context,
                overrides={"control.period_s": 0.1, "safety.require_ee_pose": False},
            )
        )
        probe = h.make_node("rt2_test_probe")
        twists = Collector(probe, TwistStamped, "/servo_node/delta_twist_cmds", 1000)
        episodes = Collector(probe, msgs.EpisodeStatus, "/rt2/episode")
        assert wait_for_publishers(twists.sub) and wait_for_publishers(episodes.sub)
        proc = subprocess.Popen(
            [sys.executable, str(HELPERS / "camera_process.py"), "stack the blocks", "25"],
            env=ros_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            st = episodes.wait_for(lambda m: m.state == RUNNING and m.instruction == "stack the blocks", 30.0)
            assert st is not None, "no episode from the other process's instruction"
            moving = twists.wait_for(
                lambda m: stamp_s(m.header.stamp) > stamp_s(st.header.stamp) and not is_zero_twist(m), 10.0
            )
            assert moving is not None, "images from the other process never reached the policy"
            assert node.policy.calls > 0
        finally:
            _stop(proc)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["sigint_default", "sigint_inherited_ignored"])
def test_node_process_runs_and_sends_a_zero_twist_on_ctrl_c(sigint_ignored):
    """Ctrl-C stops the node with a zero twist, also when it inherited SIGINT as ignored
    (``cmd &`` from a non-interactive shell, some supervisors): the node installs its own."""
    with RosHarness() as h:
        probe = h.make_node("rt2_test_probe")
        twists = Collector(probe, TwistStamped, "/servo_node/delta_twist_cmds", 2000)
        episodes = Collector(probe, msgs.EpisodeStatus, "/rt2/episode")
        cam = ImageStreamer(probe, "/camera/image_raw", rate_hz=20.0)
        h.add_cleanup(cam.stop)
        instruction = probe.create_publisher(String, "/rt2/instruction", 10)
        proc = subprocess.Popen(
            [
                sys.executable,
                str(HELPERS / "run_scripted_node.py"),
                "--ros-args",
                "-p",
                "control.period_s:=0.1",
                "-p",
                "frames.command_frame:=proc_frame",
                "-p",
                "safety.require_ee_pose:=false",
            ],
            env=ros_env(),
            cwd=str(ROOT),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_ignore_sigint if sigint_ignored else None,
        )
        try:
            assert wait_for_subscribers(instruction, timeout_s=30.0), "the node process never came up"
            assert wait_for_publishers(twists.sub) and wait_for_subscribers(cam.pub)
            time.sleep(0.3)
            instruction.publish(String(data="wave"))
            assert episodes.wait_for(lambda m: m.state == RUNNING, 10.0) is not None
            moving = twists.wait_for(lambda m: not is_zero_twist(m), 10.0)
            assert moving is not None and moving.header.frame_id == "proc_frame"
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(15)
            out = proc.stdout.read()
            assert rc == 0, out

            def stopped() -> bool:  # the node's last twists may still be on their way
                tw = twists.messages
                last_moving = max(i for i, m in enumerate(tw) if not is_zero_twist(m))
                return last_moving < len(tw) - 1 and is_zero_twist(tw[-1])

            assert wait_until(stopped, 5.0), "no zero twist after Ctrl-C"
            end = episodes.wait_for(lambda m: m.state == FINISHED, 2.0)
            assert end is not None and end.reason == "cancelled"
        finally:
            _stop(proc)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["-p", "control.period_s:=-1.0"], "control.period_s"),
        (["-p", "control.servo_rate_hz:=50"], "must be a double"),
        (["--params-file", str(ROOT / "config" / "rt2.yaml"), "-p", "policy.backend:=tpu"], "policy.backend"),
    ],
)
def test_python_m_node_rejects_bad_parameters_with_exit_code_2(args, needle):
    p = subprocess.run(
        [sys.executable, "-m", "rt2_ros.ros.node", "--ros-args", *args],
        cwd=str(ROOT),
        env=ros_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2, p.stdout + p.stderr
    assert needle in p.stderr

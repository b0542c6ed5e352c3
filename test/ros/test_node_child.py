"""``python -m rt2_ros.ros.node`` with ``policy.backend: local`` and its policy child.

By default the model runs in a child process the node starts, supervises and stops
(rt2_ros.remote.child). Driven over DDS by this test's camera and instruction, with
the tiny test model: the child starts and stops with the node; killing it mid-episode
makes the twists zero within a control period (the last action's hold) plus a servo
period, and the same episode continues once it is restarted; a child that stops
answering cannot hold up the node's shutdown. ``policy.process: in_process`` keeps
the model in the node's process (no child)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
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
    wait_for_subscribers,
    wait_until,
)
from std_msgs.msg import String

from rt2_ros.ros.conversions import import_rt2_msgs

ROOT = Path(__file__).resolve().parents[2]
msgs = import_rt2_msgs()
PERIOD_S, SERVO_HZ = 0.2, 50.0
#: Scheduling slack on a loaded 2-core machine, s.
SLACK_S = 0.3


def _children(pid: int) -> set[int]:
    out = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            out |= {int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()}
        except OSError:
            pass
    return out


def _gone(pid: int, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while True:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)


class NodeProcess:
    """The node as a user starts it; its output is collected line by line."""

    def __init__(self, model_dir: Path, **overrides):
        from rt2_ros.testing.make_model import policy_overrides

        params = dict(
            policy_overrides(model_dir),
            **{
                "control.period_s": PERIOD_S,
                "control.max_steps": 10000,
                "control.terminate_debounce": 100,
                "policy.max_failed_steps": 0,  # the episode waits for the restarted child, however long
                # The random model prefers "2" to "0" as first field on this camera image: "2" means
                # "keep going" here, so the arm moves.
                "action.continue_token": 2,
                "policy.num_threads": 1,
                "safety.require_ee_pose": False,  # no pose source here: the box is not what this checks
            },
            **overrides,
        )
        args = [a for k, v in params.items() for a in ("-p", f"{k}:={v}")]
        cmd = [sys.executable, "-m", "rt2_ros.ros.node", "--ros-args", "--params-file", "config/rt2.yaml", *args]
        self.proc = subprocess.Popen(
            cmd, cwd=str(ROOT), env=ros_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def child_pids(self) -> list[int]:
        """Policy children in the order they started (from the node's log)."""
        return list(
            dict.fromkeys(int(p) for p in re.findall(r"policy child (\d+): rt2-ros serve: listening", self.output))
        )

    def stop(self, timeout_s: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def _probe(h: RosHarness):
    probe = h.make_node("rt2_child_probe")
    twists = Collector(probe, TwistStamped, "/servo_node/delta_twist_cmds", 20000)
    actions = Collector(probe, msgs.RT2Action, "/rt2/action", 5000)
    episodes = Collector(probe, msgs.EpisodeStatus, "/rt2/episode")
    cam = ImageStreamer(probe, "/camera/image_raw", rate_hz=10.0, height=224, width=224)
    h.add_cleanup(cam.stop)
    instruction = probe.create_publisher(String, "/rt2/instruction", 10)
    return twists, actions, episodes, cam, instruction


def test_policy_child_starts_restarts_after_a_kill_and_cannot_block_shutdown(tiny_model_dir):
    with RosHarness() as h:
        twists, actions, episodes, cam, instruction = _probe(h)
        node = NodeProcess(tiny_model_dir)
        try:
            assert wait_for_subscribers(instruction, timeout_s=180.0), "the node never came up:\n" + node.output
            (child,) = node.child_pids()
            assert child in _children(node.proc.pid)  # started by the node
            assert wait_for_subscribers(cam.pub)
            time.sleep(0.5)
            instruction.publish(String(data="pick up the red block"))
            st = episodes.wait_for(lambda m: m.state == msgs.EpisodeStatus.STATE_RUNNING, 15.0)
            assert st is not None
            assert actions.wait_for(lambda a: a.valid, 30.0) is not None, node.output
            # Kill the child while the arm moves.
            moving = wait_until(lambda: twists.messages and not is_zero_twist(twists.messages[-1]), 20.0)
            assert moving, [(a.tokens.tolist(), a.terminate, a.valid, a.error) for a in actions.messages[-5:]]
            t_kill = time.time()
            os.kill(child, signal.SIGKILL)
            assert wait_until(lambda: len(node.child_pids()) == 2, 120.0), "no restart:\n" + node.output
            n_before = len(actions.messages)
            back = actions.wait_for(lambda a: a.valid and stamp_s(a.header.stamp) > t_kill, 60.0, start=n_before)
            assert back is not None, "no valid action after the restart:\n" + node.output
            t_back = stamp_s(back.header.stamp)
            # Zero twists from one control period (the last action's hold) plus a servo period after the kill
            # until the restarted child answered; the stream kept going meanwhile.
            window = [
                m
                for m in twists.messages
                if t_kill + PERIOD_S + 1 / SERVO_HZ + SLACK_S < stamp_s(m.header.stamp) < t_back
            ]
            assert len(window) > 20 and all(is_zero_twist(m) for m in window)
            # The same episode went on: it never finished, and the new actions belong to it.
            assert back.instruction == "pick up the red block"
            assert [m.state for m in episodes.messages] == [msgs.EpisodeStatus.STATE_RUNNING]
            assert "policy child" in node.output and "exited with code -9 (SIGKILL)" in node.output
            assert "restarting in" in node.output
            # A child that never answers (stopped) cannot hold up the node's shutdown.
            new_child = node.child_pids()[1]
            os.kill(new_child, signal.SIGSTOP)
            time.sleep(1.5)
            t0 = time.monotonic()
            try:
                rc = node.stop(timeout_s=30.0)
            except subprocess.TimeoutExpired:
                pytest.fail("the node did not stop:\n" + node.output[-6000:])
            assert rc == 0, node.output
            assert time.monotonic() - t0 < 15.0
            assert _gone(new_child, 5.0) and _gone(child, 0.0)  # stopped with the node
            time.sleep(0.3)
            assert is_zero_twist(twists.messages[-1])
        finally:
            node.kill()
            for pid in node.child_pids():
                if not _gone(pid, 0.0):
                    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("process", ["in_process"])
def test_in_process_option_runs_the_model_in_the_node_without_a_child(tiny_model_dir, process):
    with RosHarness() as h:
        twists, actions, episodes, cam, instruction = _probe(h)
        node = NodeProcess(tiny_model_dir, **{"policy.process": process})
        try:
            assert wait_for_subscribers(instruction, timeout_s=180.0), "the node never came up:\n" + node.output
            assert wait_for_subscribers(cam.pub)
            time.sleep(0.5)
            instruction.publish(String(data="pick up the red block"))
            assert actions.wait_count(3, 30.0), node.output
            assert any(a.valid and a.model_ms > 0 for a in actions.messages)
            assert not _children(node.proc.pid) and not node.child_pids()
            assert node.stop() == 0, node.output
        finally:
            node.kill()

"""The rt2 node with a real model: ``python -m rt2_ros.ros.node`` running the tiny test model
(random-weight PaliGemma architecture, rt2_ros.testing.make_model) in its own process,
driven over DDS by this test's camera and instruction."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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
from std_msgs.msg import String

from rt2_ros.ros.conversions import import_rt2_msgs

ROOT = Path(__file__).resolve().parents[2]
msgs = import_rt2_msgs()
SERVO_HZ = 50.0


def _params(model_dir: Path, action_format: str = "rt2") -> list[str]:
    from rt2_ros.testing.make_model import policy_overrides

    out = []
    overrides = dict(
        policy_overrides(model_dir, action_format),
        **{"control.period_s": 0.2, "policy.num_threads": 1, "safety.require_ee_pose": False},
    )
    for k, v in overrides.items():
        out += ["-p", f"{k}:={v}"]
    return out


@pytest.mark.parametrize("kind", ["paligemma", "openvla"])
def test_tiny_model_node_process_publishes_actions_and_a_steady_servo_stream(kind, request):
    # paligemma: the RT-2-format test model; openvla: make-test-model --format openvla (native OpenVLA loader)
    if kind == "openvla":
        tiny_model_dir, action_format = request.getfixturevalue("openvla_test_model_dir"), "openvla"
    else:
        tiny_model_dir, action_format = request.getfixturevalue("tiny_model_dir"), "rt2"
    with RosHarness() as h:
        probe = h.make_node("rt2_test_probe")
        twists = Collector(probe, TwistStamped, "/servo_node/delta_twist_cmds", 5000)
        actions = Collector(probe, msgs.RT2Action, "/rt2/action", 1000)
        episodes = Collector(probe, msgs.EpisodeStatus, "/rt2/episode")
        cam = ImageStreamer(probe, "/camera/image_raw", rate_hz=15.0, height=224, width=224)
        h.add_cleanup(cam.stop)
        instruction = probe.create_publisher(String, "/rt2/instruction", 10)
        cmd = [
            sys.executable,
            "-m",
            "rt2_ros.ros.node",
            "--ros-args",
            "--params-file",
            str(ROOT / "config" / "rt2.yaml"),
            *_params(tiny_model_dir, action_format),
        ]
        proc = subprocess.Popen(
            cmd, cwd=str(ROOT), env=ros_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            assert wait_for_subscribers(instruction, timeout_s=120.0), "the model node never came up"
            assert wait_for_publishers(twists.sub) and wait_for_subscribers(cam.pub)
            time.sleep(0.5)
            instruction.publish(String(data="pick up the red block"))
            st = episodes.wait_for(lambda m: m.state == msgs.EpisodeStatus.STATE_RUNNING, 15.0)
            assert st is not None
            assert actions.wait_count(5, 30.0), "the model did not produce 5 steps"
            t_run = stamp_s(st.header.stamp)
            wait_until(lambda: sum(stamp_s(m.header.stamp) > t_run for m in twists.messages) > 50, 15.0)
            acts = actions.messages
            assert all(a.raw_text and a.inference_latency_ms > 0 and a.model_ms > 0 for a in acts)
            assert all(a.valid or a.error for a in acts)  # every step is an action or a stated rejection
            assert {a.instruction for a in acts} == {"pick up the red block"}
            # The servo stream kept its rate while the model ran in the same process.
            tw = [m for m in twists.messages if stamp_s(m.header.stamp) > stamp_s(st.header.stamp)]
            assert len(tw) > 50
            assert 0.5 / SERVO_HZ < statistics.median(np.diff([stamp_s(m.header.stamp) for m in tw])) < 2.0 / SERVO_HZ
            assert {m.header.frame_id for m in tw} == {"panda_link0"}
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(30)
            assert rc == 0, proc.stdout.read()
            time.sleep(0.3)
            assert is_zero_twist(twists.messages[-1])
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)

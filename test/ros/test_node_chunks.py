"""The rt2 node executing action chunks over real rclpy and DDS: one inference per chunk, the
chunk on /rt2/action, a twist per queued action while the worker infers ahead, the gripper
per executed action, a terminate inside a chunk ending the episode at that step."""

from __future__ import annotations

import time

import numpy as np
import pytest
from geometry_msgs.msg import TwistStamped
from ros_helpers import (
    Collector,
    ImageStreamer,
    RosHarness,
    is_zero_twist,
    stamp_s,
    wait_for_publishers,
    wait_for_subscribers,
)
from scripted_policy import ScriptedTextPolicy
from std_msgs.msg import Float64, String

from rt2_ros.action_tokenizer import make_codec
from rt2_ros.config import RT2Config
from rt2_ros.ros.conversions import import_rt2_msgs
from rt2_ros.ros.node import ZERO_BURST_S, Rt2Node

msgs = import_rt2_msgs()
RUNNING, FINISHED = msgs.EpisodeStatus.STATE_RUNNING, msgs.EpisodeStatus.STATE_FINISHED

PERIOD_S, H = 0.1, 4
OVERRIDES = {
    "control.period_s": PERIOD_S,
    "control.servo_rate_hz": 50.0,
    "action.horizon": H,
    "control.chunk_threshold": 2,
    "safety.max_image_age_s": 0.5,
    "safety.require_ee_pose": False,  # no pose source here: the box is not what these tests check
}
CFG = RT2Config.model_validate({"control": {"period_s": PERIOD_S}, "action": {"horizon": H}})
CODEC = make_codec(CFG.action)


def chunk(dx_m, grip, terminate_at=None):
    v = np.zeros((H, 7))
    v[:, 0] = dx_m
    v[:, 6] = grip
    return CODEC.encode_chunk(v, [k == terminate_at for k in range(H)])


MOVE = chunk(0.01, 1.0)


@pytest.fixture(scope="module")
def rig():
    h = RosHarness()
    try:
        pol = ScriptedTextPolicy(CFG, [MOVE])
        node = h.add_node(Rt2Node(pol, context=h.context, overrides=OVERRIDES))
        p = h.make_node("rt2_chunk_probe")
        r = type("Rig", (), {})()
        r.h, r.policy, r.node = h, pol, node
        r.twists = Collector(p, TwistStamped, "/servo_node/delta_twist_cmds", 2000)
        r.episodes = Collector(p, msgs.EpisodeStatus, "/rt2/episode")
        r.actions = Collector(p, msgs.RT2Action, "/rt2/action")
        r.gripper = Collector(p, Float64, "/rt2/gripper_command")
        r.cam = ImageStreamer(p, "/camera/image_raw", rate_hz=20.0)
        h.add_cleanup(r.cam.stop)
        r.instruction = p.create_publisher(String, "/rt2/instruction", 10)
        assert all(
            [
                wait_for_subscribers(r.instruction),
                wait_for_subscribers(r.cam.pub),
                wait_for_publishers(r.twists.sub),
                wait_for_publishers(r.episodes.sub),
                wait_for_publishers(r.actions.sub),
            ]
        ), "DDS discovery did not complete"
        yield r
    finally:
        h.close()


def _start(rig, texts, text="pick up the red block"):
    now = rig.node.now_s()
    rig.node.controller.cancel(now)
    rig.node._handle_transitions()
    time.sleep(ZERO_BURST_S + 0.2)
    for c in (rig.twists, rig.episodes, rig.actions, rig.gripper):
        c.clear()
    rig.policy.set_texts(texts)
    rig.instruction.publish(String(data=text))
    st = rig.episodes.wait_for(lambda m: m.state == RUNNING, 10.0)
    assert st is not None
    return st


def test_chunks_run_without_gaps_and_rt2action_carries_the_chunk(rig):
    st = _start(rig, [MOVE])
    t0 = stamp_s(st.header.stamp)
    a = rig.actions.wait_for(lambda m: m.valid, 5.0)
    assert a is not None and a.horizon == H and len(a.chunk) == H * 7 and len(a.chunk_terminate) == H
    np.testing.assert_allclose(np.array(a.chunk).reshape(H, 7)[:, 0], CODEC.decode_output(MOVE)[0].vector[0])
    time.sleep(2.0)  # 20 control periods
    n_inferences = rig.policy.calls
    steps = rig.node.controller.episode.step
    tw = [m for m in rig.twists.messages if stamp_s(m.header.stamp) > t0 + 0.5]
    # Inference ahead (threshold 2 of 4): a chunk per ~2 actions, and the arm never waits.
    assert steps >= 10 and n_inferences <= steps
    moving = np.array([not is_zero_twist(m) for m in tw])
    assert moving.mean() > 0.95, f"standing still in {100 * (1 - moving.mean()):.0f}% of the twists"
    g = rig.gripper.wait_for(lambda m: True, 2.0)
    assert g is not None and g.data == pytest.approx(CODEC.decode_output(MOVE)[0].gripper, abs=0.01)


def test_terminate_inside_a_chunk_ends_the_episode_at_that_step(rig):
    # The next chunk (inferred ahead, when 2 actions remain) still says "done" at once:
    # whichever of the two the queue holds for that step, the episode ends there.
    _start(rig, [chunk(0.01, 1.0, terminate_at=2), chunk(0.0, 1.0, terminate_at=0)], text="push the blue block left")
    end = rig.episodes.wait_for(lambda m: m.state == FINISHED, 10.0)
    assert end is not None and end.reason == "terminate" and end.step == 3

"""The rt2 node driven by openpi's own ``WebsocketPolicyServer`` (shared/fixtures/openpi)
wrapping a scripted policy, over real rclpy and DDS, with the LIBERO profile: the chunk's
actions become twists at the profile's scale, and a malformed answer never moves the arm."""

from __future__ import annotations

import time

import numpy as np
import openpi_fixture
import pytest
from geometry_msgs.msg import PoseStamped, TwistStamped
from ros_helpers import (
    Collector,
    ImageStreamer,
    RosHarness,
    is_zero_twist,
    stamp_s,
    wait_for_publishers,
    wait_for_subscribers,
)
from std_msgs.msg import String

from rt2_ros.config import load_config
from rt2_ros.factory import make_policy
from rt2_ros.ros.conversions import import_rt2_msgs
from rt2_ros.ros.node import ZERO_BURST_S, Rt2Node

msgs = import_rt2_msgs()
RUNNING, FINISHED = msgs.EpisodeStatus.STATE_RUNNING, msgs.EpisodeStatus.STATE_FINISHED
PERIOD_S = 0.05
DX = 0.2  # answer units: 0.2 x 0.05 m per 0.05 s = 0.2 m/s


class Switchable:
    """openpi BasePolicy: a good LIBERO chunk, or NaN when ``bad``."""

    def __init__(self):
        self.bad = False
        self.calls = 0

    def infer(self, obs):
        self.calls += 1
        a = np.zeros((10, 7), np.float32)
        a[:, 0] = np.nan if self.bad else DX
        a[:, 6] = -1.0
        return {"actions": a}

    def reset(self):
        pass


@pytest.fixture(scope="module")
def rig():
    openpi_fixture.require()
    scripted = Switchable()
    with openpi_fixture.OpenPIServer(scripted) as srv:
        overrides = {
            "policy.backend": "openpi",
            "policy.server_url": srv.url,
            "policy.timeout_s": 5.0,
            "control.period_s": PERIOD_S,
            "control.max_steps": 20,
            "safety.max_linear_accel_mps2": 100.0,
            "safety.max_image_age_s": 0.5,
            "servo.use_tf": False,
        }
        h = RosHarness()
        try:
            pol = make_policy(load_config(overrides=overrides))
            node = h.add_node(Rt2Node(pol, context=h.context, overrides=overrides))
            p = h.make_node("rt2_openpi_probe")
            r = type("Rig", (), {})()
            r.h, r.scripted, r.node = h, scripted, node
            r.twists = Collector(p, TwistStamped, "/servo_node/delta_twist_cmds", 4000)
            r.episodes = Collector(p, msgs.EpisodeStatus, "/rt2/episode")
            r.actions = Collector(p, msgs.RT2Action, "/rt2/action")
            r.cam = ImageStreamer(p, "/camera/image_raw", rate_hz=20.0)
            h.add_cleanup(r.cam.stop)
            r.pose = p.create_publisher(PoseStamped, "/rt2/ee_pose", 10)
            r.pose_timer = p.create_timer(0.02, lambda: r.pose.publish(pose_msg(node)))
            r.instruction = p.create_publisher(String, "/rt2/instruction", 10)
            assert all(
                [
                    wait_for_subscribers(r.instruction),
                    wait_for_subscribers(r.cam.pub),
                    wait_for_subscribers(r.pose),
                    wait_for_publishers(r.twists.sub),
                    wait_for_publishers(r.episodes.sub),
                    wait_for_publishers(r.actions.sub),
                ]
            ), "DDS discovery did not complete"
            yield r
        finally:
            h.close()


def pose_msg(node):
    m = PoseStamped()
    m.header.frame_id = "panda_link0"
    m.header.stamp = node.get_clock().now().to_msg()
    m.pose.position.x, m.pose.position.y, m.pose.position.z = 0.5, 0.0, 0.3
    m.pose.orientation.w = 1.0
    return m


def run_episode(rig, bad):
    now = rig.node.now_s()
    rig.node.controller.cancel(now)
    rig.node._handle_transitions()
    time.sleep(ZERO_BURST_S + 0.2)
    for c in (rig.twists, rig.episodes, rig.actions):
        c.clear()
    rig.scripted.bad = bad
    rig.instruction.publish(String(data="put the bowl on the plate"))
    st = rig.episodes.wait_for(lambda m: m.state == RUNNING, 10.0)
    assert st is not None
    end = rig.episodes.wait_for(lambda m: m.state == FINISHED, 30.0)
    assert end is not None
    t0, t1 = stamp_s(st.header.stamp), stamp_s(end.header.stamp)
    return [m for m in rig.twists.messages if t0 <= stamp_s(m.header.stamp) <= t1], end


def test_libero_chunks_from_openpis_server_drive_the_arm_at_the_profiles_scale(rig):
    tw, end = run_episode(rig, bad=False)
    assert end.reason == "step_limit"
    moving = [m for m in tw if not is_zero_twist(m)]
    assert moving, "the arm never moved"
    vx = np.array([m.twist.linear.x for m in moving])
    assert np.median(vx) == pytest.approx(DX * 0.05 / PERIOD_S, rel=1e-6)
    assert rig.scripted.calls >= 4  # 20 steps, 5 per chunk (replan_steps)


def test_a_nan_answer_from_openpis_server_never_moves_the_arm(rig):
    calls = rig.scripted.calls
    tw, end = run_episode(rig, bad=True)
    assert rig.scripted.calls > calls
    assert tw and all(is_zero_twist(m) for m in tw)
    a = rig.actions.wait_for(lambda m: not m.valid, 5.0)
    assert a is not None and "NaN" in a.error


# -- the droid profile: joint velocities -> JointJog -------------------------------------------


class DroidSwitchable:
    """openpi BasePolicy answering DROID chunks [10, 8] (joint 1 at 0.1 units), or NaN when ``bad``."""

    def __init__(self):
        self.bad = False
        self.calls = 0
        self.seen = []

    def infer(self, obs):
        self.calls += 1
        self.seen.append(obs)
        a = np.zeros((10, 8), np.float32)
        a[:, 0] = np.nan if self.bad else 0.1
        return {"actions": a}

    def reset(self):
        pass


NAMES = [f"panda_joint{i}" for i in range(1, 8)]
Q = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]


@pytest.fixture(scope="module")
def droid_rig():
    openpi_fixture.require()
    from rt2_ros.ros.joint_jog import HAVE_JOINT_JOG

    if not HAVE_JOINT_JOG:
        pytest.skip("control_msgs (JointJog) is not importable: build the ROS 2 tools kit")
    from control_msgs.msg import JointJog
    from sensor_msgs.msg import JointState

    scripted = DroidSwitchable()
    with openpi_fixture.OpenPIServer(scripted) as srv:
        overrides = {
            "policy.backend": "openpi",
            "policy.server_url": srv.url,
            "policy.timeout_s": 5.0,
            "openpi.profile": "droid",
            "control.period_s": 1.0 / 15,
            "control.max_steps": 24,
            "safety.max_image_age_s": 0.5,
            "safety.max_joint_accel_radps2": 1000.0,
            "servo.use_tf": False,
        }
        h = RosHarness()
        try:
            pol = make_policy(load_config(overrides=overrides))
            node = h.add_node(Rt2Node(pol, context=h.context, overrides=overrides))
            p = h.make_node("rt2_openpi_droid_probe")
            r = type("Rig", (), {})()
            r.h, r.scripted, r.node = h, scripted, node
            r.jogs = Collector(p, JointJog, "/servo_node/delta_joint_cmds", 4000)
            r.twists = Collector(p, TwistStamped, "/servo_node/delta_twist_cmds", 100)
            r.episodes = Collector(p, msgs.EpisodeStatus, "/rt2/episode")
            r.actions = Collector(p, msgs.RT2Action, "/rt2/action")
            r.cam = ImageStreamer(p, "/camera/image_raw", rate_hz=20.0)
            h.add_cleanup(r.cam.stop)
            r.js = p.create_publisher(JointState, "/joint_states", 10)

            def joint_state():
                m = JointState()
                m.header.stamp = node.get_clock().now().to_msg()
                m.name, m.position = list(reversed(NAMES)), list(reversed(Q))
                r.js.publish(m)

            r.js_timer = p.create_timer(0.02, joint_state)
            r.instruction = p.create_publisher(String, "/rt2/instruction", 10)
            assert all(
                [
                    wait_for_subscribers(r.instruction),
                    wait_for_subscribers(r.cam.pub),
                    wait_for_subscribers(r.js),
                    wait_for_publishers(r.jogs.sub),
                    wait_for_publishers(r.episodes.sub),
                ]
            ), "DDS discovery did not complete"
            yield r
        finally:
            h.close()


def run_droid_episode(rig, bad):
    now = rig.node.now_s()
    rig.node.controller.cancel(now)
    rig.node._handle_transitions()
    time.sleep(ZERO_BURST_S + 0.2)
    for c in (rig.jogs, rig.twists, rig.episodes, rig.actions):
        c.clear()
    rig.scripted.bad = bad
    rig.instruction.publish(String(data="put the marker in the cup"))
    st = rig.episodes.wait_for(lambda m: m.state == RUNNING, 10.0)
    assert st is not None
    end = rig.episodes.wait_for(lambda m: m.state == FINISHED, 30.0)
    assert end is not None
    t0, t1 = stamp_s(st.header.stamp), stamp_s(end.header.stamp)
    return [m for m in rig.jogs.messages if t0 <= stamp_s(m.header.stamp) <= t1]


def test_droid_chunks_from_openpis_server_become_joint_jog(droid_rig):
    jogs = run_droid_episode(droid_rig, bad=False)
    moving = [m for m in jogs if any(v != 0.0 for v in m.velocities)]
    assert moving, "no JointJog moved the arm"
    assert all(list(m.joint_names) == NAMES for m in moving)
    v1 = np.median([m.velocities[0] for m in moving])
    assert v1 == pytest.approx(0.1 * 3.0, rel=1e-6)  # 0.1 units x 3 rad/s (droid profile)
    assert all(is_zero_twist(m) for m in droid_rig.twists.messages)  # joint mode: no motion by twists
    obs = droid_rig.scripted.seen[-1]
    np.testing.assert_allclose(obs["observation/joint_position"], Q, atol=1e-6)  # in servo.joint_names order


def test_a_nan_droid_answer_never_moves_the_arm(droid_rig):
    jogs = run_droid_episode(droid_rig, bad=True)
    assert jogs and all(not any(m.velocities) for m in jogs)

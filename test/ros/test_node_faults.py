"""Issue 15 #3-#6 over real rclpy and DDS: the rt2 node with a probe playing camera,
end-effector pose source and MoveIt Servo (see test/test_node.py for the set-up)."""

from __future__ import annotations

import threading
import time

import pytest
from geometry_msgs.msg import PoseStamped, TwistStamped
from rcl_interfaces.msg import Log
from ros_helpers import (
    Collector,
    ImageStreamer,
    RosHarness,
    _restamp,
    is_zero_twist,
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

msgs = import_rt2_msgs()
RUNNING, FINISHED = msgs.EpisodeStatus.STATE_RUNNING, msgs.EpisodeStatus.STATE_FINISHED
FRAME = "rt2_fault_base"
IMAGE_AGE_S, GRACE_S, SERVO_HZ = 0.5, 0.6, 50.0
OVERRIDES = {  # default safety.require_ee_pose (true): the probe publishes the pose
    "control.period_s": 0.1,
    "control.servo_rate_hz": SERVO_HZ,
    "safety.max_image_age_s": IMAGE_AGE_S,
    "safety.camera_loss_grace_s": GRACE_S,
    "frames.planning_frame": FRAME,
    "frames.command_frame": FRAME,
    "frames.ee_frame": "rt2_fault_tool",
}
CFG = RT2Config()
MOVE = make_codec(CFG.action).encode([0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])  # +x, 0.1 m/s


class Rig:
    def __init__(self, h: RosHarness):
        self.policy = ScriptedTextPolicy(CFG, [MOVE])
        self.node = h.add_node(Rt2Node(self.policy, context=h.context, overrides=OVERRIDES))
        p = self.probe = h.make_node("rt2_fault_probe")
        self.twists = Collector(p, TwistStamped, "/servo_node/delta_twist_cmds", 2000)
        self.episodes = Collector(p, msgs.EpisodeStatus, "/rt2/episode")
        self.rosout = Collector(p, Log, "/rosout", 1000)
        self.cam = ImageStreamer(p, "/camera/image_raw", rate_hz=20.0)
        h.add_cleanup(self.cam.stop)
        self.good_frames = self.cam.factory
        self.pose_pub = p.create_publisher(PoseStamped, "/rt2/ee_pose", 10)
        self.pose_x: float | None = 0.5  # None: publish no pose
        self._stop = threading.Event()
        threading.Thread(target=self._poses, daemon=True).start()
        h.add_cleanup(self._stop.set)
        self.instruction = p.create_publisher(String, "/rt2/instruction", 10)
        assert all(
            [
                wait_for_subscribers(self.instruction),
                wait_for_subscribers(self.cam.pub),
                wait_for_subscribers(self.pose_pub),
                wait_for_publishers(self.twists.sub),
                wait_for_publishers(self.episodes.sub),
            ]
        ), "DDS discovery did not complete"

    def _poses(self) -> None:
        while not self._stop.wait(0.02):
            if self.pose_x is None:
                continue
            m = PoseStamped()
            m.header.frame_id = FRAME
            m.header.stamp = self.probe.get_clock().now().to_msg()
            m.pose.position.x, m.pose.position.y, m.pose.position.z = self.pose_x, 0.0, 0.3
            m.pose.orientation.w = 1.0
            try:
                self.pose_pub.publish(m)
            except Exception:  # noqa: BLE001 - context shut down
                return

    def start(self, text: str):
        n = len(self.episodes.items)
        self.instruction.publish(String(data=text))
        st = self.episodes.wait_for(lambda m: m.state == RUNNING and m.instruction == text, 10.0, start=n)
        assert st is not None
        assert self.twists.wait_for(
            lambda m: stamp_s(m.header.stamp) > stamp_s(st.header.stamp) and not is_zero_twist(m), 5.0
        )
        return st

    def twists_between(self, t0: float, t1: float) -> list:
        return [m for m in self.twists.messages if t0 < stamp_s(m.header.stamp) < t1]

    def logged(self, *needles: str) -> bool:
        return any(m.name == "rt2_node" and all(n in m.msg for n in needles) for m in self.rosout.messages)

    def reset(self) -> None:
        now = self.node.now_s()
        self.node.controller.cancel(now)
        self.node._handle_transitions()
        self.cam.factory = self.good_frames
        self.cam.resume()
        self.pose_x = 0.5
        time.sleep(0.8)


@pytest.fixture(scope="module")
def rig_module():
    h = RosHarness()
    try:
        yield Rig(h)
    finally:
        h.close()


@pytest.fixture
def rig(rig_module):
    rig_module.reset()
    return rig_module


def test_camera_clock_ahead_does_not_stretch_the_image_watchdog_over_dds(rig):
    rig.cam.factory = lambda stamp: _restamp(rig.good_frames(stamp), _ahead(stamp, 0.45))
    time.sleep(0.3)
    rig.start("skewed camera")
    last = rig.cam.pause()  # node clock when the last frame left (its stamp says +0.45 s)
    t0, t1 = last + IMAGE_AGE_S + 0.1, last + IMAGE_AGE_S + 0.4  # stale by arrival; "fresh" by stamp
    assert wait_until(lambda: len(rig.twists_between(t1, t1 + 1.0)) > 0, 5.0)
    late = rig.twists_between(t0, t1)
    assert len(late) >= 5 and all(is_zero_twist(m) for m in late), "moving on a stale camera (clock skew)"


def test_absurd_pose_is_rejected_and_nothing_moves_over_dds(rig):
    rig.start("absurd pose")
    rig.pose_x = -1e300  # finite, absurd: +x motion would pass the box as "moving back in"
    t = time.time()
    assert wait_until(lambda: rig.logged("rejected end-effector pose", "max_reach_m"), 5.0)
    assert wait_until(lambda: len(rig.twists_between(t + 0.3, t + 5)) >= 20, 5.0)
    assert all(is_zero_twist(m) for m in rig.twists_between(t + 0.3, t + 5))


def test_unknown_pose_means_no_motion_with_the_box_over_dds(rig):
    rig.start("no pose")
    rig.pose_x = None  # the pose source stops
    t = time.time()
    late_from = t + CFG.safety.max_pose_age_s + 0.1
    assert wait_until(lambda: len(rig.twists_between(late_from, t + 5)) >= 20, 5.0)
    assert all(is_zero_twist(m) for m in rig.twists_between(late_from, t + 5))
    rig.pose_x = 0.5  # the pose comes back: motion resumes
    t = time.time()
    assert rig.twists.wait_for(lambda m: stamp_s(m.header.stamp) > t and not is_zero_twist(m), 5.0)


def test_camera_loss_ends_the_episode_as_a_fault_naming_the_camera_over_dds(rig):
    st = rig.start("camera dies")
    n = len(rig.episodes.items)
    last = rig.cam.pause()
    end = rig.episodes.wait_for(lambda m: m.state == FINISHED, IMAGE_AGE_S + GRACE_S + 5.0, start=n)
    assert end is not None and end.reason == "fault" and end.instruction == st.instruction
    assert "camera" in end.detail and "/camera/image_raw" in end.detail
    assert stamp_s(end.header.stamp) - last < IMAGE_AGE_S + GRACE_S + 1.0


def _ahead(stamp, dt_s: float):
    from builtin_interfaces.msg import Time

    ns = stamp.sec * 10**9 + stamp.nanosec + int(dt_s * 1e9)
    return Time(sec=ns // 10**9, nanosec=ns % 10**9)

"""The rt2 node over real rclpy and DDS: a probe node plays camera, user and MoveIt Servo.

The node under test runs a scripted policy (test/scripted_policy.py) whose texts go
through the real RT-2 codec, so "the model says terminate" and "the model emits
garbage" are the real decode paths. Control at 10 Hz and servo at 50 Hz keep it fast.
"""

from __future__ import annotations

import io
import statistics
import threading
import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped, TwistStamped
from rcl_interfaces.msg import Log
from rclpy.qos import qos_profile_sensor_data
from ros_helpers import (
    Collector,
    ImageStreamer,
    RosHarness,
    call_service,
    is_zero_twist,
    make_image_msg,
    stamp_s,
    wait_for_publishers,
    wait_for_subscribers,
    wait_until,
)
from scripted_policy import ScriptedTextPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float64, String
from std_srvs.srv import SetBool, Trigger
from visualization_msgs.msg import Marker, MarkerArray

from rt2_ros.action_tokenizer import make_codec
from rt2_ros.config import RT2Config
from rt2_ros.motion import delta_to_twist, gripper_command
from rt2_ros.ros.conversions import import_rt2_msgs
from rt2_ros.ros.node import ZERO_BURST_S, Rt2Node

msgs = import_rt2_msgs()
RUNNING, FINISHED = msgs.EpisodeStatus.STATE_RUNNING, msgs.EpisodeStatus.STATE_FINISHED

PERIOD_S = 0.1
SERVO_HZ = 50.0
IMAGE_AGE_S = 0.5
FRAME = "rt2_test_base"
OVERRIDES = {
    "control.period_s": PERIOD_S,
    "control.servo_rate_hz": SERVO_HZ,
    "safety.max_image_age_s": IMAGE_AGE_S,
    "frames.planning_frame": FRAME,
    "frames.command_frame": FRAME,
    "frames.ee_frame": "rt2_test_tool",
    "topics.compressed_image": "/camera/image_raw/compressed",
    "safety.require_ee_pose": False,  # no end-effector pose in this rig: allow motion without the box
}
CFG = RT2Config.model_validate({"control": {"period_s": PERIOD_S}})
CODEC = make_codec(CFG.action)
# +1 cm along x per control step, gripper open: 0.1 m/s for one period.
MOVE = CODEC.encode([0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
TERMINATE = CODEC.encode([0.0] * 6 + [1.0], terminate=True)
GARBAGE = "I think the robot should move to the left"


class Rig:
    """The node under test, its probe, and what the probe hears."""

    def __init__(self, harness: RosHarness):
        self.h = harness
        self.policy = ScriptedTextPolicy(CFG, [MOVE])
        self.node = self.h.add_node(Rt2Node(self.policy, context=self.h.context, overrides=OVERRIDES))
        p = self.probe = self.h.make_node("rt2_test_probe")
        self.twists = Collector(p, TwistStamped, "/servo_node/delta_twist_cmds", 1000)
        self.episodes = Collector(p, msgs.EpisodeStatus, "/rt2/episode")
        self.actions = Collector(p, msgs.RT2Action, "/rt2/action")
        self.gripper = Collector(p, Float64, "/rt2/gripper_command")
        self.rosout = Collector(p, Log, "/rosout", 1000)
        self.cam = ImageStreamer(p, "/camera/image_raw", rate_hz=20.0)
        harness.add_cleanup(self.cam.stop)
        self.good_frames = self.cam.factory
        self.instruction = p.create_publisher(String, "/rt2/instruction", 10)
        ok = all(
            [
                wait_for_subscribers(self.instruction),
                wait_for_subscribers(self.cam.pub),
                wait_for_publishers(self.twists.sub),
                wait_for_publishers(self.episodes.sub),
                wait_for_publishers(self.actions.sub),
            ]
        )
        assert ok, "DDS discovery between the probe and rt2_node did not complete"

    def start(self, text: str = "pick up the red block", timeout_s: float = 10.0):
        """Publish an instruction; returns its RUNNING EpisodeStatus."""
        n = len(self.episodes.items)
        self.instruction.publish(String(data=text))
        st = self.episodes.wait_for(lambda m: m.state == RUNNING and m.instruction == text, timeout_s, start=n)
        assert st is not None, f"no RUNNING status for {text!r}"
        return st

    def twists_after(self, t_s: float) -> list:
        return [m for m in self.twists.messages if stamp_s(m.header.stamp) > t_s]

    def wait_moving(self, after_s: float, timeout_s: float = 5.0):
        return self.twists.wait_for(lambda m: stamp_s(m.header.stamp) > after_s and not is_zero_twist(m), timeout_s)

    def logged(self, *needles: str) -> list[str]:
        return [m.msg for m in self.rosout.messages if m.name == "rt2_node" and all(n in m.msg for n in needles)]

    def idle(self) -> None:
        """End any episode, clear the e-stop, wait for the zero burst, forget messages."""
        now = self.node.now_s()
        self.node.controller.set_estop(False, now)
        self.node.controller.cancel(now)
        self.node._handle_transitions()
        self.policy.set_texts([MOVE])
        self.cam.factory = self.good_frames
        self.cam.resume()
        time.sleep(ZERO_BURST_S + 0.2)
        for c in (self.twists, self.episodes, self.actions, self.gripper, self.rosout):
            c.clear()


@pytest.fixture(scope="module")
def rig_module():
    h = RosHarness()
    try:
        r = Rig(h)
        yield r
    finally:
        h.close()


@pytest.fixture
def rig(rig_module):
    rig_module.idle()
    return rig_module


def test_twists_at_servo_rate_with_node_stamps_and_command_frame(rig):
    st = rig.start()
    t0 = stamp_s(st.header.stamp)
    assert rig.wait_moving(t0) is not None
    want = delta_to_twist(CODEC.decode(MOVE), PERIOD_S)

    def at_speed(tw):
        lin = np.array([[m.twist.linear.x, m.twist.linear.y, m.twist.linear.z] for m in tw]).reshape(-1, 3)
        ang = np.array([[m.twist.angular.x, m.twist.angular.y, m.twist.angular.z] for m in tw]).reshape(-1, 3)
        return np.all(np.abs(lin - want.linear) < 1e-9, axis=1) & np.all(np.abs(ang - want.angular) < 1e-9, axis=1)

    # Collect until 10 twists held the commanded velocity (seconds; longer on a loaded machine).
    wait_until(lambda: at_speed(rig.twists_after(t0)).sum() >= 10, 15.0)
    tw = rig.twists_after(t0)
    stamps = [stamp_s(m.header.stamp) for m in tw]
    # Every twist: the command frame, a stamp from the node clock (here: wall time), in order.
    assert {m.header.frame_id for m in tw} == {FRAME}
    assert stamps == sorted(stamps)
    assert all(abs(s - time.time()) < 5.0 for s in stamps)
    # At the servo rate (median period; one late tick on a busy machine is not a failure).
    periods = np.diff(stamps)
    assert 0.5 / SERVO_HZ < statistics.median(periods) < 2.0 / SERVO_HZ
    # velocity = delta / control period: the decoded action of MOVE over 0.1 s.
    lin = np.array([[m.twist.linear.x, m.twist.linear.y, m.twist.linear.z] for m in tw])
    assert at_speed(tw).sum() >= 10, "the commanded velocity delta/period was never held"
    assert np.all(lin[:, 0] <= want.linear[0] + 1e-12) and np.all(lin[:, 0] >= 0.0)  # slew ramps up, never past


def test_each_step_publishes_the_decoded_action_and_the_gripper(rig):
    st = rig.start()
    a = rig.actions.wait_for(lambda m: m.valid, 5.0)
    assert a is not None
    dec = CODEC.decode(MOVE)
    assert a.raw_text == MOVE and list(a.tokens) == list(dec.tokens)
    assert np.allclose(a.delta_position, dec.delta_position) and np.allclose(a.delta_rotation, dec.delta_rotation)
    assert a.instruction == st.instruction and a.header.frame_id == FRAME and not a.terminate and a.error == ""
    g = rig.gripper.wait_for(lambda m: True, 5.0)
    assert g is not None and g.data == pytest.approx(gripper_command(dec.gripper, 0.0, 1.0))


def test_terminate_ends_the_episode_and_the_next_twists_are_zero(rig):
    rig.policy.set_texts([MOVE, MOVE, MOVE, TERMINATE])
    st = rig.start()
    end = rig.episodes.wait_for(lambda m: m.state == FINISHED, 10.0)
    assert end is not None and end.reason == "terminate" and end.step == 4
    assert end.instruction == st.instruction
    t_end = stamp_s(end.header.stamp)
    time.sleep(ZERO_BURST_S + 0.5)
    before = [m for m in rig.twists.messages if stamp_s(st.header.stamp) < stamp_s(m.header.stamp) < t_end]
    after = rig.twists_after(t_end - 1e-6)
    assert any(not is_zero_twist(m) for m in before), "the robot never moved before the terminate"
    assert after and all(is_zero_twist(m) for m in after), "a non-zero twist after the terminate"
    # A zero burst, then quiet: nothing later than the burst.
    assert max(stamp_s(m.header.stamp) for m in after) <= t_end + ZERO_BURST_S + 0.1
    last = rig.actions.wait_for(lambda m: m.terminate, 1.0)
    assert last is not None and last.valid


def test_new_instruction_preempts_the_running_episode(rig):
    a = rig.start("pick up the red block")
    assert rig.wait_moving(stamp_s(a.header.stamp)) is not None
    b = rig.start("open the drawer")
    pre = rig.episodes.wait_for(lambda m: m.state == FINISHED, 1.0)
    assert pre is not None and pre.reason == "preempted" and pre.instruction == "pick up the red block"
    assert "open the drawer" in pre.detail
    assert rig.wait_moving(stamp_s(b.header.stamp)) is not None
    # No twist out of the 50 Hz grid for a preemption (an extra one per instruction put a
    # near-zero gap into the stream 10 times a second under spam): the node stamps an
    # out-of-band zero twist with the episode message's own stamp; regular ticks stamp their own time.
    assert not [m for m in rig.twists.messages if m.header.stamp == pre.header.stamp]
    assert wait_until(lambda: "open the drawer" in rig.policy.instructions, 2.0)
    act = rig.actions.wait_for(lambda m: m.instruction == "open the drawer" and m.valid, 2.0)
    assert act is not None


def test_stale_camera_gives_zero_twists_within_the_watchdog_limit(rig):
    st = rig.start()
    assert rig.wait_moving(stamp_s(st.header.stamp)) is not None
    last_image_s = rig.cam.pause()
    time.sleep(IMAGE_AGE_S)
    wait_until(lambda: len(rig.twists_after(last_image_s + IMAGE_AGE_S + 1.0 / SERVO_HZ)) >= 10, 10.0)
    late = rig.twists_after(last_image_s + IMAGE_AGE_S + 1.0 / SERVO_HZ)
    assert len(late) >= 10, "the twist stream stopped instead of commanding zero"
    assert all(is_zero_twist(m) for m in late)
    assert rig.actions.wait_for(lambda m: "no fresh image" in m.error, 1.0) is not None
    rig.cam.resume()  # the camera comes back: the episode goes on
    assert rig.wait_moving(time.time()) is not None


def test_stop_service_ends_the_episode_with_zero_twist(rig):
    st = rig.start()
    assert rig.wait_moving(stamp_s(st.header.stamp)) is not None
    res = call_service(rig.probe, Trigger, "/rt2/stop", Trigger.Request())
    assert res.success and "cancelled" in res.message
    end = rig.episodes.wait_for(lambda m: m.state == FINISHED, 2.0)
    assert end is not None and end.reason == "cancelled"
    # A stop does not wait for the grid: a zero twist goes out at once, with the episode message's stamp.
    assert wait_until(
        lambda: any(m.header.stamp == end.header.stamp and is_zero_twist(m) for m in rig.twists.messages), 2.0
    )
    time.sleep(0.5)
    after = rig.twists_after(stamp_s(end.header.stamp) - 1e-6)
    assert after and all(is_zero_twist(m) for m in after)
    res = call_service(rig.probe, Trigger, "/rt2/stop", Trigger.Request())
    assert res.success and "no episode" in res.message


def test_e_stop_latches_until_cleared(rig):
    st = rig.start()
    assert rig.wait_moving(stamp_s(st.header.stamp)) is not None
    res = call_service(rig.probe, SetBool, "/rt2/e_stop", SetBool.Request(data=True))
    assert res.success
    end = rig.episodes.wait_for(lambda m: m.state == FINISHED, 2.0)
    assert end is not None and end.reason == "e_stop"
    # Latched: a new instruction is refused (logged), nothing moves.
    n = len(rig.episodes.items)
    rig.instruction.publish(String(data="try again"))
    assert wait_until(lambda: rig.logged("rejected instruction", "emergency stop"), 5.0)
    time.sleep(0.3)
    assert all(m.state != RUNNING for m in rig.episodes.messages[n:])
    assert all(is_zero_twist(m) for m in rig.twists_after(stamp_s(end.header.stamp) - 1e-6))
    res = call_service(rig.probe, SetBool, "/rt2/e_stop", SetBool.Request(data=False))
    assert res.success and "cleared" in res.message
    st = rig.start("try again")
    assert rig.wait_moving(stamp_s(st.header.stamp)) is not None


def test_garbage_image_is_rejected_logged_and_nothing_moves(rig):
    rig.cam.factory = lambda stamp: make_image_msg(120, 160, "16UC1", stamp=stamp)
    time.sleep(IMAGE_AGE_S + 0.2)  # the last good frame is stale now
    st = rig.start()
    assert wait_until(lambda: rig.logged("rejected image", "16UC1"), 3.0)
    wait_until(lambda: len(rig.twists_after(stamp_s(st.header.stamp))) >= 10, 10.0)
    tw = rig.twists_after(stamp_s(st.header.stamp))
    assert len(tw) >= 10 and all(is_zero_twist(m) for m in tw)
    assert rig.actions.wait_for(lambda m: "no fresh image" in m.error and not m.valid, 1.0) is not None
    # Truncated data (wrong size) is a rejection too.
    bad = make_image_msg(120, 160, "rgb8")
    bad.data = bytes(100)
    rig.cam.factory = lambda stamp: (setattr(bad.header, "stamp", stamp), bad)[1]
    assert wait_until(lambda: rig.logged("rejected image", "needs"), 3.0)
    # The node kept running: good frames make it move.
    rig.cam.factory = rig.good_frames
    assert rig.wait_moving(stamp_s(st.header.stamp)) is not None


def test_garbage_model_output_is_rejected_logged_and_nothing_moves(rig):
    rig.policy.set_texts([GARBAGE])
    st = rig.start()
    bad = rig.actions.wait_for(lambda m: not m.valid, 5.0)
    assert bad is not None and bad.raw_text == GARBAGE and "expected 8 integers" in bad.error
    assert wait_until(lambda: rig.logged("rejected step", "expected 8 integers"), 3.0)
    wait_until(lambda: len(rig.twists_after(stamp_s(st.header.stamp))) >= 10, 10.0)
    tw = rig.twists_after(stamp_s(st.header.stamp))
    assert len(tw) >= 10 and all(is_zero_twist(m) for m in tw)
    # A backend failure (exception in the policy) likewise.
    rig.policy.set_texts([None])
    assert rig.actions.wait_for(lambda m: "scripted backend failure" in m.error, 3.0) is not None
    # Still alive: a valid action moves the robot again, in the same episode.
    rig.policy.set_texts([MOVE])
    assert rig.wait_moving(stamp_s(st.header.stamp)) is not None
    assert all(m.state != FINISHED for m in rig.episodes.messages)


def test_markers_and_annotated_image_show_the_command(rig):
    markers = Collector(rig.probe, MarkerArray, "/rt2/markers")
    annotated = Collector(rig.probe, Image, "/rt2/annotated_image", qos_profile_sensor_data)
    pose_pub = rig.probe.create_publisher(PoseStamped, "/rt2/ee_pose", 10)
    stop_pose = [False]
    try:
        assert wait_for_publishers(markers.sub) and wait_for_subscribers(pose_pub)
        assert wait_until(lambda: rig.node.annotated_pub.get_subscription_count() > 0, 10.0)
        pose = PoseStamped()
        pose.header.frame_id = FRAME
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = 0.5, 0.1, 0.3
        pose.pose.orientation.w = 1.0

        def feed():
            while not stop_pose[0]:
                pose.header.stamp = rig.probe.get_clock().now().to_msg()
                pose_pub.publish(pose)
                time.sleep(0.05)

        th = threading.Thread(target=feed, daemon=True)
        th.start()
        assert wait_until(lambda: rig.node.controller._pose_slot is not None, 10.0)  # the pose reached the node
        st = rig.start("stack the cups")
        arr = markers.wait_for(lambda a: any(m.id == 0 and m.action == Marker.ADD for m in a.markers), 5.0)
        assert arr is not None
        arrow = next(m for m in arr.markers if m.id == 0)
        text = next(m for m in arr.markers if m.type == Marker.TEXT_VIEW_FACING)
        assert arrow.header.frame_id == FRAME and arrow.type == Marker.ARROW
        start, end = arrow.points
        assert (start.x, start.y, start.z) == pytest.approx((0.5, 0.1, 0.3))  # anchored at the end effector
        assert end.x > start.x  # pointing along +x, the commanded direction
        assert "stack the cups" in text.text and "running" in text.text
        img = annotated.wait_for(lambda m: True, 5.0)
        assert img is not None and (img.height, img.width, img.encoding) == (120, 160, "rgb8")
        assert len(img.data) == 120 * 160 * 3
        # The end effector at the +x face of the workspace box: +x motion is clipped away.
        stop_pose[0] = True
        th.join(1.0)
        pose.pose.position.x = CFG.safety.workspace_max[0]
        stop_pose[0] = False
        th = threading.Thread(target=feed, daemon=True)
        th.start()
        face = pose.pose.position.x  # readiness: the node holds the pose at the face (not a fixed wait)
        assert wait_until(lambda: (p := rig.node.controller._pose_slot) is not None and p[0][0] == face, 10.0)
        t_face = time.time()
        wait_until(lambda: len(rig.twists_after(t_face)) >= 10, 10.0)
        tw = rig.twists_after(t_face)
        assert len(tw) >= 10 and all(m.twist.linear.x <= 1e-12 for m in tw)
        assert stamp_s(st.header.stamp) < t_face
    finally:
        stop_pose[0] = True


def test_compressed_camera_frames_drive_the_node(rig):
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(np.full((120, 160, 3), (30, 120, 200), np.uint8)).save(buf, format="JPEG")
    pub = rig.probe.create_publisher(CompressedImage, "/camera/image_raw/compressed", qos_profile_sensor_data)
    assert wait_for_subscribers(pub)
    rig.cam.pause()  # only compressed frames from now on
    time.sleep(IMAGE_AGE_S + 0.2)
    stop = threading.Event()

    def stream():
        while not stop.is_set():
            msg = CompressedImage(format="jpeg", data=buf.getvalue())
            msg.header.stamp = rig.probe.get_clock().now().to_msg()
            pub.publish(msg)
            stop.wait(0.05)

    th = threading.Thread(target=stream, daemon=True)
    th.start()
    try:
        time.sleep(0.5)
        st = rig.start()
        assert rig.wait_moving(stamp_s(st.header.stamp)) is not None
        assert not rig.logged("rejected", "image")
    finally:
        stop.set()
        th.join(1.0)

"""rt2 node: MoveIt Servo bring-up, reset, parameters (real rclpy + DDS).

MoveIt Servo cannot run here, so a fake Servo node offers the exact Humble interface
(``~/start_servo``, ``~/pause_servo``, ``~/unpause_servo`` as std_srvs/Trigger and
``~/status`` as std_msgs/Int8; upstream ``moveit_servo/servo_node.h``). The Jazzy
interface with moveit_msgs' real types is tested in test_servo_interfaces.py; here, the
warning that says how to fix a Jazzy Servo without moveit_msgs.
"""

from __future__ import annotations

import threading
import time

import pytest
from geometry_msgs.msg import TwistStamped
from rcl_interfaces.msg import Log, ParameterType
from rcl_interfaces.srv import SetParameters
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_helpers import (
    Collector,
    ImageStreamer,
    RosHarness,
    call_service,
    is_zero_twist,
    stamp_s,
    wait_for_publishers,
    wait_for_subscribers,
    wait_until,
)
from scripted_policy import ScriptedTextPolicy
from std_msgs.msg import Int8, String
from std_srvs.srv import SetBool, Trigger

from rt2_ros.action_tokenizer import make_codec
from rt2_ros.config import ConfigError, RT2Config, flat_fields
from rt2_ros.ros.conversions import import_rt2_msgs
from rt2_ros.ros.node import ZERO_BURST_S, Rt2Node

msgs = import_rt2_msgs()
RUNNING, FINISHED = msgs.EpisodeStatus.STATE_RUNNING, msgs.EpisodeStatus.STATE_FINISHED
CFG = RT2Config()
MOVE = make_codec(CFG.action).encode([0.01, 0, 0, 0, 0, 0, 1.0])
SERVO_NS = "/rt2_test_servo"
RESET_SRV = "/rt2_test/sim_reset"
OVERRIDES = {
    "control.period_s": 0.1,
    "servo.namespace": SERVO_NS,
    "servo.distro": "humble",
    "reset.reset_service": RESET_SRV,
    "safety.require_ee_pose": False,  # no end-effector pose in this rig: allow motion without the box
}
# rosout keeps history (transient local): a late subscriber still sees start-up warnings.
ROSOUT_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class FakeHumbleServo:
    """MoveIt Servo's Humble ROS interface, recording the calls it gets."""

    def __init__(self, harness: RosHarness, name: str = SERVO_NS.lstrip("/")):
        self.node = harness.make_node(name)  # ~/start_servo = /<name>/start_servo, as servo_node's
        self.calls: list[str] = []
        for name in ("start_servo", "pause_servo", "unpause_servo"):
            self.node.create_service(Trigger, f"~/{name}", self._handler(name))
        self.status = self.node.create_publisher(Int8, "~/status", 10)

    def _handler(self, name):
        def cb(req, res):
            self.calls.append(name)
            res.success, res.message = True, f"{name} ok"
            return res

        return cb


class Rig:
    def __init__(self, harness: RosHarness):
        self.h = harness
        self.policy = ScriptedTextPolicy(CFG, [MOVE])
        self.servo = FakeHumbleServo(self.h)
        self.node = self.h.add_node(Rt2Node(self.policy, context=self.h.context, overrides=OVERRIDES))
        p = self.probe = self.h.make_node("rt2_test_probe")
        self.twists = Collector(p, TwistStamped, "/servo_node/delta_twist_cmds", 1000)
        self.episodes = Collector(p, msgs.EpisodeStatus, "/rt2/episode")
        self.rosout = Collector(p, Log, "/rosout", ROSOUT_QOS)
        self.cam = ImageStreamer(p, "/camera/image_raw", rate_hz=20.0)
        harness.add_cleanup(self.cam.stop)
        self.instruction = p.create_publisher(String, "/rt2/instruction", 10)
        assert wait_for_subscribers(self.instruction) and wait_for_subscribers(self.cam.pub)
        assert wait_for_publishers(self.twists.sub) and wait_for_publishers(self.episodes.sub)
        assert wait_until(lambda: self.node.servo._clients["start_servo"].service_is_ready(), 15.0)

    def start(self, text="pick up the red block", publisher=None):
        n = len(self.episodes.items)
        (publisher or self.instruction).publish(String(data=text))
        st = self.episodes.wait_for(lambda m: m.state == RUNNING and m.instruction == text, 10.0, start=n)
        assert st is not None
        return st

    def logged(self, *needles, name="rt2_node"):
        return [m.msg for m in self.rosout.messages if m.name == name and all(x in m.msg for x in needles)]

    def idle(self):
        now = self.node.now_s()
        self.node.controller.set_estop(False, now)
        self.node.controller.cancel(now)
        self.node._handle_transitions()
        time.sleep(ZERO_BURST_S + 0.2)
        self.twists.clear()
        self.episodes.clear()


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


def test_servo_started_on_episode_paused_after_stop_and_unpaused(rig):
    calls = rig.servo.calls
    rig.start()
    assert wait_until(lambda: "start_servo" in calls, 5.0), calls
    res = call_service(rig.probe, Trigger, "/rt2/stop", Trigger.Request())
    assert res.success
    # Paused once the zero burst went out, not before.
    t_stop = time.monotonic()
    assert wait_until(lambda: "pause_servo" in calls, 5.0), calls
    assert time.monotonic() - t_stop >= ZERO_BURST_S - 0.15
    rig.start("second task")
    assert wait_until(lambda: calls.count("unpause_servo") == 1, 5.0), calls
    assert calls.count("start_servo") == 1  # started once, then only un-paused


def test_servo_halt_status_ends_the_episode_as_fault(rig):
    st = rig.start()
    assert rig.twists.wait_for(lambda m: not is_zero_twist(m), 5.0) is not None
    rig.servo.status.publish(Int8(data=3))  # DECELERATE_FOR_COLLISION (Humble): keep going
    time.sleep(0.3)
    assert all(m.state != FINISHED for m in rig.episodes.messages)
    rig.servo.status.publish(Int8(data=4))  # HALT_FOR_COLLISION (Humble)
    end = rig.episodes.wait_for(lambda m: m.state == FINISHED, 5.0)
    assert end is not None and end.reason == "fault" and "HALT_FOR_COLLISION" in end.detail

    def after():  # the stop's zero twist and the burst after it (arriving later on a loaded machine)
        return [m for m in rig.twists.messages if stamp_s(m.header.stamp) >= stamp_s(end.header.stamp)]

    assert wait_until(lambda: len(after()) >= 5, 10.0)
    assert all(is_zero_twist(m) for m in after())
    assert stamp_s(st.header.stamp) < stamp_s(end.header.stamp)


def test_reset_calls_the_reset_service_or_says_none_is_available(rig):
    res = call_service(rig.probe, Trigger, "/rt2/reset", Trigger.Request())
    assert not res.success and "no reset available" in res.message and RESET_SRV in res.message
    seen = []

    def reset_cb(req, resp):
        seen.append(time.monotonic())
        resp.success, resp.message = True, "scene reset"
        return resp

    srv = rig.probe.create_service(Trigger, RESET_SRV, reset_cb)
    try:
        rig.start()
        res = call_service(rig.probe, Trigger, "/rt2/reset", Trigger.Request())
        assert res.success and "scene reset" in res.message and len(seen) == 1
        end = rig.episodes.wait_for(lambda m: m.state == FINISHED, 2.0)
        assert end is not None and end.reason == "cancelled"  # resetting ends the episode first
        # While the emergency stop is latched, nothing moves the robot, a reset included.
        assert call_service(rig.probe, SetBool, "/rt2/e_stop", SetBool.Request(data=True)).success
        res = call_service(rig.probe, Trigger, "/rt2/reset", Trigger.Request())
        assert not res.success and "emergency stop" in res.message and len(seen) == 1
    finally:
        rig.probe.destroy_service(srv)


def _remapped_node(rig, prefix: str, overrides: dict) -> Rt2Node:
    """A second rt2 node ``rt2_node_<prefix>`` beside the rig's, on the rig's executor: its
    instruction, episode and twist topics and its three services under ``/<prefix>/``
    (the services remapped with ``-r``, as a user would in a launch file)."""
    topics = {f"topics.{k}": f"/{prefix}/{k}" for k in ("instruction", "episode", "twist")}
    remaps = ["--ros-args"]
    for service in ("stop", "e_stop", "reset"):
        remaps += ["-r", f"/rt2/{service}:=/{prefix}/{service}"]
    node = Rt2Node(
        ScriptedTextPolicy(CFG, [MOVE]),
        node_name=f"rt2_node_{prefix}",
        context=rig.h.context,
        overrides={**OVERRIDES, **topics, **overrides},
        cli_args=remaps,
    )
    return rig.h.add_node(node)


def test_home_before_episode_resets_first_and_services_are_remappable(rig):
    """A second node, namespaced topics and remapped services, goes home before each episode."""
    seen = []
    srv = rig.probe.create_service(
        Trigger, "/rt2_test/home", lambda req, resp: (seen.append(1), setattr(resp, "success", True), resp)[2]
    )
    node_b = _remapped_node(rig, "b", {"reset.home_before_episode": True, "reset.reset_service": "/rt2_test/home"})
    try:
        eps = Collector(rig.probe, msgs.EpisodeStatus, "/b/episode")
        pub = rig.probe.create_publisher(String, "/b/instruction", 10)
        assert wait_for_subscribers(pub) and wait_for_publishers(eps.sub)
        pub.publish(String(data="go home then work"))
        st = eps.wait_for(lambda m: m.state == RUNNING, 10.0)
        assert st is not None and seen == [1]
        res = call_service(rig.probe, Trigger, "/b/stop", Trigger.Request())
        assert res.success and "cancelled" in res.message
        end = eps.wait_for(lambda m: m.state == FINISHED, 2.0)
        assert end is not None and end.reason == "cancelled"  # /b/stop reached node b
    finally:
        rig.h.remove_node(node_b)
        rig.probe.destroy_service(srv)


def test_jazzy_servo_without_moveit_msgs_warns_with_the_fix_and_keeps_running(rig, monkeypatch):
    from rt2_ros.ros import servo_client

    # A machine without moveit_msgs (also where the ROS 2 tools provide it).
    monkeypatch.setattr(servo_client, "HAVE_MOVEIT_MSGS", False)
    node_c = rig.h.add_node(
        Rt2Node(
            ScriptedTextPolicy(CFG, [MOVE]),
            node_name="rt2_node_c",
            context=rig.h.context,
            overrides={
                "servo.distro": "jazzy",
                "servo.namespace": "/absent_servo",
                "safety.require_ee_pose": False,
                "topics.twist": "/c/twist",
                "topics.instruction": "/c/instruction",
                "topics.episode": "/c/episode",
            },
            cli_args=[
                "--ros-args",
                "-r",
                "/rt2/stop:=/c/stop",
                "-r",
                "/rt2/e_stop:=/c/e_stop",
                "-r",
                "/rt2/reset:=/c/reset",
            ],
        )
    )
    try:
        assert wait_until(
            lambda: rig.logged("moveit_msgs is not importable", "switch_command_type", name="rt2_node_c"), 10.0
        )
        tw = Collector(rig.probe, TwistStamped, "/c/twist")
        pub = rig.probe.create_publisher(String, "/c/instruction", 10)
        assert wait_for_subscribers(pub) and wait_for_publishers(tw.sub)
        pub.publish(String(data="move anyway"))
        assert tw.wait_for(lambda m: not is_zero_twist(m), 10.0) is not None
        node_c.controller.cancel(node_c.now_s())
        node_c._handle_transitions()
        # After the burst the node pauses Servo: the missing service is a warning with the fix.
        assert wait_until(
            lambda: rig.logged("/absent_servo/pause_servo is not available", "Fix", name="rt2_node_c"), 5.0
        )
    finally:
        rig.h.remove_node(node_c)


def test_parameters_are_typed_with_ranges_descriptions_and_read_only(rig):
    node = rig.node
    names = [n for n, _, _ in flat_fields()]
    assert all(node.has_parameter(n) for n in names)
    d = node.describe_parameter("control.period_s")
    assert d.type == ParameterType.PARAMETER_DOUBLE and "control period" in d.description and d.read_only
    assert d.floating_point_range[0].from_value == 0.0 and d.floating_point_range[0].to_value == 10.0
    d = node.describe_parameter("control.max_steps")
    assert d.type == ParameterType.PARAMETER_INTEGER and d.integer_range[0].from_value == 1
    d = node.describe_parameter("policy.backend")
    assert d.type == ParameterType.PARAMETER_STRING and "local" in d.additional_constraints
    assert node.describe_parameter("action.low").type == ParameterType.PARAMETER_DOUBLE_ARRAY
    assert node.get_parameter("control.period_s").value == 0.1  # the override arrived
    # Changing one at run time (ros2 param set) is refused with the reason.
    req = SetParameters.Request(parameters=[Parameter("control.period_s", value=0.5).to_parameter_msg()])
    res = call_service(rig.probe, SetParameters, "/rt2_node/set_parameters", req)
    assert not res.results[0].successful and "read-only" in res.results[0].reason
    assert node.cfg.control.period_s == 0.1


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"control.period_s": -1.0}, "control.period_s"),
        ({"control.servo_rate_hz": 50}, "must be a double"),
        ({"policy.backend": "tpu"}, "policy.backend"),
        ({"safety.workspace_min": [1.0, 1.0, 1.0]}, "workspace_max must exceed"),
        ({"frames.command_frame": ""}, "frames.command_frame"),
    ],
)
def test_bad_parameters_are_a_clear_error_at_start(rig, overrides, needle):
    with pytest.raises(ConfigError) as e:
        Rt2Node(ScriptedTextPolicy(CFG, [MOVE]), node_name="rt2_bad", context=rig.h.context, overrides=overrides)
    assert needle in str(e.value)
    assert "rt2_bad" not in rig.node.get_node_names()  # nothing half-built left behind


def test_use_sim_time_stamps_twists_with_the_simulation_clock(rig):
    """Under use_sim_time, twists carry /clock time and sim-time image stamps are fresh."""
    from builtin_interfaces.msg import Time
    from ros_helpers import make_image_msg
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image as ImageMsg

    t_sim0, t_wall0 = 5000.0, time.monotonic()
    sim_now = lambda: t_sim0 + (time.monotonic() - t_wall0)  # noqa: E731
    to_msg = lambda t: Time(sec=int(t), nanosec=int((t % 1) * 1e9))  # noqa: E731
    clock_pub = rig.probe.create_publisher(Clock, "/clock", 10)
    cam_pub = rig.probe.create_publisher(ImageMsg, "/d/image", 10)
    stop = threading.Event()
    img = make_image_msg(120, 160)

    def run():
        i = 0
        while not stop.is_set():
            t = sim_now()
            clock_pub.publish(Clock(clock=to_msg(t)))
            if i % 5 == 0:
                img.header.stamp = to_msg(t)
                cam_pub.publish(img)
            i += 1
            stop.wait(0.01)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    node_d = None
    try:
        node_d = rig.h.add_node(
            Rt2Node(
                ScriptedTextPolicy(CFG, [MOVE]),
                node_name="rt2_node_d",
                context=rig.h.context,
                overrides={
                    "use_sim_time": True,
                    "safety.require_ee_pose": False,
                    "control.period_s": 0.1,
                    "topics.image": "/d/image",
                    "topics.instruction": "/d/instruction",
                    "topics.twist": "/d/twist",
                    "topics.episode": "/d/episode",
                },
                cli_args=[
                    "--ros-args",
                    "-r",
                    "/rt2/stop:=/d/stop",
                    "-r",
                    "/rt2/e_stop:=/d/e_stop",
                    "-r",
                    "/rt2/reset:=/d/reset",
                ],
            )
        )
        tw = Collector(rig.probe, TwistStamped, "/d/twist", 1000)
        pub = rig.probe.create_publisher(String, "/d/instruction", 10)
        assert wait_for_subscribers(pub) and wait_for_publishers(tw.sub) and wait_for_subscribers(cam_pub)
        assert wait_until(lambda: node_d.now_s() > t_sim0, 10.0), "the node never took /clock"
        pub.publish(String(data="sim task"))
        moving = tw.wait_for(lambda m: not is_zero_twist(m), 10.0)
        assert moving is not None, "sim-time image stamps were treated as stale"
        assert abs(stamp_s(moving.header.stamp) - sim_now()) < 2.0  # simulation time, not wall time
    finally:
        stop.set()
        th.join(1.0)
        if node_d is not None:
            rig.h.remove_node(node_d)


#: How long a flood of instructions gets to start a second callback beside a blocked one [s]: on
#: the shared reentrant group they started within milliseconds at load 3.
FLOOD_WAIT_S = 3.0


def test_stop_is_answered_while_instructions_wait_in_a_slow_home_and_none_starts_after_it(rig):
    """Issue 21: a flood on /rt2/instruction holds at most one executor thread (each input in a
    mutually exclusive group of its own, reader history 1). Here every instruction's callback
    waits for a home service that does not answer; on the shared reentrant group the flood's
    callbacks ran side by side (the home service saw several calls) until they held every
    executor thread and /rt2/stop could no longer be served."""
    release, calls = threading.Event(), []
    server_h = RosHarness(num_threads=8)  # the slow home service, in a context of its own
    try:
        server = server_h.make_node("rt2_test_slow_home")

        def slow_home(req, resp):
            calls.append(1)
            release.wait(60.0)
            resp.success = True
            return resp

        server.create_service(Trigger, "/rt2_test/slow_home", slow_home, callback_group=ReentrantCallbackGroup())
        node_c = _remapped_node(
            rig,
            "c",
            {
                "reset.home_before_episode": True,
                "reset.reset_service": "/rt2_test/slow_home",
                "control.max_instruction_rate_hz": 0.0,  # no rate limit: every instruction goes home first
            },
        )
        try:
            eps = Collector(rig.probe, msgs.EpisodeStatus, "/c/episode")
            pub = rig.probe.create_publisher(String, "/c/instruction", 10)
            assert wait_for_subscribers(pub) and wait_for_publishers(eps.sub)
            pub.publish(String(data="go home then work"))
            assert wait_until(lambda: calls, 30.0)  # one instruction waits in the home service now
            for _ in range(20):  # and a flood behind it
                pub.publish(String(data="go home then work"))
            # Give a second instruction callback the chance to start (it must not: this wait runs out).
            wait_until(lambda: len(calls) >= 2, FLOOD_WAIT_S)
            res = call_service(rig.probe, Trigger, "/c/stop", Trigger.Request(), timeout_s=30.0)
            assert res.success and not release.is_set()  # answered while the home call still hangs
            assert len(calls) == 1  # the flood waited in the reader (depth 1), not on executor threads
            release.set()
            # The waiting instructions were received before the stop: none starts an episode.
            assert wait_until(lambda: node_c.controller.dropped_instructions >= 2, 60.0)
            assert not [m for m in eps.messages if m.state == RUNNING]
        finally:
            release.set()
            rig.h.remove_node(node_c)
    finally:
        release.set()
        server_h.close()


def test_the_twist_stream_goes_on_while_the_log_is_stuck(rig, monkeypatch):
    """Issue 21: rclpy's logger looks its caller up with inspect/realpath on every line, which
    took up to hundreds of ms under 1 kHz input traffic; written under the publication lock it
    held the servo stream up. The node's lines are written by a thread of their own
    (rt2_ros.throttle.LogThread): here a logger that does not return at all stops nothing."""
    from rclpy.impl.rcutils_logger import RcutilsLogger

    armed, release = threading.Event(), threading.Event()
    info = RcutilsLogger.info

    def stuck_info(self, message, **kwargs):
        if armed.is_set() and self.name == "rt2_node_d":
            release.wait(60.0)
        return info(self, message, **kwargs)

    monkeypatch.setattr(RcutilsLogger, "info", stuck_info)
    overrides = dict(OVERRIDES, **{"topics.instruction": "/d/instruction", "topics.episode": "/d/episode"})
    overrides["topics.twist"] = "/d/twist"
    node_d = rig.h.add_node(
        Rt2Node(ScriptedTextPolicy(CFG, [MOVE]), node_name="rt2_node_d", context=rig.h.context, overrides=overrides)
    )
    try:
        eps = Collector(rig.probe, msgs.EpisodeStatus, "/d/episode")
        twists = Collector(rig.probe, TwistStamped, "/d/twist", 1000)
        pub = rig.probe.create_publisher(String, "/d/instruction", 10)
        assert wait_for_subscribers(pub) and wait_for_publishers(eps.sub) and wait_for_publishers(twists.sub)
        armed.set()  # from now on the node's info lines ("episode started", ...) never return
        pub.publish(String(data="pick up the red block"))
        assert eps.wait_for(lambda m: m.state == RUNNING, 15.0) is not None
        n = len(twists.items)
        assert twists.wait_for(lambda m: True, 30.0, start=n + 25) is not None  # 25 more twists: 0.5 s of stream
        assert not release.is_set()
    finally:
        release.set()
        rig.h.remove_node(node_d)

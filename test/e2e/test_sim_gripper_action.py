"""``control_msgs/action/GripperCommand`` over real DDS: the sim's gripper serves it, the rt2
node (``gripper.output: action``) sends goals to it.

The sim behaves like ros2_controllers' GripperActionController on ``panda_finger_joint1``
(position 0 .. 0.04 m): a goal that reaches its position succeeds; an out-of-range or
NaN goal is rejected; a goal whose fingers stall short of it (here: a ``max_effort`` too
small to move them) is aborted. The node logs rejected and aborted goals, keeps the
gripper where it is and keeps running.
"""

from __future__ import annotations

import math
import threading

import pytest

pytest.importorskip("pybullet")

from ros2_cli import requires_interfaces  # noqa: E402

pytestmark = [requires_interfaces("control_msgs")]

from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import Collector, ImageStreamer, RosHarness, wait_for_subscribers, wait_until  # noqa: E402
from scripted_policy import ScriptedTextPolicy  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from rt2_ros.action_tokenizer import make_codec  # noqa: E402
from rt2_ros.config import RT2Config  # noqa: E402

ACTION = "/ga/gripper_cmd"
ROSOUT_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture(scope="module")
def sim():
    from rt2_ros.sim.sim_node import ServoNode, SimNode, SimRunner

    with RosHarness() as h:
        overrides = [
            Parameter("gripper_action.name", value=ACTION),
            Parameter("topics.joint_states", value="/ga/joint_states"),
            Parameter("topics.image", value="/ga/camera/image_raw"),
            Parameter("topics.ee_pose", value="/ga/ee_pose"),
            Parameter("topics.ground_truth", value="/ga/ground_truth"),
            Parameter("reset_service", value="/ga/reset"),
            Parameter("camera.rate_hz", value=2.0),
        ]
        s = SimNode(context=h.context, parameter_overrides=overrides)
        servo = ServoNode("servo_node", "/ga", context=h.context)
        runner = SimRunner(s, servo, "humble")
        h.add_node(s)
        h.add_node(servo)
        runner.start()
        probe = h.make_node("gripper_probe")
        js = Collector(probe, JointState, "/ga/joint_states", 10)
        assert js.wait_count(1, 15.0)
        yield h, runner, probe, js
        runner.stop()


def _send(probe, position, max_effort=40.0, timeout_s=15.0):
    """Send one goal; returns (accepted, status, result)."""
    from control_msgs.action import GripperCommand

    from rt2_ros.ros.action_client import ActionClient  # rclpy's loses replies under load (rclpy#1123)

    client = ActionClient(probe, GripperCommand, ACTION)
    try:
        assert client.wait_for_server(timeout_sec=15.0)
        goal = GripperCommand.Goal()
        goal.command.position, goal.command.max_effort = position, max_effort
        done = threading.Event()
        fut = client.send_goal_async(goal)
        fut.add_done_callback(lambda f: done.set())
        assert done.wait(timeout_s)
        handle = fut.result()
        if not handle.accepted:
            return False, None, None
        done.clear()
        rfut = handle.get_result_async()
        rfut.add_done_callback(lambda f: done.set())
        assert done.wait(timeout_s)
        res = rfut.result()
        return True, res.status, res.result
    finally:
        client.destroy()


def _finger(js) -> float:
    return js.messages[-1].position[7]


def _settled(js, n: int = 10, span_m: float = 2e-4, timeout_s: float = 30.0) -> bool:
    """Wait until the last ``n`` joint states (the sim publishes them at its rate, slower on a
    loaded machine) hold the finger within ``span_m``: it has stopped moving."""

    def still() -> bool:
        xs = [m.position[7] for m in js.messages[-n:]]
        return len(xs) == n and max(xs) - min(xs) < span_m

    return wait_until(still, timeout_s)


def _new_states(js, k: int = 10, timeout_s: float = 30.0) -> bool:
    """Wait for ``k`` more joint states (the sim's own clock moved on by k of its periods)."""
    n = len(js.messages)
    return js.wait_count(n + k, timeout_s)


def test_a_goal_moves_the_fingers_and_succeeds(sim):
    from action_msgs.msg import GoalStatus

    h, runner, probe, js = sim
    accepted, status, result = _send(probe, 0.0)
    assert accepted and status == GoalStatus.STATUS_SUCCEEDED and result.reached_goal and not result.stalled
    assert result.position == pytest.approx(0.0, abs=0.002) and _finger(js) < 0.003
    accepted, status, result = _send(probe, 0.04)
    assert accepted and status == GoalStatus.STATUS_SUCCEEDED and result.position == pytest.approx(0.04, abs=0.002)


@pytest.mark.parametrize("position, effort", [(0.08, 40.0), (-0.01, 40.0), (math.nan, 40.0), (0.02, math.inf)])
def test_bad_goals_are_rejected_and_the_gripper_holds(sim, position, effort):
    h, runner, probe, js = sim
    _send(probe, 0.04)
    assert _settled(js)  # a goal succeeds within goal_tolerance_m (2 mm): wait until the fingers stop
    before = _finger(js)
    rejected = runner.gripper_goals["rejected"]
    accepted, _, _ = _send(probe, position, effort)
    assert not accepted and runner.gripper_goals["rejected"] == rejected + 1
    assert _new_states(js)  # the simulation ran on after the rejection
    assert _finger(js) == pytest.approx(before, abs=0.001)


def test_a_stalled_goal_is_aborted(sim):
    from action_msgs.msg import GoalStatus

    h, runner, probe, js = sim
    _send(probe, 0.04)
    accepted, status, result = _send(probe, 0.0, max_effort=1e-6)  # too weak to move the fingers
    assert accepted and status == GoalStatus.STATUS_ABORTED
    assert result.stalled and not result.reached_goal and result.position > 0.03


def test_the_node_sends_goals_and_survives_rejected_and_aborted_ones(sim):
    """gripper.output: action against the sim: a goal the server rejects (open_position_m
    beyond the gripper's range) and one it aborts (max_effort too weak) are logged; the node
    keeps running the episode and the gripper stays where it was."""
    from rt2_ros.ros.conversions import import_rt2_msgs
    from rt2_ros.ros.node import Rt2Node

    h, runner, probe, js = sim
    _send(probe, 0.04)
    cfg = RT2Config()
    codec = make_codec(cfg.action)
    close, open_ = codec.encode([0, 0, 0, 0, 0, 0, 0.0]), codec.encode([0, 0, 0, 0, 0, 0, 1.0])
    node = Rt2Node(
        ScriptedTextPolicy(cfg, [close, open_]),
        node_name="rt2_node_gripper",
        context=h.context,
        overrides={
            "control.period_s": 0.1,
            "gripper.output": "action",
            "topics.gripper": ACTION,
            "gripper.open_position_m": 0.08,  # beyond the Panda's 0.04 m: rejected
            "gripper.max_effort_n": 1e-6,  # too weak to close: stalls, aborted
            "topics.image": "/gn/image",
            "topics.instruction": "/gn/instruction",
            "topics.episode": "/gn/episode",
            "topics.twist": "/gn/twist",
            "servo.namespace": "/gn/servo",
            "safety.require_ee_pose": False,  # no end-effector pose for this node: act without the box
        },
        cli_args=[
            "--ros-args",
            "-r",
            "/rt2/stop:=/gn/stop",
            "-r",
            "/rt2/e_stop:=/gn/e_stop",
            "-r",
            "/rt2/reset:=/gn/reset",
        ],
    )
    h.add_node(node)
    try:
        msgs = import_rt2_msgs()
        rosout = Collector(probe, Log, "/rosout", ROSOUT_QOS)
        episodes = Collector(probe, msgs.EpisodeStatus, "/gn/episode")
        cam = ImageStreamer(probe, "/gn/image", rate_hz=20.0)
        h.add_cleanup(cam.stop)
        pub = probe.create_publisher(String, "/gn/instruction", 10)
        assert wait_for_subscribers(pub) and wait_for_subscribers(cam.pub)
        assert wait_until(lambda: node.gripper._action.server_is_ready(), 15.0)
        pub.publish(String(data="hold the gripper"))
        assert episodes.wait_for(lambda m: m.state == msgs.EpisodeStatus.STATE_RUNNING, 10.0) is not None
        goals = node.gripper.goals
        assert wait_until(lambda: goals["rejected"] >= 1 and goals["aborted"] >= 1, 15.0), goals
        logged = lambda *w: [
            m.msg for m in rosout.messages if m.name == "rt2_node_gripper" and all(x in m.msg for x in w)
        ]  # noqa: E731
        # The decoded gripper values are bin centres: 0.998 (open) -> 0.0798 m, 0.002 -> 0.0002 m.
        assert wait_until(lambda: logged("goal 0.0798 m", "rejected by " + ACTION), 5.0)
        assert wait_until(lambda: logged("goal 0.0002 m", "aborted by " + ACTION, "stalled=True"), 5.0)
        # One goal per change of target, not one per step: nothing is retried.
        assert goals["sent"] == 2, goals
        assert _finger(js) > 0.035  # the fingers stayed open
        assert all(m.state != msgs.EpisodeStatus.STATE_FINISHED for m in episodes.messages)  # still running
        cam.stop()
    finally:
        h.remove_node(node)

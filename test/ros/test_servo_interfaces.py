"""The rt2 node against MoveIt Servo's interface of each generation, over real DDS.

``servo.distro: jazzy`` with moveit_msgs' real types, as on a Jazzy install: enable by
``~/switch_command_type`` (``moveit_msgs/srv/ServoCommandType``, TWIST) after un-pausing
with ``~/pause_servo`` (SetBool), halt on ``~/status`` (``moveit_msgs/msg/ServoStatus``)
codes 2, 5, 6. ``servo.distro: humble``: ``~/start_servo`` / ``~/pause_servo`` /
``~/unpause_servo`` (Trigger), status ``std_msgs/Int8`` with Humble's numbers (halt 2, 4, 5).
The Servo side is a small fake offering exactly those services and topics (upstream
``moveit_servo/src/servo_node.cpp``) and recording the calls.
"""

from __future__ import annotations

import time

import pytest
from geometry_msgs.msg import TwistStamped
from ros2_cli import REASON
from ros_helpers import (
    Collector,
    ImageStreamer,
    RosHarness,
    is_zero_twist,
    wait_for_publishers,
    wait_for_subscribers,
    wait_until,
)
from scripted_policy import ScriptedTextPolicy
from std_msgs.msg import Int8, String
from std_srvs.srv import SetBool, Trigger

from rt2_ros.action_tokenizer import make_codec
from rt2_ros.config import RT2Config
from rt2_ros.ros import servo_client
from rt2_ros.ros.conversions import import_rt2_msgs
from rt2_ros.ros.node import ZERO_BURST_S, Rt2Node
from rt2_ros.servo_interface import HUMBLE_CODE, CommandType, StatusCode

msgs = import_rt2_msgs()
RUNNING, FINISHED = msgs.EpisodeStatus.STATE_RUNNING, msgs.EpisodeStatus.STATE_FINISHED
CFG = RT2Config()
MOVE = make_codec(CFG.action).encode([0.01, 0, 0, 0, 0, 0, 1.0])


class FakeServo:
    """MoveIt Servo's ROS interface of one generation at ``/<name>``, recording calls."""

    def __init__(self, harness: RosHarness, name: str, distro: str):
        self.node = harness.make_node(name)
        self.distro = distro
        self.calls: list[tuple[str, object]] = []
        if distro == "jazzy":
            from moveit_msgs.msg import ServoStatus
            from moveit_msgs.srv import ServoCommandType

            self.node.create_service(SetBool, "~/pause_servo", self._record("pause_servo", lambda r: r.data))
            self.node.create_service(
                ServoCommandType, "~/switch_command_type", self._record("switch_command_type", lambda r: r.command_type)
            )
            self.status = self.node.create_publisher(ServoStatus, "~/status", 10)
            self._status_msg = lambda code: ServoStatus(code=int(code), message=code.name)
        else:
            for srv in ("start_servo", "pause_servo", "unpause_servo"):
                self.node.create_service(Trigger, f"~/{srv}", self._record(srv, lambda r: None))
            self.status = self.node.create_publisher(Int8, "~/status", 10)
            self._status_msg = lambda code: Int8(data=HUMBLE_CODE[code])

    def _record(self, name, arg):
        def cb(req, res):
            self.calls.append((name, arg(req)))
            res.success = True
            return res

        return cb

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]

    def publish_status(self, code: StatusCode) -> None:
        self.status.publish(self._status_msg(code))


@pytest.fixture(params=["jazzy", "humble"])
def rig(request):
    distro = request.param
    if distro == "jazzy" and not servo_client.HAVE_MOVEIT_MSGS:
        pytest.skip(REASON)
    ns = f"servo_{distro}"
    with RosHarness() as h:
        servo = FakeServo(h, ns, distro)
        node = h.add_node(
            Rt2Node(
                ScriptedTextPolicy(CFG, [MOVE]),
                context=h.context,
                overrides={
                    "control.period_s": 0.1,
                    "servo.namespace": "/" + ns,
                    "servo.distro": distro,
                    "topics.twist": f"/{ns}/delta_twist_cmds",
                    "safety.require_ee_pose": False,  # no end-effector pose in this rig: move without the box
                },
            )
        )
        probe = h.make_node("servo_probe")
        twists = Collector(probe, TwistStamped, f"/{ns}/delta_twist_cmds", 1000)
        episodes = Collector(probe, msgs.EpisodeStatus, "/rt2/episode")
        cam = ImageStreamer(probe, "/camera/image_raw", rate_hz=20.0)
        h.add_cleanup(cam.stop)
        instruction = probe.create_publisher(String, "/rt2/instruction", 10)
        assert wait_for_subscribers(instruction) and wait_for_subscribers(cam.pub)
        assert wait_for_publishers(twists.sub) and wait_for_publishers(episodes.sub)
        assert wait_until(lambda: all(c.service_is_ready() for c in node.servo._clients.values()), 15.0)
        assert wait_for_subscribers(servo.status)
        yield distro, servo, node, twists, episodes, instruction


def test_servo_enabled_halts_end_the_episode_and_servo_is_paused_after(rig):
    distro, servo, node, twists, episodes, instruction = rig
    assert node.servo.distro == distro
    instruction.publish(String(data="pick up the red block"))
    assert episodes.wait_for(lambda m: m.state == RUNNING, 10.0) is not None
    if distro == "jazzy":
        # Enabled with moveit_msgs/srv/ServoCommandType: TWIST.
        assert wait_until(lambda: ("switch_command_type", int(CommandType.TWIST)) in servo.calls, 5.0), servo.calls
    else:
        assert wait_until(lambda: "start_servo" in servo.names(), 5.0), servo.calls
    assert twists.wait_for(lambda m: not is_zero_twist(m), 5.0) is not None
    # Warnings (decelerating) keep it going; a halt code ends the episode as a fault.
    for code in (StatusCode.DECELERATE_FOR_APPROACHING_SINGULARITY, StatusCode.DECELERATE_FOR_COLLISION):
        servo.publish_status(code)
    time.sleep(0.3)
    assert all(m.state != FINISHED for m in episodes.messages)
    servo.publish_status(StatusCode.HALT_FOR_SINGULARITY)
    end = episodes.wait_for(lambda m: m.state == FINISHED, 5.0)
    assert end is not None and end.reason == "fault" and "HALT_FOR_SINGULARITY" in end.detail, end
    # Paused once the zero burst went out (Jazzy: SetBool true; Humble: Trigger).
    assert wait_until(lambda: "pause_servo" in servo.names(), ZERO_BURST_S + 3.0), servo.calls
    if distro == "jazzy":
        assert ("pause_servo", True) in servo.calls
    # The next episode un-pauses first, then switches to twists again.
    n = len(servo.calls)
    instruction.publish(String(data="push the blue block left"))
    expected = [("pause_servo", False), ("switch_command_type", 1)] if distro == "jazzy" else [("unpause_servo", None)]
    assert wait_until(lambda: servo.calls[n : n + len(expected)] == expected, 5.0), servo.calls


@pytest.mark.parametrize("code", [StatusCode.HALT_FOR_COLLISION, StatusCode.JOINT_BOUND])
def test_every_halt_code_is_a_fault(rig, code):
    distro, servo, node, twists, episodes, instruction = rig
    instruction.publish(String(data="move"))
    assert episodes.wait_for(lambda m: m.state == RUNNING, 10.0) is not None
    assert twists.wait_for(lambda m: not is_zero_twist(m), 5.0) is not None
    servo.publish_status(code)
    end = episodes.wait_for(lambda m: m.state == FINISHED, 5.0)
    assert end is not None and end.reason == "fault" and code.name in end.detail, end

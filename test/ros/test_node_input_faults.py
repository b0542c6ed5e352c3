"""Issue 21 over real DDS: a stop sticks, instructions are decoded strictly, a backend that
cannot be reached ends the episode as a fault."""

from __future__ import annotations

import struct

import pytest
from rcl_interfaces.msg import Log
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_helpers import (
    Collector,
    ImageStreamer,
    RosHarness,
    wait_for_publishers,
    wait_for_subscribers,
    wait_until,
)
from scripted_policy import ScriptedTextPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from rt2_ros.action_tokenizer import make_codec
from rt2_ros.config import RT2Config
from rt2_ros.ros.conversions import import_rt2_msgs
from rt2_ros.ros.node import Rt2Node

msgs = import_rt2_msgs()
RUNNING, FINISHED = msgs.EpisodeStatus.STATE_RUNNING, msgs.EpisodeStatus.STATE_FINISHED
CFG = RT2Config()
MOVE = make_codec(CFG.action).encode([0.01, 0, 0, 0, 0, 0, 1.0])
ROSOUT_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
OVERRIDES = {"control.period_s": 0.1, "safety.require_ee_pose": False}
#: Waiting for something the node does within milliseconds; generous for load 10 [s].
WAIT_S = 15.0


def cdr_string(payload: bytes) -> bytes:
    """A serialised std_msgs/String holding ``payload`` as is (CDR little endian, the NUL
    terminator counted in the length), as a publisher in another language could send it."""
    return b"\x00\x01\x00\x00" + struct.pack("<I", len(payload) + 1) + payload + b"\x00"


class Rig:
    def __init__(self, h: RosHarness, name: str, overrides=None, policy=None):
        self.h = h
        self.node = h.add_node(
            Rt2Node(policy, node_name=name, context=h.context, overrides={**OVERRIDES, **(overrides or {})})
        )
        p = self.probe = h.make_node(f"{name}_probe")
        self.episodes = Collector(p, msgs.EpisodeStatus, "/rt2/episode")
        self.rosout = Collector(p, Log, "/rosout", ROSOUT_QOS)
        self.cam = ImageStreamer(p, "/camera/image_raw", rate_hz=20.0)
        h.add_cleanup(self.cam.stop)
        self.instruction = p.create_publisher(String, "/rt2/instruction", 10)
        assert wait_for_subscribers(self.instruction) and wait_for_subscribers(self.cam.pub)
        assert wait_for_publishers(self.episodes.sub)

    def logged(self, *needles):
        return [
            m.msg for m in self.rosout.messages if m.name == self.node.get_name() and all(x in m.msg for x in needles)
        ]


@pytest.fixture
def rig():
    with RosHarness() as h:
        yield Rig(h, "rt2_node_if", policy=ScriptedTextPolicy(CFG, [MOVE]))


class PausableSpin:
    """Spins one node on its own executor in the harness's context (so on the same DDS
    participant as the probes); :meth:`pause` returns once no spin is in progress, and
    until :meth:`resume` nothing of the node's is taken from DDS (as a busy executor)."""

    def __init__(self, h: RosHarness, node):
        import threading

        from rclpy.executors import MultiThreadedExecutor

        self.node = node
        self.ex = MultiThreadedExecutor(num_threads=4, context=h.context)
        self.ex.add_node(node)
        self._pause, self._paused, self._stop = threading.Event(), threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        h.add_cleanup(self.close)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._pause.is_set():
                self._paused.set()
                self._stop.wait(0.01)
                continue
            self._paused.clear()
            self.ex.spin_once(timeout_sec=0.05)

    def pause(self) -> None:
        self._pause.set()
        assert self._paused.wait(WAIT_S)

    def resume(self) -> None:
        self._pause.clear()

    def close(self) -> None:
        self.node.shutdown()
        self._stop.set()
        self._thread.join(WAIT_S)
        self.ex.shutdown(timeout_sec=5.0)
        self.node.destroy_node()


def test_an_instruction_that_waited_while_a_stop_was_served_never_starts_an_episode():
    """The node stops spinning (as a busy executor would), an instruction arrives over DDS and
    waits in the reader's queue, /rt2/stop is served, the node spins again: the instruction
    received before the stop is dropped (logged), one sent after it starts an episode."""
    with RosHarness() as h:
        node = Rt2Node(
            ScriptedTextPolicy(CFG, [MOVE]), node_name="rt2_node_stop", context=h.context, overrides=OVERRIDES
        )
        spin = PausableSpin(h, node)
        probe = h.make_node("rt2_node_stop_probe")
        episodes = Collector(probe, msgs.EpisodeStatus, "/rt2/episode")
        rosout = Collector(probe, Log, "/rosout", ROSOUT_QOS)
        seen = Collector(probe, String, "/rt2/instruction")
        cam = ImageStreamer(probe, "/camera/image_raw", rate_hz=20.0)
        h.add_cleanup(cam.stop)
        instruction = probe.create_publisher(String, "/rt2/instruction", 10)
        assert wait_for_subscribers(instruction, 2) and wait_for_subscribers(cam.pub)
        assert wait_for_publishers(episodes.sub)
        instruction.publish(String(data="pick up the red block"))
        assert episodes.wait_for(lambda m: m.state == RUNNING, WAIT_S) is not None
        spin.pause()
        try:
            instruction.publish(String(data="push the blue block"))
            # The probe's reader shares the node's DDS participant (one per context): once the
            # probe has it, the sample sits in the node's reader too, untaken.
            assert seen.wait_count(2, WAIT_S)
            res = node._srv_stop(Trigger.Request(), Trigger.Response())  # /rt2/stop's handler, as the executor runs it
            assert res.success and "cancelled" in res.message
        finally:
            spin.resume()
        logged = lambda *w: [m.msg for m in rosout.messages if m.name == "rt2_node_stop" and all(x in m.msg for x in w)]  # noqa: E731
        assert wait_until(lambda: logged("push the blue block", "received before the latest stop"), WAIT_S)
        assert [m.state for m in episodes.messages] == [RUNNING, FINISHED]
        assert episodes.messages[-1].reason == "cancelled" and node.controller.dropped_instructions == 1
        instruction.publish(String(data="push the blue block"))  # sent after the stop: runs
        assert episodes.wait_for(lambda m: m.state == RUNNING and m.instruction == "push the blue block", WAIT_S)


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"pick up the \xff block", "not valid UTF-8 (byte 0xff at byte 12"),
        (b"pick up the red block\x00 and throw it", "NUL byte at byte 21"),
        (b"pick up the \xe2\x80\xae block", "U+202E, a bidi control"),
        (b"pick up the r\xe2\x80\x8bed block", "U+200B, a zero-width character"),
    ],
)
def test_instructions_with_invalid_utf8_nul_bidi_or_zero_width_are_refused_with_the_reason(rig, payload, reason):
    rig.instruction.publish(cdr_string(payload))  # serialised: rclpy would not let us send these bytes
    assert wait_until(lambda: rig.logged("rejected instruction", reason), WAIT_S), [
        m.msg for m in rig.rosout.messages if m.name == "rt2_node_if"
    ]
    assert not any(m.state == RUNNING for m in rig.episodes.messages)
    assert rig.node.controller.episode.episode_id == 0


def test_a_remote_backend_that_cannot_reach_its_server_ends_the_episode_as_a_fault():
    with RosHarness() as h:
        rig = Rig(
            h,
            "rt2_node_dead_server",
            overrides={
                "policy.backend": "remote",
                "policy.server_url": "ws://127.0.0.1:1",  # nothing listens on port 1
                "policy.timeout_s": 0.2,
                "policy.max_failed_steps": 5,
            },
        )
        rig.instruction.publish(String(data="pick up the red block"))
        end = rig.episodes.wait_for(lambda m: m.state == FINISHED, 60.0)
        assert end is not None and end.reason == "fault", end
        assert "failed 5 steps in a row" in end.detail and "127.0.0.1:1" in end.detail
        assert end.step < 5  # the failed steps were not actions

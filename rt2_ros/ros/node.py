"""``rt2_node``: the rclpy shell around :class:`rt2_ros.controller.Controller`.

The node converts messages, calls the controller, and publishes what it returns; the
policy, the episode logic and the safety envelope live in the ROS-free core.

Threads (callbacks on a ``MultiThreadedExecutor``, see :func:`main`):

* **servo stream** (own thread, :class:`~rt2_ros.periodic.PeriodicThread`, wall clock, not
  an executor timer): twists on ``topics.twist`` while an episode runs and ``ZERO_BURST_S``
  after a stop (:class:`~rt2_ros.servo_stream.ServoStream`); nothing else (TF, markers: a timer).
* **control worker** (a plain thread): once per ``control.period_s`` (:class:`~rt2_ros.servo_stream.ControlWorker`)
  :meth:`Controller.step` runs the policy on the newest image; the model itself runs in
  a child process by default (:mod:`rt2_ros.remote.child`), so it never holds this GIL.
  With action chunks the worker infers when :meth:`Controller.inference_due` says the
  queue runs low, while the servo stream executes the queued actions.
* **inputs**: camera, instruction and end-effector pose (``PoseStamped``) each in a
  mutually exclusive group of its own with a reader history of one (a flood on one
  stream holds at most one executor thread and queues nothing); TF, Servo status, the
  services ``/rt2/stop``, ``/rt2/e_stop``, ``/rt2/reset`` in one reentrant group.
* **log** (:class:`~rt2_ros.throttle.LogThread`): writes the node's lines; callers only queue them.

Outputs besides twists: ``RT2Action`` per step, ``EpisodeStatus`` per transition, the gripper
(:mod:`~rt2_ros.ros.gripper`), markers and an annotated image (:mod:`~rt2_ros.ros.markers`).
Parameters: every leaf of :class:`rt2_ros.config.RT2Config`, read-only (:mod:`~rt2_ros.ros.params`).
Run: ``python -m rt2_ros.ros.node --ros-args --params-file config/rt2.yaml -p policy.model_path:=DIR``.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
import time
from typing import Any

from geometry_msgs.msg import TwistStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from rt2_ros.config import ConfigError, with_model_settings
from rt2_ros.controller import Controller, StepOutcome
from rt2_ros.episode import EndReason, EpisodeState
from rt2_ros.motion import Twist
from rt2_ros.periodic import PeriodicThread
from rt2_ros.policies.base import Policy
from rt2_ros.ros.callback_groups import ThrottledCallbackGroup
from rt2_ros.ros.camera import ImageInput
from rt2_ros.ros.conversions import (
    import_rt2_msgs,
    outcome_to_action_msg,
    stamp_to_s,
    string_from_cdr,
    transition_to_episode_msg,
    twist_to_msg,
)
from rt2_ros.ros.ee_pose import EePoseInput
from rt2_ros.ros.entry import NodeSet, run_nodes
from rt2_ros.ros.gripper import GripperOutput
from rt2_ros.ros.homing import Homing
from rt2_ros.ros.joint_jog import HAVE_JOINT_JOG, JointJog, joint_jog_msg
from rt2_ros.ros.markers import NodeVisuals
from rt2_ros.ros.params import declare_config_parameters, refuse_parameter_changes
from rt2_ros.ros.pylog import bridge_python_logging
from rt2_ros.ros.servo_client import ServoClient
from rt2_ros.servo_interface import CommandType
from rt2_ros.servo_stream import GIL_SWITCH_INTERVAL_S, ZERO_BURST_S, ControlWorker, ServoStream
from rt2_ros.throttle import InputLog, LogThread

__all__ = [
    "Rt2Node",
    "main",
    "STOP_SERVICE",
    "ESTOP_SERVICE",
    "RESET_SERVICE",
    "ZERO_BURST_S",
    "GIL_SWITCH_INTERVAL_S",
    "INSTRUCTION_MIN_INTERVAL_S",
    "POSE_MIN_INTERVAL_S",
]

#: Services (absolute names, remappable with ``-r /rt2/stop:=...``).
STOP_SERVICE, ESTOP_SERVICE, RESET_SERVICE = "/rt2/stop", "/rt2/e_stop", "/rt2/reset"
#: An instruction callback starts at most this often [s] (100 per s: ten times
#: ``control.max_instruction_rate_hz``'s default, so that limit still sees and counts a
#: flood); the reader keeps the newest instruction meanwhile.
INSTRUCTION_MIN_INTERVAL_S = 0.01
#: A ``PoseStamped`` callback starts at most this often [s] (200 per s: twice a 100 Hz
#: arm driver; the servo tick reads the newest pose at 50 Hz).
POSE_MIN_INTERVAL_S = 0.005


class Rt2Node(Node):
    """The rt2 node (see the module doc for topics, services and threads).

    Args:
        policy: the policy to run; None builds one from the parameters with
            :func:`rt2_ros.factory.make_policy` (tests inject a scripted one).
        node_name: ROS node name.
        overrides: parameter values by dotted name, e.g. ``{"control.period_s": 0.1}``
            (added to ``parameter_overrides``).
        start_worker: start the control worker thread (benchmarks drive
            :meth:`run_step` themselves when False).
        **node_kwargs: passed to :class:`rclpy.node.Node` (``context``, ``cli_args``, ...).

    Raises:
        ConfigError: parameters of the wrong type or with invalid values (all named).
        ImportError: ``rt2_ros.msg`` was not built (``colcon build``).
        ValueError, OSError, PolicyError: the policy could not be built.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        node_name: str = "rt2_node",
        overrides: dict[str, Any] | None = None,
        start_worker: bool = True,
        **node_kwargs,
    ):
        if overrides:
            extra = [Parameter(k, value=v) for k, v in overrides.items()]
            node_kwargs["parameter_overrides"] = list(node_kwargs.get("parameter_overrides") or []) + extra
        super().__init__(node_name, **node_kwargs)
        try:
            self._setup(policy, start_worker)
        except BaseException:
            self.destroy_node()  # a half-built node must not linger in the graph (nor its policy child)
            self._close_policy()
            raise

    def _setup(self, policy: Policy | None, start_worker: bool) -> None:
        self._msgs = import_rt2_msgs()
        cfg, from_model = with_model_settings(declare_config_parameters(self))
        self.cfg = cfg
        refuse_parameter_changes(self, "rt2_node")
        # Lines are written on a thread of their own (rclpy's logger is slow and gives the GIL
        # away many times per line): the servo tick and locked sections only queue them.
        self.log = LogThread(self.get_logger())
        self.input_log = InputLog(self.log, period_s=1.0)
        self._reject, self._warn_once = self.input_log.reject, self.input_log.warn_once
        self.log.info(
            f"rt2_node: control {1 / cfg.control.period_s:.1f} Hz, servo {cfg.control.servo_rate_hz:.0f} Hz, "
            f"twists on {cfg.topics.twist} in {cfg.frames.command_frame}"
            + (f"; the model's codec settings (rt2_ros_policy.yaml): {', '.join(from_model)}" if from_model else "")
        )
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # (docs/faults.md: the servo stream under input traffic)
        self._owns_policy = policy is None
        if policy is None:
            from rt2_ros.factory import make_policy

            policy = make_policy(cfg)
        self.policy = policy
        self.controller = Controller(cfg, policy, now_fn=self.now_s)

        self._pub_lock = threading.RLock()
        self._stream = ServoStream()

        self._input_group = g = ReentrantCallbackGroup()
        t = cfg.topics

        # outputs
        self.twist_pub = self.create_publisher(TwistStamped, t.twist, QoSProfile(depth=10))
        self.joint_pub = None
        if self.controller.joint_mode:  # joint-space policy: JointJog to Servo instead of twists
            if not HAVE_JOINT_JOG:
                raise RuntimeError(
                    "the policy answers joint velocities, but control_msgs (JointJog) is not importable: "
                    "install ros-$ROS_DISTRO-control-msgs (here: the ROS 2 tools kit)"
                )
            self.joint_pub = self.create_publisher(JointJog, t.joint_jog, QoSProfile(depth=10))
            self.log.info(f"joint-space policy: JointJog on {t.joint_jog}, joint states from {t.joint_states}")
        self.action_pub = self.create_publisher(self._msgs.RT2Action, t.action, 10)
        self.episode_pub = self.create_publisher(self._msgs.EpisodeStatus, t.episode, QoSProfile(depth=20))
        self.visuals = NodeVisuals(self, cfg, self.controller, self._warn_once)
        self.marker_pub, self.annotated_pub = self.visuals.marker_pub, self.visuals.annotated_pub
        self.gripper = GripperOutput(self, cfg.gripper, t.gripper, self._warn_once, g) if cfg.gripper.enabled else None

        # inputs: each stream in a mutually exclusive group of its own and with a reader history
        # of one, so at most one callback per stream is queued or running and a flood (1 kHz
        # instructions, a 1 kHz pose) can neither build a backlog nor hold every executor
        # thread: the services and the other inputs always find one (docs/faults.md).
        # The instruction and the pose are taken at most every INSTRUCTION_MIN_INTERVAL_S /
        # POSE_MIN_INTERVAL_S (the newest one): a 1 kHz flood no longer keeps the executor busy.
        cam_group = MutuallyExclusiveCallbackGroup()
        self.camera = ImageInput(self, t, self.controller, self.now_s, self._reject, self._warn_once, cam_group)
        # raw: the text is decoded strictly here (conversions.string_from_cdr), not by rclpy
        instruction_group = ThrottledCallbackGroup(INSTRUCTION_MIN_INTERVAL_S)
        self.create_subscription(
            String, t.instruction, self._on_instruction, 1, callback_group=instruction_group, raw=True
        )
        pose_group = ThrottledCallbackGroup(POSE_MIN_INTERVAL_S)
        self.ee_pose = EePoseInput(self, cfg, self.controller, self.now_s, self._reject, self._warn_once, pose_group)
        self.servo = ServoClient(self, cfg.servo, self._on_servo_halt, callback_group=g)
        if self.controller.joint_mode:
            self.servo.command_type = CommandType.JOINT_JOG
        if self.controller.joint_mode or getattr(policy, "uses_state", False):
            self.create_subscription(JointState, t.joint_states, self._on_joint_state, 10, callback_group=g)
        self.create_service(Trigger, STOP_SERVICE, self._srv_stop, callback_group=g)
        self.create_service(SetBool, ESTOP_SERVICE, self._srv_estop, callback_group=g)
        self.create_service(Trigger, RESET_SERVICE, self._srv_reset, callback_group=g)
        self.homing = Homing(self, cfg.reset, callback_group=g)

        self._last_cmd, period = None, 1.0 / cfg.control.servo_rate_hz
        tick_error = lambda e: self._warn_once("tick", f"servo tick: {e!r}")  # noqa: E731 - once; ticks go on
        self._servo_loop = PeriodicThread(period, self._servo_tick, on_error=tick_error)
        self._side_timer = self.create_timer(period, self._side_tick, callback_group=g)
        self._worker = ControlWorker(
            self.controller, cfg.control.period_s, self.run_step, self.now_s, self._worker_error
        )
        self._servo_loop.start()
        if start_worker:
            self._worker.start()

    def destroy_node(self) -> None:
        """Stop the servo stream's thread, then destroy the node (rclpy)."""
        if hasattr(self, "_servo_loop"):
            self._servo_loop.stop()
        if isinstance(getattr(self, "log", None), LogThread):
            self.log.flush(1.0)
        super().destroy_node()

    # -- helpers -------------------------------------------------------------------------
    def now_s(self) -> float:
        """Node clock (ROS time under ``use_sim_time``), seconds."""
        return self.get_clock().now().nanoseconds * 1e-9

    @property
    def rejections(self) -> int:
        """Count of rejected inputs/outputs (diagnostics)."""
        return self.input_log.rejections

    # -- publishing --------------------------------------------------------------------------
    def _publish_twist(self, twist: Twist, stamp) -> None:
        if self.joint_pub is not None:  # joint mode: the stop is a zero JointJog
            names = self.cfg.servo.joint_names
            self.joint_pub.publish(joint_jog_msg(names, [0.0] * len(names), stamp))
            return
        self.twist_pub.publish(twist_to_msg(twist, stamp, self.cfg.frames.command_frame))

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            self.controller.on_joint_state(
                list(msg.name), list(msg.position), stamp_to_s(msg.header.stamp) or self.now_s(), self.now_s()
            )
        except ValueError as e:
            self._reject("joint_state", "joint state", str(e))

    def _handle_transitions(self) -> None:
        """Publish every episode transition; a stop sends a zero twist at once (a
        preemption leaves it to the next servo tick: ServoStream.on_stop) and arms the
        zero burst; a start brings Servo up. Thread-safe; without transitions it takes
        no lock (input callbacks call it at their rate)."""
        if not self.controller.has_transitions:
            return
        with self._pub_lock:
            ts = self.controller.drain_transitions()
            if not ts:
                return
            stamp = (now := self.get_clock().now()).to_msg()
            for t in ts:
                self.episode_pub.publish(transition_to_episode_msg(t, stamp))
                if t.state is EpisodeState.RUNNING:
                    self.log.info(f"episode {t.episode_id} started: {t.instruction!r}")
                    self._stream.on_start()
                    self.servo.enable()
                    self._worker.wake()
                else:
                    reason = t.reason.value if t.reason is not None else "?"
                    self.log.info(
                        f"episode {t.episode_id} finished: {reason} after {t.step} steps"
                        f"{' (' + t.detail + ')' if t.detail else ''}"
                    )
                if t.stop:
                    preempted = t.reason is EndReason.PREEMPTED
                    if self._stream.on_stop(now.nanoseconds * 1e-9, self.controller.running, preempted):
                        self._publish_twist(Twist.zero(), stamp)

    # -- servo stream: the twist first, nothing slow (TF and markers are on _side_tick) --------
    def _servo_tick(self) -> None:
        with self._pub_lock:
            now = self.get_clock().now()
            now_s = now.nanoseconds * 1e-9
            self._last_cmd = cmd = self.controller.servo_command(now_s)
            joint_cmd = self.controller.joint_command(now_s) if self.joint_pub is not None else None
            tick = self._stream.tick(now_s, self.controller.running)
            if tick.publish and joint_cmd is not None:
                self.joint_pub.publish(joint_jog_msg(joint_cmd.names, joint_cmd.velocities, now.to_msg()))
            elif tick.publish:
                self._publish_twist(cmd.twist, now.to_msg())
            elif tick.pause_servo:
                self.servo.pause()
            if self.controller.chunked:  # chunks: each executed action's gripper command
                for x in self.controller.drain_gripper_commands(now_s):
                    if self.gripper is not None:
                        self.gripper.send(x)
            self._handle_transitions()

    def _side_tick(self) -> None:  # TF and markers: on the input group, beside the servo timer
        now_s = self.now_s()
        self.ee_pose.update_from_tf(now_s)
        cmd = self._last_cmd
        if cmd is not None and self._stream.markers_due(now_s, self.controller.running):
            self.visuals.publish_markers(self.ee_pose.anchor, cmd.twist, self.get_clock().now().to_msg(), cmd.stop)

    # -- control worker (rt2_ros.servo_stream.ControlWorker) ----------------------------------
    def _worker_error(self, e: Exception) -> None:
        self.log.error(f"control step failed: {type(e).__name__}: {e}")
        self.controller.fault(f"internal error: {e}", self.now_s())
        self._handle_transitions()

    def run_step(self, now_s: float) -> StepOutcome | None:
        """One control step at ``now_s`` (s, node clock) and its publications."""
        outcome = self.controller.step(now_s)
        if outcome is not None:
            self._publish_outcome(outcome)
        self._handle_transitions()
        return outcome

    @property
    def last_outcome(self) -> StepOutcome | None:
        """The newest control step's outcome (None before the first)."""
        return self.visuals.last_outcome

    def _publish_outcome(self, o: StepOutcome) -> None:
        self.visuals.last_outcome = o
        stamp = self.get_clock().now().to_msg()
        self.action_pub.publish(outcome_to_action_msg(o, stamp, self.cfg.frames.command_frame))
        if o.rejected:
            quiet = o.result is None and o.latency_ms == 0.0 and o.transitions and not self.controller.running
            if quiet or o.rejected.startswith("episode changed"):
                self.log.info(f"step: {o.rejected}")
            else:
                self._reject(
                    "step",
                    f"step of episode {o.episode_id}",
                    o.rejected + (f" (model output {o.result.text[:80]!r})" if o.result is not None else ""),
                )
        if o.gripper is not None and self.gripper is not None:  # not after a stop, e-stop or new instruction
            x = o.gripper
            self.controller.send_gripper_if_allowed(o.episode_id, self.now_s(), lambda: self.gripper.send(x))
        self.visuals.publish_annotated(self.camera.latest, o)

    # -- inputs ----------------------------------------------------------------------------------
    def _on_instruction(self, raw: bytes, info) -> None:
        """An instruction, serialised (decoded strictly: invalid UTF-8 and NUL bytes are
        refused, not replaced or cut); ``info`` (rclpy's message info) gives its DDS
        reception time, so one that waited in a queue while a stop was served never starts
        an episode."""
        try:
            text = string_from_cdr(raw)
        except ValueError as e:
            self._reject("instruction", "instruction", str(e))
            return
        received_ns = (info.get("received_timestamp") if isinstance(info, dict) else None) or time.time_ns()
        if self.cfg.reset.home_before_episode and text.strip():
            ok, why = self.reset_robot(mark_ns=received_ns)
            if not ok:
                self._reject(
                    "instruction", "instruction", f"going home before the episode failed: {why}", throttle=False
                )
                return
        try:
            self.controller.on_instruction(text, self.now_s(), received_ns)
        except ValueError as e:  # nothing changed: spam leaves here, without the publication lock
            self._reject("instruction", f"instruction {text[:60]!r}", str(e))  # throttled: spam must not flood
            return
        self._handle_transitions()

    def _on_servo_halt(self, detail: str) -> None:
        if self.controller.running:
            self.log.warning(detail)
            self.controller.fault(detail, self.now_s())
            self._handle_transitions()

    # -- services --------------------------------------------------------------------------------
    def _srv_stop(self, request, response):
        t = self.controller.cancel(self.now_s(), time.time_ns())
        self._handle_transitions()
        response.success = True
        response.message = (
            f"episode {t.episode_id} cancelled after {t.step} steps" if t is not None else "no episode was running"
        )
        return response

    def _srv_estop(self, request, response):
        engaged = bool(request.data)
        t = self.controller.set_estop(engaged, self.now_s(), time.time_ns())
        self._handle_transitions()
        if engaged:
            with self._pub_lock:  # a stop even when idle
                stamp = self.get_clock().now()
                self._publish_twist(Twist.zero(), stamp.to_msg())
                self._stream.on_estop(stamp.nanoseconds * 1e-9)
            self.log.warning("emergency stop ENGAGED" + (f" (episode {t.episode_id} ended)" if t else ""))
            response.message = "emergency stop engaged; call again with data: false to clear it"
        else:
            self.log.info("emergency stop cleared")
            response.message = "emergency stop cleared"
        response.success = True
        return response

    def _srv_reset(self, request, response):
        response.success, response.message = self.reset_robot()
        return response

    def reset_robot(self, mark_ns: int | None = None) -> tuple[bool, str]:
        """Cancel the running episode and bring the robot home (:class:`rt2_ros.ros.homing.Homing`).
        Instructions received before ``mark_ns`` (ns, ``time.time_ns``; default now) are
        dropped. Returns ``(success, message)``; never raises."""
        if self.controller.estop_engaged:
            return False, "the emergency stop is engaged; clear it (/rt2/e_stop false) before a reset"
        if self.controller.cancel(self.now_s(), mark_ns) is not None:
            self._handle_transitions()
        return self.homing.home()

    # -- shutdown --------------------------------------------------------------------------------
    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Stop the worker, end the episode, publish the zero twist (call before
        ``destroy_node``; the context must still be valid)."""
        self._servo_loop.stop()
        self._side_timer.cancel()
        self._worker.stop(timeout_s)
        try:
            self.controller.cancel(self.now_s())
            self._handle_transitions()
            with self._pub_lock:
                self._publish_twist(Twist.zero(), self.get_clock().now().to_msg())
        except Exception as e:  # noqa: BLE001 - context already gone: nothing left to tell
            self.log.debug(f"final zero twist not sent: {e}")
        self._close_policy()
        self.log.flush(timeout_s)

    def _close_policy(self) -> None:
        if getattr(self, "_owns_policy", False) and getattr(self, "policy", None) is not None:
            with contextlib.suppress(Exception):  # noqa: BLE001 - stopping anyway
                self.policy.close()


# -- entry point ---------------------------------------------------------------------------
#: Start-up failures of main(): (exceptions, exit code, log line).
START_ERRORS = [
    ((ConfigError,), 2, str),
    ((ImportError, ValueError, OSError, RuntimeError), 1, lambda e: f"cannot start rt2_node: {type(e).__name__}: {e}"),
]


def main(argv: list[str] | None = None, policy: Policy | None = None) -> int:
    """Run the node until Ctrl-C / SIGTERM; returns the process exit code.

    ``argv`` defaults to ``sys.argv`` (ROS arguments after ``--ros-args``). Exit codes:
    0 clean shutdown, 1 the policy could not be built, 2 invalid parameters.
    """
    bridge_python_logging()  # the policy child's output and the remote client's lines

    def build(ns: NodeSet) -> None:
        node = ns.add(Rt2Node(policy=policy))
        pub = (
            f"ros2 topic pub --once {node.cfg.topics.instruction} std_msgs/msg/String \"data: 'pick up the red block'\""
        )
        # Everything built so far (rclpy, numpy, the policy's client) lives as long as the process:
        # out of the collector's sight, a full collection no longer walks it (one took 106 ms
        # at load 2.5 with 1 kHz input traffic, a servo stream gap; docs/faults.md).
        ns.on_start.append(gc.freeze)
        ns.on_start.append(lambda: node.log.info(f"ready: send an instruction, e.g. {pub}"))
        # Let the last zero twist leave before the participant goes.
        ns.on_stop += [node.shutdown, lambda: time.sleep(0.05)]

    return run_nodes("rt2_node", build, argv=argv, num_threads=4, start_errors=START_ERRORS)


if __name__ == "__main__":
    sys.exit(main())

"""``rt2_node``: the rclpy shell around :class:`rt2_ros.controller.Controller`.

The node converts messages, calls the controller, and publishes what it returns; the
policy, the episode logic and the safety envelope live in the ROS-free core.

Threads (``MultiThreadedExecutor``, see :func:`main`):

* **servo timer** (own mutually exclusive callback group, ``control.servo_rate_hz``):
  :meth:`Controller.servo_command` -> ``geometry_msgs/TwistStamped`` on
  ``topics.twist``, stamped with the node clock (``use_sim_time`` works), frame_id =
  ``frames.command_frame``. Published while an episode runs, plus
  :data:`ZERO_BURST_S` of zero twists after every stop, then quiet (MoveIt Servo
  treats a silent stream as stale and halts anyway).
* **control worker** (a plain thread, not an executor callback): once per
  ``control.period_s`` :meth:`Controller.step` runs the policy on the newest image.
  A slow model therefore never delays the servo timer.
* **inputs** (reentrant group): camera (``sensor_msgs/Image``, optional
  ``CompressedImage``; sensor-data QoS), instruction (``std_msgs/String``),
  end-effector pose (TF when ``tf2_ros`` is importable, else ``PoseStamped``),
  MoveIt Servo status, and the services ``/rt2/stop`` (Trigger), ``/rt2/e_stop``
  (SetBool), ``/rt2/reset`` (Trigger).

Outputs besides twists: ``rt2_ros/RT2Action`` per control step, ``rt2_ros/EpisodeStatus``
per episode transition, the gripper command, ``visualization_msgs/MarkerArray`` and an
annotated camera image. Parameters: every leaf of :class:`rt2_ros.config.RT2Config`,
declared typed, with ranges and descriptions, read-only (validated once at start-up).

Run without ``ros2 launch``::

    python -m rt2_ros.node --ros-args --params-file config/rt2.yaml -p policy.model_path:=/path/to/model
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
import typing
from typing import Any

import numpy as np
import rclpy
import rclpy.exceptions
from geometry_msgs.msg import PoseStamped, TwistStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float64, String
from std_srvs.srv import SetBool, Trigger
from visualization_msgs.msg import MarkerArray

from rt2_ros.config import ConfigError, RT2Config, config_from_flat, config_to_flat, flat_fields
from rt2_ros.controller import Controller, StepOutcome
from rt2_ros.episode import EpisodeState
from rt2_ros.motion import Twist
from rt2_ros.policies.base import Policy
from rt2_ros.ros_conversions import (
    compressed_msg_to_rgb,
    image_msg_to_rgb,
    import_rt2_msgs,
    outcome_to_action_msg,
    quaternion_to_matrix,
    rgb_to_image_msg,
    stamp_to_s,
    transition_to_episode_msg,
    twist_to_msg,
)
from rt2_ros.servo_client import ServoClient
from rt2_ros.visualization import MarkerAnchor, draw_overlay, make_marker_array, status_lines

__all__ = [
    "Rt2Node",
    "main",
    "declare_config_parameters",
    "ZERO_BURST_S",
    "STOP_SERVICE",
    "ESTOP_SERVICE",
    "RESET_SERVICE",
    "GIL_SWITCH_INTERVAL_S",
]

#: Zero twists keep going out for this long after every stop, then the stream goes quiet [s].
ZERO_BURST_S = 0.5
#: Markers are published at most this often [s].
MARKER_PERIOD_S = 0.1
#: Services (absolute names, remappable with ``-r /rt2/stop:=...``).
STOP_SERVICE, ESTOP_SERVICE, RESET_SERVICE = "/rt2/stop", "/rt2/e_stop", "/rt2/reset"
#: Time allowed for the fallback reset service to answer [s].
RESET_TIMEOUT_S = 60.0
#: Time allowed for DDS to discover the fallback reset service [s] (first discovery
#: can take ~3 s on loopback here).
RESET_DISCOVERY_TIMEOUT_S = 5.0
#: Python's GIL switch interval in the node process [s] (default 0.005). A model's
#: Python-side generate loop holds the GIL between short torch calls; with 1 ms the
#: servo timer thread gets it back sooner (benchmarks/bench_node.py, tiny model on a
#: loaded 2-core machine: p99 servo period 53-69 ms instead of 131-161 ms, max
#: 97-123 ms instead of 546-604 ms).
GIL_SWITCH_INTERVAL_S = 0.001

try:  # pragma: no cover - tf2_ros is not installable on the project's machines
    import tf2_ros  # type: ignore

    HAVE_TF2 = True
except ImportError:
    tf2_ros = None
    HAVE_TF2 = False

try:  # pragma: no cover - control_msgs is not installable here
    from control_msgs.action import GripperCommand  # type: ignore

    HAVE_GRIPPER_ACTION = True
except ImportError:
    GripperCommand = None
    HAVE_GRIPPER_ACTION = False


def _moveit_py():
    """``moveit.planning.MoveItPy`` or None when moveit_py is not importable."""
    try:  # pragma: no cover - moveit_py is not installable here
        from moveit.planning import MoveItPy  # type: ignore

        return MoveItPy
    except ImportError:
        return None


# -- parameters --------------------------------------------------------------------------
def _ros_type(annotation) -> tuple[int, str]:
    """(ParameterType, constraint text) for a config field annotation."""
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return ParameterType.PARAMETER_BOOL, ""
    if annotation is int:
        return ParameterType.PARAMETER_INTEGER, ""
    if annotation is float:
        return ParameterType.PARAMETER_DOUBLE, ""
    if annotation is str:
        return ParameterType.PARAMETER_STRING, ""
    if origin is typing.Literal:
        return ParameterType.PARAMETER_STRING, "one of: " + ", ".join(map(str, typing.get_args(annotation)))
    if origin is list and typing.get_args(annotation) == (float,):
        return ParameterType.PARAMETER_DOUBLE_ARRAY, ""
    raise TypeError(f"no ROS parameter type for {annotation!r}")  # a new schema type needs a mapping here


def _bounds(info) -> tuple[float | None, float | None, str]:
    """(lower, upper, text) from a pydantic field's ge/gt/le/lt constraints."""
    lo = hi = None
    text = []
    for m in info.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                text.append(f"{sym} {v}")
                if attr in ("ge", "gt"):
                    lo = v
                else:
                    hi = v
    return lo, hi, " and ".join(text)


_TYPE_NAMES = {
    ParameterType.PARAMETER_BOOL: "a bool (true/false)",
    ParameterType.PARAMETER_INTEGER: "an integer",
    ParameterType.PARAMETER_DOUBLE: "a double (write 1.0, not 1)",
    ParameterType.PARAMETER_STRING: "a string",
    ParameterType.PARAMETER_DOUBLE_ARRAY: "a list of doubles (write [0.0, 1.0])",
}


def declare_config_parameters(node: Node) -> RT2Config:
    """Declare every config leaf as a typed, read-only ROS parameter and validate.

    Each parameter gets the schema's description, its type, and for numbers the
    ``floating_point_range`` / ``integer_range`` from the field's ``ge``/``gt``/``le``/``lt``
    (ROS ranges are inclusive; strict bounds are enforced by the schema).

    Returns:
        The validated :class:`~rt2_ros.config.RT2Config`.

    Raises:
        ConfigError: every wrong type and invalid value, in one message.
    """
    defaults = config_to_flat(RT2Config())
    errors: list[str] = []
    values: dict[str, Any] = {}
    for name, info, ann in flat_fields():
        ptype, constraint = _ros_type(ann)
        lo, hi, range_text = _bounds(info)
        desc = ParameterDescriptor(
            name=name,
            type=ptype,
            description=info.description or "",
            read_only=True,
            additional_constraints="; ".join(t for t in (constraint, range_text) if t),
        )
        if ptype == ParameterType.PARAMETER_DOUBLE and (lo is not None or hi is not None):
            desc.floating_point_range = [
                FloatingPointRange(
                    from_value=float(lo) if lo is not None else -sys.float_info.max,
                    to_value=float(hi) if hi is not None else sys.float_info.max,
                    step=0.0,
                )
            ]
        elif ptype == ParameterType.PARAMETER_INTEGER and (lo is not None or hi is not None):
            desc.integer_range = [
                IntegerRange(
                    from_value=int(lo) if lo is not None else -(2**63),
                    to_value=int(hi) if hi is not None else 2**63 - 1,
                    step=1,
                )
            ]
        default = defaults[name]
        values[name] = default
        try:
            node.declare_parameter(name, default, desc)
        except rclpy.exceptions.InvalidParameterTypeException:
            errors.append(f"{name}: must be {_TYPE_NAMES.get(ptype, 'another type')}")
            continue
        except rclpy.exceptions.InvalidParameterValueException:
            errors.append(f"{name}: out of range, must be {range_text}")
            continue
        except rclpy.exceptions.ParameterException as e:
            errors.append(f"{name}: {e}")
            continue
        values[name] = node.get_parameter(name).value
    values = {
        k: (list(v) if isinstance(v, (tuple, np.ndarray)) or type(v).__name__ == "array" else v)
        for k, v in values.items()
    }
    try:
        cfg = config_from_flat(values)  # the schema's checks (cross-field ones too)
    except ConfigError as e:
        errors.append(str(e).removeprefix("invalid rt2_ros configuration: "))
    if errors:
        raise ConfigError("invalid rt2_ros configuration: " + "; ".join(errors))
    return cfg


def _now_s(node: Node) -> float:
    return node.get_clock().now().nanoseconds * 1e-9


# -- the node ------------------------------------------------------------------------------
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
            self.destroy_node()  # a half-built node must not linger in the graph
            raise

    def _setup(self, policy: Policy | None, start_worker: bool) -> None:
        self._msgs = import_rt2_msgs()
        self.cfg = declare_config_parameters(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        cfg = self.cfg
        self.log = self.get_logger()
        self.log.info(
            f"rt2_node: control {1 / cfg.control.period_s:.1f} Hz, servo {cfg.control.servo_rate_hz:.0f} Hz, "
            f"twists on {cfg.topics.twist} in {cfg.frames.command_frame}"
        )

        self._owns_policy = policy is None
        if policy is None:
            from rt2_ros.factory import make_policy

            policy = make_policy(cfg)
        self.policy = policy
        self.controller = Controller(cfg, policy, now_fn=self.now_s)

        self._pub_lock = threading.RLock()
        self._stop_evt = threading.Event()
        self._wake = threading.Event()
        self._burst_until_s = -math.inf
        self._pause_pending = False
        self._last_marker_s = -math.inf
        self._latest_image: tuple[np.ndarray, Any, str] | None = None  # (rgb, stamp msg, frame_id)
        self._last_outcome: StepOutcome | None = None
        self._last_cmd_twist = Twist.zero()
        self._ee_anchor: MarkerAnchor | None = None
        self._warned: set[str] = set()
        self._gripper_last: float | None = None
        self.rejections = 0  # count of rejected inputs/outputs (diagnostics)
        self._reject_log: dict[str, tuple[float, int]] = {}

        self._servo_group = MutuallyExclusiveCallbackGroup()
        self._input_group = ReentrantCallbackGroup()
        g = self._input_group
        t = cfg.topics

        # outputs
        self.twist_pub = self.create_publisher(TwistStamped, t.twist, QoSProfile(depth=10))
        self.action_pub = self.create_publisher(self._msgs.RT2Action, t.action, 10)
        self.episode_pub = self.create_publisher(self._msgs.EpisodeStatus, t.episode, QoSProfile(depth=20))
        self.marker_pub = self.create_publisher(MarkerArray, t.markers, 10)
        # Reliable (depth 2): matches both reliable (RViz's default) and best-effort subscribers.
        self.annotated_pub = self.create_publisher(Image, t.annotated_image, QoSProfile(depth=2))
        self._gripper_pub = None
        self._gripper_action = None
        if cfg.gripper.enabled:
            if cfg.gripper.output == "action" and HAVE_GRIPPER_ACTION:  # pragma: no cover - no control_msgs here
                from rclpy.action import ActionClient

                self._gripper_action = ActionClient(self, GripperCommand, t.gripper, callback_group=g)
            else:
                if cfg.gripper.output == "action":
                    self.log.warning(
                        "gripper.output is 'action' but control_msgs is not importable: publishing "
                        f"std_msgs/Float64 in [0, 1] on {t.gripper} instead. Fix: install control_msgs "
                        "(rosdep install --from-paths src -y) or set gripper.output: float64"
                    )
                self._gripper_pub = self.create_publisher(Float64, t.gripper, 10)

        # inputs
        self.create_subscription(Image, t.image, self._on_image, qos_profile_sensor_data, callback_group=g)
        if t.compressed_image:
            self.create_subscription(
                CompressedImage, t.compressed_image, self._on_compressed, qos_profile_sensor_data, callback_group=g
            )
        self.create_subscription(String, t.instruction, self._on_instruction, 10, callback_group=g)
        self._tf_buffer = None
        if cfg.servo.use_tf and HAVE_TF2:  # pragma: no cover - no tf2_ros here
            self._tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self, spin_thread=False)
        else:
            if cfg.servo.use_tf:
                self.log.info(f"tf2_ros is not importable: end-effector pose from {t.ee_pose} (PoseStamped)")
            self.create_subscription(PoseStamped, t.ee_pose, self._on_ee_pose, 10, callback_group=g)

        self.servo = ServoClient(self, cfg.servo, self._on_servo_halt, callback_group=g)
        self.create_service(Trigger, STOP_SERVICE, self._srv_stop, callback_group=g)
        self.create_service(SetBool, ESTOP_SERVICE, self._srv_estop, callback_group=g)
        self.create_service(Trigger, RESET_SERVICE, self._srv_reset, callback_group=g)
        self._reset_client = None
        self._moveit = None
        if cfg.reset.reset_service and _moveit_py() is None:
            # Created now, so DDS discovers the service long before the first /rt2/reset
            # (discovery here can take ~3 s, shared/docs/ros2-on-this-machine.md).
            self._reset_client = self.create_client(Trigger, cfg.reset.reset_service, callback_group=g)

        self._servo_timer = self.create_timer(
            1.0 / cfg.control.servo_rate_hz, self._servo_tick, callback_group=self._servo_group
        )
        self._worker = threading.Thread(target=self._worker_loop, name="rt2_control", daemon=True)
        if start_worker:
            self._worker.start()

    # -- helpers -------------------------------------------------------------------------
    def now_s(self) -> float:
        """Node clock (ROS time under ``use_sim_time``), seconds."""
        return _now_s(self)

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.log.warning(text)

    def _reject(self, kind: str, what: str, reason: str, throttle: bool = True) -> None:
        """Log a rejected input/output: at most once per second per ``kind``, with a
        count of the suppressed ones (a camera sending garbage at 30 Hz must not flood)."""
        self.rejections += 1
        now = time.monotonic()
        last, suppressed = self._reject_log.get(kind, (-math.inf, 0))
        if throttle and now - last < 1.0:
            self._reject_log[kind] = (last, suppressed + 1)
            return
        self._reject_log[kind] = (now, 0)
        more = f" (+{suppressed} similar in the last second)" if suppressed else ""
        self.log.warning(f"rejected {what}: {reason}{more}")

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        names = [p.name for p in params if p.name != "use_sim_time"]
        if names:
            return SetParametersResult(
                successful=False,
                reason=f"rt2_node reads {', '.join(names)} at start-up only; restart it to change them",
            )
        return SetParametersResult(successful=True)

    # -- publishing --------------------------------------------------------------------------
    def _publish_twist(self, twist: Twist, stamp) -> None:
        self.twist_pub.publish(twist_to_msg(twist, stamp, self.cfg.frames.command_frame))

    def _handle_transitions(self) -> None:
        """Publish every episode transition; a stop sends a zero twist at once and arms
        the zero burst; a start brings Servo up. Thread-safe."""
        with self._pub_lock:
            ts = self.controller.drain_transitions()
            if not ts:
                return
            now = self.get_clock().now()
            stamp = now.to_msg()
            for t in ts:
                self.episode_pub.publish(transition_to_episode_msg(t, stamp))
                if t.state is EpisodeState.RUNNING:
                    self.log.info(f"episode {t.episode_id} started: {t.instruction!r}")
                    self._pause_pending = False
                    self.servo.enable()
                    self._wake.set()
                else:
                    reason = t.reason.value if t.reason is not None else "?"
                    self.log.info(
                        f"episode {t.episode_id} finished: {reason} after {t.step} steps"
                        f"{' (' + t.detail + ')' if t.detail else ''}"
                    )
                if t.stop:
                    self._publish_twist(Twist.zero(), stamp)
                    self._last_cmd_twist = Twist.zero()
                    self._burst_until_s = now.nanoseconds * 1e-9 + ZERO_BURST_S
                    self._pause_pending = not self.controller.episode.running

    # -- servo timer ---------------------------------------------------------------------------
    def _servo_tick(self) -> None:
        with self._pub_lock:
            now = self.get_clock().now()
            now_s = now.nanoseconds * 1e-9
            if self._tf_buffer is not None:  # pragma: no cover - no tf2_ros here
                self._update_ee_from_tf(now_s)
            cmd = self.controller.servo_command(now_s)
            running = self.controller.episode.running
            if running or now_s < self._burst_until_s:
                self._publish_twist(cmd.twist, now.to_msg())
                self._last_cmd_twist = cmd.twist
            elif self._pause_pending:
                self._pause_pending = False
                self.servo.pause()
            self._handle_transitions()
            if (running or now_s < self._burst_until_s) and now_s - self._last_marker_s >= MARKER_PERIOD_S:
                self._last_marker_s = now_s
                if self.marker_pub.get_subscription_count() > 0:
                    self._publish_markers(cmd.twist, now.to_msg(), cmd.stop)

    def _status_text(self, twist: Twist | None = None) -> list[str]:
        o = self._last_outcome
        ep = self.controller.episode
        return status_lines(
            ep.instruction,
            ep.step,
            ep.state.name.lower() + (f" ({ep.reason.value})" if ep.reason else ""),
            o.latency_ms if o is not None and o.result is not None else None,
            o.rejected if o is not None else None,
            None if twist is None else twist.linear,
            None if twist is None else twist.angular,
        )

    def _publish_markers(self, twist: Twist, stamp, stopped: bool) -> None:
        anchor = self._ee_anchor or MarkerAnchor.at_command_frame(self.cfg.frames.command_frame)
        lines = self._status_text(twist)
        if self.controller.last_stop_reasons and stopped:
            lines.append("stop: " + ", ".join(self.controller.last_stop_reasons))
        self.marker_pub.publish(make_marker_array(anchor, twist.linear, twist.angular, lines, stamp))

    # -- control worker ------------------------------------------------------------------------
    def _worker_loop(self) -> None:
        period = self.cfg.control.period_s
        next_s: float | None = None
        while not self._stop_evt.is_set():
            try:
                now_s = self.now_s()
                if not self.controller.episode.running:
                    next_s = None
                    self._wake.wait(0.05)
                    self._wake.clear()
                    continue
                if self._wake.is_set():  # a new episode: act at once
                    self._wake.clear()
                    next_s = None
                if next_s is not None and now_s < next_s:
                    self._wake.wait(min(next_s - now_s, 0.05))
                    continue
                self.run_step(now_s)
                # Keep the control grid; after an overrun, restart it from now.
                next_s = now_s + period if next_s is None or now_s - next_s > period else next_s + period
            except Exception as e:  # noqa: BLE001 - the worker must never die silently
                self.log.error(f"control step failed: {type(e).__name__}: {e}")
                self.controller.fault(f"internal error: {e}", self.now_s())
                self._handle_transitions()
                self._stop_evt.wait(0.1)

    def run_step(self, now_s: float) -> StepOutcome | None:
        """One control step at ``now_s`` (s, node clock) and its publications."""
        outcome = self.controller.step(now_s)
        if outcome is not None:
            self._publish_outcome(outcome)
        self._handle_transitions()
        return outcome

    def _publish_outcome(self, o: StepOutcome) -> None:
        self._last_outcome = o
        stamp = self.get_clock().now().to_msg()
        self.action_pub.publish(outcome_to_action_msg(o, stamp, self.cfg.frames.command_frame))
        if o.rejected:
            quiet = o.result is None and o.latency_ms == 0.0 and o.transitions and not self.controller.episode.running
            if quiet or o.rejected.startswith("episode changed"):
                self.log.info(f"step: {o.rejected}")
            else:
                self._reject(
                    "step",
                    f"step of episode {o.episode_id}",
                    o.rejected + (f" (model output {o.result.text[:80]!r})" if o.result is not None else ""),
                )
        if o.gripper is not None:  # not after a stop, e-stop or new instruction since the step
            self.controller.send_gripper_if_allowed(o.episode_id, self.now_s(), lambda: self._send_gripper(o.gripper))
        if self._latest_image is not None and self.annotated_pub.get_subscription_count() > 0:
            img, img_stamp, frame = self._latest_image
            s = self.cfg.safety
            try:
                out = draw_overlay(
                    img,
                    self._status_text(o.twist),
                    o.twist.linear,
                    o.twist.angular,
                    s.max_linear_speed_mps,
                    s.max_angular_speed_radps,
                    stopped=o.twist.is_zero,
                )
                self.annotated_pub.publish(rgb_to_image_msg(out, img_stamp, frame))
            except ValueError as e:
                self._warn_once("annotate", f"cannot annotate the image: {e}")

    def _send_gripper(self, x: float) -> None:
        """Gripper command ``x`` in [0, 1] (1 = open): Float64 every step, or a
        GripperCommand goal when the target changed."""
        if self._gripper_pub is not None:
            self._gripper_pub.publish(Float64(data=float(x)))
            return
        if self._gripper_action is None:  # pragma: no cover
            return
        if self._gripper_last is not None and abs(self._gripper_last - x) < 0.01:  # pragma: no cover
            return
        if not self._gripper_action.server_is_ready():  # pragma: no cover
            self._warn_once(
                "gripper_action", f"GripperCommand action server {self.cfg.topics.gripper} is not available"
            )
            return
        g = self.cfg.gripper  # pragma: no cover - no control_msgs here
        goal = GripperCommand.Goal()
        goal.command.position = g.closed_position_m + x * (g.open_position_m - g.closed_position_m)
        goal.command.max_effort = g.max_effort_n
        self._gripper_action.send_goal_async(goal)
        self._gripper_last = x

    # -- inputs ----------------------------------------------------------------------------------
    def _image_stamp_s(self, header) -> float:
        s = stamp_to_s(header.stamp)
        if s == 0.0:
            self._warn_once("zero_stamp", "camera images have a zero header.stamp: using the arrival time instead")
            return self.now_s()
        return s

    def _accept_image(self, rgb: np.ndarray, header) -> None:
        try:
            self.controller.on_image(rgb, self._image_stamp_s(header), self.now_s())
        except ValueError as e:
            self._reject("image", "image", str(e))
            return
        self._latest_image = (rgb, header.stamp, header.frame_id)

    def _on_image(self, msg: Image) -> None:
        try:
            rgb = image_msg_to_rgb(msg)
        except ValueError as e:
            self._reject("image", "image", str(e))
            return
        self._accept_image(rgb, msg.header)

    def _on_compressed(self, msg: CompressedImage) -> None:
        try:
            rgb = compressed_msg_to_rgb(msg)
        except ValueError as e:
            self._reject("image", "compressed image", str(e))
            return
        self._accept_image(rgb, msg.header)

    def _on_instruction(self, msg: String) -> None:
        text = msg.data
        if self.cfg.reset.home_before_episode and text.strip():
            ok, why = self.reset_robot()
            if not ok:
                self._reject(
                    "instruction", "instruction", f"going home before the episode failed: {why}", throttle=False
                )
                return
        try:
            self.controller.on_instruction(text, self.now_s())
        except ValueError as e:
            self._reject("instruction", f"instruction {text[:60]!r}", str(e))  # throttled: spam must not flood
        self._handle_transitions()

    def _rotation_planning_from_command(self, pose_rotation: np.ndarray | None) -> tuple[bool, np.ndarray | None]:
        f = self.cfg.frames
        if f.command_frame == f.planning_frame:
            return True, None
        if f.command_frame == f.ee_frame and pose_rotation is not None:
            return True, pose_rotation
        return False, None

    def _on_ee_pose(self, msg: PoseStamped) -> None:
        f = self.cfg.frames
        if msg.header.frame_id and msg.header.frame_id != f.planning_frame:
            self._reject(
                "pose",
                "end-effector pose",
                f"it is in frame {msg.header.frame_id!r}, expected frames.planning_frame {f.planning_frame!r}",
            )
            return
        p = msg.pose.position
        pos = np.array([p.x, p.y, p.z], dtype=np.float64)
        try:
            rot = quaternion_to_matrix(msg.pose.orientation)
        except ValueError:
            rot = None
        known, r_pc = self._rotation_planning_from_command(rot)
        if not known:
            self._warn_once(
                "pose_frames",
                (
                    f"cannot rotate twists in {f.command_frame!r} into {f.planning_frame!r} without TF: the workspace "
                    "box is not applied. Fix: install tf2_ros, or use command_frame = planning_frame or ee_frame"
                ),
            )
            return
        stamp = stamp_to_s(msg.header.stamp) or self.now_s()
        try:
            self.controller.on_ee_pose(pos, stamp, r_pc, self.now_s())
        except ValueError as e:
            self._reject("pose", "end-effector pose", str(e))
            return
        self._ee_anchor = MarkerAnchor(f.planning_frame, pos, np.eye(3) if r_pc is None else r_pc)

    def _update_ee_from_tf(self, now_s: float) -> None:  # pragma: no cover - no tf2_ros here
        f = self.cfg.frames
        try:
            tf = self._tf_buffer.lookup_transform(f.planning_frame, f.ee_frame, rclpy.time.Time())
            r_pc = None
            if f.command_frame != f.planning_frame:
                tc = self._tf_buffer.lookup_transform(f.planning_frame, f.command_frame, rclpy.time.Time())
                r_pc = quaternion_to_matrix(tc.transform.rotation)
        except Exception as e:  # noqa: BLE001 - tf2 raises several lookup exceptions
            self.log.debug(f"TF lookup failed: {e}")
            return
        tr = tf.transform.translation
        pos = np.array([tr.x, tr.y, tr.z])
        stamp = stamp_to_s(tf.header.stamp) or now_s
        try:
            self.controller.on_ee_pose(pos, stamp, r_pc, self.now_s())
        except ValueError as e:
            self._reject("pose", "end-effector pose from TF", str(e))
            return
        self._ee_anchor = MarkerAnchor(f.planning_frame, pos, np.eye(3) if r_pc is None else r_pc)

    def _on_servo_halt(self, detail: str) -> None:
        if self.controller.episode.running:
            self.log.warning(detail)
            self.controller.fault(detail, self.now_s())
            self._handle_transitions()

    # -- services --------------------------------------------------------------------------------
    def _srv_stop(self, request, response):
        t = self.controller.cancel(self.now_s())
        self._handle_transitions()
        response.success = True
        response.message = (
            f"episode {t.episode_id} cancelled after {t.step} steps" if t is not None else "no episode was running"
        )
        return response

    def _srv_estop(self, request, response):
        engaged = bool(request.data)
        t = self.controller.set_estop(engaged, self.now_s())
        self._handle_transitions()
        if engaged:
            with self._pub_lock:  # a stop even when idle
                stamp = self.get_clock().now()
                self._publish_twist(Twist.zero(), stamp.to_msg())
                self._burst_until_s = max(self._burst_until_s, stamp.nanoseconds * 1e-9 + ZERO_BURST_S)
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

    def reset_robot(self) -> tuple[bool, str]:
        """Cancel the running episode and bring the robot home.

        With ``moveit_py``: plan and execute to ``reset.home_named_state`` for
        ``reset.planning_group``. Without: call the std_srvs/Trigger service
        ``reset.reset_service``. Returns ``(success, message)``; never raises.
        """
        if self.controller.envelope.estop_engaged:
            return False, "the emergency stop is engaged; clear it (/rt2/e_stop false) before a reset"
        if self.controller.cancel(self.now_s()) is not None:
            self._handle_transitions()
        r = self.cfg.reset
        MoveItPy = _moveit_py()
        if MoveItPy is not None:  # pragma: no cover - no moveit_py here
            try:
                if self._moveit is None:
                    self._moveit = MoveItPy(node_name=f"{self.get_name()}_moveit_py")
                arm = self._moveit.get_planning_component(r.planning_group)
                arm.set_start_state_to_current_state()
                arm.set_goal_state(configuration_name=r.home_named_state)
                plan = arm.plan()
                if not plan:
                    return False, f"planning to {r.home_named_state!r} failed"
                self._moveit.execute(plan.trajectory, controllers=[])
                return True, f"moved {r.planning_group} to {r.home_named_state!r}"
            except Exception as e:  # noqa: BLE001 - report any moveit_py failure
                return False, f"moveit_py reset failed: {e}"
        if not r.reset_service:
            return False, ("no reset available: moveit_py is not importable and reset.reset_service is empty")
        if self._reset_client is None:
            self._reset_client = self.create_client(Trigger, r.reset_service, callback_group=self._input_group)
        if not self._reset_client.wait_for_service(timeout_sec=RESET_DISCOVERY_TIMEOUT_S):
            return False, (
                f"no reset available: moveit_py is not importable and {r.reset_service} "
                "(std_srvs/Trigger, reset.reset_service) is not offered"
            )
        done = threading.Event()
        fut = self._reset_client.call_async(Trigger.Request())
        fut.add_done_callback(lambda f: done.set())
        if not done.wait(RESET_TIMEOUT_S):
            return False, f"{r.reset_service} did not answer within {RESET_TIMEOUT_S:.0f} s"
        try:
            res = fut.result()
        except Exception as e:  # noqa: BLE001
            return False, f"{r.reset_service} failed: {e}"
        return bool(res.success), f"{r.reset_service}: {res.message}"

    # -- shutdown --------------------------------------------------------------------------------
    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Stop the worker, end the episode, publish the zero twist (call before
        ``destroy_node``; the context must still be valid)."""
        self._stop_evt.set()
        self._wake.set()
        self._servo_timer.cancel()
        if self._worker.is_alive():
            self._worker.join(timeout_s)
        try:
            self.controller.cancel(self.now_s())
            self._handle_transitions()
            with self._pub_lock:
                self._publish_twist(Twist.zero(), self.get_clock().now().to_msg())
        except Exception as e:  # noqa: BLE001 - context already gone: nothing left to tell
            self.log.debug(f"final zero twist not sent: {e}")
        if self._owns_policy:
            try:
                self.policy.close()
            except Exception:  # noqa: BLE001
                pass


# -- entry point ---------------------------------------------------------------------------
def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, policy: Policy | None = None) -> int:
    """Run the node until Ctrl-C / SIGTERM; returns the process exit code.

    ``argv`` defaults to ``sys.argv`` (ROS arguments after ``--ros-args``). Exit codes:
    0 clean shutdown, 1 the policy could not be built, 2 invalid parameters.
    """
    argv = list(sys.argv if argv is None else argv)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    # Our own signal handling: rclpy's would shut the context down before the final zero twist.
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    node = None
    executor = None
    try:
        try:
            node = Rt2Node(policy=policy)
        except ConfigError as e:
            rclpy.logging.get_logger("rt2_node").error(str(e))
            return 2
        except (ImportError, ValueError, OSError, RuntimeError) as e:
            rclpy.logging.get_logger("rt2_node").error(f"cannot start rt2_node: {type(e).__name__}: {e}")
            return 1
        executor = MultiThreadedExecutor(num_threads=4)
        executor.add_node(node)
        node.log.info(
            f"ready: send an instruction, e.g. ros2 topic pub --once {node.cfg.topics.instruction} "
            "std_msgs/msg/String \"data: 'pick up the red block'\""
        )
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.shutdown()
            time.sleep(0.05)  # let the last zero twist leave before the participant goes
            if executor is not None:
                executor.shutdown(timeout_sec=1.0)
            node.destroy_node()
        signal.signal(signal.SIGTERM, old_term)
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

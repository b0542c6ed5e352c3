"""``rt2_sim``: the simulated robot over real ROS 2 (rclpy shell around :class:`SimWorld`).

One process, two nodes:

* ``rt2_sim`` (the robot and its world), publishing

  - ``/camera/image_raw`` ``sensor_msgs/Image`` rgb8 (sensor-data QoS) and
    ``/camera/camera_info`` ``sensor_msgs/CameraInfo`` at ``camera.rate_hz``;
  - ``/joint_states`` ``sensor_msgs/JointState`` and ``/rt2/ee_pose``
    ``geometry_msgs/PoseStamped`` (``panda_hand`` in ``panda_link0``) every Servo period;
  - ``/sim/ground_truth`` ``std_msgs/String`` (JSON: block, hand and TCP poses, gripper,
    task success; see :meth:`rt2_ros.sim.world.SimWorld.ground_truth`), every Servo period;
  - TF ``panda_link0 -> panda_hand`` when ``tf2_ros`` is importable;

  subscribing ``/rt2/gripper_command`` ``std_msgs/Float64`` (0 closed .. 1 open) and
  ``/rt2/instruction`` ``std_msgs/String`` (the task to check), and serving ``/sim/reset``
  ``std_srvs/Trigger`` (new randomised layout, arm home, gripper open; the response
  message is the layout as JSON) and, when control_msgs is importable, the action
  ``gripper_action.name`` ``control_msgs/action/GripperCommand`` (as ros2_controllers'
  GripperActionController on ``panda_finger_joint1``: ``position`` 0 .. 0.04 m,
  ``max_effort`` [N] limits the finger force, 0 = the default force). A goal with a
  non-finite or out-of-range position or a negative effort is rejected; a goal whose
  fingers stop short of the position (``stall_timeout_s``) is aborted unless
  ``allow_stalling``; a newer goal aborts the older one.

* ``servo_node`` with MoveIt Servo's interface (:mod:`rt2_ros.sim.servo_standin`):
  ``~/delta_twist_cmds`` ``geometry_msgs/TwistStamped`` (SystemDefaults QoS),
  ``~/delta_joint_cmds`` ``control_msgs/JointJog`` (when control_msgs is importable), ``~/status``,
  and the services of the chosen generation (``servo.distro``):

  ======  ==================================================================================
  jazzy   ``~/pause_servo`` SetBool; ``~/switch_command_type`` and ServoStatus status when
          moveit_msgs is importable (without it: ``~/start_servo`` Trigger to enable, and
          status as std_msgs/Int8 with Jazzy codes)
  humble  ``~/start_servo``, ``~/stop_servo``, ``~/pause_servo``, ``~/unpause_servo``
          (Trigger), status std_msgs/Int8 with Humble codes
  auto    :func:`rt2_ros.servo_interface.resolve_distro`, the rule the rt2 node uses too:
          jazzy when moveit_msgs is importable (and ``ROS_DISTRO`` is not humble), else humble
  ======  ==================================================================================

  Its parameters carry MoveIt Servo's names under ``moveit_servo.`` (e.g.
  ``moveit_servo.incoming_command_timeout``).

Both nodes declare their parameters from schemas (:class:`rt2_ros.sim.settings.SimNodeParams`,
:class:`rt2_ros.sim.settings.ServoNodeParams`) as typed, ranged, described, read-only
ROS parameters (:mod:`rt2_ros.ros.params`).

The physics, Servo loop, camera and publications run in one thread in real time on
the node clock (the staleness rule compares wall-clock stamps); callbacks only queue
work for it (PyBullet is not thread-safe).

Run without ``ros2 launch``::

    python -m rt2_ros.sim.sim_node --ros-args --params-file config/sim.yaml -p seed:=3
"""

from __future__ import annotations

import json
import math
import queue
import sys
import threading
import time
from typing import Any, Callable

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, qos_profile_system_default
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, Int8, String
from std_srvs.srv import SetBool, Trigger

from rt2_ros.ros.entry import NodeSet, run_nodes
from rt2_ros.ros.gripper import HAVE_GRIPPER_ACTION, GripperCommand
from rt2_ros.ros.joint_jog import HAVE_JOINT_JOG, JointJog
from rt2_ros.ros.params import declare_model_parameters, flat_defaults
from rt2_ros.ros.servo_client import HAVE_MOVEIT_MSGS, ServoCommandType, ServoStatus
from rt2_ros.servo_interface import CommandType, StatusCode, resolve_distro, status_to_wire
from rt2_ros.sim.scene import _FINGER_MAX_M, ARM_JOINTS, FINGER_JOINTS, SceneConfig
from rt2_ros.sim.servo_standin import ServoParams
from rt2_ros.sim.settings import SERVO_PARAM_PREFIX, ServoNodeParams, SimNodeParams
from rt2_ros.sim.world import SimWorld

__all__ = ["SimNode", "ServoNode", "SimRunner", "main", "HAVE_MOVEIT_MSGS"]

try:  # pragma: no cover - tf2_ros is not installable here
    from geometry_msgs.msg import TransformStamped
    from tf2_ros import TransformBroadcaster  # type: ignore

    HAVE_TF2 = True
except ImportError:
    TransformBroadcaster = None
    HAVE_TF2 = False


def _stamp(t_s: float):
    from builtin_interfaces.msg import Time

    ns = int(round(t_s * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _split_ns(full: str) -> tuple[str, str]:
    """``/a/b/servo_node`` -> (``servo_node``, ``/a/b``)."""
    full = "/" + full.strip("/")
    ns, _, name = full.rpartition("/")
    return name, ns or "/"


class SimNode(Node):
    """The ``rt2_sim`` node: declares :class:`SimNodeParams`, owns publishers and services.

    Raises:
        ConfigError: parameters of the wrong type or with invalid values (all named).
    """

    #: Parameter name -> default (the schema's).
    PARAMS: dict[str, Any] = flat_defaults(SimNodeParams)

    def __init__(self, **kwargs):
        super().__init__("rt2_sim", **kwargs)
        try:
            self.params = p = declare_model_parameters(self, SimNodeParams, what="rt2_sim parameters")
        except BaseException:
            self.destroy_node()
            raise
        t = p.topics
        self.image_pub = self.create_publisher(Image, t.image, qos_profile_sensor_data)
        self.info_pub = self.create_publisher(CameraInfo, t.camera_info, qos_profile_sensor_data)
        self.joint_pub = self.create_publisher(JointState, t.joint_states, 10)
        self.pose_pub = self.create_publisher(PoseStamped, t.ee_pose, 10)
        self.gt_pub = self.create_publisher(String, t.ground_truth, 10)
        self.tf = TransformBroadcaster(self) if HAVE_TF2 else None

    def scene_config(self) -> SceneConfig:
        """The scene settings from the node's parameters."""
        c = self.params.camera
        return SceneConfig(
            colors=tuple(self.params.blocks), image_width=c.width, image_height=c.height, shadows=c.shadows
        )


class ServoNode(Node):
    """``servo_node``: MoveIt Servo's ROS interface in front of the stand-in; declares
    :class:`ServoNodeParams` under ``moveit_servo.``.

    Raises:
        ConfigError: parameters of the wrong type or with invalid values (all named).
    """

    #: Parameter name -> default (the schema's).
    PARAMS: dict[str, Any] = flat_defaults(ServoNodeParams, SERVO_PARAM_PREFIX)

    def __init__(self, name: str, namespace: str, **kwargs):
        super().__init__(name, namespace=namespace, **kwargs)
        try:
            self.params = declare_model_parameters(
                self, ServoNodeParams, prefix=SERVO_PARAM_PREFIX, what=f"{name} parameters"
            )
        except BaseException:
            self.destroy_node()
            raise

    def servo_params(self) -> ServoParams:
        """The Servo stand-in settings from the node's ``moveit_servo.*`` parameters."""
        p = self.params
        return ServoParams(
            planning_frame=p.planning_frame,
            ee_frame=p.ee_frame,
            publish_period_s=p.publish_period,
            incoming_command_timeout_s=p.incoming_command_timeout,
            command_in_type=p.command_in_type,
            scale_linear_mps=p.scale.linear,
            scale_rotational_radps=p.scale.rotational,
            lower_singularity_threshold=p.lower_singularity_threshold,
            hard_stop_singularity_threshold=p.hard_stop_singularity_threshold,
            leaving_singularity_threshold_multiplier=p.leaving_singularity_threshold_multiplier,
            joint_limit_margin_rad=p.joint_limit_margin,
            halt_all_joints_in_cartesian_mode=p.halt_all_joints_in_cartesian_mode,
            halt_all_joints_in_joint_mode=p.halt_all_joints_in_joint_mode,
            scale_joint=p.scale.joint,
        )


class SimRunner:
    """Wires :class:`SimWorld` to the two nodes and runs the real-time loop thread.

    Args:
        sim: the ``rt2_sim`` node.
        servo: the ``servo_node`` node.
        distro: ``"jazzy"`` or ``"humble"`` (see the module doc).
    """

    def __init__(self, sim: SimNode, servo: ServoNode, distro: str):
        self.sim, self.servo_node, self.distro = sim, servo, distro
        self.log = sim.get_logger()
        self.world = SimWorld(sim.scene_config(), servo.servo_params(), seed=sim.params.seed)
        self.robot_link_command_frame = servo.params.robot_link_command_frame
        self._lock = threading.Lock()
        self._jobs: queue.Queue[tuple[Callable[[], Any], queue.Queue | None]] = queue.Queue()
        self._stop = threading.Event()
        self._last_twist_stamp_s = 0.0
        self.overruns = 0
        self.ticks = 0
        self.frames = 0
        self.rejected_gripper = 0
        self.rejected_twists = 0
        self.cam_period_s = 1.0 / sim.params.camera.rate_hz
        self.camera_frame = sim.params.camera.frame_id
        self._camera_info = self._make_camera_info()

        s = servo
        qos = qos_profile_system_default
        s.create_subscription(TwistStamped, servo.params.cartesian_command_in_topic, self._on_twist, qos)
        if HAVE_JOINT_JOG:
            s.create_subscription(JointJog, servo.params.joint_command_in_topic, self._on_joint_jog, qos)
        else:
            self.log.info("control_msgs is not importable: no ~/delta_joint_cmds (JointJog) input")
        use_servo_status = distro == "jazzy" and HAVE_MOVEIT_MSGS
        self._status_type = ServoStatus if use_servo_status else Int8
        self.status_pub = s.create_publisher(self._status_type, servo.params.status_topic, qos)
        if distro == "jazzy":
            s.create_service(SetBool, "~/pause_servo", self._srv_pause_setbool)
            if HAVE_MOVEIT_MSGS:
                s.create_service(ServoCommandType, "~/switch_command_type", self._srv_switch)
            else:
                s.create_service(Trigger, "~/start_servo", self._srv_start)
        else:
            s.create_service(Trigger, "~/start_servo", self._srv_start)
            s.create_service(Trigger, "~/stop_servo", self._srv_stop)
            s.create_service(Trigger, "~/pause_servo", self._srv_pause_trigger)
            s.create_service(Trigger, "~/unpause_servo", self._srv_unpause)
        sim.create_subscription(Float64, sim.params.topics.gripper, self._on_gripper, 10)
        sim.create_subscription(String, sim.params.topics.instruction, self._on_instruction, 10)
        sim.create_service(Trigger, sim.params.reset_service, self._srv_reset)
        self.gripper_goals = {"accepted": 0, "rejected": 0, "succeeded": 0, "aborted": 0}
        self._gripper_goal_seq = 0
        self._gripper_server = None
        if sim.params.gripper_action.name and HAVE_GRIPPER_ACTION:
            from rclpy.action import ActionServer, GoalResponse
            from rclpy.callback_groups import ReentrantCallbackGroup

            self._goal_response = GoalResponse
            self._gripper_server = ActionServer(
                sim,
                GripperCommand,
                sim.params.gripper_action.name,
                execute_callback=self._execute_gripper_goal,
                goal_callback=self._check_gripper_goal,
                callback_group=ReentrantCallbackGroup(),
            )
        self._thread = threading.Thread(target=self._loop, name="rt2_sim_loop", daemon=True)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the simulation thread."""
        self._thread.start()
        self.log.info(
            f"rt2_sim: seed {self.world.seed}, Servo tick {self.world.tick_s * 1e3:.1f} ms, camera "
            f"{1 / self.cam_period_s:.0f} Hz; servo_node ({self.distro} interface) at "
            f"{self.servo_node.get_fully_qualified_name()}"
        )

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop the simulation thread (``timeout_s``, s) and close the world."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self.world.close()

    def call(self, fn: Callable[[], Any], timeout_s: float = 10.0) -> Any:
        """Run ``fn`` in the sim thread and return its result (raises what it raised).

        Raises:
            TimeoutError: the sim thread did not run it in time.
        """
        if threading.current_thread() is self._thread:
            return fn()
        box: queue.Queue = queue.Queue(maxsize=1)
        self._jobs.put((fn, box))
        try:
            ok, value = box.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError("simulation thread did not answer") from None
        if not ok:
            raise value
        return value

    # -- callbacks (never touch PyBullet directly) ------------------------------------------------------
    def _on_twist(self, msg: TwistStamped) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        frame = msg.header.frame_id
        if self.distro == "humble":
            # Humble: a zero stamp keeps the previous one; an empty frame means robot_link_command_frame.
            stamp = stamp if stamp != 0.0 else self._last_twist_stamp_s
            frame = frame or self.robot_link_command_frame
        self._last_twist_stamp_s = stamp
        t, a = msg.twist.linear, msg.twist.angular
        with self._lock:
            if self.distro == "humble" and self.world.servo.command_type is not None:
                self.world.servo.command_type = CommandType.TWIST
            self.world.servo.on_twist(frame, [t.x, t.y, t.z], [a.x, a.y, a.z], stamp)

    def _on_joint_jog(self, msg) -> None:
        """``~/delta_joint_cmds`` (control_msgs/JointJog). Humble's Servo takes joint and
        twist commands alike once started (the newest kind wins); Jazzy's only the selected type."""
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self._lock:
            servo = self.world.servo
            if self.distro == "humble" and servo.command_type is not None:
                servo.command_type = CommandType.JOINT_JOG
            servo.on_joint_jog(list(msg.joint_names), list(msg.velocities), list(msg.displacements), stamp)

    def _on_gripper(self, msg: Float64) -> None:
        x = msg.data
        if not math.isfinite(x):
            self.rejected_gripper += 1
            self.log.warning(f"rejected gripper command {x}: not finite; the gripper holds its last command")
            return
        if not -1e-6 <= x <= 1 + 1e-6:
            self.log.warning(f"gripper command {x:.3f} outside [0, 1]: clipped", throttle_duration_sec=1.0)
        self._jobs.put((lambda: self.world.set_gripper(float(x)), None))

    # -- GripperCommand action -------------------------------------------------------------------
    def _check_gripper_goal(self, goal):
        """Accept a goal with a finite position in [0, 0.04] m and a finite effort >= 0 N."""
        pos, effort = goal.command.position, goal.command.max_effort
        tol = self.sim.params.gripper_action.goal_tolerance_m
        why = ""
        if not (math.isfinite(pos) and -tol <= pos <= _FINGER_MAX_M + tol):
            why = f"position {pos!r} m outside the gripper's range [0, {_FINGER_MAX_M}] m"
        elif not (math.isfinite(effort) and effort >= 0):
            why = f"max_effort {effort!r} N is not a finite number >= 0"
        if why:
            self.gripper_goals["rejected"] += 1
            self.log.warning(f"GripperCommand goal rejected: {why}; the gripper holds its last command")
            return self._goal_response.REJECT
        self.gripper_goals["accepted"] += 1
        return self._goal_response.ACCEPT

    def _finger_m(self) -> float:
        return float(self.call(lambda: self.world.scene.finger_positions()[0]))

    def _execute_gripper_goal(self, goal_handle):
        """Move the fingers; succeed at the position, abort on a stall (unless allowed) or a newer goal."""
        cfg = self.sim.params.gripper_action
        self._gripper_goal_seq += 1
        seq = self._gripper_goal_seq
        target = float(goal_handle.request.command.position)
        effort = float(goal_handle.request.command.max_effort)
        force = effort if effort > 0 else None
        result = GripperCommand.Result()
        result.effort = effort
        try:
            self.call(lambda: self.world.set_gripper(min(max(target / _FINGER_MAX_M, 0.0), 1.0), force))
            last_pos, last_move = self._finger_m(), time.monotonic()
        except Exception as e:  # noqa: BLE001 - the simulation is gone (shutdown): no motion
            self.log.warning(f"GripperCommand goal {target:.4f} m aborted: {e}")
            self.gripper_goals["aborted"] += 1
            goal_handle.abort()
            return result
        pos = last_pos
        while True:
            if not self._stop.wait(0.03):
                try:
                    pos = self._finger_m()
                except TimeoutError:  # the loop stopped under us: the shutdown branch below
                    self._stop.set()
            result.position = pos
            if abs(pos - target) <= cfg.goal_tolerance_m:
                result.reached_goal = True
                self.gripper_goals["succeeded"] += 1
                goal_handle.succeed()
                return result
            if abs(pos - last_pos) > 0.0005:
                last_pos, last_move = pos, time.monotonic()
            stalled = time.monotonic() - last_move >= cfg.stall_timeout_s
            if stalled and cfg.allow_stalling:
                result.stalled = True
                self.gripper_goals["succeeded"] += 1
                goal_handle.succeed()
                return result
            if stalled or seq != self._gripper_goal_seq or self._stop.is_set():
                result.stalled = stalled
                why = "stalled" if stalled else "preempted by a newer goal" if not self._stop.is_set() else "shutdown"
                self.log.warning(
                    f"GripperCommand goal {target:.4f} m aborted: {why} at {pos:.4f} m", throttle_duration_sec=1.0
                )
                self.gripper_goals["aborted"] += 1
                goal_handle.abort()
                return result

    def _on_instruction(self, msg: String) -> None:
        text = msg.data
        if text.strip():
            self._jobs.put((lambda: self._set_instruction(text), None))

    def _set_instruction(self, text: str) -> None:
        st = self.world.set_instruction(text)
        if st.task is None:
            self.log.warning(f"instruction {text!r}: no task check ({st.error})")

    def _srv_reset(self, request, response):
        try:
            layout = self.call(self._reset)
            response.success, response.message = True, json.dumps(layout)
        except Exception as e:  # noqa: BLE001 - report, never crash the service
            response.success, response.message = False, f"reset failed: {e}"
        return response

    def _reset(self) -> dict:
        with self._lock:
            layout = self.world.reset()
        self.log.info(f"reset: layout seed {layout['seed']}")
        self._publish_state(self.sim.get_clock().now().nanoseconds * 1e-9)
        return layout

    def _servo_call(self, fn):
        def run():
            with self._lock:
                return fn()

        return self.call(run)

    def _srv_pause_setbool(self, request, response):
        response.success, response.message = self._servo_call(lambda: self.world.servo.pause(bool(request.data)))
        return response

    def _srv_pause_trigger(self, request, response):
        response.success, response.message = self._servo_call(lambda: self.world.servo.pause(True))
        return response

    def _srv_unpause(self, request, response):
        response.success, response.message = self._servo_call(lambda: self.world.servo.pause(False))
        return response

    def _srv_start(self, request, response):
        response.success, response.message = self._servo_call(self.world.servo.start)
        return response

    def _srv_stop(self, request, response):
        response.success, response.message = self._servo_call(self.world.servo.stop)
        return response

    def _srv_switch(self, request, response):
        response.success = self._servo_call(lambda: self.world.servo.set_command_type(int(request.command_type)))
        return response

    # -- publishing ----------------------------------------------------------------------------------
    def _make_camera_info(self) -> CameraInfo:
        cfg = self.world.scene.cfg
        K = self.world.scene.camera_matrix()
        info = CameraInfo()
        info.header.frame_id = self.camera_frame
        info.width, info.height = cfg.image_width, cfg.image_height
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        info.k = K.reshape(-1).tolist()
        info.r = np.eye(3).reshape(-1).tolist()
        info.p = np.hstack([K, np.zeros((3, 1))]).reshape(-1).tolist()
        return info

    def _publish_status(self, code: StatusCode, message: str) -> None:
        if self._status_type is Int8:
            self.status_pub.publish(Int8(data=status_to_wire(code, self.distro)))
        else:
            self.status_pub.publish(self._status_type(code=int(code), message=message))

    def _publish_state(self, now_s: float) -> dict:
        stamp = _stamp(now_s)
        scene = self.world.scene
        q, qd = scene.joint_state()
        fingers = scene.finger_positions()
        js = JointState()
        js.header.stamp = stamp
        js.name = list(ARM_JOINTS) + list(FINGER_JOINTS)
        js.position = q.tolist() + fingers.tolist()
        js.velocity = qd.tolist() + [0.0, 0.0]
        self.sim.joint_pub.publish(js)
        pos, quat = scene.ee_pose()
        ps = PoseStamped()
        ps.header.stamp, ps.header.frame_id = stamp, "panda_link0"
        ps.pose.position.x, ps.pose.position.y, ps.pose.position.z = (float(v) for v in pos)
        o = ps.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in quat)
        self.sim.pose_pub.publish(ps)
        gt = self.world.ground_truth()
        gt["stamp_s"] = now_s
        self.sim.gt_pub.publish(String(data=json.dumps(gt)))
        if self.sim.tf is not None:  # pragma: no cover - no tf2_ros here
            tf = TransformStamped()
            tf.header = ps.header
            tf.child_frame_id = "panda_hand"
            tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z = (float(v) for v in pos)
            tf.transform.rotation = ps.pose.orientation
            self.sim.tf.sendTransform(tf)
        return gt

    def _publish_image(self, now_s: float) -> None:
        img = self.world.scene.render()
        msg = Image()
        msg.header.stamp, msg.header.frame_id = _stamp(now_s), self.camera_frame
        msg.height, msg.width = img.shape[0], img.shape[1]
        msg.encoding, msg.is_bigendian, msg.step = "rgb8", 0, img.shape[1] * 3
        msg.data = img.tobytes()
        self.sim.image_pub.publish(msg)
        self._camera_info.header.stamp = msg.header.stamp
        self.sim.info_pub.publish(self._camera_info)
        self.frames += 1

    # -- the loop -------------------------------------------------------------------------------------
    def _run_jobs(self) -> None:
        while True:
            try:
                fn, box = self._jobs.get_nowait()
            except queue.Empty:
                return
            try:
                res = (True, fn())
            except Exception as e:  # noqa: BLE001 - hand the error to the caller
                if box is None:
                    self.log.warning(f"simulation job failed: {type(e).__name__}: {e}")
                res = (False, e)
            if box is not None:
                box.put(res)

    def _loop(self) -> None:
        clock = self.sim.get_clock()
        tick = self.world.tick_s
        next_wall = time.monotonic()
        next_cam = next_wall
        last_phys = next_wall
        last_code: StatusCode | None = None
        while not self._stop.is_set():
            try:
                self._run_jobs()
                now_s = clock.now().nanoseconds * 1e-9
                mono = time.monotonic()
                elapsed, last_phys = mono - last_phys, mono  # physics follows the wall clock
                with self._lock:
                    out = self.world.servo_tick(now_s, elapsed)
                self.ticks += 1
                if out is not None:
                    self._publish_status(out.status, out.message)
                    if out.status is not last_code and out.status is not StatusCode.NO_WARNING:
                        why = f" ({self.world.servo.last_error})" if out.status is StatusCode.INVALID else ""
                        self.log.warning(f"servo status {out.status.name}: {out.message}{why}")
                    last_code = out.status
                self._publish_state(now_s)
                mono = time.monotonic()
                if mono >= next_cam:
                    self._publish_image(clock.now().nanoseconds * 1e-9)
                    next_cam += self.cam_period_s
                    if mono - next_cam > self.cam_period_s:
                        next_cam = mono + self.cam_period_s
            except Exception as e:  # noqa: BLE001 - the loop must not die silently
                if self._stop.is_set() or not rclpy.ok(context=self.sim.context):
                    return
                self.log.error(f"simulation loop error: {type(e).__name__}: {e}")
            next_wall += tick
            delay = next_wall - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -0.25:  # far behind (CPU starved): drop the backlog
                self.overruns += 1
                next_wall = time.monotonic()


def main(argv: list[str] | None = None) -> int:
    """Run the simulation until Ctrl-C / SIGTERM. Exit codes: 0 clean, 2 bad parameters."""

    def build(ns: NodeSet) -> None:
        sim = ns.add(SimNode())
        distro = resolve_distro(sim.params.servo.distro, HAVE_MOVEIT_MSGS)
        servo = ns.add(ServoNode(*_split_ns(sim.params.servo.namespace)))
        runner = SimRunner(sim, servo, distro)
        ns.on_start.append(runner.start)
        ns.on_stop.append(runner.stop)

    return run_nodes(
        "rt2_sim",
        build,
        argv=argv,
        num_threads=3,
        start_errors=[((ValueError, RuntimeError), 2, lambda e: f"cannot start the simulation: {e}")],
    )


if __name__ == "__main__":
    sys.exit(main())

"""A stand-in for MoveIt Servo's twist pipeline, driving the simulated arm. ROS-free.

MoveIt Servo cannot run here (no MoveIt on PyPI), so the simulation speaks its
interface and follows its rules, read from moveit/moveit2 ``moveit_ros/moveit_servo``
(Jazzy generation): ``src/servo_node.cpp`` (loop, staleness, pause, command type),
``src/servo.cpp`` (``getNextJointState``, ``toPlanningFrame``, ``haltJoints``),
``src/utils/command.cpp`` (``jointDeltaFromTwist``, ``jointDeltaFromIK``),
``src/utils/common.cpp`` (``isValidCommand``, ``velocityScalingFactorForSingularity``,
``jointLimitVelocityScalingFactor``, ``jointVariablesToHalt``),
``include/moveit_servo/utils/datatypes.hpp`` and, for Humble,
``include/moveit_servo/status_codes.h``. Own implementation, same behaviour:

* Nothing moves until a command type is chosen: ``~/switch_command_type`` (TWIST = 1,
  Jazzy; needs moveit_msgs) or ``~/start_servo`` (Humble). Twists that arrive before
  are dropped ("Command type has not been set, cannot accept input").
* ``~/pause_servo`` (SetBool): while paused the loop does nothing and publishes no status.
* Every loop period (``publish_period``) the newest twist is applied again until a
  newer one arrives, or until it is stale: ``now - header.stamp >= incoming_command_timeout``
  -> halt at the last commanded joint positions.
* A twist with an empty ``frame_id``, a non-finite component or a frame the robot
  does not know is INVALID: status -1, nothing is sent (the arm holds).
* A twist in another frame is rotated into the planning frame
  (``apply_twist_commands_about_ee_frame: true``, Jazzy's default: angular velocity
  about the end-effector origin).
* ``command_in_type: speed_units``: m/s and rad/s, used as given (Jazzy's
  ``jointDeltaFromTwist`` scales only ``unitless`` input, by ``scale.linear`` /
  ``scale.rotational``).
* Joint deltas: Jacobian pseudo-inverse (MoveIt's path for groups without an IK
  plugin); then the singularity rule (condition number between
  ``lower_singularity_threshold`` and ``hard_stop_singularity_threshold`` decelerates,
  above it halts), joint velocity limits (uniform scaling), and joint position limits
  (a joint within ``joint_limit_margin`` of a bound and moving towards it halts every
  joint, ``halt_all_joints_in_cartesian_mode: true``; status JOINT_BOUND).
* JointJog (``~/delta_joint_cmds``, command type JOINT_JOG = 0; ``processJointJogCommand``
  in ``servo_node.cpp``, ``jointDeltaFromJointJog`` in ``utils/command.cpp``): names and
  velocities must pair up, every name must be a joint of the group and every velocity
  finite, else INVALID (status -1, the arm holds, the message is not processed again);
  ``displacements`` are ignored (MoveIt warns once); joints not named get 0; delta =
  velocity x ``publish_period`` (x ``scale.joint`` for ``unitless``); then the same
  velocity-limit scaling, position-limit halting (``halt_all_joints_in_joint_mode:
  true``) and staleness (``incoming_command_timeout``) as twists. Twists while JOINT_JOG
  is selected (and JointJog while TWIST is) are dropped, as MoveIt drops commands of
  another type.
* No collision checking (status codes 4/5 are never produced).

Status codes, command types and their per-generation numbering are shared with the
rt2 node's client: :mod:`rt2_ros.servo_interface`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Protocol

import numpy as np

from rt2_ros.servo_interface import STATUS_MESSAGE, CommandType, StatusCode

__all__ = [
    "ServoParams",
    "ArmModel",
    "ServoOutput",
    "ServoStandin",
]

log = logging.getLogger("rt2_ros.sim.servo")


@dataclasses.dataclass
class ServoParams:
    """The subset of MoveIt Servo's parameters the stand-in uses (same names and defaults
    as ``config/servo_parameters.yaml``, Jazzy, unless noted).

    Attributes:
        planning_frame: frame the Jacobian is expressed in.
        ee_frame: the controlled frame.
        publish_period_s: loop period, s (``publish_period``; 0.034 upstream).
        incoming_command_timeout_s: a command this old is stale, s.
        command_in_type: ``"speed_units"`` (m/s, rad/s) or ``"unitless"`` ([-1, 1] scaled).
        scale_linear_mps, scale_rotational_radps: ``scale.linear`` / ``scale.rotational``
            for unitless input.
        lower_singularity_threshold, hard_stop_singularity_threshold: Jacobian condition
            numbers where deceleration starts / the arm halts.
        leaving_singularity_threshold_multiplier: softer deceleration when moving away.
        singularity_step_scale: size of the probe step that finds the singular direction.
        joint_limit_margin_rad: margin to the position limits (``joint_limit_margins``).
        halt_all_joints_in_cartesian_mode: halt every joint when one hits its margin.
        halt_all_joints_in_joint_mode: the same for JointJog commands.
        scale_joint: ``scale.joint``, rad/s per unit of unitless JointJog input.
        joint_names: the group's joints, in the arm model's order.
        override_velocity_scaling_factor: 0 = automatic joint-velocity scaling.
    """

    planning_frame: str = "panda_link0"
    ee_frame: str = "panda_hand"
    publish_period_s: float = 0.034
    incoming_command_timeout_s: float = 0.1
    command_in_type: str = "speed_units"
    scale_linear_mps: float = 0.4
    scale_rotational_radps: float = 0.8
    lower_singularity_threshold: float = 17.0
    hard_stop_singularity_threshold: float = 30.0
    leaving_singularity_threshold_multiplier: float = 2.0
    singularity_step_scale: float = 0.01
    joint_limit_margin_rad: float = 0.1
    halt_all_joints_in_cartesian_mode: bool = True
    override_velocity_scaling_factor: float = 0.0
    halt_all_joints_in_joint_mode: bool = True
    scale_joint: float = 0.5
    joint_names: tuple[str, ...] = tuple(f"panda_joint{i}" for i in range(1, 8))

    def __post_init__(self) -> None:
        if not self.publish_period_s > 0:
            raise ValueError("publish_period_s must be > 0")
        if self.command_in_type not in ("speed_units", "unitless"):
            raise ValueError("command_in_type must be 'speed_units' or 'unitless'")
        if not 0 < self.lower_singularity_threshold < self.hard_stop_singularity_threshold:
            raise ValueError("need 0 < lower_singularity_threshold < hard_stop_singularity_threshold")
        if not self.planning_frame or not self.ee_frame:
            raise ValueError("planning_frame and ee_frame must not be empty")


class ArmModel(Protocol):
    """What the stand-in needs from the robot (implemented by :class:`rt2_ros.sim.scene.Scene`).

    Attributes:
        lower, upper: ``(7,)`` joint position limits, rad.
        max_velocity: ``(7,)`` joint velocity limits, rad/s.
    """

    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """``(positions rad, velocities rad/s)``, each ``float64 (7,)``."""

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """``float64 (6, 7)`` end-effector Jacobian at joint positions ``q`` (rad), in the planning frame."""

    def frame_rotation(self, frame: str) -> np.ndarray | None:
        """``float64 (3, 3)`` rotation of ``frame`` in the planning frame, or None for an unknown frame."""


@dataclasses.dataclass(frozen=True)
class ServoOutput:
    """One loop iteration's result.

    Attributes:
        positions: ``(7,)`` joint position targets (rad) to send, or None = send nothing
            (the controller keeps its last target).
        velocities: ``(7,)`` joint velocities (rad/s) matching ``positions``, or None.
        status: the status code of this iteration.
        message: its message (:data:`STATUS_MESSAGE`).
        halting: True when this command is a halt (stale command).
    """

    positions: np.ndarray | None
    velocities: np.ndarray | None
    status: StatusCode
    message: str
    halting: bool = False


@dataclasses.dataclass
class _Twist:
    frame_id: str
    velocities: np.ndarray  # (6,) linear m/s, angular rad/s
    stamp_s: float


@dataclasses.dataclass
class _JointJog:
    names: tuple[str, ...]
    velocities: np.ndarray  # rad/s
    stamp_s: float


class ServoStandin:
    """MoveIt Servo's twist loop over an :class:`ArmModel`. Not thread-safe: the caller
    serialises :meth:`on_twist` / :meth:`update` / service calls (the sim node does, with a lock).

    Args:
        arm: the robot.
        params: Servo parameters.
        require_command_type: True (MoveIt's behaviour): input is dropped until
            :meth:`set_command_type` or :meth:`start` selects TWIST.
    """

    def __init__(self, arm: ArmModel, params: ServoParams | None = None, require_command_type: bool = True):
        self.arm = arm
        self.params = params or ServoParams()
        self.paused = False
        self.command_type: CommandType | None = None if require_command_type else CommandType.TWIST
        self.status = StatusCode.NO_WARNING
        self._latest: _Twist | None = None
        self._new_twist = False
        self._latest_jog: _JointJog | None = None
        self._new_jog = False
        self._displacement_warned = False
        self._last_cmd_q: np.ndarray | None = None
        self._last_cmd_qd = np.zeros(7)
        self.dropped_untyped = 0  # twists dropped because no command type was set
        self.rejected = 0  # INVALID iterations
        self.last_error = ""  # why the last INVALID happened

    # -- services ------------------------------------------------------------------------------
    def set_command_type(self, command_type: int) -> bool:
        """``~/switch_command_type``: accept 0..2 (JOINT_JOG, TWIST, POSE); returns whether
        the servo now expects that type (False for unknown values; the type is unchanged).
        This stand-in executes TWIST and JOINT_JOG; POSE is accepted and then ignores
        both, as MoveIt ignores commands of another type."""
        try:
            self.command_type = CommandType(int(command_type))
        except ValueError:
            log.warning("Unknown command type %s requested", command_type)
        return self.command_type is not None and int(self.command_type) == int(command_type)

    def pause(self, paused: bool) -> tuple[bool, str]:
        """``~/pause_servo`` (SetBool): returns (success, message) as MoveIt does. Unpausing
        re-bases the halt state on the measured joint positions."""
        self.paused = bool(paused)
        if self.paused:
            return True, "Servoing disabled"
        self._last_cmd_q = self.arm.joint_state()[0].copy()
        self._last_cmd_qd = np.zeros(7)
        return True, "Servoing enabled"

    def start(self) -> tuple[bool, str]:
        """``~/start_servo`` (Humble, std_srvs/Trigger): expect TWIST commands and unpause."""
        self.command_type = CommandType.TWIST
        self.pause(False)
        return True, "Servo started: expecting twist commands"

    def stop(self) -> tuple[bool, str]:
        """``~/stop_servo`` (Humble, std_srvs/Trigger): pause."""
        self.pause(True)
        return True, "Servo stopped"

    def reset(self) -> None:
        """Forget the held command (after the simulation teleported the arm home)."""
        self._latest, self._new_twist = None, False
        self._latest_jog, self._new_jog = None, False
        self._last_cmd_q = self.arm.joint_state()[0].copy()
        self._last_cmd_qd = np.zeros(7)
        self.status = StatusCode.NO_WARNING

    # -- input -------------------------------------------------------------------------------------
    def on_twist(self, frame_id: str, linear, angular, stamp_s: float) -> None:
        """Store a ``~/delta_twist_cmds`` message (validated when processed, as MoveIt does).

        Args:
            frame_id: ``header.frame_id``.
            linear, angular: 3 values each, m/s and rad/s (speed_units).
            stamp_s: ``header.stamp`` in seconds on the node clock.
        """
        v = np.concatenate(
            [np.asarray(linear, dtype=np.float64).reshape(3), np.asarray(angular, dtype=np.float64).reshape(3)]
        )
        self._latest = _Twist(str(frame_id), v, float(stamp_s))
        self._new_twist = True

    def on_joint_jog(self, names, velocities, displacements, stamp_s: float) -> None:
        """Store a ``~/delta_joint_cmds`` message (``control_msgs/JointJog``; validated when
        processed, as MoveIt does).

        Args:
            names: ``joint_names``.
            velocities: ``velocities``, rad/s (speed_units).
            displacements: ``displacements`` (ignored, as MoveIt ignores them).
            stamp_s: ``header.stamp`` in seconds on the node clock.
        """
        if len(displacements) and not self._displacement_warned:
            self._displacement_warned = True
            log.warning("Joint jog command displacements field is not yet supported, ignoring.")
        self._latest_jog = _JointJog(
            tuple(str(n) for n in names), np.asarray(velocities, dtype=np.float64), float(stamp_s)
        )
        self._new_jog = True

    # -- the loop -------------------------------------------------------------------------------------
    def update(self, now_s: float) -> ServoOutput | None:
        """One loop iteration at time ``now_s`` (node clock, s). Returns None while paused
        (MoveIt then neither computes nor publishes status)."""
        if self.paused:
            return None
        out: ServoOutput | None = None
        if self.command_type is CommandType.JOINT_JOG and self._new_jog:
            self._new_twist = False  # commands of another type are rejected
            out = self._process_joint_jog(now_s)
        elif self.command_type is CommandType.TWIST and self._new_twist:
            self._new_jog = False
            out = self._process_twist(now_s)
        elif self._new_twist or self._new_jog:
            self._new_twist = self._new_jog = False
            self.dropped_untyped += 1
            if self.dropped_untyped in (1, 10) or self.dropped_untyped % 100 == 0:
                log.warning(
                    "Command type has not been set, cannot accept input (%d twists dropped)", self.dropped_untyped
                )
        if out is None:
            return ServoOutput(None, None, self.status, STATUS_MESSAGE[self.status])
        if out.positions is not None and self.status is not StatusCode.INVALID:
            self._last_cmd_q, self._last_cmd_qd = out.positions.copy(), out.velocities.copy()
        return out

    def _process_twist(self, now_s: float) -> ServoOutput:
        cmd = self._latest
        assert cmd is not None
        if now_s - cmd.stamp_s >= self.params.incoming_command_timeout_s:
            return self._halt()
        q, _ = self.arm.joint_state()
        target = self._next_joint_state(q, cmd)
        if target is None:
            self.rejected += 1
            return ServoOutput(None, None, self.status, STATUS_MESSAGE[self.status])
        pos, vel = target
        return ServoOutput(pos, vel, self.status, STATUS_MESSAGE[self.status])

    def _process_joint_jog(self, now_s: float) -> ServoOutput:
        cmd = self._latest_jog
        assert cmd is not None
        if now_s - cmd.stamp_s >= self.params.incoming_command_timeout_s:
            return self._halt(jog=True)
        q, _ = self.arm.joint_state()
        target = self._next_joint_state_jog(q, cmd)
        if target is None:
            self.rejected += 1
            self._new_jog = False  # an INVALID message is not processed again
            return ServoOutput(None, None, self.status, STATUS_MESSAGE[self.status])
        pos, vel = target
        return ServoOutput(pos, vel, self.status, STATUS_MESSAGE[self.status])

    def _next_joint_state_jog(self, q: np.ndarray, cmd: _JointJog) -> tuple[np.ndarray, np.ndarray] | None:
        """``jointDeltaFromJointJog`` then ``getNextJointState``'s limits (joint mode)."""
        p = self.params
        self.status = StatusCode.NO_WARNING
        names = list(p.joint_names)
        vel = np.zeros(len(names))
        if cmd.velocities.shape != (len(cmd.names),):
            self.status = StatusCode.INVALID
            self.last_error = f"{len(cmd.names)} joint names with {cmd.velocities.size} velocities"
            log.warning("Invalid joint jog command: %s", self.last_error)
            return None
        for n, v in zip(cmd.names, cmd.velocities):
            if n not in names:
                self.status = StatusCode.INVALID
                self.last_error = f"invalid joint name {n!r}"
                log.warning("Invalid joint name: %s", n)
                return None
            vel[names.index(n)] = v
        if not np.all(np.isfinite(vel)):
            self.status = StatusCode.INVALID
            self.last_error = "non-finite joint velocity"
            log.warning("Invalid velocity values in joint jog command")
            return None
        delta = vel * p.publish_period_s
        if p.command_in_type == "unitless":
            delta = delta * p.scale_joint
        vel = delta / p.publish_period_s
        vel = vel * self._velocity_limit_scale(vel)
        pos = q + vel * p.publish_period_s
        vel = (pos - q) / p.publish_period_s
        halt = self._joints_to_halt(pos, vel)
        if halt:
            self.status = StatusCode.JOINT_BOUND
            log.debug("Joint position limit reached on joints: %s", " ".join(names[i] for i in halt))
            if p.halt_all_joints_in_joint_mode:
                pos, vel = q.copy(), np.zeros(len(names))
            else:
                pos, vel = pos.copy(), vel.copy()
                pos[halt], vel[halt] = q[halt], 0.0
        return pos, vel

    def _halt(self, jog: bool = False) -> ServoOutput:
        """Stale command: hold the last commanded positions with zero velocity; once
        stopped, stop processing the old command (``smoothHalt`` without a smoothing plugin)."""
        if self._last_cmd_q is None:
            self._last_cmd_q = self.arm.joint_state()[0].copy()
        stopped = bool(np.all(np.abs(self._last_cmd_qd) < 1e-3))
        if jog:
            self._new_jog = not stopped
        else:
            self._new_twist = not stopped
        return ServoOutput(self._last_cmd_q.copy(), np.zeros(7), self.status, STATUS_MESSAGE[self.status], halting=True)

    def _to_planning_frame(self, cmd: _Twist) -> np.ndarray | None:
        if cmd.frame_id == self.params.planning_frame:
            return cmd.velocities
        R = self.arm.frame_rotation(cmd.frame_id)
        if R is None:
            log.debug("Could not transform twist command to planning frame (unknown frame %r).", cmd.frame_id)
            return None
        v = cmd.velocities
        return np.concatenate([R @ v[:3], R @ v[3:]])

    def _next_joint_state(self, q: np.ndarray, cmd: _Twist) -> tuple[np.ndarray, np.ndarray] | None:
        p = self.params
        self.status = StatusCode.NO_WARNING
        if not cmd.frame_id or not np.all(np.isfinite(cmd.velocities)):
            self.status = StatusCode.INVALID
            self.last_error = "empty frame_id" if not cmd.frame_id else "non-finite twist"
            log.debug("Invalid twist command: %s", self.last_error)
            return None
        twist = self._to_planning_frame(cmd)
        if twist is None:
            self.status = StatusCode.INVALID
            self.last_error = f"cannot transform twist from frame {cmd.frame_id!r} to {p.planning_frame!r}"
            return None
        delta_x = twist * p.publish_period_s
        if p.command_in_type == "unitless":
            delta_x = np.concatenate([delta_x[:3] * p.scale_linear_mps, delta_x[3:] * p.scale_rotational_radps])
        if not np.any(delta_x):
            dq = np.zeros(7)
        else:
            J = self.arm.jacobian(q)
            dq = np.linalg.pinv(J) @ delta_x
            scale, code = self._singularity_scale(q, J, delta_x)
            if code is not StatusCode.NO_WARNING:
                self.status = code
                log.debug(STATUS_MESSAGE[code])
                dq = dq * scale
        vel = dq / p.publish_period_s
        vel = vel * self._velocity_limit_scale(vel)
        pos = q + vel * p.publish_period_s
        vel = (pos - q) / p.publish_period_s
        halt = self._joints_to_halt(pos, vel)
        if halt:
            self.status = StatusCode.JOINT_BOUND
            log.debug("Joint position limit reached on joints: %s", " ".join(f"panda_joint{i + 1}" for i in halt))
            if p.halt_all_joints_in_cartesian_mode:
                pos, vel = q.copy(), np.zeros(7)
            else:
                pos, vel = pos.copy(), vel.copy()
                pos[halt], vel[halt] = q[halt], 0.0
        return pos, vel

    def condition_number(self, q: np.ndarray) -> float:
        """Condition number of the 6x7 Jacobian at ``q`` (ratio of extreme singular values)."""
        s = np.linalg.svd(self.arm.jacobian(q), compute_uv=False)
        return float(s[0] / s[-1]) if s[-1] > 0 else math.inf

    def _singularity_scale(self, q: np.ndarray, J: np.ndarray, delta_x: np.ndarray) -> tuple[float, StatusCode]:
        p = self.params
        U, s, _ = np.linalg.svd(J, full_matrices=False)
        if s[-1] <= 0:
            return 0.0, StatusCode.HALT_FOR_SINGULARITY
        cond = s[0] / s[-1]
        towards = U[:, -1].copy()
        # Probe a small step along the least responsive direction to fix the SVD sign.
        q_next = q + np.linalg.pinv(J) @ (towards * p.singularity_step_scale)
        s_next = np.linalg.svd(self.arm.jacobian(q_next), compute_uv=False)
        cond_next = s_next[0] / s_next[-1] if s_next[-1] > 0 else math.inf
        if cond_next <= cond:
            towards = -towards
        approaching = float(towards @ delta_x) > 0
        lo, hi = p.lower_singularity_threshold, p.hard_stop_singularity_threshold
        upper = hi if approaching else lo + (hi - lo) * p.leaving_singularity_threshold_multiplier
        if lo < cond < hi:
            code = (
                StatusCode.DECELERATE_FOR_APPROACHING_SINGULARITY
                if approaching
                else StatusCode.DECELERATE_FOR_LEAVING_SINGULARITY
            )
            return 1.0 - (cond - lo) / (upper - lo), code
        if cond >= hi:
            return 0.0, StatusCode.HALT_FOR_SINGULARITY
        return 1.0, StatusCode.NO_WARNING

    def _velocity_limit_scale(self, vel: np.ndarray) -> float:
        p = self.params
        scale = p.override_velocity_scaling_factor if p.override_velocity_scaling_factor >= 0.01 else 1.0
        vmax = np.asarray(self.arm.max_velocity, dtype=np.float64)
        nz = vel != 0
        if np.any(nz):
            ratio = np.clip(vel[nz], -vmax[nz], vmax[nz]) / vel[nz]
            scale = min(scale, float(ratio.min()))
        return scale

    def _joints_to_halt(self, pos: np.ndarray, vel: np.ndarray) -> list[int]:
        m = self.params.joint_limit_margin_rad
        lo, hi = np.asarray(self.arm.lower), np.asarray(self.arm.upper)
        bad = ((vel < 0) & (pos < lo + m)) | ((vel > 0) & (pos > hi - m))
        return [int(i) for i in np.flatnonzero(bad)]

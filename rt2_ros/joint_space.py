"""Joint-space actions and their safety envelope (policies answering joint velocities). ROS-free.

openpi's DROID checkpoints answer joint velocities (7) and a gripper position
(``examples/droid/main.py``); MoveIt Servo takes joint velocities as
``control_msgs/JointJog`` on ``~/delta_joint_cmds`` (command type JOINT_JOG,
``servo_node.cpp``; ``jointDeltaFromJointJog`` in ``utils/command.cpp``: delta =
velocity x ``publish_period``). A :class:`JointAction` carries such an action through
the controller's chunk queue; :class:`JointEnvelope` filters every JointJog before it
leaves the node, as :class:`~rt2_ros.safety.SafetyEnvelope` filters twists:

1. any stop reason of the shared envelope (e-stop, stale image, stale action) -> zero;
2. velocities that are not one finite value per joint -> zero (``invalid_joint_velocity``);
3. per-joint speed caps (``safety.max_joint_velocity_radps``), by one uniform factor so
   the direction in joint space is kept (as Servo's ``jointLimitVelocityScalingFactor``);
4. position limits (``safety.joint_position_min/max``): a joint within
   ``joint_limit_margin_rad`` of a limit and moving towards it is stopped
   (``joint_limit``); unknown joint positions (no fresh ``/joint_states``) -> zero
   (``joint_state_unknown``): the limits cannot be checked;
5. slew limit (``safety.max_joint_accel_radps2``) between consecutive commands.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from rt2_ros.action_tokenizer import Action

__all__ = ["JointAction", "JointServoCommand", "JointEnvelope"]


@dataclasses.dataclass(frozen=True)
class JointAction(Action):
    """A joint-velocity action: ``joint_velocities`` float64 (n,) rad/s in
    ``servo.joint_names`` order, held for one control period; ``gripper`` as
    :class:`Action`'s; the end-effector deltas are zero."""

    joint_velocities: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))


@dataclasses.dataclass(frozen=True)
class JointServoCommand:
    """One JointJog to publish.

    Attributes:
        names: joint names.
        velocities: float64 (n,) rad/s (all zero when ``stop``).
        stop: nothing may move.
        reasons: why it was stopped or limited (e.g. ``("e_stop",)``, ``("joint_limit",)``).
    """

    names: tuple[str, ...]
    velocities: np.ndarray
    stop: bool
    reasons: tuple[str, ...] = ()

    @property
    def is_zero(self) -> bool:
        """True when every joint velocity is exactly 0 rad/s (a stand-still command)."""
        return not np.any(self.velocities)


class JointEnvelope:
    """The joint-space safety envelope (see the module doc).

    Args:
        names: the joints, in order.
        max_velocity_radps: per-joint speed caps (rad/s, > 0).
        position_min, position_max: position limits (rad).
        margin_rad: approach margin (rad, >= 0).
        max_accel_radps2: slew limit (rad/s^2, > 0).
        period_s: the servo tick period (s, > 0).

    Raises:
        ValueError: lists of different lengths, or values out of range.
    """

    def __init__(
        self,
        names: Sequence[str],
        max_velocity_radps: Sequence[float],
        position_min: Sequence[float],
        position_max: Sequence[float],
        margin_rad: float,
        max_accel_radps2: float,
        period_s: float,
    ):
        self.names = tuple(names)
        n = len(self.names)
        self.vmax = np.asarray(max_velocity_radps, dtype=np.float64)
        self.lo = np.asarray(position_min, dtype=np.float64)
        self.hi = np.asarray(position_max, dtype=np.float64)
        if not (self.vmax.shape == self.lo.shape == self.hi.shape == (n,)) or n == 0:
            raise ValueError(f"need one speed cap and position limit per joint ({n} joints)")
        if np.any(self.vmax <= 0) or np.any(self.hi <= self.lo):
            raise ValueError("joint speed caps must be > 0 and position_max > position_min")
        if not (margin_rad >= 0 and max_accel_radps2 > 0 and period_s > 0):
            raise ValueError("need margin_rad >= 0, max_accel_radps2 > 0, period_s > 0")
        self.margin = float(margin_rad)
        self.max_step = float(max_accel_radps2) * float(period_s)
        self.last = np.zeros(n)

    def zero(self, reasons: Sequence[str] = ()) -> JointServoCommand:
        """A stop (and the slew state reset)."""
        self.last = np.zeros(len(self.names))
        return JointServoCommand(self.names, np.zeros(len(self.names)), True, tuple(reasons))

    def filter(
        self, velocities: np.ndarray | None, positions: np.ndarray | None, stop_reasons: Sequence[str] = ()
    ) -> JointServoCommand:
        """The JointJog to send for the wanted ``velocities`` (rad/s; None = stand still)
        at joint ``positions`` (rad; None = unknown), given the shared envelope's stop
        reasons."""
        if stop_reasons:
            return self.zero(stop_reasons)
        n = len(self.names)
        if velocities is None:
            return self.zero()
        v = np.asarray(velocities, dtype=np.float64)
        if v.shape != (n,) or not np.all(np.isfinite(v)):
            return self.zero(("invalid_joint_velocity",))
        if not np.any(v):
            return self.zero()
        if positions is None:
            return self.zero(("joint_state_unknown",))
        q = np.asarray(positions, dtype=np.float64)
        reasons: list[str] = []
        peak = np.max(np.abs(v) / self.vmax)
        if peak > 1.0:
            v = v / peak
            reasons.append("joint_speed_capped")
        toward = ((v < 0) & (q <= self.lo + self.margin)) | ((v > 0) & (q >= self.hi - self.margin))
        if np.any(toward):
            v = np.where(toward, 0.0, v)
            reasons.append("joint_limit")
        step = np.clip(v - self.last, -self.max_step, self.max_step)
        if np.any(np.abs(v - self.last) > self.max_step + 1e-12):
            reasons.append("joint_slew_limited")
        v = self.last + step
        self.last = v
        return JointServoCommand(self.names, v, False, tuple(reasons))

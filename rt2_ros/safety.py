"""Safety envelope between decoded actions and MoveIt Servo. ROS-free, clock-agnostic.

Every twist bound for the robot passes :meth:`SafetyEnvelope.filter`, which applies,
in order:

1. rejection of NaN/inf (-> stop);
2. the latched emergency stop (-> stop);
3. the watchdogs: newest image / newest action older than a limit (-> stop);
4. an unknown end-effector pose (-> stop, with ``require_ee_pose``, the default;
   without it the motion passes with the note ``workspace_unchecked``: the box
   cannot be applied);
5. per-axis speed caps, then speed-norm caps (the vector is scaled, never
   re-directed, so the robot moves along the commanded direction or slower);
6. the workspace box in the planning frame: given the current end-effector
   position, each axis velocity is reduced so that the motion over the horizon
   ends on the box face at the furthest, and motion further out of the box is
   removed (motion back into the box is allowed);
7. the slew (acceleration) limit between consecutive commands: the change of the
   velocity vector per command is at most ``max_accel * dt`` (dt = time since the
   previous command, capped at five servo periods).

A stop is the zero twist with the gripper held; stops bypass the slew limit (they
are immediate). Times are seconds on any monotonic or ROS clock, passed in.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from rt2_ros.config import SafetyConfig
from rt2_ros.motion import Twist

__all__ = ["ServoCommand", "Watchdog", "SafetyEnvelope", "MAX_FUTURE_S"]


@dataclasses.dataclass(frozen=True)
class ServoCommand:
    """What goes to Servo on one servo tick.

    Attributes:
        twist: the (limited) velocity, in the command frame.
        stop: True when this is a stop (zero twist, gripper held).
        reasons: why the command is a stop or was limited (e.g. ``"e_stop"``,
            ``"image_stale"``, ``"workspace_clip"``); empty when passed unchanged.
    """

    twist: Twist
    stop: bool
    reasons: tuple[str, ...] = ()

    @staticmethod
    def make_stop(*reasons: str) -> "ServoCommand":
        """A stop: the zero twist with the gripper held, for ``reasons``."""
        return ServoCommand(Twist.zero(), True, tuple(reasons))


#: A stamp later than "now" by more than this is not trusted (clock skew, a garbage
#: header, or ROS time that jumped back, e.g. a simulation reset) [s].
MAX_FUTURE_S = 0.5


class Watchdog:
    """Expires when the newest event is older than ``limit_s``, never came, or is
    stamped more than :data:`MAX_FUTURE_S` in the future (its age cannot be known).

    An event fed with its arrival time ``now_s`` counts as of the earlier of its stamp
    and its arrival: its age is the larger of the two, so a sender whose clock runs
    ahead of the receiver's can never stretch the watchdog."""

    def __init__(self, limit_s: float):
        if not limit_s > 0:
            raise ValueError(f"watchdog limit must be > 0 s, got {limit_s}")
        self.limit_s = float(limit_s)
        self.last_s: float | None = None

    def feed(self, stamp_s: float, now_s: float | None = None) -> None:
        """Record an event stamped ``stamp_s`` (s) that arrived at ``now_s`` (s, the
        receiver's clock; None: unknown). It counts as of ``min(stamp_s, now_s)``.
        Older events than the newest are ignored, unless the newest lies in the future
        of ``now_s`` (time jumped back)."""
        if not math.isfinite(stamp_s):
            return
        t = float(stamp_s) if now_s is None or not math.isfinite(now_s) else min(float(stamp_s), float(now_s))
        stale_future = now_s is not None and self.last_s is not None and self.last_s > now_s + MAX_FUTURE_S
        if self.last_s is None or t > self.last_s or stale_future:
            self.last_s = t

    def age(self, now_s: float) -> float:
        """Seconds since the newest event (inf if none)."""
        return math.inf if self.last_s is None else now_s - self.last_s

    def expired(self, now_s: float) -> bool:
        """True when the newest stamp is older than ``limit_s`` at ``now_s`` (s), or lies in the future."""
        age = self.age(now_s)
        return age > self.limit_s or age < -MAX_FUTURE_S

    def clear(self) -> None:
        """Forget the last stamp (the watchdog is then expired)."""
        self.last_s = None


def _cap(v: np.ndarray, axis_max: float, norm_max: float) -> tuple[np.ndarray, bool]:
    """Scale ``v`` so that every |component| <= axis_max and |v| <= norm_max."""
    scale = 1.0
    peak = float(np.max(np.abs(v)))
    if peak > axis_max:
        scale = axis_max / peak
    n = float(np.linalg.norm(v)) * scale
    if n > norm_max:
        scale *= norm_max / n
    return (v * scale, scale < 1.0)


def _slew(v: np.ndarray, prev: np.ndarray, max_change: float) -> tuple[np.ndarray, bool]:
    dv = v - prev
    n = float(np.linalg.norm(dv))
    if n <= max_change:
        return v, False
    return prev + dv * (max_change / n), True


class SafetyEnvelope:
    """Configurable limits on every twist (see the module doc for the order).

    Args:
        cfg: the ``safety`` section of the config.
        servo_period_s: nominal time between commands (1 / servo rate), s: the slew
            step allowed for the first command and the cap on the gap between two.
    """

    def __init__(self, cfg: SafetyConfig, servo_period_s: float = 0.02):
        self.cfg = cfg
        self.servo_period_s = float(servo_period_s)
        self.image_watchdog = Watchdog(cfg.max_image_age_s)
        self.action_watchdog = Watchdog(cfg.max_action_age_s)
        self._estop = False
        self._prev: Twist = Twist.zero()
        self._prev_t: float | None = None
        self.box_min = np.asarray(cfg.workspace_min, dtype=np.float64)
        self.box_max = np.asarray(cfg.workspace_max, dtype=np.float64)

    # -- e-stop --------------------------------------------------------------------
    @property
    def estop_engaged(self) -> bool:
        """True while the emergency stop is latched."""
        return self._estop

    def engage_estop(self) -> None:
        """Latch the emergency stop: every command is a stop until :meth:`clear_estop`."""
        self._estop = True

    def clear_estop(self) -> None:
        """Clear the latched emergency stop."""
        self._estop = False

    @property
    def last_twist(self) -> Twist:
        """The last command this envelope let through (zero after a stop), command frame."""
        return self._prev

    def reset_slew(self) -> None:
        """Forget the previous command (next command slews from zero)."""
        self._prev, self._prev_t = Twist.zero(), None

    # -- checks --------------------------------------------------------------------
    def stop_reasons(self, now_s: float, watch_inputs: bool = True) -> list[str]:
        """Reasons that force a stop right now (e-stop, stale image/action)."""
        reasons = []
        if self._estop:
            reasons.append("e_stop")
        if watch_inputs:
            if self.image_watchdog.expired(now_s):
                reasons.append("image_stale")
            if self.action_watchdog.expired(now_s):
                reasons.append("action_stale")
        return reasons

    def clip_to_workspace(
        self, linear: np.ndarray, ee_position: np.ndarray, horizon_s: float
    ) -> tuple[np.ndarray, bool]:
        """Limit a planning-frame linear velocity (m/s) so that ``ee_position + v *
        horizon_s`` stays inside the box; returns (velocity, clipped?)."""
        v = linear.copy()
        p = np.asarray(ee_position, dtype=np.float64)
        clipped = False
        for i in range(3):
            if v[i] > 0:
                room = max(self.box_max[i] - p[i], 0.0)
                if p[i] + v[i] * horizon_s > self.box_max[i]:
                    v[i], clipped = room / horizon_s, True
            elif v[i] < 0:
                room = max(p[i] - self.box_min[i], 0.0)
                if p[i] + v[i] * horizon_s < self.box_min[i]:
                    v[i], clipped = -room / horizon_s, True
        return v, clipped

    def filter(
        self,
        twist: Twist,
        now_s: float,
        ee_position: np.ndarray | None = None,
        horizon_s: float = 0.1,
        rotation_planning_from_command: np.ndarray | None = None,
        watch_inputs: bool = True,
    ) -> ServoCommand:
        """Apply every limit to ``twist`` (command frame) at time ``now_s``.

        Args:
            twist: requested velocity, linear m/s and angular rad/s.
            now_s: current time, s.
            ee_position: ``float64 (3,)`` end-effector position in the planning frame
                (m), or None when unknown: a stop when ``require_ee_pose`` (the
                default), else the box check is skipped and the command carries the
                note ``workspace_unchecked``.
            horizon_s: time the command will be held (the rest of the control period), s.
            rotation_planning_from_command: ``(3, 3)`` rotation taking command-frame
                vectors to the planning frame; None when both frames are the same.
            watch_inputs: apply the image/action watchdogs (False when idle: nothing
                moves then anyway).

        Returns:
            The :class:`ServoCommand` to send.
        """
        reasons = self.stop_reasons(now_s, watch_inputs)
        if not twist.is_finite:
            reasons.insert(0, "non_finite_twist")
        if ee_position is None and self.cfg.require_ee_pose and not twist.is_zero:
            reasons.append("ee_pose_unknown")
        if reasons:
            self._prev, self._prev_t = Twist.zero(), now_s
            return ServoCommand.make_stop(*reasons)

        notes: list[str] = []
        lin, c1 = _cap(twist.linear, self.cfg.max_linear_speed_axis_mps, self.cfg.max_linear_speed_mps)
        ang, c2 = _cap(twist.angular, self.cfg.max_angular_speed_axis_radps, self.cfg.max_angular_speed_radps)
        if c1 or c2:
            notes.append("speed_cap")

        if self.cfg.workspace_enabled and ee_position is None and not twist.is_zero:
            notes.append("workspace_unchecked")  # require_ee_pose is off: said loudly by the controller
        if self.cfg.workspace_enabled and ee_position is not None and horizon_s > 0:
            R = rotation_planning_from_command
            lin_p = lin if R is None else R @ lin
            lin_p, clipped = self.clip_to_workspace(lin_p, ee_position, horizon_s)
            if clipped:
                notes.append("workspace_clip")
                lin = lin_p if R is None else R.T @ lin_p

        if twist.is_zero:
            lin, ang = np.zeros(3), np.zeros(3)  # a requested zero is a stop: immediate, no slew
        else:
            dt = (
                self.servo_period_s
                if self._prev_t is None
                else min(max(now_s - self._prev_t, 0.0), self.servo_period_s * 5)
            )
            lin, s1 = _slew(lin, self._prev.linear, self.cfg.max_linear_accel_mps2 * dt)
            ang, s2 = _slew(ang, self._prev.angular, self.cfg.max_angular_accel_radps2 * dt)
            if s1 or s2:
                notes.append("slew_limit")
            if s1 and self.cfg.workspace_enabled and ee_position is not None and horizon_s > 0:
                # Slewing from a larger previous command must not undo the workspace clip.
                R = rotation_planning_from_command
                lin_p = lin if R is None else R @ lin
                lin_p, _ = self.clip_to_workspace(lin_p, ee_position, horizon_s)
                lin = lin_p if R is None else R.T @ lin_p

        out = Twist(lin, ang)
        self._prev, self._prev_t = out, now_s
        return ServoCommand(out, False, tuple(notes))

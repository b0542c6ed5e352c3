"""From an RT-2 displacement per control step to the velocity MoveIt Servo takes.

RT-2's action is a *displacement* of the end effector for one control step
(arXiv:2307.15818 section 3.2); MoveIt Servo's ``~/delta_twist_cmds`` takes a
*velocity* (TwistStamped, ``command_in_type: speed_units`` -> m/s and rad/s;
``shared/docs/rt2-reference.md``, MoveIt Servo). So a displacement ``d`` over the
control period ``T`` becomes the velocity ``d / T`` held for ``T``. Rotations use
scipy's :class:`~scipy.spatial.transform.Rotation`. ROS-free.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

from rt2_ros.codecs import Action

__all__ = ["Twist", "rotation_delta_to_rotvec", "delta_to_twist", "gripper_command"]


@dataclasses.dataclass(frozen=True)
class Twist:
    """A velocity command.

    Attributes:
        linear: ``float64 (3,)`` m/s.
        angular: ``float64 (3,)`` rad/s (axis times rate: a rotation vector per second).
    """

    linear: np.ndarray
    angular: np.ndarray

    @staticmethod
    def zero() -> "Twist":
        return Twist(np.zeros(3), np.zeros(3))

    @property
    def is_zero(self) -> bool:
        return not (np.any(self.linear) or np.any(self.angular))

    @property
    def is_finite(self) -> bool:
        return bool(np.all(np.isfinite(self.linear)) and np.all(np.isfinite(self.angular)))


def rotation_delta_to_rotvec(delta_rotation: np.ndarray, convention: str = "rpy") -> np.ndarray:
    """Express a rotation delta as a rotation vector (axis * angle, rad).

    Args:
        delta_rotation: ``float64 (3,)`` rad.
        convention: ``"rpy"``: roll, pitch, yaw about the fixed x, y, z axes
            (extrinsic ``"xyz"``, the Δrpy of OpenVLA/Bridge data and of RT-1's
            ``rotation_delta``); ``"rotvec"``: already a rotation vector.

    Returns:
        ``float64 (3,)`` rotation vector in rad.

    Raises:
        ValueError: unknown convention or wrong shape.
    """
    d = np.asarray(delta_rotation, dtype=np.float64)
    if d.shape != (3,):
        raise ValueError(f"rotation delta must have shape (3,), got {d.shape}")
    if convention == "rotvec":
        return d.copy()
    if convention == "rpy":
        return Rotation.from_euler("xyz", d).as_rotvec()
    raise ValueError(f"unknown rotation convention {convention!r} (rpy | rotvec)")


def delta_to_twist(action: Action, period_s: float, convention: str = "rpy") -> Twist:
    """Velocity that performs ``action``'s displacement in ``period_s`` seconds.

    ``linear = delta_position / period_s`` (m/s); ``angular = rotvec(delta_rotation) /
    period_s`` (rad/s), both in the frame the action is expressed in (the command frame).

    Raises:
        ValueError: ``period_s <= 0`` or non-finite values.
    """
    if not (period_s > 0 and np.isfinite(period_s)):
        raise ValueError(f"control period must be > 0 s, got {period_s}")
    lin = np.asarray(action.delta_position, dtype=np.float64) / period_s
    ang = rotation_delta_to_rotvec(action.delta_rotation, convention) / period_s
    t = Twist(lin, ang)
    if not t.is_finite:
        raise ValueError("action gives a non-finite twist")
    return t


def gripper_command(
    value: float, low: float, high: float, invert: bool = False, binarize: bool = False, threshold: float = 0.5
) -> float:
    """Map a decoded gripper value from ``[low, high]`` to a command in ``[0, 1]`` (1 = open).

    ``invert`` for models whose value means closedness (RT-1's
    ``gripper_closedness_action``); ``binarize`` snaps to 0/1 at ``threshold``, as
    OpenVLA's evaluation code does.

    Raises:
        ValueError: non-finite value or ``high <= low``.
    """
    if not np.isfinite(value) or not high > low:
        raise ValueError(f"bad gripper value {value} for range [{low}, {high}]")
    x = float(np.clip((value - low) / (high - low), 0.0, 1.0))
    if invert:
        x = 1.0 - x
    if binarize:
        x = 1.0 if x >= threshold else 0.0
    return x

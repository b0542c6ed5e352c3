"""Displacement per control step -> Servo velocity (twists are velocities, not displacements)."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from rt2_ros.action_tokenizer import Action
from rt2_ros.motion import Twist, delta_to_twist, gripper_command, rotation_delta_to_rotvec


def _action(dp, dr, g=0.5):
    return Action(False, np.asarray(dp, float), np.asarray(dr, float), g)


def test_displacement_over_period_becomes_velocity():
    t = delta_to_twist(_action([0.02, -0.01, 0.0], [0, 0, 0]), period_s=0.2)
    np.testing.assert_allclose(t.linear, [0.1, -0.05, 0.0])  # m/s
    np.testing.assert_allclose(t.angular, 0.0)
    # Integrating the velocity for one period gives back the displacement.
    np.testing.assert_allclose(t.linear * 0.2, [0.02, -0.01, 0.0])


def test_single_axis_rotation_is_angle_over_period():
    t = delta_to_twist(_action([0, 0, 0], [0, 0, 0.1]), period_s=0.5)
    np.testing.assert_allclose(t.angular, [0, 0, 0.2])  # rad/s about z


def test_rpy_delta_becomes_the_equivalent_rotation_vector():
    d = np.array([0.2, -0.1, 0.3])
    rv = rotation_delta_to_rotvec(d, "rpy")
    # Rotating by the rotation vector equals rotating roll, then pitch, then yaw about fixed axes.
    np.testing.assert_allclose(
        Rotation.from_rotvec(rv).as_matrix(), Rotation.from_euler("xyz", d).as_matrix(), atol=1e-12
    )
    np.testing.assert_allclose(rotation_delta_to_rotvec(d, "rotvec"), d)


def test_bad_inputs():
    with pytest.raises(ValueError, match="period"):
        delta_to_twist(_action([0, 0, 0], [0, 0, 0]), 0.0)
    with pytest.raises(ValueError, match="non-finite"):
        delta_to_twist(_action([np.inf, 0, 0], [0, 0, 0]), 0.1)
    with pytest.raises(ValueError, match="convention"):
        rotation_delta_to_rotvec(np.zeros(3), "quat")


def test_gripper_mapping():
    assert gripper_command(1.0, 0.0, 1.0) == 1.0
    assert gripper_command(-1.0, -1.0, 1.0) == 0.0
    assert gripper_command(0.25, 0.0, 1.0, invert=True) == 0.75
    assert gripper_command(0.6, 0.0, 1.0, binarize=True) == 1.0
    assert gripper_command(0.4, 0.0, 1.0, binarize=True) == 0.0
    assert gripper_command(7.0, 0.0, 1.0) == 1.0  # clipped
    with pytest.raises(ValueError):
        gripper_command(float("nan"), 0.0, 1.0)


def test_twist_zero():
    assert Twist.zero().is_zero and Twist.zero().is_finite

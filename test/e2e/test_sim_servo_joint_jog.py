"""The MoveIt Servo stand-in executing JointJog (``~/delta_joint_cmds``) on the real PyBullet
Panda, ROS-free, simulated time: as MoveIt's ``processJointJogCommand`` /
``jointDeltaFromJointJog`` do (command type JOINT_JOG, delta = velocity x publish_period,
invalid messages held, staleness halts, joint limits halt)."""

import numpy as np
import pytest

pytest.importorskip("pybullet")

from rt2_ros.servo_interface import CommandType, StatusCode  # noqa: E402
from rt2_ros.sim.world import SimWorld  # noqa: E402

NAMES = [f"panda_joint{i}" for i in range(1, 8)]


@pytest.fixture(scope="module")
def world():
    w = SimWorld(seed=3)
    yield w
    w.close()


@pytest.fixture
def fresh(world):
    world.reset(seed=3)
    world.servo.command_type = CommandType.JOINT_JOG
    world.servo.paused = False
    return world


def jog(w, seconds, names=NAMES, vel=(0.0,) * 7, lag_s=0.0, displacements=()):
    t = w.scene.time_s
    q0 = w.scene.joint_state()[0].copy()
    out = None
    for _ in range(int(round(seconds / w.tick_s))):
        w.servo.on_joint_jog(names, vel, displacements, t - lag_s)
        out = w.servo_tick(t)
        t += w.tick_s
    return w.scene.joint_state()[0] - q0, out


def test_joint_velocity_moves_that_joint_by_velocity_times_time(fresh):
    d, out = jog(fresh, 1.0, vel=(0.2, 0, 0, 0, 0, 0, 0))
    assert out.status is StatusCode.NO_WARNING
    assert d[0] == pytest.approx(0.2, abs=0.03)
    assert np.all(np.abs(d[1:]) < 0.02)


def test_unnamed_joints_get_zero_and_order_follows_the_names(fresh):
    d, _ = jog(fresh, 0.5, names=["panda_joint3"], vel=[-0.2])
    assert d[2] == pytest.approx(-0.1, abs=0.02) and abs(d[0]) < 0.02


@pytest.mark.parametrize(
    "names,vel,why",
    [
        (NAMES, (0.2,) * 6, "velocities"),  # counts differ
        (["panda_joint1", "nonexistent"], (0.2, 0.2), "invalid joint name"),
        (NAMES, (float("nan"),) + (0.0,) * 6, "non-finite"),
    ],
)
def test_invalid_joint_jog_is_invalid_and_the_arm_holds(fresh, names, vel, why):
    d, out = jog(fresh, 0.3, names=names, vel=vel)
    assert out.status is StatusCode.INVALID and why in fresh.servo.last_error
    assert np.all(np.abs(d) < 0.01)


def test_stale_joint_jog_halts(fresh):
    d, out = jog(fresh, 0.5, vel=(0.3,) + (0.0,) * 6, lag_s=0.5)
    assert np.all(np.abs(d) < 0.01)


def test_twists_are_dropped_while_joint_jog_is_selected_and_joint_jog_while_twist(fresh):
    t = fresh.scene.time_s
    p0 = fresh.scene.ee_pose()[0]
    for _ in range(15):
        fresh.servo.on_twist("panda_link0", (0.1, 0, 0), (0, 0, 0), t)
        fresh.servo_tick(t)
        t += fresh.tick_s
    assert np.linalg.norm(fresh.scene.ee_pose()[0] - p0) < 1e-3
    fresh.servo.set_command_type(CommandType.TWIST)
    d, _ = jog(fresh, 0.3, vel=(0.3,) + (0.0,) * 6)
    assert np.all(np.abs(d) < 0.01)


def test_a_joint_near_its_limit_halts_all_joints(fresh):
    lo = fresh.scene.lower
    q = fresh.scene.joint_state()[0]
    # joint 4 (lower limit -3.07) at -2.3 moving down at 1 rad/s: reaches its margin within a second
    assert lo[3] < q[3]
    d, out = jog(fresh, 1.5, vel=(0, 0, 0, -1.0, 0, 0, 0))
    assert out.status is StatusCode.JOINT_BOUND
    q_end = fresh.scene.joint_state()[0]
    assert q_end[3] > lo[3]  # never past the limit


def test_displacements_are_ignored(fresh):
    d, out = jog(fresh, 0.5, vel=(0.2,) + (0.0,) * 6, displacements=(1.0,) * 7)
    assert d[0] == pytest.approx(0.1, abs=0.02)

"""The MoveIt Servo stand-in on the real PyBullet Panda (ROS-free, simulated time).

Each test drives :class:`rt2_ros.sim.world.SimWorld` tick by tick with its own clock,
so the staleness rule and the motion are checked exactly, without wall-clock timing.
"""

import math

import numpy as np
import pytest

pytest.importorskip("pybullet")

from rt2_ros.servo_interface import HUMBLE_CODE, CommandType, StatusCode  # noqa: E402
from rt2_ros.sim.servo_standin import ServoParams  # noqa: E402
from rt2_ros.sim.world import SimWorld  # noqa: E402


@pytest.fixture(scope="module")
def world():
    w = SimWorld(seed=3)
    yield w
    w.close()


@pytest.fixture
def fresh(world):
    """The module's world, reset to a known layout, arm home, Servo unconfigured."""
    world.reset(seed=3)
    world.servo.command_type = None
    world.servo.paused = False
    return world


def _run(w, seconds, frame="panda_link0", linear=(0, 0, 0), angular=(0, 0, 0), stamp_lag_s=0.0, t0=None):
    """Feed a fresh twist every tick for ``seconds``; returns (ee displacement, last output)."""
    t = w.scene.time_s if t0 is None else t0
    p0 = w.scene.ee_pose()[0]
    out = None
    for _ in range(int(round(seconds / w.tick_s))):
        w.servo.on_twist(frame, linear, angular, t - stamp_lag_s)
        out = w.servo_tick(t)
        t += w.tick_s
    return w.scene.ee_pose()[0] - p0, out


def test_twists_are_ignored_until_a_command_type_is_chosen(fresh):
    d, out = _run(fresh, 0.5, linear=(0.1, 0, 0))
    assert np.linalg.norm(d) < 1e-3
    assert fresh.servo.dropped_untyped > 0
    assert fresh.servo.set_command_type(CommandType.TWIST)
    d, out = _run(fresh, 0.5, linear=(0.1, 0, 0))
    assert d[0] == pytest.approx(0.05, abs=0.005)
    assert out.status is StatusCode.NO_WARNING


def test_unknown_command_type_is_refused(fresh):
    assert not fresh.servo.set_command_type(7)
    assert fresh.servo.command_type is None


def test_the_arm_moves_at_the_commanded_velocity_in_the_planning_frame(fresh):
    fresh.servo.start()
    v = np.array([0.10, -0.05, -0.08])
    d, out = _run(fresh, 1.0, linear=v)
    np.testing.assert_allclose(d, v * 1.0, atol=0.006)
    assert out.status is StatusCode.NO_WARNING


def test_rotation_about_z_turns_the_hand_in_place(fresh):
    fresh.servo.start()
    from scipy.spatial.transform import Rotation

    q0 = Rotation.from_quat(fresh.scene.ee_pose()[1])
    d, _ = _run(fresh, 1.0, angular=(0, 0, 0.3))
    q1 = Rotation.from_quat(fresh.scene.ee_pose()[1])
    rel = (q1 * q0.inv()).as_rotvec()
    np.testing.assert_allclose(rel, [0, 0, 0.3], atol=0.02)
    assert np.linalg.norm(d) < 0.005  # about the hand origin: no translation


def test_a_twist_in_the_hand_frame_is_rotated_into_the_planning_frame(fresh):
    fresh.servo.start()
    # At home the hand points down: its +z is the planning frame's -z.
    d, _ = _run(fresh, 0.5, frame="panda_hand", linear=(0, 0, 0.1))
    np.testing.assert_allclose(d, [0, 0, -0.05], atol=0.005)


def test_stale_commands_halt_at_the_boundary(fresh):
    fresh.servo.start()
    fresh.servo.params.incoming_command_timeout_s = 0.125  # exact in binary: the boundary is testable
    try:
        # Stamped exactly incoming_command_timeout before now: stale (MoveIt: now - stamp >= timeout).
        fresh.servo.on_twist("panda_link0", (0.1, 0, 0), (0, 0, 0), 2.0)
        out = fresh.servo.update(2.125)
        assert out.halting and not np.any(out.velocities)
        # A hair younger than the timeout: executed.
        fresh.servo.on_twist("panda_link0", (0.1, 0, 0), (0, 0, 0), 2.0)
        out = fresh.servo.update(2.125 - 2.0**-20)
        assert not out.halting and np.linalg.norm(out.velocities) > 0
        # Over many ticks: an old stamp never moves the arm, a fresh one does. (The halt holds
        # the last commanded positions, 3.4 mm ahead after the call above: settle first.)
        _run(fresh, 0.2, linear=(0.1, 0, 0), stamp_lag_s=0.2)
        d, out = _run(fresh, 0.5, linear=(0.1, 0, 0), stamp_lag_s=0.2)
        assert np.linalg.norm(d) < 1e-3 and out.halting
        d, out = _run(fresh, 0.5, linear=(0.1, 0, 0), stamp_lag_s=0.05)
        assert d[0] == pytest.approx(0.05, abs=0.005) and not out.halting
    finally:
        fresh.servo.params.incoming_command_timeout_s = 0.1


def test_when_commands_stop_the_arm_halts_after_the_timeout(fresh):
    fresh.servo.start()
    t = fresh.scene.time_s
    fresh.servo.on_twist("panda_link0", (0.2, 0, 0), (0, 0, 0), t)
    x0 = fresh.scene.ee_pose()[0][0]
    outs = []
    for _ in range(30):  # 1 s with no new command
        outs.append(fresh.servo_tick(t))
        t += fresh.tick_s
    travelled = fresh.scene.ee_pose()[0][0] - x0
    # The held twist is re-applied every tick until it is 0.1 s old, then the arm halts:
    # about 0.1 s of motion (plus at most one tick), never the whole second.
    timeout, tick = fresh.servo.params.incoming_command_timeout_s, fresh.tick_s
    assert 0.2 * (timeout - tick) - 0.003 < travelled < 0.2 * (timeout + 2 * tick)
    assert outs[-1].halting or outs[-1].positions is None


@pytest.mark.parametrize(
    "frame, linear, why",
    [
        ("", (0.1, 0, 0), "empty frame_id"),
        ("camera_link", (0.1, 0, 0), "unknown frame"),
        ("panda_link0", (math.nan, 0, 0), "NaN"),
        ("panda_link0", (math.inf, 0, 0), "inf"),
    ],
)
def test_invalid_twists_are_rejected_and_nothing_moves(fresh, frame, linear, why):
    fresh.servo.start()
    before = fresh.servo.rejected
    d, out = _run(fresh, 0.3, frame=frame, linear=linear)
    assert np.linalg.norm(d) < 1e-3, why
    assert out.status is StatusCode.INVALID and out.positions is None
    assert fresh.servo.rejected > before
    # A valid twist afterwards works again.
    d, out = _run(fresh, 0.3, linear=(0.1, 0, 0))
    assert d[0] > 0.02 and out.status is StatusCode.NO_WARNING


def test_pause_stops_the_loop_and_unpause_resumes(fresh):
    fresh.servo.start()
    ok, msg = fresh.servo.pause(True)
    assert ok and msg == "Servoing disabled"
    d, out = _run(fresh, 0.3, linear=(0.1, 0, 0))
    assert out is None and np.linalg.norm(d) < 1e-3
    ok, msg = fresh.servo.pause(False)
    assert ok and msg == "Servoing enabled"
    d, out = _run(fresh, 0.3, linear=(0.1, 0, 0))
    assert d[0] > 0.02


def test_a_joint_at_its_limit_halts_every_joint(fresh):
    fresh.servo.start()
    # Spin the hand about z: joint 7 (limit 2.9671 rad, starts at pi/4) reaches its margin.
    q7 = []
    out = None
    t = fresh.scene.time_s
    for _ in range(int(4.0 / fresh.tick_s)):
        fresh.servo.on_twist("panda_link0", (0, 0, 0), (0, 0, -1.0), t)
        out = fresh.servo_tick(t)
        t += fresh.tick_s
        q7.append(fresh.scene.joint_state()[0][6])
        if out.status is StatusCode.JOINT_BOUND:
            break
    assert out.status is StatusCode.JOINT_BOUND
    q = fresh.scene.joint_state()[0]
    margin = fresh.servo.params.joint_limit_margin_rad
    assert (q[6] > fresh.scene.upper[6] - margin - 0.05) or (q[6] < fresh.scene.lower[6] + margin + 0.05)
    # Every joint holds while the command keeps pushing into the limit.
    q_before = fresh.scene.joint_state()[0]
    _run(fresh, 0.3, angular=(0, 0, -1.0), t0=t)
    np.testing.assert_allclose(fresh.scene.joint_state()[0], q_before, atol=0.01)


def test_stretching_out_towards_a_singularity_decelerates(fresh):
    fresh.servo.start()
    codes = []
    t = fresh.scene.time_s
    xs = []
    for _ in range(int(5.0 / fresh.tick_s)):
        fresh.servo.on_twist("panda_link0", (0.25, 0, 0.1), (0, 0, 0), t)
        out = fresh.servo_tick(t)
        t += fresh.tick_s
        codes.append(out.status)
        xs.append(fresh.scene.ee_pose()[0][0])
    assert StatusCode.DECELERATE_FOR_APPROACHING_SINGULARITY in codes
    # The speed fades towards zero as the condition number nears the hard stop.
    final_speed = (xs[-1] - xs[-6]) / (5 * fresh.tick_s)
    assert final_speed < 0.25 * 0.3
    cond = fresh.servo.condition_number(fresh.scene.joint_state()[0])
    p = fresh.servo.params
    assert p.lower_singularity_threshold < cond < p.hard_stop_singularity_threshold + 1.0


def test_beyond_the_hard_stop_threshold_the_arm_halts(fresh):
    fresh.servo.start()
    q = [0.0, 0.3, 0.0, -0.2, 0.0, 0.5, 0.785]  # nearly straight arm: condition number ~51
    fresh.scene.teleport_arm(q)
    fresh.servo.reset()
    assert fresh.servo.condition_number(np.array(q)) > fresh.servo.params.hard_stop_singularity_threshold
    d, out = _run(fresh, 0.3, linear=(0.1, 0, 0))
    assert out.status is StatusCode.HALT_FOR_SINGULARITY
    assert np.linalg.norm(d) < 2e-3


def test_humble_and_jazzy_codes_differ_where_upstream_differs():
    # moveit_servo status_codes.h (Humble) vs utils/datatypes.hpp (Jazzy).
    assert HUMBLE_CODE[StatusCode.JOINT_BOUND] == 5 and StatusCode.JOINT_BOUND == 6
    assert HUMBLE_CODE[StatusCode.HALT_FOR_COLLISION] == 4 and StatusCode.HALT_FOR_COLLISION == 5
    assert HUMBLE_CODE[StatusCode.HALT_FOR_SINGULARITY] == StatusCode.HALT_FOR_SINGULARITY == 2


def test_params_are_validated():
    with pytest.raises(ValueError):
        ServoParams(publish_period_s=0.0)
    with pytest.raises(ValueError):
        ServoParams(lower_singularity_threshold=30.0, hard_stop_singularity_threshold=17.0)
    with pytest.raises(ValueError):
        ServoParams(command_in_type="furlongs")

"""Safety envelope: every limit has a test a robot user would recognise."""

import numpy as np
import pytest

from rt2_ros.config import SafetyConfig
from rt2_ros.motion import Twist
from rt2_ros.safety import SafetyEnvelope, Watchdog

# Limits other than the one under test are set out of the way.
BIG_ACCEL = dict(
    max_linear_accel_mps2=100.0, max_angular_accel_radps2=500.0, max_linear_speed_axis_mps=5.0, max_linear_speed_mps=5.0
)


def env(**kw):
    base = dict(BIG_ACCEL, require_ee_pose=False)  # most tests give no end-effector pose
    base.update(kw)
    e = SafetyEnvelope(SafetyConfig(**base), servo_period_s=0.02)
    e.image_watchdog.feed(0.0)
    e.action_watchdog.feed(0.0)
    return e


def tw(lin=(0, 0, 0), ang=(0, 0, 0)):
    return Twist(np.array(lin, float), np.array(ang, float))


def test_per_axis_linear_cap_scales_without_changing_direction():
    e = env(max_linear_speed_axis_mps=0.1, max_linear_speed_mps=5.0)
    out = e.filter(tw([0.4, 0.2, 0.0]), 0.0).twist
    np.testing.assert_allclose(out.linear, [0.1, 0.05, 0.0])


def test_linear_norm_cap():
    e = env(max_linear_speed_axis_mps=5.0, max_linear_speed_mps=0.3)
    out = e.filter(tw([0.3, 0.3, 0.3]), 0.0)
    assert np.linalg.norm(out.twist.linear) == pytest.approx(0.3)
    assert "speed_cap" in out.reasons and not out.stop


def test_angular_caps():
    e = env(max_angular_speed_axis_radps=0.5, max_angular_speed_radps=0.6)
    out = e.filter(tw(ang=[2.0, 0.0, 2.0]), 0.0).twist
    assert np.max(np.abs(out.angular)) <= 0.5 + 1e-12
    assert np.linalg.norm(out.angular) == pytest.approx(0.6)


def test_slew_limit_between_consecutive_commands():
    e = SafetyEnvelope(SafetyConfig(max_linear_accel_mps2=1.0, require_ee_pose=False), servo_period_s=0.02)
    e.image_watchdog.feed(0.0), e.action_watchdog.feed(0.0)
    speeds = [np.linalg.norm(e.filter(tw([0.2, 0, 0]), 0.02 * i).twist.linear) for i in range(12)]
    # 1 m/s^2 over 20 ms ticks: at most 0.02 m/s more per tick until 0.2 m/s is reached
    assert speeds[0] == pytest.approx(0.02)
    assert np.all(np.diff(speeds) <= 0.02 + 1e-9)
    assert speeds[-1] == pytest.approx(0.2)


def test_stop_is_immediate_despite_slew_limit():
    e = SafetyEnvelope(SafetyConfig(max_linear_accel_mps2=1.0, require_ee_pose=False), servo_period_s=0.02)
    e.image_watchdog.feed(0.0), e.action_watchdog.feed(0.0)
    for i in range(20):
        e.filter(tw([0.2, 0, 0]), 0.02 * i)
    assert e.filter(tw(), 0.4).twist.is_zero


def test_action_leaving_the_workspace_is_clipped_at_its_face():
    e = env(workspace_min=[0.2, -0.5, 0.0], workspace_max=[0.55, 0.5, 0.8])
    # End effector at x = 0.5; 0.1 m in 0.2 s would end at x = 0.6, 5 cm outside.
    out = e.filter(tw([0.5, 0.1, 0.0]), 0.0, ee_position=np.array([0.5, 0.0, 0.3]), horizon_s=0.2)
    assert out.twist.linear[0] == pytest.approx(0.25)  # ends exactly on the face x = 0.55
    assert out.twist.linear[1] == pytest.approx(0.1)  # other axes untouched
    assert "workspace_clip" in out.reasons


def test_no_motion_further_out_but_motion_back_in_is_allowed():
    e = env(workspace_min=[0.2, -0.5, 0.05], workspace_max=[0.8, 0.5, 0.8])
    below = np.array([0.5, 0.0, 0.02])  # already under the floor of the box
    out = e.filter(tw([0.0, 0.0, -0.1]), 0.0, ee_position=below, horizon_s=0.2)
    assert out.twist.linear[2] == 0.0
    out = e.filter(tw([0.0, 0.0, 0.1]), 0.02, ee_position=below, horizon_s=0.2)
    assert out.twist.linear[2] == pytest.approx(0.1)


def test_workspace_clip_in_a_rotated_command_frame():
    e = env(workspace_min=[0.2, -0.5, 0.0], workspace_max=[0.55, 0.5, 0.8])
    # Command frame x points along planning -y... here: command x == planning x rotated 90 deg about z
    R = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # planning <- command
    out = e.filter(
        tw([0.0, -0.5, 0.0]),
        0.0,
        ee_position=np.array([0.5, 0.0, 0.3]),
        horizon_s=0.2,
        rotation_planning_from_command=R,
    )
    # command -y maps to planning +x: clipped to reach the x face exactly
    assert (R @ out.twist.linear)[0] == pytest.approx(0.25)


def test_unknown_pose_skips_box_or_stops_when_required():
    assert not env().filter(tw([0.1, 0, 0]), 0.0, ee_position=None).stop
    out = env(require_ee_pose=True).filter(tw([0.1, 0, 0]), 0.0, ee_position=None)
    assert out.stop and out.twist.is_zero and "ee_pose_unknown" in out.reasons


@pytest.mark.parametrize("bad", [[np.nan, 0, 0], [0, np.inf, 0]])
def test_nan_and_inf_are_rejected_with_a_stop(bad):
    out = env().filter(tw(bad), 0.0)
    assert out.stop and out.twist.is_zero and "non_finite_twist" in out.reasons
    out = env().filter(tw(ang=bad), 0.0)
    assert out.stop and out.twist.is_zero


def test_emergency_stop_latches_until_cleared():
    e = env()
    e.engage_estop()
    for t in (0.0, 0.1, 0.2):
        out = e.filter(tw([0.1, 0, 0]), t)
        assert out.stop and out.twist.is_zero and "e_stop" in out.reasons
    e.clear_estop()
    assert not e.filter(tw([0.1, 0, 0]), 0.3).stop


def test_a_30_minute_old_image_forces_a_stop():
    e = env()
    e.image_watchdog.feed(0.0)
    e.action_watchdog.feed(1800.0)
    out = e.filter(tw([0.1, 0, 0]), 1800.0)
    assert out.stop and out.twist.is_zero and "image_stale" in out.reasons


def test_stale_action_forces_a_stop_but_not_when_idle():
    e = env(max_action_age_s=0.5)
    e.image_watchdog.feed(10.0)
    e.action_watchdog.feed(9.0)
    out = e.filter(tw([0.1, 0, 0]), 10.0)
    assert out.stop and "action_stale" in out.reasons
    assert not e.filter(tw(), 10.0, watch_inputs=False).stop


def test_watchdog_ignores_older_stamps_and_never_fed_is_expired():
    w = Watchdog(1.0)
    assert w.expired(0.0)
    w.feed(5.0)
    w.feed(1.0)
    assert w.age(5.5) == pytest.approx(0.5) and not w.expired(5.5) and w.expired(6.5)
    with pytest.raises(ValueError):
        Watchdog(0.0)


def test_watchdog_fed_from_the_future_is_expired_not_immortal():
    w = Watchdog(1.0)
    w.feed(100.0)
    assert w.expired(10.0)  # age -90 s: the stamp cannot be trusted
    w.feed(10.2, now_s=10.3)  # time jumped back: the newer-looking old stamp is replaced
    assert not w.expired(10.5)

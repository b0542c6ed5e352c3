"""Joint-space policies in the controller (ROS-free, explicit clock): the joint envelope
(caps, limits, NaN, unknown joints, slew, e-stop, watchdogs), JointActions executed one per
period, garbage chunks refused, and the no-motion episode rule."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest

from rt2_ros.config import load_config
from rt2_ros.controller import Controller
from rt2_ros.episode import EndReason
from rt2_ros.joint_space import JointAction, JointEnvelope
from rt2_ros.policies.base import Observation, Policy, PolicyMetadata, PolicyResult

NAMES = [f"panda_joint{i}" for i in range(1, 8)]
IMG = np.zeros((8, 8, 3), np.uint8)
Q_HOME = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
P = 0.1


def env(**kw):
    args = dict(
        names=NAMES,
        max_velocity_radps=[1.0] * 7,
        position_min=[-2.9, -1.76, -2.9, -3.07, -2.9, -0.02, -2.9],
        position_max=[2.9, 1.76, 2.9, -0.07, 2.9, 3.75, 2.9],
        margin_rad=0.1,
        max_accel_radps2=1000.0,
        period_s=0.02,
    )
    args.update(kw)
    return JointEnvelope(**args)


def test_envelope_caps_by_one_factor_and_keeps_direction():
    v = env().filter(np.array([2.0, 1.0, 0, 0, 0, 0, 0]), Q_HOME)
    np.testing.assert_allclose(v.velocities[:2], [1.0, 0.5])
    assert "joint_speed_capped" in v.reasons and not v.stop


@pytest.mark.parametrize(
    "vel,q,reason",
    [
        (np.full(7, np.nan), Q_HOME, "invalid_joint_velocity"),
        (np.array([0.1] * 7 + [np.inf]), Q_HOME, "invalid_joint_velocity"),
        (np.ones(6), Q_HOME, "invalid_joint_velocity"),
        (np.full(7, 0.1), None, "joint_state_unknown"),
    ],
)
def test_envelope_refuses_garbage_and_unknown_joints(vel, q, reason):
    out = env().filter(vel, q)
    assert out.stop and out.is_zero and reason in out.reasons


def test_envelope_stops_a_joint_at_its_limit_moving_towards_it_only():
    q = Q_HOME.copy()
    q[3] = -3.0  # within 0.1 of -3.07
    out = env().filter(np.array([0.2, 0, 0, -0.5, 0, 0, 0]), q)
    assert out.velocities[3] == 0.0 and out.velocities[0] == pytest.approx(0.2) and "joint_limit" in out.reasons
    away = env().filter(np.array([0, 0, 0, 0.5, 0, 0, 0]), q)
    assert away.velocities[3] == pytest.approx(0.5)


def test_envelope_slew_limits_and_stops_on_shared_reasons():
    e = env(max_accel_radps2=10.0)  # 0.2 rad/s per 0.02 s tick
    assert e.filter(np.full(7, 1.0), Q_HOME).velocities[0] == pytest.approx(0.2)
    assert e.filter(np.full(7, 1.0), Q_HOME).velocities[0] == pytest.approx(0.4)
    out = e.filter(np.full(7, 1.0), Q_HOME, stop_reasons=("e_stop",))
    assert out.stop and out.is_zero and out.reasons == ("e_stop",)


class JointScript(Policy):
    """Answers chunks of JointActions (or garbage) from a list, the last one repeated."""

    action_space = "joint_velocity"
    emits_chunks = True

    def __init__(self, chunks: Sequence[Sequence[JointAction]]):
        self.chunks = list(chunks)
        self.calls = 0
        self.metadata = PolicyMetadata("openpi", "joint-script", 8)

    def infer_batch(self, observations: Sequence[Observation]) -> list[PolicyResult]:
        c = self.chunks[min(self.calls, len(self.chunks) - 1)]
        self.calls += 1
        return [PolicyResult("", (), tuple(c))]


def ja(*qd, g=1.0):
    return JointAction(False, np.zeros(3), np.zeros(3), g, joint_velocities=np.array(qd, dtype=float))


def make(chunks, **over):
    cfg = load_config(
        overrides={
            "control.period_s": P,
            "control.servo_rate_hz": 50.0,
            "safety.max_joint_accel_radps2": 1000.0,
            "safety.require_ee_pose": True,  # gates twists only: joint motion needs joint states
            **over,
        }
    )
    c = Controller(cfg, JointScript(chunks))
    assert c.joint_mode and c.chunked
    return c


def start(c, t=0.0):
    c.on_image(IMG, t)
    c.on_joint_state(list(reversed(NAMES)), list(reversed(Q_HOME)), t, t)  # any order: kept in servo.joint_names order
    c.on_instruction("put the marker in the cup", t)


def tick(c, t):
    c.on_image(IMG, t)
    c.on_joint_state(NAMES, Q_HOME, t, t)
    tw = c.servo_command(t)
    return tw, c.joint_command(t)


def test_joint_actions_run_one_per_period_through_the_envelope():
    c = make([[ja(0.3, 0, 0, 0, 0, 0, 0), ja(0, -0.2, 0, 0, 0, 0, 0)]])
    start(c)
    out = c.step(0.0)
    assert out.rejected is None and len(out.result.actions) == 2
    tw, j = tick(c, 0.01)
    assert tw.twist.is_zero and j.velocities[0] == pytest.approx(0.3) and j.names == tuple(NAMES)
    tw, j = tick(c, P + 0.01)
    assert j.velocities[1] == pytest.approx(-0.2) and j.velocities[0] == 0.0
    _, j = tick(c, 2 * P + 0.01)
    assert j.is_zero  # chunk over: stand still, waiting for the model


@pytest.mark.parametrize(
    "chunk",
    [
        [ja(0.1, 0, 0, 0, 0, 0)],  # 6 joints for 7
        [ja(np.nan, 0, 0, 0, 0, 0, 0)],
        [ja(0.1, 0, 0, 0, 0, 0, 0), ja(np.inf, 0, 0, 0, 0, 0, 0)],  # one bad action refuses the chunk
    ],
)
def test_a_garbage_joint_chunk_is_refused_and_nothing_moves(chunk):
    c = make([chunk])
    start(c)
    out = c.step(0.0)
    assert out.action is None and "joint action" in out.rejected
    for k in range(5):
        assert tick(c, 0.01 + 0.02 * k)[1].is_zero


def test_no_motion_without_joint_states_and_e_stop_stops_at_once():
    c = make([[ja(0.3, 0, 0, 0, 0, 0, 0)] * 5])
    c.on_image(IMG, 0.0)
    c.on_instruction("go", 0.0)
    c.step(0.0)
    c.on_image(IMG, 0.01)
    c.servo_command(0.01)
    j = c.joint_command(0.01)
    assert j.is_zero and "joint_state_unknown" in j.reasons
    c2 = make([[ja(0.3, 0, 0, 0, 0, 0, 0)] * 5])
    start(c2)
    c2.step(0.0)
    assert not tick(c2, 0.01)[1].is_zero
    c2.set_estop(True, 0.02)
    assert tick(c2, 0.03)[1].is_zero and not c2.running


def test_no_motion_rule_ends_an_episode_that_stopped_moving():
    c = make([[ja(0.3, 0, 0, 0, 0, 0, 0)], [ja(0, 0, 0, 0, 0, 0, 0)]], **{"control.no_motion_timeout_s": 0.5})
    start(c)
    t = 0.0
    while c.running and t < 5.0:
        if c.inference_due(t):
            c.step(t)
        tick(c, t)
        t += 0.02
    info = c.episode_info()
    assert info.reason is EndReason.NO_MOTION
    assert 0.5 + P <= t <= 0.5 + P + 0.25  # moved for one period, then 0.5 s still


def test_no_motion_rule_off_by_default_then_the_step_limit_ends_it():
    c = make([[ja(0, 0, 0, 0, 0, 0, 0)]], **{"control.max_steps": 5})
    start(c)
    t = 0.0
    while c.running and t < 5.0:
        if c.inference_due(t):
            c.step(t)
        tick(c, t)
        t += 0.02
    assert c.episode_info().reason is EndReason.STEP_LIMIT


def test_joint_state_without_the_arms_joints_is_rejected():
    c = make([[ja(0.1, 0, 0, 0, 0, 0, 0)]])
    with pytest.raises(ValueError, match="missing"):
        c.on_joint_state(NAMES[:6], Q_HOME[:6], 0.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        c.on_joint_state(NAMES, [np.nan] * 7, 0.0, 0.0)


def test_joint_lists_must_match_the_joint_names():
    from rt2_ros.config import ConfigError

    with pytest.raises(ConfigError, match="one value per joint"):
        load_config(overrides={"servo.joint_names": ["a", "b"]})
    with pytest.raises(ConfigError, match="joint_position_max must exceed"):
        load_config(overrides={"safety.joint_position_min": [0.0] * 7, "safety.joint_position_max": [0.0] * 7})

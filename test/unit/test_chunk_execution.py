"""Executing action chunks in the controller (ROS-free, explicit clock): the time-indexed
queue, expiry, open loop, inference ahead, ACT ensembling, terminate inside a chunk, step
counting per executed action, the gripper per executed action, and the envelope."""

import numpy as np
import pytest
from scripted_policy import ScriptedTextPolicy

from rt2_ros.chunking import ActionQueue
from rt2_ros.config import load_config
from rt2_ros.controller import Controller
from rt2_ros.episode import EndReason, EpisodeState
from rt2_ros.motion import Twist

IMG = np.zeros((8, 8, 3), np.uint8)
P = 0.2  # control period [s]
W = 0.1 / 256  # bin width of dx [m]


def step(b, terminate=False, grip=255):
    """One RT-2 action: dx in bin ``b``, gripper bin ``grip``."""
    return f"{0 if terminate else 1} {b} 128 128 128 128 128 {grip}"


def chunk(*steps):
    return " ".join(steps)


def vx(b):
    """The velocity [m/s] of dx bin ``b`` held over one period."""
    return (-0.05 + (b + 0.5) * W) / P


def make(texts, horizon=4, **overrides):
    cfg = load_config(
        overrides={
            "control.period_s": P,
            "action.horizon": horizon,
            "safety.max_linear_accel_mps2": 100.0,
            "safety.max_action_age_s": 1.0,
            "safety.require_ee_pose": False,  # no pose source here: the box is not what these tests check
            **overrides,
        }
    )
    pol = ScriptedTextPolicy(cfg, texts)
    return Controller(cfg, pol), pol


def start(c, t=0.0):
    c.on_image(IMG, t)
    c.on_instruction("pick up the red block", t)


def feed(c, t):
    c.on_image(IMG, t)


def test_action_k_runs_at_t_inference_plus_k_periods_one_step_each():
    c, pol = make([chunk(step(140), step(150), step(160), step(170))])
    start(c)
    assert c.chunked and c.inference_due(0.0)
    out = c.step(0.0)
    assert out.rejected is None and len(out.result.actions) == 4 and out.gripper is None
    assert c.episode.step == 0  # queued, not executed yet
    for k, b in enumerate((140, 150, 160, 170)):
        feed(c, k * P)
        v = c.servo_command(k * P + 0.05).twist.linear[0]
        assert v == pytest.approx(vx(b)), k
        assert c.episode.step == k + 1  # counted when it starts
        assert c.servo_command(k * P + 0.15).twist.linear[0] == pytest.approx(vx(b))
        assert c.episode.step == k + 1
    feed(c, 0.8)
    assert c.servo_command(0.85).twist.is_zero and c.waiting_for_inference(0.85)  # chunk over: the arm waits
    assert pol.calls == 1 and c.inference_due(0.85)


def test_expired_actions_are_dropped_never_replayed():
    c, pol = make([chunk(step(140), step(150), step(160), step(170))], **{"safety.max_action_age_s": 0.1})
    start(c)
    c.step(0.0)
    # The servo tick first runs 0.45 s later (e.g. a stall): actions 0 and 1 are gone.
    feed(c, 0.45)
    assert c.servo_command(0.45).twist.linear[0] == pytest.approx(vx(160))
    assert c.episode.step == 1
    # Late inside slot 3 (due 0.6, now 0.75 > 0.1 s late): dropped, zero, never replayed later.
    assert c.servo_command(0.75).twist.is_zero and c.episode.step == 1
    for t in (0.85, 0.95, 1.05):
        assert c.servo_command(t).twist.is_zero
    assert c.episode.step == 1


def test_a_stop_clears_the_queue():
    c, pol = make([chunk(step(140), step(150), step(160), step(170))])
    start(c)
    c.step(0.0)
    assert not c.servo_command(0.05).twist.is_zero
    c.cancel(0.1)
    assert c.queued_actions(0.1) == 0
    c.on_instruction("pick up the red block", 0.12)  # a new episode: nothing of the old chunk runs
    for t in (0.21, 0.41, 0.61):
        feed(c, t)
        assert c.servo_command(t).twist.is_zero
    assert c.episode.step == 0


def test_open_loop_runs_the_first_n_then_re_infers():
    c, pol = make(
        [chunk(step(140), step(150), step(160), step(170)), chunk(step(200), step(201), step(202), step(203))],
        **{"control.execute_steps": 2},
    )
    start(c)
    c.step(0.0)
    assert c.queued_actions(0.0) == 2
    feed(c, 0.05)
    c.servo_command(0.05)
    assert not c.inference_due(0.25)  # one action left
    feed(c, 0.25)
    assert c.servo_command(0.25).twist.linear[0] == pytest.approx(vx(150))
    assert c.servo_command(0.41).twist.is_zero  # action 2 of the chunk is never run
    assert c.inference_due(0.41)
    c.step(0.41)
    assert c.servo_command(0.42).twist.linear[0] == pytest.approx(vx(200))
    assert c.episode.step == 3


def test_inference_ahead_keeps_the_queue_from_running_dry():
    c, pol = make(
        [chunk(step(140), step(150), step(160), step(170)), chunk(step(200), step(201), step(202), step(203))],
        **{"control.chunk_threshold": 2},
    )
    start(c)
    c.step(0.0)
    for t in (0.05, 0.25):
        feed(c, t)
        c.servo_command(t)
        assert not c.inference_due(t)  # 4, then 3 actions left
    feed(c, 0.45)
    c.servo_command(0.45)
    assert c.inference_due(0.45)  # 2 left: ask now, while the queue runs
    c.step(0.45)  # observation at 0.45: action 0 due 0.45 -> slot 2 (now running 160, kept), 1 -> slot 3
    assert c.servo_command(0.55).twist.linear[0] == pytest.approx(vx(160))  # the running action finishes
    seen, waiting = [], []
    for t in (0.65, 0.85, 1.05):
        feed(c, t)
        seen.append(c.servo_command(t).twist.linear[0])
        waiting.append(c.waiting_for_inference(t))
    assert seen == pytest.approx([vx(201), vx(202), vx(203)])  # the newer chunk replaced 170
    assert not any(waiting)


def test_ensemble_averages_overlapping_chunks_with_exponential_weights():
    decay = 0.5
    c, pol = make(
        [chunk(step(100), step(100), step(100), step(100)), chunk(step(200), step(200), step(200), step(200))],
        **{"control.execute": "ensemble", "control.ensemble_decay": decay},
    )
    start(c)
    c.step(0.0)
    feed(c, 0.05)
    assert c.servo_command(0.05).twist.linear[0] == pytest.approx(vx(100))
    assert c.inference_due(0.2)  # ensemble: a new chunk every period
    feed(c, 0.2)
    c.step(0.2)  # its action 0 goes to slot 1, where chunk 1 has its action 1
    w_old, w_new = 1.0, np.exp(-decay)  # ACT: the oldest prediction weighs most
    expected = (w_old * vx(100) + w_new * vx(200)) / (w_old + w_new)
    assert c.servo_command(0.25).twist.linear[0] == pytest.approx(expected)
    assert c.episode.step == 2


def test_terminate_inside_a_chunk_ends_the_episode_at_that_step():
    c, pol = make([chunk(step(140), step(150), step(128, terminate=True), step(170))])
    start(c)
    c.step(0.0)
    for t in (0.05, 0.25):
        feed(c, t)
        assert not c.servo_command(t).twist.is_zero
    feed(c, 0.45)
    assert c.servo_command(0.45).twist.is_zero
    (t,) = [t for t in c.drain_transitions() if t.reason is not None]
    assert t.reason is EndReason.TERMINATE and t.step == 3 and c.state is EpisodeState.FINISHED
    assert c.servo_command(0.65).twist.is_zero and c.episode.step == 3  # 170 never runs
    assert not c.inference_due(0.7) and c.step(0.7) is None


def test_step_limit_counts_executed_actions_and_lets_the_last_one_run():
    c, pol = make([chunk(step(140), step(150), step(160), step(170))], **{"control.max_steps": 3})
    start(c)
    c.step(0.0)
    for t in (0.05, 0.25, 0.45, 0.55):
        feed(c, t)
        assert not c.servo_command(t).twist.is_zero
    feed(c, 0.61)
    assert c.servo_command(0.61).twist.is_zero
    ends = [t for t in c.drain_transitions() if t.reason is not None]
    assert ends[0].reason is EndReason.STEP_LIMIT and ends[0].step == 3


def test_a_partially_valid_chunk_is_rejected_whole_and_counts_one_step():
    good = [step(140), step(150), step(160)]
    c, pol = make([chunk(*good, "1 150 128 128 128 128 999 0"), chunk(*good, step(170))])
    start(c)
    out = c.step(0.0)
    assert out.action is None and "action 3 of the chunk" in out.rejected
    assert c.queued_actions(0.0) == 0 and c.episode.step == 1
    assert c.servo_command(0.05).twist.is_zero
    assert not c.inference_due(0.1)  # no hammering: the next try one period later
    assert c.inference_due(0.2)
    c.step(0.2)
    assert c.servo_command(0.25).twist.linear[0] == pytest.approx(vx(140))


def test_gripper_commands_follow_the_executed_actions():
    c, pol = make([chunk(step(140, grip=255), step(150, grip=0), step(160, grip=0), step(170, grip=255))])
    start(c)
    c.step(0.0)
    got = []
    for t in (0.05, 0.1, 0.25, 0.45):
        feed(c, t)
        c.servo_command(t)
        got += c.drain_gripper_commands(t)
    assert got == pytest.approx([255.5 / 256, 0.5 / 256, 0.5 / 256])  # one per started action
    c.set_estop(True, 0.5)
    feed(c, 0.65)
    c.servo_command(0.65)
    assert c.drain_gripper_commands(0.65) == []  # nothing after a stop


def test_every_executed_step_passes_the_safety_envelope():
    over = {"safety.max_linear_speed_axis_mps": 0.1, "safety.max_image_age_s": 0.3}
    c, pol = make([chunk(step(255), step(255), step(255), step(255))], **over)
    start(c)
    c.step(0.0)
    feed(c, 0.25)
    assert c.servo_command(0.25).twist.linear[0] == pytest.approx(0.1)  # capped
    c.set_estop(True, 0.3)
    cmd = c.servo_command(0.45)
    assert cmd.stop and cmd.twist.is_zero and c.queued_actions(0.45) == 0
    c.set_estop(False, 0.5)
    start(c, 0.5)
    c.step(0.5)
    assert c.servo_command(0.55).twist.linear[0] == pytest.approx(0.1)
    cmd = c.servo_command(0.85)  # queued actions left, but the newest image is 0.35 s old
    assert cmd.stop and "image_stale" in cmd.reasons


def test_queue_rejects_bad_settings_and_ignores_empty_chunks():
    for kw in ({"period_s": 0.0}, {"max_age_s": 0.0}, {"mode": "x"}, {"decay": -1.0}, {"execute_steps": -1}):
        args = {"period_s": 0.2, "max_age_s": 1.0, **kw}
        with pytest.raises(ValueError):
            ActionQueue(**args)
    q = ActionQueue(0.2, 1.0)
    assert q.add_chunk(0.0, []) == [] and q.take(0.0) is None and q.remaining(0.0) == 0
    assert q.slot_at(0.0) is None
    assert Twist.zero().is_zero

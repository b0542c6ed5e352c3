"""Issue 21: the control path never waits on input callbacks, and a stop sticks.

The pose and image callbacks store into latest-value slots without the controller's lock
(the servo tick held behind a pose callback that was preempted inside that lock made the
twist stream stall for 0.2-1 s at 100 Hz pose). A test holds the controller's lock the way
a slow servo tick or control step would and shows that the inputs still get through at
once; on a controller where they take that lock they would wait for its release.
"""

import threading

import numpy as np
import pytest
from scripted_policy import ScriptedTextPolicy

from rt2_ros.config import load_config
from rt2_ros.controller import Controller
from rt2_ros.episode import EndReason, EpisodeState

IMG = np.zeros((8, 8, 3), np.uint8)
MOVE = "1 200 128 128 128 128 128 0"
#: Waiting for a call that must not block [s]: it takes microseconds; generous for load 10.
RETURN_TIMEOUT_S = 10.0


def make(texts=(MOVE,), **overrides):
    base = {"control.period_s": 0.2, "safety.max_linear_accel_mps2": 100.0, "safety.require_ee_pose": False}
    cfg = load_config(overrides={**base, **overrides})
    return Controller(cfg, ScriptedTextPolicy(cfg, list(texts)))


def _returns_while_the_lock_is_held(c: Controller, fn) -> bool:
    """Whether ``fn()`` returns on another thread while this thread holds the controller's lock."""
    done = threading.Event()

    def run():
        try:
            fn()
        except ValueError:
            pass
        done.set()

    with c._lock:
        t = threading.Thread(target=run, daemon=True)
        t.start()
        ok = done.wait(RETURN_TIMEOUT_S)
    t.join(RETURN_TIMEOUT_S)
    return ok


def test_pose_and_image_callbacks_never_wait_for_the_control_path():
    c = make()
    assert _returns_while_the_lock_is_held(c, lambda: c.on_ee_pose(np.array([0.4, 0.0, 0.3]), 1.0, None, 1.0))
    assert _returns_while_the_lock_is_held(c, lambda: c.on_image(IMG, 1.0, 1.0))
    # ... and what they stored is what the control path reads.
    c.on_instruction("pick up the red block", 1.0)
    assert c.step(1.0).action is not None
    assert c._ee_position_now(1.0) == pytest.approx([0.4, 0.0, 0.3])


def test_instruction_spam_over_the_rate_limit_is_dropped_without_the_controllers_lock():
    c = make(**{"control.max_instruction_rate_hz": 10.0})
    c.on_image(IMG, 0.0)
    for _ in range(5):  # the burst
        c.on_instruction("pick up the red block", 0.0)
    assert _returns_while_the_lock_is_held(c, lambda: c.on_instruction("pick up the red block", 0.0))
    assert c.dropped_instructions == 1
    with pytest.raises(ValueError, match="max_instruction_rate_hz"):
        c.on_instruction("pick up the red block", 0.0)
    assert c.dropped_instructions == 2


def test_an_instruction_received_before_a_stop_never_starts_an_episode_after_it():
    c = make()
    c.on_image(IMG, 0.0)
    c.on_instruction("pick up the red block", 0.0, received_ns=1_000)
    assert c.state is EpisodeState.RUNNING
    t = c.cancel(0.1, mark_ns=5_000)
    assert t.reason is EndReason.CANCELLED
    with pytest.raises(ValueError, match="before the latest stop"):
        c.on_instruction("push the blue block", 0.2, received_ns=4_999)  # queued while the stop was served
    assert c.state is EpisodeState.FINISHED and c.dropped_instructions == 1
    c.on_instruction("push the blue block", 0.2, received_ns=5_001)  # sent after the stop: a new episode
    assert c.state is EpisodeState.RUNNING


def test_an_instruction_received_before_an_estop_is_clear_never_starts_an_episode():
    c = make()
    c.on_image(IMG, 0.0)
    c.on_instruction("pick up the red block", 0.0, received_ns=1_000)
    c.set_estop(True, 0.1, mark_ns=2_000)
    c.set_estop(False, 0.2, mark_ns=3_000)
    with pytest.raises(ValueError, match="before the latest stop"):
        c.on_instruction("push the blue block", 0.3, received_ns=2_500)  # sent during the e-stop
    assert c.state is EpisodeState.FINISHED
    c.on_instruction("push the blue block", 0.3, received_ns=3_001)
    assert c.state is EpisodeState.RUNNING


def test_a_stop_without_a_mark_marks_the_wall_clock_now():
    import time

    c = make()
    c.on_image(IMG, 0.0)
    before = time.time_ns()
    c.on_instruction("pick up the red block", 0.0)
    c.cancel(0.1)
    with pytest.raises(ValueError, match="before the latest stop"):
        c.on_instruction("push the blue block", 0.2, received_ns=before)


def test_a_policy_that_keeps_failing_ends_the_episode_as_a_fault_after_max_failed_steps():
    c = make([MOVE, None, None, MOVE, None], **{"policy.max_failed_steps": 3})
    c.on_image(IMG, 0.0)
    c.on_instruction("pick up the red block", 0.0)
    assert c.step(0.0).action is not None
    c.on_image(IMG, 0.2)
    assert c.step(0.2).rejected.startswith("policy failed") and c.step(0.4).rejected.startswith("policy failed")
    c.on_image(IMG, 0.6)
    assert c.step(0.6).action is not None  # an answer in between: the count starts again
    c.on_image(IMG, 0.8)
    outs = [c.step(0.8), c.step(1.0)]
    assert c.state is EpisodeState.RUNNING and all(o.action is None for o in outs)
    c.on_image(IMG, 1.2)
    out = c.step(1.2)  # the third failure in a row
    (t,) = out.transitions
    assert (
        t.reason is EndReason.FAULT and "failed 3 steps in a row" in t.detail and "policy.max_failed_steps" in t.detail
    )
    assert c.state is EpisodeState.FINISHED and c.servo_command(1.25).twist.is_zero


def test_max_failed_steps_0_lets_the_episode_wait_for_the_policy():
    c = make([None], **{"policy.max_failed_steps": 0})
    c.on_image(IMG, 0.0)
    c.on_instruction("pick up the red block", 0.0)
    for k in range(90):  # more than the default 50, fewer than control.max_steps (100)
        c.on_image(IMG, k * 0.2)
        assert c.step(k * 0.2).action is None
    assert c.state is EpisodeState.RUNNING

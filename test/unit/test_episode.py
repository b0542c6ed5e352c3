"""Episode logic: idle / running / finished, reasons, preemption, debounce, stops."""

import pytest

from rt2_ros.episode import EndReason, Episode, EpisodeState


def make(**kw):
    stops = []
    ep = Episode(on_stop=stops.append, **kw)
    return ep, stops


def test_terminate_token_ends_the_episode_and_commands_a_stop():
    ep, stops = make()
    assert ep.state is EpisodeState.IDLE
    (started,) = ep.start("pick up the red block", 0.0)
    assert started.state is EpisodeState.RUNNING and not started.stop
    assert ep.on_action(False, 0.2) is None
    t = ep.on_action(True, 0.4)
    assert t.state is EpisodeState.FINISHED and t.reason is EndReason.TERMINATE and t.stop
    assert t.step == 2 and t.elapsed_s == pytest.approx(0.4)
    assert stops == [t]


def test_new_instruction_preempts_the_running_episode():
    ep, stops = make()
    ep.start("pick up the red block", 0.0)
    pre, started = ep.start("push the blue block left", 1.0)
    assert pre.reason is EndReason.PREEMPTED and pre.stop and pre.instruction == "pick up the red block"
    assert started.state is EpisodeState.RUNNING and started.instruction == "push the blue block left"
    assert started.episode_id == pre.episode_id + 1 and started.step == 0
    assert stops == [pre]


def test_step_and_time_limits():
    ep, _ = make(max_steps=2, max_duration_s=10.0)
    ep.start("x", 0.0)
    ep.on_action(False, 0.1)
    assert ep.tick(0.15) is None
    ep.on_action(False, 0.2)
    t = ep.tick(0.3)
    assert t.reason is EndReason.STEP_LIMIT and t.stop
    ep.start("y", 1.0)
    assert ep.tick(10.9) is None
    assert ep.tick(11.0).reason is EndReason.TIME_LIMIT


@pytest.mark.parametrize("method, reason", [("cancel", EndReason.CANCELLED), ("e_stop", EndReason.E_STOP)])
def test_cancel_and_estop(method, reason):
    ep, stops = make()
    ep.start("x", 0.0)
    t = getattr(ep, method)(1.0)
    assert t.reason is reason and t.stop and len(stops) == 1
    assert getattr(ep, method)(2.0) is None  # not running: nothing happens


def test_fault_keeps_its_detail():
    ep, _ = make()
    ep.start("x", 0.0)
    t = ep.fault("servo halted: joint limit", 0.5)
    assert t.reason is EndReason.FAULT and t.detail == "servo halted: joint limit"


def test_debounce_needs_consecutive_terminate_tokens():
    ep, _ = make(terminate_debounce=3)
    ep.start("x", 0.0)
    assert ep.on_action(True, 0.1) is None and ep.pending_terminate()
    assert ep.on_action(True, 0.2) is None
    assert ep.on_action(False, 0.3) is None and not ep.pending_terminate()  # streak broken
    assert ep.on_action(True, 0.4) is None
    assert ep.on_action(True, 0.5) is None
    assert ep.on_action(True, 0.6).reason is EndReason.TERMINATE


def test_blank_instruction_is_refused_and_leaves_the_episode_alone():
    ep, _ = make()
    ep.start("x", 0.0)
    with pytest.raises(ValueError, match="empty"):
        ep.start("   ", 1.0)
    assert ep.running and ep.instruction == "x"


def test_bad_limits():
    with pytest.raises(ValueError):
        Episode(max_steps=0)

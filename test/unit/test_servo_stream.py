"""The node's servo-stream timing without ROS: zero burst, pause after a stop, markers, control grid."""

import math

import pytest

from rt2_ros.servo_stream import ZERO_BURST_S, ControlGrid, ControlWorker, ServoStream, StreamTick


def test_twists_flow_while_running_and_for_the_zero_burst_after_a_stop_then_servo_pauses_once():
    s = ServoStream()
    assert s.tick(0.0, running=False) == StreamTick(False, False)  # idle from the start: quiet, nothing to pause
    s.on_start()
    assert s.tick(1.0, running=True).publish
    s.on_stop(2.0, running=False)
    assert s.pause_pending
    for t in (2.0, 2.0 + ZERO_BURST_S / 2, 2.0 + ZERO_BURST_S - 1e-6):
        tick = s.tick(t, running=False)
        assert tick.publish and not tick.pause_servo  # zero twists keep going, Servo stays up
    after = s.tick(2.0 + ZERO_BURST_S, running=False)
    assert not after.publish and after.pause_servo
    assert s.tick(2.0 + ZERO_BURST_S + 1.0, running=False) == StreamTick(False, False)  # paused once only


def test_a_stop_asks_for_a_zero_twist_at_once_a_preemption_leaves_it_to_the_next_tick():
    s = ServoStream()
    assert s.on_stop(0.0, running=False) is True  # cancel, terminate, fault: halt now
    assert s.on_stop(1.0, running=True, preempted=True) is False  # the grid's next tick carries the new episode


def test_a_preempting_episode_cancels_the_pause():
    s = ServoStream()
    s.on_stop(0.0, running=True, preempted=True)  # the old episode stopped because a new one started
    assert not s.pause_pending
    s.on_stop(1.0, running=False)
    s.on_start()  # a new instruction before the burst ended
    assert not s.pause_pending
    assert not s.tick(5.0, running=False).pause_servo


def test_estop_extends_the_burst_but_never_shortens_it():
    s = ServoStream(zero_burst_s=0.5)
    s.on_estop(10.0)
    assert s.in_burst(10.4) and not s.in_burst(10.5)
    assert not s.pause_pending  # an e-stop while idle pauses nothing
    s.on_stop(20.0, running=False)
    s.on_estop(19.8)  # an older stamp: the later burst end stays
    assert s.in_burst(20.45)


def test_markers_follow_the_stream_at_most_every_marker_period():
    s = ServoStream(marker_period_s=0.1)
    assert not s.markers_due(0.0, running=False)
    assert s.markers_due(1.0, running=True)
    assert not s.markers_due(1.05, running=True)
    assert s.markers_due(1.1, running=True)
    s.on_stop(2.0, running=False)
    assert s.markers_due(2.0, running=False)  # the zero burst is shown too
    assert not s.markers_due(3.0, running=False)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_bad_durations_are_refused(bad):
    with pytest.raises(ValueError):
        ServoStream(zero_burst_s=bad)
    with pytest.raises(ValueError):
        ControlGrid(bad)


def test_control_grid_keeps_its_phase_and_restarts_after_an_overrun():
    g = ControlGrid(0.2)
    assert g.wait_s(0.0) == 0.0  # first step at once
    g.stepped(0.0)
    assert g.wait_s(0.05) == pytest.approx(0.15)
    g.stepped(0.23)  # a little late: the grid keeps its phase
    assert g.next_s == pytest.approx(0.4)
    g.stepped(0.75)  # more than one period late (a slow model): restart from now, no catch-up burst
    assert g.next_s == pytest.approx(0.95)
    g.reset()
    assert g.wait_s(0.8) == 0.0


class _FakeController:
    """What ControlWorker reads of the controller."""

    def __init__(self, running=True, chunked=False, due=False):
        self.running, self.chunked, self.due = running, chunked, due

    def inference_due(self, now_s):
        return self.due


def _worker(ctrl, period_s=0.05, fail=False):
    import threading
    import time

    steps, errors, lock = [], [], threading.Lock()

    def run_step(now_s):
        with lock:
            steps.append(now_s)
        if fail:
            raise RuntimeError("boom")

    w = ControlWorker(ctrl, period_s, run_step, time.monotonic, errors.append)
    return w, steps, errors


def _wait_for(pred, timeout_s: float = 10.0) -> bool:
    import time

    end = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def test_control_worker_steps_on_its_grid_only_while_an_episode_runs():
    import time

    ctrl = _FakeController(running=False)
    w, steps, _ = _worker(ctrl)
    w.start()
    try:
        time.sleep(0.2)
        assert steps == []  # no episode: no model call
        ctrl.running = True
        w.wake()
        t0 = time.monotonic()
        assert _wait_for(lambda: len(steps) >= 4)  # about one per 0.05 s period
        elapsed = time.monotonic() - t0
        assert len(steps) <= elapsed / 0.05 + 3  # never more than the grid allows
        gaps = [b - a for a, b in zip(steps, steps[1:])]
        # No burst of catch-up steps: a step the OS ran late (less than a period) keeps the
        # grid, so the next gap may be short, never several in a row.
        assert not any(a < 0.02 and b < 0.02 for a, b in zip(gaps, gaps[1:])), gaps
    finally:
        w.stop(2.0)
    n = len(steps)
    time.sleep(0.15)
    assert len(steps) == n  # stopped means stopped


def test_control_worker_with_chunks_steps_only_when_inference_is_due():
    import time

    ctrl = _FakeController(chunked=True, due=False)
    w, steps, _ = _worker(ctrl)
    w.start()
    try:
        time.sleep(0.15)
        assert steps == []
        ctrl.due = True
        time.sleep(0.05)
        assert steps  # asked within a few ms of being due
    finally:
        w.stop(2.0)


def test_control_worker_survives_a_failing_step_and_reports_it():
    import time

    w, steps, errors = _worker(_FakeController(), period_s=0.02, fail=True)
    w.start()
    try:
        time.sleep(0.35)
    finally:
        w.stop(2.0)
    assert len(steps) >= 2 and len(errors) == len(steps)  # every failure reported, the loop went on
    assert all(isinstance(e, RuntimeError) for e in errors)

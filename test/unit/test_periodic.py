"""rt2_ros.periodic.PeriodicThread: keeps its rate, survives errors, no catch-up burst, stops."""

import threading
import time

import pytest

from rt2_ros.periodic import PeriodicThread


def test_ticks_at_its_rate_and_stops():
    stamps = []
    t = PeriodicThread(0.01, lambda: stamps.append(time.monotonic())).start()
    time.sleep(0.5)
    t.stop()
    n = len(stamps)
    time.sleep(0.05)
    assert len(stamps) == n and not t.alive
    assert 20 <= n <= 60  # ~50 at 100 Hz, loose for a loaded machine


def test_an_exception_is_reported_and_ticking_goes_on():
    errors, calls = [], []

    def fn():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")

    t = PeriodicThread(0.005, fn, on_error=errors.append).start()
    assert _wait(lambda: len(calls) >= 5)
    t.stop()
    assert len(errors) == 1 and str(errors[0]) == "boom"


def test_a_stall_restarts_the_grid_instead_of_bursting():
    stall = threading.Event()
    stamps = []

    def fn():
        stamps.append(time.monotonic())
        if len(stamps) == 3:
            stall.wait(0.3)  # 30 periods late

    t = PeriodicThread(0.01, fn).start()
    assert _wait(lambda: len(stamps) >= 8)
    t.stop()
    after = stamps[3:8]
    assert t.overruns >= 1
    # No catch-up burst: a 0.3 s stall would owe 30 ticks, all back to back. A tick that the
    # OS ran less than one period late runs at once and the next keeps the grid, so on a
    # loaded machine at most every other gap can be short, never all of them.
    gaps = [b - a for a, b in zip(after, after[1:])]
    assert sum(g < 0.003 for g in gaps) <= len(gaps) // 2, gaps


def test_bad_period_is_refused():
    with pytest.raises(ValueError):
        PeriodicThread(0.0, lambda: None)


def _wait(pred, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return False

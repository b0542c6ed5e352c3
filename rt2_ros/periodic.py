"""A callable run every period on its own thread, on a fixed grid of the monotonic clock.

The rt2 node's servo stream runs on one (:mod:`rt2_ros.ros.node`): a dedicated thread
that sleeps until its next tick wakes with a ~0.1 ms timer, while an rclpy timer
first waits for the executor's turn (rclpy's ``MultiThreadedExecutor`` rebuilds its
wait set in Python on every spin; under load that delayed ticks past MoveIt Servo's
0.1 s limit, README "Servo stream under load"). ROS-free.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable

__all__ = ["PeriodicThread"]


class PeriodicThread:
    """Call ``fn()`` every ``period_s`` on a daemon thread until :meth:`stop`.

    Ticks keep a fixed grid (no drift). A tick less than one period late runs at once;
    after a longer stall the grid restarts from now (counted in ``overruns``), so a
    stall never causes a burst of catch-up ticks. An exception in ``fn`` goes to
    ``on_error`` (default: ignored) and the ticks go on.

    Args:
        period_s: tick period, s (> 0).
        fn: called with no arguments on the thread.
        name: thread name.
        on_error: called with the exception when ``fn`` raises.
        clock: monotonic clock, s (tests inject one).

    Raises:
        ValueError: a period that is not finite and > 0.
    """

    def __init__(
        self,
        period_s: float,
        fn: Callable[[], None],
        *,
        name: str = "periodic",
        on_error: Callable[[Exception], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not (math.isfinite(period_s) and period_s > 0):
            raise ValueError(f"period_s must be finite and > 0, got {period_s}")
        self.period_s = float(period_s)
        self._fn, self._on_error, self._clock = fn, on_error, clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        #: Ticks run, and grid restarts after stalls of more than a period.
        self.ticks = 0
        self.overruns = 0

    def start(self) -> "PeriodicThread":
        """Start the thread; returns ``self``."""
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop ticking; waits up to ``timeout_s`` for a running tick (not from the thread itself)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        next_t = self._clock()
        while not self._stop.is_set():
            next_t += self.period_s
            now = self._clock()
            if now - next_t > self.period_s:
                next_t = now
                self.overruns += 1
            elif next_t > now and self._stop.wait(next_t - now):
                return
            try:
                self._fn()
            except Exception as e:  # noqa: BLE001 - the ticks must go on
                if self._on_error is not None:
                    self._on_error(e)
            self.ticks += 1

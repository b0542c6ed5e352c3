"""A callback group that lets a callback start at most once per interval (rclpy).

rclpy's executors rebuild their wait set in Python for every message they take; a
topic flooded at 1 kHz (instruction spam, a fast arm driver) kept the node's executor
busy on one core and starved the servo stream's thread of the GIL
(benchmarks/bench_stream.py, docs/faults.md "The servo stream under input traffic").
While the interval runs, :meth:`ThrottledCallbackGroup.can_execute` says no, the
executor leaves the subscription out of its wait set, and the reader's history (depth
1) keeps only the newest message, which is taken once the interval is over at the
executor's next wake-up (the node's side timer wakes it every servo period).
"""

from __future__ import annotations

import math
import threading
import time

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

__all__ = ["ThrottledCallbackGroup"]


class ThrottledCallbackGroup(MutuallyExclusiveCallbackGroup):
    """Mutually exclusive, and a callback starts at most once per ``min_interval_s``.

    Args:
        min_interval_s: time from one callback's start to the next's at least, s (>= 0;
            0: a plain mutually exclusive group).
        clock: monotonic clock, s (tests inject one).

    Raises:
        ValueError: a negative or non-finite interval.
    """

    def __init__(self, min_interval_s: float, clock=time.monotonic):
        if not (math.isfinite(min_interval_s) and min_interval_s >= 0):
            raise ValueError(f"min_interval_s must be finite and >= 0, got {min_interval_s}")
        super().__init__()
        self.min_interval_s = float(min_interval_s)
        self._clock = clock
        self._next_s = -math.inf
        self._next_lock = threading.Lock()

    def can_execute(self, entity) -> bool:
        """Whether a callback may start now (none running and the interval over)."""
        return self._clock() >= self._next_s and super().can_execute(entity)

    def beginning_execution(self, entity) -> bool:
        """Start a callback if none runs and the interval is over; the next may start ``min_interval_s`` later."""
        with self._next_lock:
            now = self._clock()
            if now < self._next_s or not super().beginning_execution(entity):
                return False
            self._next_s = now + self.min_interval_s
            return True

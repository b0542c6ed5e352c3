"""Restart and reconnect backoff: exponential delays with jitter, reset after a healthy run.

ROS-free and clock-agnostic (every call takes ``now_s``, s, on the caller's monotonic
clock), so it is unit-tested without processes. Used by the supervisor of the policy
child process (:mod:`rt2_ros.remote.child`): a child that keeps dying is restarted
ever more slowly (``initial_s`` doubling up to ``max_s``), one that ran for
``healthy_after_s`` before it died starts again from ``initial_s``.
"""

from __future__ import annotations

import math
import random

__all__ = ["Backoff"]


class Backoff:
    """Exponential backoff with multiplicative jitter.

    Args:
        initial_s: first delay, s (> 0).
        max_s: largest delay, s (>= ``initial_s``).
        factor: growth per failure (>= 1).
        jitter: each delay is scaled by a uniform factor in ``[1 - jitter, 1 + jitter]``
            (0 <= jitter < 1), so several supervisors do not retry in lock-step.
        healthy_after_s: a run at least this long (from :meth:`started` to :meth:`failed`)
            resets the delay to ``initial_s``, s (>= 0).
        rng: random source for the jitter (tests pass a seeded ``random.Random``).

    Raises:
        ValueError: a setting out of range.
    """

    def __init__(
        self,
        initial_s: float = 0.5,
        max_s: float = 10.0,
        *,
        factor: float = 2.0,
        jitter: float = 0.2,
        healthy_after_s: float = 30.0,
        rng: random.Random | None = None,
    ):
        if not (math.isfinite(initial_s) and math.isfinite(max_s) and 0 < initial_s <= max_s):
            raise ValueError(f"need 0 < initial_s <= max_s (finite), got {initial_s}, {max_s}")
        if not (math.isfinite(factor) and factor >= 1):
            raise ValueError(f"factor must be >= 1, got {factor}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        if not (math.isfinite(healthy_after_s) and healthy_after_s >= 0):
            raise ValueError(f"healthy_after_s must be >= 0, got {healthy_after_s}")
        self.initial_s, self.max_s, self.factor = float(initial_s), float(max_s), float(factor)
        self.jitter, self.healthy_after_s = float(jitter), float(healthy_after_s)
        self._rng = rng or random.Random()
        self._next_s = self.initial_s
        self._started_s: float | None = None
        #: Failures since the last reset (diagnostics).
        self.failures = 0

    def started(self, now_s: float) -> None:
        """The supervised thing came up at ``now_s``."""
        self._started_s = now_s

    def failed(self, now_s: float) -> float:
        """It failed (died, or did not come up) at ``now_s``; returns the delay before the next try, s."""
        if self._started_s is not None and now_s - self._started_s >= self.healthy_after_s:
            self.reset()
        self._started_s = None
        base = self._next_s
        self._next_s = min(self.max_s, self._next_s * self.factor)
        self.failures += 1
        return base * self._rng.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        """Back to ``initial_s`` (after a healthy run)."""
        self._next_s = self.initial_s
        self.failures = 0

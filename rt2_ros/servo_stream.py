"""When the rt2 node publishes twists and runs control steps: the timing, without ROS.

The node (:mod:`rt2_ros.ros.node`) asks these small state machines what to do on its
servo timer and its control worker; they hold no clock of their own (every call takes
``now_s``, s, on the node clock) and are unit-tested without rclpy.

* :class:`ServoStream`: twists go out while an episode runs, plus
  :data:`ZERO_BURST_S` of zero twists after every stop; then the stream goes quiet
  (MoveIt Servo treats a silent stream as stale and halts anyway) and Servo is paused
  once (``~/pause_servo``) unless a new episode started meanwhile. Markers follow the
  stream at most every :data:`MARKER_PERIOD_S`.
* :class:`ControlGrid`: one control step per ``control.period_s`` on a fixed grid;
  after an overrun (a step later than one period) the grid restarts from now, so a
  slow model never causes a burst of catch-up steps.
"""

from __future__ import annotations

import dataclasses
import math
import threading

__all__ = ["ZERO_BURST_S", "MARKER_PERIOD_S", "GIL_SWITCH_INTERVAL_S", "ServoStream", "StreamTick", "ControlGrid"]

#: Zero twists keep going out for this long after every stop, then the stream goes quiet [s].
ZERO_BURST_S = 0.5
#: Markers are published at most this often [s].
MARKER_PERIOD_S = 0.1
#: Python's GIL switch interval the node sets when the model runs in its own process
#: (``policy.process: in_process``) [s] (Python's default: 0.005). A model's Python-side
#: generate loop holds the GIL between short torch calls; with 1 ms the servo stream
#: gets it back sooner (benchmarks/bench_node.py, tiny model on a loaded 2-core machine:
#: p99 servo period 53-69 ms instead of 131-161 ms, max 97-123 ms instead of 546-604
#: ms). With the model in a child process it no longer pays (benchmarks/bench_stream.py:
#: 5 ms was as good or better), so the node keeps Python's default there.
GIL_SWITCH_INTERVAL_S = 0.001


@dataclasses.dataclass(frozen=True)
class StreamTick:
    """What one servo tick should do.

    Attributes:
        publish: publish the servo command's twist now.
        pause_servo: pause MoveIt Servo now (once, after a stop's zero burst).
    """

    publish: bool
    pause_servo: bool


class ServoStream:
    """Zero burst after a stop, pause-pending after it, marker rate. Thread-safe.

    Args:
        zero_burst_s: how long zero twists follow a stop, s (>= 0).
        marker_period_s: minimum time between marker publications, s (>= 0).

    Raises:
        ValueError: a negative or non-finite duration.
    """

    def __init__(self, zero_burst_s: float = ZERO_BURST_S, marker_period_s: float = MARKER_PERIOD_S):
        for name, v in (("zero_burst_s", zero_burst_s), ("marker_period_s", marker_period_s)):
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        self.zero_burst_s = float(zero_burst_s)
        self.marker_period_s = float(marker_period_s)
        self._lock = threading.Lock()
        self._burst_until_s = -math.inf
        self._pause_pending = False
        self._last_marker_s = -math.inf

    @property
    def pause_pending(self) -> bool:
        """Servo will be paused once the zero burst is over."""
        return self._pause_pending

    def in_burst(self, now_s: float) -> bool:
        """Whether zero twists are still due after the last stop."""
        return now_s < self._burst_until_s

    def on_start(self) -> None:
        """An episode started: no pause is due any more."""
        with self._lock:
            self._pause_pending = False

    def on_stop(self, now_s: float, running: bool) -> None:
        """An episode stopped at ``now_s`` (the caller sent a zero twist): arm the zero
        burst; pause Servo after it unless an episode is ``running`` again (a preemption)."""
        with self._lock:
            self._burst_until_s = now_s + self.zero_burst_s
            self._pause_pending = not running

    def on_estop(self, now_s: float) -> None:
        """The e-stop was engaged (the caller sent a zero twist, even when idle): zero
        twists for at least :attr:`zero_burst_s` from now."""
        with self._lock:
            self._burst_until_s = max(self._burst_until_s, now_s + self.zero_burst_s)

    def tick(self, now_s: float, running: bool) -> StreamTick:
        """What the servo timer does at ``now_s`` while an episode is ``running`` or not."""
        with self._lock:
            publish = running or now_s < self._burst_until_s
            pause = False
            if not publish and self._pause_pending:
                self._pause_pending, pause = False, True
            return StreamTick(publish, pause)

    def markers_due(self, now_s: float, running: bool) -> bool:
        """Whether to publish markers at ``now_s`` (while the stream runs, at most every
        :attr:`marker_period_s`); True also records the publication time."""
        with self._lock:
            due = (running or now_s < self._burst_until_s) and now_s - self._last_marker_s >= self.marker_period_s
            if due:
                self._last_marker_s = now_s
            return due


class ControlGrid:
    """The control worker's schedule: one step per ``period_s`` on a fixed grid.

    Args:
        period_s: the control period, s (> 0).

    Raises:
        ValueError: a period that is not finite and > 0.
    """

    def __init__(self, period_s: float):
        if not (math.isfinite(period_s) and period_s > 0):
            raise ValueError(f"period_s must be finite and > 0, got {period_s}")
        self.period_s = float(period_s)
        self.next_s: float | None = None

    def reset(self) -> None:
        """Forget the grid (no episode, or a new one): the next step is due at once."""
        self.next_s = None

    def wait_s(self, now_s: float) -> float:
        """Seconds until the next step is due (0 when due now)."""
        return 0.0 if self.next_s is None else max(self.next_s - now_s, 0.0)

    def stepped(self, now_s: float) -> None:
        """A step started at ``now_s``: keep the grid, or after an overrun (more than one
        period late) restart it from ``now_s``."""
        late = self.next_s is None or now_s - self.next_s > self.period_s
        self.next_s = now_s + self.period_s if late else self.next_s + self.period_s

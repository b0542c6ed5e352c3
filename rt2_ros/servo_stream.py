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
* :class:`ControlWorker`: the thread that runs the steps (on the grid, or with action
  chunks whenever the controller says the queue runs low), never the servo stream's.
"""

from __future__ import annotations

import dataclasses
import math
import threading

__all__ = [
    "ZERO_BURST_S",
    "MARKER_PERIOD_S",
    "GIL_SWITCH_INTERVAL_S",
    "CHUNK_POLL_S",
    "ServoStream",
    "StreamTick",
    "ControlGrid",
    "ControlWorker",
]

#: Zero twists keep going out for this long after every stop, then the stream goes quiet [s].
ZERO_BURST_S = 0.5
#: Markers are published at most this often [s].
MARKER_PERIOD_S = 0.1
#: Python's GIL switch interval the node sets when the model runs in its own process
#: (``policy.process: in_process``) [s] (Python's default: 0.005). A model's Python-side
#: generate loop holds the GIL between short torch calls; with 1 ms the servo stream
#: gets it back sooner (benchmarks/bench_node.py, tiny model on a loaded 2-core machine:
#: p99 servo period 53-69 ms instead of 131-161 ms, max 97-123 ms instead of 546-604
#: ms). The node sets it whatever the backend: with the model in a child process and
#: 1 kHz input traffic (benchmarks/bench_stream.py --pose-hz 100 --camera-hz 30 --spam-hz
#: 1000, load 3-4 on 2 cores) 5 ms gave 16-96 gaps > 100 ms per minute, 1 ms 2-3; at
#: load 0.3-1.7, 0.2 ms took the p99 period error from 10-31 ms to 7-8 ms and the largest
#: gap from 42-95 ms to 32-36 ms (90 s runs; the rest is other threads' turns with the
#: GIL: a thread sleeping 2 ms in the node woke up to 65 ms late while one in another
#: process never did; docs/faults.md).
GIL_SWITCH_INTERVAL_S = 0.0002
#: Chunk mode: how often the control worker asks whether the next chunk is due [s].
CHUNK_POLL_S = 0.005


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

    def on_stop(self, now_s: float, running: bool, preempted: bool = False) -> bool:
        """An episode stopped at ``now_s``: arm the zero burst; pause Servo after it unless
        an episode is ``running`` again.

        Returns:
            bool: whether the caller must publish a zero twist at once, out of the servo
            grid. True for a stop (cancel, terminate, fault: the arm halts without waiting up to
            one servo period), False for a preemption (``preempted``): the stopped
            episode's twist is already zeroed and the next regular tick publishes the new
            episode's command, which is zero until its first action. An extra twist per
            preemption would put a near-zero gap into the 50 Hz stream at the rate
            instructions arrive (10 per second under spam; docs/faults.md).
        """
        with self._lock:
            self._burst_until_s = now_s + self.zero_burst_s
            self._pause_pending = not running
            return not preempted

    def on_estop(self, now_s: float) -> None:
        """The e-stop was engaged (the caller sent a zero twist, even when idle): zero
        twists for at least ``zero_burst_s`` from now."""
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
        ``marker_period_s``); True also records the publication time."""
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


class ControlWorker:
    """The control worker: a plain thread (not an executor callback) that runs the model
    steps, so a slow model never delays the servo stream.

    While an episode runs it calls ``run_step(now_s)`` once per control period on a
    :class:`ControlGrid`; with action chunks (``controller.chunked``) whenever
    ``controller.inference_due(now_s)`` says the queue runs low (inference ahead), while
    the servo stream executes the queue. A new episode (:meth:`wake`) acts at once. A
    step that raises goes to ``on_error`` and the loop goes on after 0.1 s.

    Args:
        controller: the :class:`~rt2_ros.controller.Controller` (``running``, ``chunked``,
            ``inference_due``).
        period_s: the control period, s.
        run_step: ``run_step(now_s)``: one step and its publications.
        now_fn: the caller's clock, s.
        on_error: ``on_error(exc)`` for a step that raised.
    """

    def __init__(self, controller, period_s: float, run_step, now_fn, on_error):
        self._controller, self._run_step, self._now, self._on_error = controller, run_step, now_fn, on_error
        self._grid = ControlGrid(period_s)
        self._stop, self._wake = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rt2_control", daemon=True)

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def wake(self) -> None:
        """A new episode started: act at once."""
        self._wake.set()

    def stop(self, timeout_s: float) -> None:
        """Ask the loop to end and wait up to ``timeout_s`` for a step in progress."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        c, grid = self._controller, self._grid
        while not self._stop.is_set():
            try:
                now_s = self._now()
                if not c.running:
                    grid.reset()
                    self._wake.wait(0.05)
                    self._wake.clear()
                    continue
                if self._wake.is_set():  # a new episode: act at once
                    self._wake.clear()
                    grid.reset()
                if c.chunked:
                    if c.inference_due(now_s):
                        self._run_step(now_s)
                    else:
                        self._wake.wait(CHUNK_POLL_S)
                    continue
                wait_s = grid.wait_s(now_s)
                if wait_s > 0:
                    self._wake.wait(min(wait_s, 0.05))
                    continue
                self._run_step(now_s)
                grid.stepped(now_s)
            except Exception as e:  # noqa: BLE001 - the worker must never die silently
                self._on_error(e)
                self._stop.wait(0.1)

"""Log throttling for rejected inputs: at most one line per kind and period. ROS-free.

A camera that sends garbage at 30 Hz must not flood the log: :class:`RejectionLog`
lets one rejection per ``kind`` through each ``period_s`` and counts the ones it held
back, so the next line can say how many there were. :class:`OnceLog` lets each key
through once (warnings that would repeat every message). :class:`InputLog` puts both
in front of any logger with ``warning`` (a ROS node's logger, or ``logging``).
:class:`LogThread` writes lines on a thread of its own, so a caller that must not
wait (the servo stream, a callback holding a lock) only queues them.
"""

from __future__ import annotations

import contextlib
import math
import queue
import sys
import threading
import time

__all__ = ["RejectionLog", "OnceLog", "InputLog", "LogThread"]


class RejectionLog:
    """Counts rejections and decides which ones to log. Thread-safe.

    Args:
        period_s: at most one logged line per kind in this period, s.
        clock: monotonic clock in seconds (default ``time.monotonic``).
    """

    def __init__(self, period_s: float = 1.0, clock=time.monotonic):
        self.period_s = float(period_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}  # kind -> (time logged, suppressed since)
        self.count = 0  # every rejection, logged or not

    def record(self, kind: str, throttle: bool = True) -> int | None:
        """Count one rejection of ``kind``.

        Returns:
            None when it should not be logged (within the period of the last logged
            one); else the number of rejections of that kind held back since then.
        """
        with self._lock:
            self.count += 1
            now = self._clock()
            last, suppressed = self._last.get(kind, (-math.inf, 0))
            if throttle and now - last < self.period_s:
                self._last[kind] = (last, suppressed + 1)
                return None
            self._last[kind] = (now, 0)
            return suppressed


class OnceLog:
    """Remembers keys: :meth:`first` is True the first time it sees a key. Thread-safe."""

    def __init__(self):
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def first(self, key: str) -> bool:
        """True the first time ``key`` is seen, False afterwards (thread-safe)."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True


class InputLog:
    """Warnings about inputs, throttled: :meth:`reject` and :meth:`warn_once`.

    Args:
        logger: anything with ``warning(str)`` (an rclpy ``RcutilsLogger``, a ``logging.Logger``).
        period_s: at most one rejection line per kind in this period, s.
        clock: monotonic clock in seconds.
    """

    def __init__(self, logger, period_s: float = 1.0, clock=time.monotonic):
        self.logger = logger
        self._rejects = RejectionLog(period_s, clock)
        self._once = OnceLog()

    @property
    def rejections(self) -> int:
        """Every rejection so far, logged or not."""
        return self._rejects.count

    def warn_once(self, key: str, text: str) -> None:
        """Log ``text`` as a warning the first time ``key`` is seen."""
        if self._once.first(key):
            self.logger.warning(text)

    def reject(self, kind: str, what: str, reason: str, throttle: bool = True) -> None:
        """Log a rejected input/output: at most once per period per ``kind``, with a
        count of the suppressed ones (a camera sending garbage at 30 Hz must not flood)."""
        suppressed = self._rejects.record(kind, throttle)
        if suppressed is not None:
            p = self._rejects.period_s
            span = "second" if p == 1.0 else f"{p:g} s"
            more = f" (+{suppressed} similar in the last {span})" if suppressed else ""
            self.logger.warning(f"rejected {what}: {reason}{more}")


class LogThread:
    """A logger whose lines are written by a thread of its own: callers only queue them.

    rclpy's logger looks its caller up on every line (``inspect.getframeinfo`` and
    ``os.path.realpath``: dozens of system calls, each of which gives the GIL away). With
    1 kHz of input callbacks competing for the GIL, one line took tens to hundreds of ms;
    written under the lock that orders the node's publications, it held the servo stream
    up for as long (benchmarks/bench_stream.py, docs/faults.md). Through a ``LogThread``
    the caller's cost is one ``put`` on a queue; the lines keep their order.

    Args:
        logger: anything with ``debug``/``info``/``warning``/``error`` taking one ``str``.
        max_queued: lines waiting at most; beyond that a line is dropped and counted in
            :attr:`dropped` (the next written line says how many).
        name: the thread's name.

    Raises:
        ValueError: ``max_queued`` < 1.
    """

    def __init__(self, logger, max_queued: int = 1000, name: str = "rt2_log"):
        if max_queued < 1:
            raise ValueError(f"max_queued must be >= 1, got {max_queued}")
        self.logger = logger
        self._queue: queue.Queue = queue.Queue(max_queued)
        self._dropped_lock = threading.Lock()
        #: Lines dropped because the queue was full.
        self.dropped = 0
        self._unreported = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def debug(self, text: str) -> None:
        """Queue a debug line."""
        self._put("debug", text)

    def info(self, text: str) -> None:
        """Queue an info line."""
        self._put("info", text)

    def warning(self, text: str) -> None:
        """Queue a warning."""
        self._put("warning", text)

    def error(self, text: str) -> None:
        """Queue an error line."""
        self._put("error", text)

    def _put(self, level: str, text: str) -> None:
        try:
            self._queue.put_nowait((level, text, None))
        except queue.Full:
            with self._dropped_lock:
                self.dropped += 1
                self._unreported += 1

    def flush(self, timeout_s: float = 2.0) -> bool:
        """Wait up to ``timeout_s`` until every line queued so far is written; True if they were."""
        done = threading.Event()
        try:
            self._queue.put((None, "", done), timeout=timeout_s)
        except queue.Full:
            return False
        return done.wait(timeout_s)

    def _run(self) -> None:
        while True:
            level, text, done = self._queue.get()
            if done is not None:
                done.set()
                continue
            with self._dropped_lock:
                unreported, self._unreported = self._unreported, 0
            try:
                if unreported:
                    self.logger.warning(f"{unreported} log lines were dropped (the log could not keep up)")
                # One call site per level: rclpy's logger keys its state on the calling line and
                # refuses a second severity from the same line (ValueError).
                if level == "info":
                    self.logger.info(text)
                elif level == "warning":
                    self.logger.warning(text)
                elif level == "error":
                    self.logger.error(text)
                else:
                    self.logger.debug(text)
            except Exception as e:  # noqa: BLE001 - a failing logger must not end the thread
                with contextlib.suppress(Exception):
                    sys.stderr.write(f"[{level}] {text} (the logger failed: {e!r})\n")

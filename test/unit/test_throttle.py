"""Rejection log throttling, the log thread and the frame rule, without ROS."""

import threading

import numpy as np
import pytest

from rt2_ros.config import FramesConfig
from rt2_ros.frames import rotation_planning_from_command
from rt2_ros.throttle import InputLog, LogThread


class _Logger:
    def __init__(self):
        self.lines = []

    def warning(self, text):
        self.lines.append(text)


def test_rejections_log_once_per_second_per_kind_and_count_the_rest():
    now = [0.0]
    log = _Logger()
    il = InputLog(log, period_s=1.0, clock=lambda: now[0])
    for _ in range(30):  # a camera sending garbage at 30 Hz
        il.reject("image", "image", "not rgb8")
        now[0] += 1 / 30
    il.reject("pose", "pose", "NaN")  # another kind is not held back
    now[0] = 1.01
    il.reject("image", "image", "not rgb8")
    assert il.rejections == 32
    assert log.lines[0] == "rejected image: not rgb8"
    assert log.lines[1] == "rejected pose: NaN"
    assert log.lines[2] == "rejected image: not rgb8 (+29 similar in the last second)"
    il.reject("instruction", "instruction", "empty", throttle=False)
    il.reject("instruction", "instruction", "empty", throttle=False)
    assert len(log.lines) == 5


def test_warn_once_warns_once_per_key():
    log = _Logger()
    il = InputLog(log)
    for _ in range(3):
        il.warn_once("a", "A")
        il.warn_once("b", "B")
    assert log.lines == ["A", "B"]


def test_rotation_from_the_command_frame_without_tf():
    r = np.eye(3)[[1, 0, 2]]
    same = FramesConfig(planning_frame="base", command_frame="base", ee_frame="hand")
    ee = FramesConfig(planning_frame="base", command_frame="hand", ee_frame="hand")
    other = FramesConfig(planning_frame="base", command_frame="tool0", ee_frame="hand")
    assert rotation_planning_from_command(same, r) == (True, None)
    known, rot = rotation_planning_from_command(ee, r)
    assert known and rot is r
    assert rotation_planning_from_command(ee, None) == (False, None)
    assert rotation_planning_from_command(other, r) == (False, None)


class _BlockingLogger:
    """A logger whose every line waits for ``release`` (rclpy's logger under GIL contention, taken to the limit)."""

    def __init__(self):
        self.release = threading.Event()
        self.entered = threading.Event()
        self.lines = []

    def _line(self, level, text):
        self.entered.set()
        assert self.release.wait(RETURN_TIMEOUT_S)
        self.lines.append((level, text))

    def debug(self, text):
        self._line("debug", text)

    def info(self, text):
        self._line("info", text)

    def warning(self, text):
        self._line("warning", text)

    def error(self, text):
        self._line("error", text)


#: Waiting for something that takes microseconds; generous for load 10 [s].
RETURN_TIMEOUT_S = 10.0


def test_log_thread_callers_never_wait_for_the_logger_and_lines_keep_their_order():
    slow = _BlockingLogger()
    log = LogThread(slow)
    log.info("first")
    assert slow.entered.wait(RETURN_TIMEOUT_S)  # the log thread is stuck in the logger now
    done = threading.Event()

    def caller():  # what the servo tick or a callback holding a lock does
        log.warning("second")
        log.error("third")
        log.debug("fourth")
        done.set()

    threading.Thread(target=caller, daemon=True).start()
    assert done.wait(RETURN_TIMEOUT_S)  # returned while the logger is blocked
    assert slow.lines == []
    slow.release.set()
    assert log.flush(RETURN_TIMEOUT_S)
    assert slow.lines == [("info", "first"), ("warning", "second"), ("error", "third"), ("debug", "fourth")]


def test_log_thread_drops_lines_beyond_its_queue_and_says_how_many():
    slow = _BlockingLogger()
    log = LogThread(slow, max_queued=2)
    log.info("stuck")
    assert slow.entered.wait(RETURN_TIMEOUT_S)
    for k in range(5):
        log.info(f"line {k}")  # 2 wait, 3 dropped
    assert log.dropped == 3
    slow.release.set()
    assert log.flush(RETURN_TIMEOUT_S)
    assert slow.lines == [
        ("info", "stuck"),
        ("warning", "3 log lines were dropped (the log could not keep up)"),
        ("info", "line 0"),
        ("info", "line 1"),
    ]


def test_log_thread_survives_a_failing_logger():
    class Failing:
        def __init__(self):
            self.lines = []

        def info(self, text):
            if text == "boom":
                raise RuntimeError("logger down")
            self.lines.append(text)

    f = Failing()
    log = LogThread(f)
    log.info("boom")
    log.info("after")
    assert log.flush(RETURN_TIMEOUT_S) and f.lines == ["after"]
    with pytest.raises(ValueError, match="max_queued"):
        LogThread(f, max_queued=0)

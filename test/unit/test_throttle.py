"""Rejection log throttling and the frame rule, without ROS."""

import numpy as np

from rt2_ros.config import FramesConfig
from rt2_ros.frames import rotation_planning_from_command
from rt2_ros.throttle import InputLog


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

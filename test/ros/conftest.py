"""Nodes under test run in this process as ``rt2_ros.ros.node.main()`` runs them: with
a 1 ms GIL switch interval, so the servo timer thread is not starved by the test's own
threads (camera streamers, collectors, executors)."""

import sys

from rt2_ros.servo_stream import GIL_SWITCH_INTERVAL_S

sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)

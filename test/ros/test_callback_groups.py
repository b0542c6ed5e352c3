"""ThrottledCallbackGroup: a flooded subscription's callback starts at most once per interval.

The executor asks the group whether an entity may run (``can_execute``: left out of the
wait set when not) and claims it (``beginning_execution``); a real subscription is the
entity, as in the node. The clock is injected, so nothing here depends on timing.
"""

import pytest
import rclpy
from rclpy.context import Context
from std_msgs.msg import String

from rt2_ros.ros.callback_groups import ThrottledCallbackGroup


@pytest.fixture
def node():
    ctx = Context()
    rclpy.init(context=ctx)
    n = rclpy.create_node("rt2_test_throttled_group", context=ctx)
    try:
        yield n
    finally:
        n.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_a_callback_starts_at_most_once_per_interval_and_never_two_at_once(node):
    now = [100.0]
    g = ThrottledCallbackGroup(0.25, clock=lambda: now[0])
    sub = node.create_subscription(String, "/rt2_test/flood", lambda m: None, 1, callback_group=g)
    assert g.can_execute(sub) and g.beginning_execution(sub)
    assert not g.can_execute(sub)  # running: mutually exclusive
    g.ending_execution(sub)
    now[0] += 0.125
    assert not g.can_execute(sub) and not g.beginning_execution(sub)  # within the interval: left out
    now[0] += 0.125
    assert g.can_execute(sub) and g.beginning_execution(sub)  # the interval is over
    g.ending_execution(sub)


def test_a_zero_interval_is_a_plain_mutually_exclusive_group_and_bad_intervals_are_refused(node):
    g = ThrottledCallbackGroup(0.0, clock=lambda: 5.0)
    sub = node.create_subscription(String, "/rt2_test/flood", lambda m: None, 1, callback_group=g)
    for _ in range(3):
        assert g.beginning_execution(sub) and not g.can_execute(sub)
        g.ending_execution(sub)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="min_interval_s"):
            ThrottledCallbackGroup(bad)


def test_the_log_thread_writes_every_severity_through_rclpys_logger(node, capfd):
    """rclpy's logger keys its state on the calling line and refuses a second severity from the
    same line; the log thread calls it from one line per severity."""
    from rt2_ros.throttle import LogThread

    log = LogThread(node.get_logger())
    log.info("line one")
    log.warning("line two")
    log.error("line three")
    log.info("line four")
    assert log.flush(10.0)
    err = capfd.readouterr().err
    assert all(t in err for t in ("line one", "line two", "line three", "line four"))
    assert "the logger failed" not in err

"""Python ``logging`` records of ``rt2_ros.*`` into the ROS log (console, files, ``/rosout``).

The ROS-free parts of the package (the remote client, the policy child's supervisor
and the child's own output, :mod:`rt2_ros.remote.child`) log with Python's
``logging``; in the node process :func:`bridge_python_logging` sends those records
to rclpy's logger of the same name, so they appear with the node's own lines.
"""

from __future__ import annotations

import logging

import rclpy.logging

__all__ = ["RosLogHandler", "bridge_python_logging"]


class RosLogHandler(logging.Handler):
    """Forward each record to ``rclpy.logging.get_logger(record.name)`` at its level."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logger = rclpy.logging.get_logger(record.name)
            msg = self.format(record)
            if record.levelno >= logging.ERROR:
                logger.error(msg)
            elif record.levelno >= logging.WARNING:
                logger.warning(msg)
            elif record.levelno >= logging.INFO:
                logger.info(msg)
            else:
                logger.debug(msg)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def bridge_python_logging(name: str = "rt2_ros", level: int = logging.INFO) -> None:
    """Send ``name``'s Python log records (and its children's) to the ROS log. Idempotent.

    The records stop propagating to Python's root logger, so nothing is printed twice.
    """
    py = logging.getLogger(name)
    if any(isinstance(h, RosLogHandler) for h in py.handlers):
        return
    py.addHandler(RosLogHandler())
    py.setLevel(level)
    py.propagate = False

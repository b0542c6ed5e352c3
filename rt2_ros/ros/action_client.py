"""An ``rclpy.action.ActionClient`` without the lost-reply race of rclpy <= 7.1 (Jazzy).

rclpy's ``send_goal_async`` (and ``_get_result_async``, ``_cancel_goal_async``) sends the
request first and registers its future afterwards. On a ``MultiThreadedExecutor`` another
thread can take the server's reply in between: the client logs "Ignoring unexpected goal
response" and the future never completes (ros2/rclpy#1123, fixed upstream by
ros2/rclpy#1308 and its backports #1517/#1519 with a lock around sending and taking).
A loaded machine makes the window wide enough to hit: the gripper's goal never gets an
answer. :class:`ActionClient` takes the same lock around the three requests and
``take_data``, so a reply is taken only once its future is registered.
"""

from __future__ import annotations

import threading

from rclpy.action import ActionClient as _RclpyActionClient

__all__ = ["ActionClient"]


class ActionClient(_RclpyActionClient):
    """``rclpy.action.ActionClient`` (same arguments and methods) whose requests and
    ``take_data`` share one lock (see the module doc)."""

    def __init__(self, *args, **kwargs):
        self._request_lock = threading.RLock()
        super().__init__(*args, **kwargs)

    def take_data(self):
        """rclpy's ``take_data``, under the request lock (a reply waits until its future exists)."""
        with self._request_lock:
            return super().take_data()

    def send_goal_async(self, goal, feedback_callback=None, goal_uuid=None):
        """rclpy's ``send_goal_async`` (same arguments, returns its future), with the request
        sent and its future registered under the request lock."""
        with self._request_lock:
            return super().send_goal_async(goal, feedback_callback, goal_uuid)

    def _cancel_goal_async(self, goal_handle):
        with self._request_lock:
            return super()._cancel_goal_async(goal_handle)

    def _get_result_async(self, goal_handle):
        with self._request_lock:
            return super()._get_result_async(goal_handle)

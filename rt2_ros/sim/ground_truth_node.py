"""Ground truth for the scripted expert when it runs inside the rt2 node (rclpy shell).

The sim node publishes ``/sim/ground_truth`` (``std_msgs/String``, JSON of
:meth:`rt2_ros.sim.world.SimWorld.ground_truth`) every Servo period. The expert lives
in the rt2 node's process, which already has an rclpy context; this module gives it a
small node of its own (``rt2_expert_ground_truth``) spun by its own executor in a
daemon thread, so the expert never depends on the rt2 node's executor. It ignores the
process's global ROS arguments (node-name and namespace remaps are meant for the rt2 node).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

__all__ = ["GroundTruthSubscriber"]


class GroundTruthSubscriber:
    """Keeps the newest ground-truth dict from ``topic``.

    Args:
        topic: the sim's ground-truth topic.
        context: rclpy context (default: the global one, which must be initialised).

    Raises:
        RuntimeError: rclpy is not initialised.
    """

    def __init__(self, topic: str = "/sim/ground_truth", context=None):
        if not rclpy.ok(context=context):
            raise RuntimeError("rclpy is not initialised: the scripted expert needs a running ROS context")
        # use_global_arguments=False: the process's command-line remaps are the rt2 node's.
        # Under ros2 launch, Node(name="rt2_node") passes ``-r __node:=rt2_node``, which would
        # rename this node too, leaving two /rt2_node in the graph (ros2 param get fails).
        self.node = Node("rt2_expert_ground_truth", context=context, use_global_arguments=False)
        self._lock = threading.Lock()
        self._latest: dict[str, Any] | None = None
        self.received = 0
        self.rejected = 0
        self.node.create_subscription(String, topic, self._on_msg, 5)
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="rt2_expert_gt", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            try:
                self._executor.spin_once(timeout_sec=0.1)
            except Exception:  # noqa: BLE001 - context shut down under us
                if self._stop.is_set():
                    return
                time.sleep(0.1)

    def _on_msg(self, msg: String) -> None:
        try:
            gt = json.loads(msg.data)
            if not isinstance(gt, dict) or "blocks" not in gt or "ee" not in gt:
                raise ValueError("missing 'blocks' or 'ee'")
        except (ValueError, TypeError) as e:
            self.rejected += 1
            self.node.get_logger().warning(f"rejected ground truth message: {e}", throttle_duration_sec=1.0)
            return
        gt["received_monotonic_s"] = time.monotonic()
        with self._lock:
            self._latest = gt
            self.received += 1

    def latest(self) -> dict[str, Any] | None:
        """The newest ground truth (with ``received_monotonic_s``), or None."""
        with self._lock:
            return self._latest

    def close(self) -> None:
        """Stop the spin thread and destroy the node."""
        self._stop.set()
        self._thread.join(2.0)
        try:
            self._executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        except Exception:  # noqa: BLE001 - context already gone
            pass

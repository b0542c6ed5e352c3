"""The rt2 node's gripper output: ``std_msgs/Float64`` in [0, 1] or a control_msgs GripperCommand goal.

``gripper.output: float64`` publishes the command ``x`` (0 closed .. 1 open) every
control step on ``topics.gripper``. ``gripper.output: action`` sends a
``control_msgs/action/GripperCommand`` goal to the action server ``topics.gripper``
when the target changed by 1 % or more, at the position :func:`gripper_position_m`
(``gripper.closed_position_m`` .. ``gripper.open_position_m``) with
``gripper.max_effort_n``. Without control_msgs the output falls back to Float64 with
a warning that says how to fix it.
"""

from __future__ import annotations

from typing import Callable

from rclpy.node import Node
from std_msgs.msg import Float64

from rt2_ros.config import GripperConfig

__all__ = ["GripperOutput", "gripper_position_m", "HAVE_GRIPPER_ACTION"]

try:  # pragma: no cover - control_msgs is not installable here
    from control_msgs.action import GripperCommand  # type: ignore

    HAVE_GRIPPER_ACTION = True
except ImportError:
    GripperCommand = None
    HAVE_GRIPPER_ACTION = False


def gripper_position_m(x: float, closed_position_m: float, open_position_m: float) -> float:
    """Finger position (m) for the command ``x`` in [0, 1] (0 closed, 1 open): linear
    between the closed and the open position."""
    return closed_position_m + x * (open_position_m - closed_position_m)


class GripperOutput:
    """Sends the gripper command (see the module doc).

    Args:
        node: the node that owns the publisher / action client.
        cfg: the ``gripper`` section.
        topic: ``topics.gripper`` (a topic or an action name).
        warn_once: ``(key, text)`` logs a warning once per key.
        callback_group: for the action client.
    """

    def __init__(
        self, node: Node, cfg: GripperConfig, topic: str, warn_once: Callable[[str, str], None], callback_group=None
    ):
        self.cfg, self.topic, self._warn_once = cfg, topic, warn_once
        self._pub = None
        self._action = None
        self._last: float | None = None
        if cfg.output == "action" and HAVE_GRIPPER_ACTION:  # pragma: no cover - no control_msgs here
            from rclpy.action import ActionClient

            self._action = ActionClient(node, GripperCommand, topic, callback_group=callback_group)
            return
        if cfg.output == "action":
            node.get_logger().warning(
                "gripper.output is 'action' but control_msgs is not importable: publishing "
                f"std_msgs/Float64 in [0, 1] on {topic} instead. Fix: install control_msgs "
                "(rosdep install --from-paths src -y) or set gripper.output: float64"
            )
        self._pub = node.create_publisher(Float64, topic, 10)

    def send(self, x: float) -> None:
        """Gripper command ``x`` in [0, 1] (1 = open): Float64 every step, or a
        GripperCommand goal when the target changed."""
        if self._pub is not None:
            self._pub.publish(Float64(data=float(x)))
            return
        if self._action is None:  # pragma: no cover
            return
        if self._last is not None and abs(self._last - x) < 0.01:  # pragma: no cover
            return
        if not self._action.server_is_ready():  # pragma: no cover
            self._warn_once("gripper_action", f"GripperCommand action server {self.topic} is not available")
            return
        g = self.cfg  # pragma: no cover - no control_msgs here
        goal = GripperCommand.Goal()
        goal.command.position = gripper_position_m(x, g.closed_position_m, g.open_position_m)
        goal.command.max_effort = g.max_effort_n
        self._action.send_goal_async(goal)
        self._last = x

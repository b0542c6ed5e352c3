"""The rt2 node's gripper output: ``std_msgs/Float64`` in [0, 1] or a control_msgs GripperCommand goal.

``gripper.output: float64`` publishes the command ``x`` (0 closed .. 1 open) every
control step on ``topics.gripper``. ``gripper.output: action`` sends a
``control_msgs/action/GripperCommand`` goal to the action server ``topics.gripper``
when the target changed by 1 % or more, at the position :func:`gripper_position_m`
(``gripper.closed_position_m`` .. ``gripper.open_position_m``) with
``gripper.max_effort_n``. A goal the server rejects or aborts is logged (with the
server's result: position, stalled, reached_goal) and not retried: the gripper holds
what it has until the model asks for another position; the episode goes on. Without
control_msgs the output falls back to Float64 with a warning that says how to fix it.
"""

from __future__ import annotations

from typing import Callable

from rclpy.node import Node
from std_msgs.msg import Float64

from rt2_ros.config import GripperConfig

__all__ = ["GripperOutput", "gripper_position_m", "HAVE_GRIPPER_ACTION"]

try:
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
        self.log = node.get_logger()
        self._pub = None
        self._action = None
        self._last: float | None = None
        self._seq = 0
        self._accepted_seq = 0  # the newest goal the server accepted
        #: Goals sent and how they ended (diagnostics and tests).
        self.goals = {"sent": 0, "rejected": 0, "succeeded": 0, "aborted": 0, "canceled": 0, "failed": 0}
        if cfg.output == "action" and HAVE_GRIPPER_ACTION:
            from rt2_ros.ros.action_client import ActionClient  # rclpy's loses replies under load

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
        GripperCommand goal when the target changed. Never blocks."""
        if self._pub is not None:
            self._pub.publish(Float64(data=float(x)))
            return
        if self._last is not None and abs(self._last - x) < 0.01:
            return
        if not self._action.server_is_ready():
            self._warn_once("gripper_action", f"GripperCommand action server {self.topic} is not available")
            return
        g = self.cfg
        goal = GripperCommand.Goal()
        goal.command.position = gripper_position_m(x, g.closed_position_m, g.open_position_m)
        goal.command.max_effort = g.max_effort_n
        self._last = x
        self._seq += 1
        self.goals["sent"] += 1
        what = f"GripperCommand goal {goal.command.position:.4f} m (max effort {goal.command.max_effort:g} N)"
        fut = self._action.send_goal_async(goal)
        fut.add_done_callback(lambda f, seq=self._seq: self._on_goal_response(f, seq, what))

    def _on_goal_response(self, fut, seq: int, what: str) -> None:
        try:
            handle = fut.result()
        except Exception as e:  # noqa: BLE001 - report, never raise in a callback
            self.goals["failed"] += 1
            self.log.warning(f"{what} to {self.topic} failed: {e}; the gripper holds its last command")
            return
        if not handle.accepted:
            self.goals["rejected"] += 1
            self.log.warning(f"{what} rejected by {self.topic}; the gripper holds its last command")
            return
        self._accepted_seq = max(self._accepted_seq, seq)
        handle.get_result_async().add_done_callback(lambda f: self._on_result(f, seq, what))

    def _on_result(self, fut, seq: int, what: str) -> None:
        from action_msgs.msg import GoalStatus

        try:
            res = fut.result()
        except Exception as e:  # noqa: BLE001 - report, never raise in a callback
            self.goals["failed"] += 1
            self.log.warning(f"{what}: no result from {self.topic}: {e}")
            return
        r = res.result
        if res.status == GoalStatus.STATUS_SUCCEEDED:
            self.goals["succeeded"] += 1
        elif res.status == GoalStatus.STATUS_ABORTED:
            self.goals["aborted"] += 1
            if seq == self._accepted_seq:  # an older goal aborted for our newer one is no news
                self.log.warning(
                    f"{what} aborted by {self.topic}: gripper at {r.position:.4f} m, stalled={r.stalled}, "
                    f"reached_goal={r.reached_goal}; the gripper holds what it has"
                )
        else:
            self.goals["canceled"] += 1

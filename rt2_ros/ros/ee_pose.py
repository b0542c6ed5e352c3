"""The end-effector pose input of the rt2 node: TF when ``tf2_ros`` is importable, else PoseStamped.

The pose (m, ``frames.planning_frame``) and the rotation from the command frame
(:func:`rt2_ros.frames.rotation_planning_from_command`, or TF) go to
:meth:`rt2_ros.controller.Controller.on_ee_pose`; ``EePoseInput.anchor`` is where
the RViz arrows start.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import rclpy.time
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node

from rt2_ros.config import RT2Config
from rt2_ros.controller import Controller
from rt2_ros.frames import rotation_planning_from_command
from rt2_ros.overlay import MarkerAnchor
from rt2_ros.ros.conversions import quaternion_to_matrix, stamp_to_s

__all__ = ["EePoseInput", "HAVE_TF2"]

try:  # pragma: no cover - tf2_ros is not installable on the project's machines
    import tf2_ros  # type: ignore

    HAVE_TF2 = True
except ImportError:
    tf2_ros = None
    HAVE_TF2 = False


class EePoseInput:
    """Subscribes the pose (or listens to TF) and feeds the controller.

    Args:
        node: the rt2 node.
        cfg: the whole configuration (``frames``, ``topics.ee_pose``, ``servo.use_tf``).
        controller: receives the pose.
        now_s: the node clock, s.
        reject: ``(kind, what, reason)`` logs a rejected input (throttled).
        warn_once: ``(key, text)`` logs a warning once per key.
        callback_group: for the subscription.
    """

    def __init__(
        self,
        node: Node,
        cfg: RT2Config,
        controller: Controller,
        now_s: Callable[[], float],
        reject: Callable[[str, str, str], None],
        warn_once: Callable[[str, str], None],
        callback_group=None,
    ):
        self.frames, self.controller, self.now_s = cfg.frames, controller, now_s
        self._reject, self._warn_once = reject, warn_once
        self.log = node.get_logger()
        self.anchor: MarkerAnchor | None = None
        self.tf_buffer = None
        if cfg.servo.use_tf and HAVE_TF2:  # pragma: no cover - no tf2_ros here
            self.tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self.tf_buffer, node, spin_thread=False)
        else:
            if cfg.servo.use_tf:
                self.log.info(f"tf2_ros is not importable: end-effector pose from {cfg.topics.ee_pose} (PoseStamped)")
            # depth 1: only the newest pose waits while a callback runs (a 1 kHz driver builds no backlog)
            node.create_subscription(PoseStamped, cfg.topics.ee_pose, self.on_pose, 1, callback_group=callback_group)

    def _feed(
        self, pos: np.ndarray, stamp_s: float, r_pc: np.ndarray | None, what: str, rot: np.ndarray | None = None
    ) -> None:
        try:
            self.controller.on_ee_pose(pos, stamp_s, r_pc, self.now_s(), orientation=rot)
        except ValueError as e:
            self._reject("pose", what, str(e))
            return
        self.anchor = MarkerAnchor(self.frames.planning_frame, pos, np.eye(3) if r_pc is None else r_pc)

    def on_pose(self, msg: PoseStamped) -> None:
        """Subscription callback: a ``geometry_msgs/PoseStamped`` end-effector pose in ``frames.planning_frame``;
        a pose in another frame is rejected (logged), the rest is checked as every pose is (NaN, reach, stamp)."""
        f = self.frames
        if msg.header.frame_id and msg.header.frame_id != f.planning_frame:
            self._reject(
                "pose",
                "end-effector pose",
                f"it is in frame {msg.header.frame_id!r}, expected frames.planning_frame {f.planning_frame!r}",
            )
            return
        p = msg.pose.position
        pos = np.array([p.x, p.y, p.z], dtype=np.float64)
        try:
            rot = quaternion_to_matrix(msg.pose.orientation)
        except ValueError:
            rot = None
        known, r_pc = rotation_planning_from_command(f, rot)
        if not known:
            self._warn_once(
                "pose_frames",
                (
                    f"cannot rotate twists in {f.command_frame!r} into {f.planning_frame!r} without TF: the workspace "
                    "box is not applied. Fix: install tf2_ros, or use command_frame = planning_frame or ee_frame"
                ),
            )
            return
        self._feed(pos, stamp_to_s(msg.header.stamp) or self.now_s(), r_pc, "end-effector pose", rot)

    def update_from_tf(self, now_s: float) -> None:
        """Look the pose up in TF (servo timer; no-op without tf2_ros)."""
        if self.tf_buffer is None:
            return
        f = self.frames  # pragma: no cover - no tf2_ros here
        try:  # pragma: no cover
            tf = self.tf_buffer.lookup_transform(f.planning_frame, f.ee_frame, rclpy.time.Time())
            r_pc = None
            if f.command_frame != f.planning_frame:
                tc = self.tf_buffer.lookup_transform(f.planning_frame, f.command_frame, rclpy.time.Time())
                r_pc = quaternion_to_matrix(tc.transform.rotation)
        except Exception as e:  # noqa: BLE001 - tf2 raises several lookup exceptions
            self.log.debug(f"TF lookup failed: {e}")
            return
        tr = tf.transform.translation  # pragma: no cover
        self._feed(
            np.array([tr.x, tr.y, tr.z]),
            stamp_to_s(tf.header.stamp) or now_s,
            r_pc,
            "end-effector pose from TF",
            quaternion_to_matrix(tf.transform.rotation),
        )

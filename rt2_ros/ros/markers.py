"""What the rt2 node shows in RViz: ``MarkerArray`` (velocity arrows, status text) and the annotated image.

The geometry, text and image overlay come from the ROS-free :mod:`rt2_ros.overlay`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from geometry_msgs.msg import Point
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image
from visualization_msgs.msg import Marker, MarkerArray

from rt2_ros.config import RT2Config
from rt2_ros.controller import Controller, StepOutcome
from rt2_ros.motion import Twist
from rt2_ros.overlay import (
    ANGULAR_ARROW_M_PER_RADPS,
    LINEAR_ARROW_S,
    MarkerAnchor,
    arrow_endpoints,
    draw_overlay,
    status_lines,
)
from rt2_ros.ros.conversions import rgb_to_image_msg

__all__ = ["make_marker_array", "NodeVisuals"]


def make_marker_array(
    anchor: MarkerAnchor,
    linear,
    angular,
    lines: list[str],
    stamp,
    namespace: str = "rt2",
):
    """``visualization_msgs/MarkerArray``: arrow for the linear velocity (id 0, green),
    arrow for the angular velocity (id 1, blue; DELETE when zero), text (id 2) above
    the anchor. ``stamp`` is a ``builtin_interfaces/Time``."""
    out = MarkerArray()
    specs = (
        (0, linear, LINEAR_ARROW_S, (0.1, 0.85, 0.2)),
        (1, angular, ANGULAR_ARROW_M_PER_RADPS, (0.2, 0.5, 1.0)),
    )
    for mid, vec, scale, rgb in specs:
        m = Marker()
        m.header.frame_id = anchor.frame_id
        m.header.stamp = stamp
        m.ns, m.id, m.type = namespace, mid, Marker.ARROW
        ends = arrow_endpoints(anchor, vec, scale)
        if ends is None:
            m.action = Marker.DELETE
        else:
            m.action = Marker.ADD
            m.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in ends]
            m.pose.orientation.w = 1.0
            m.scale.x, m.scale.y, m.scale.z = 0.01, 0.02, 0.03  # shaft diameter, head diameter, head length [m]
            m.color.r, m.color.g, m.color.b, m.color.a = rgb[0], rgb[1], rgb[2], 1.0
        out.markers.append(m)
    t = Marker()
    t.header.frame_id = anchor.frame_id
    t.header.stamp = stamp
    t.ns, t.id, t.type, t.action = namespace, 2, Marker.TEXT_VIEW_FACING, Marker.ADD
    t.pose.position.x, t.pose.position.y = float(anchor.origin[0]), float(anchor.origin[1])
    t.pose.position.z = float(anchor.origin[2]) + 0.15
    t.pose.orientation.w = 1.0
    t.scale.z = 0.03  # text height [m]
    t.color.r = t.color.g = t.color.b = t.color.a = 1.0
    t.text = "\n".join(lines)
    out.markers.append(t)
    return out


class NodeVisuals:
    """The rt2 node's displays: ``MarkerArray`` on ``topics.markers`` and the annotated
    camera image on ``topics.annotated_image`` (only built while someone subscribes).

    Args:
        node: the rt2 node (owns the publishers).
        cfg: the whole configuration.
        controller: read for the episode status.
        warn_once: ``(key, text)`` logs a warning once per key.
    """

    def __init__(self, node: Node, cfg: RT2Config, controller: Controller, warn_once: Callable[[str, str], None]):
        self.cfg, self.controller, self._warn_once = cfg, controller, warn_once
        self.marker_pub = node.create_publisher(MarkerArray, cfg.topics.markers, 10)
        # Reliable (depth 2): matches both reliable (RViz's default) and best-effort subscribers.
        self.annotated_pub = node.create_publisher(Image, cfg.topics.annotated_image, QoSProfile(depth=2))
        self.last_outcome: StepOutcome | None = None

    def status_text(self, twist: Twist | None = None) -> list[str]:
        """Instruction, step, state, latency, last rejection and ``twist`` (see :func:`status_lines`)."""
        o = self.last_outcome
        ep = self.controller.episode_info()
        return status_lines(
            ep.instruction,
            ep.step,
            ep.state.name.lower() + (f" ({ep.reason.value})" if ep.reason else ""),
            o.latency_ms if o is not None and o.result is not None else None,
            o.rejected if o is not None else None,
            None if twist is None else twist.linear,
            None if twist is None else twist.angular,
        )

    def publish_markers(self, anchor: MarkerAnchor | None, twist: Twist, stamp, stopped: bool) -> None:
        """Arrows from ``anchor`` (default: the command frame's origin) and the status text."""
        if self.marker_pub.get_subscription_count() == 0:
            return
        anchor = anchor or MarkerAnchor.at_command_frame(self.cfg.frames.command_frame)
        lines = self.status_text(twist)
        if self.controller.stop_reasons and stopped:
            lines.append("stop: " + ", ".join(self.controller.stop_reasons))
        self.marker_pub.publish(make_marker_array(anchor, twist.linear, twist.angular, lines, stamp))

    def publish_annotated(self, image: tuple[np.ndarray, Any, str] | None, o: StepOutcome) -> None:
        """The newest camera image ``(rgb, stamp msg, frame_id)`` with the status and the
        step's velocity bars (red frame when the arm is held still)."""
        if image is None or self.annotated_pub.get_subscription_count() == 0:
            return
        img, img_stamp, frame = image
        s = self.cfg.safety
        try:
            out = draw_overlay(
                img,
                self.status_text(o.twist),
                o.twist.linear,
                o.twist.angular,
                s.max_linear_speed_mps,
                s.max_angular_speed_radps,
                stopped=o.twist.is_zero,
            )
            self.annotated_pub.publish(rgb_to_image_msg(out, img_stamp, frame))
        except ValueError as e:
            self._warn_once("annotate", f"cannot annotate the image: {e}")

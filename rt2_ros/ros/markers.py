"""``visualization_msgs/MarkerArray`` for RViz: velocity arrows and the status text (rclpy shell).

The geometry and text come from the ROS-free :mod:`rt2_ros.overlay`.
"""

from __future__ import annotations

from geometry_msgs.msg import Point
from visualization_msgs.msg import Marker, MarkerArray

from rt2_ros.overlay import ANGULAR_ARROW_M_PER_RADPS, LINEAR_ARROW_S, MarkerAnchor, arrow_endpoints

__all__ = ["make_marker_array"]


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

"""``control_msgs/JointJog``, when importable (the ROS 2 tools kit builds control_msgs).

MoveIt Servo takes joint velocities on ``~/delta_joint_cmds`` as ``control_msgs/JointJog``
(``servo_node.cpp``: ``joint_jog_subscriber_``; Humble's ``servo_calcs.cpp`` likewise):
``header.stamp`` (staleness), ``joint_names``, ``velocities`` (rad/s with
``command_in_type: speed_units``), ``displacements`` (ignored by Servo, left empty).
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["HAVE_JOINT_JOG", "joint_jog_msg"]  # JointJog itself is control_msgs' class, re-exported

try:
    from control_msgs.msg import JointJog  # type: ignore

    HAVE_JOINT_JOG = True
except ImportError:  # the kit is not built: joint-space output is unavailable
    JointJog = None
    HAVE_JOINT_JOG = False


def joint_jog_msg(names: Sequence[str], velocities: Sequence[float], stamp, frame_id: str = ""):
    """A ``JointJog`` with ``velocities`` (rad/s) for ``names`` stamped ``stamp``.

    Raises:
        RuntimeError: control_msgs is not importable.
    """
    if JointJog is None:
        raise RuntimeError("control_msgs is not importable: cannot publish JointJog")
    m = JointJog()
    m.header.stamp = stamp
    m.header.frame_id = frame_id
    m.joint_names = list(names)
    m.velocities = [float(v) for v in velocities]
    m.duration = 0.0
    return m

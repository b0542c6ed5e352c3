"""MoveIt Servo's ROS interface as data: names, status codes, command types, distro. ROS-free.

One place for what both sides of the interface need: the rt2 node's client
(:mod:`rt2_ros.ros.servo_client`) and the simulation's stand-in
(:mod:`rt2_ros.sim.servo_standin`, :mod:`rt2_ros.sim.sim_node`). Read from moveit/moveit2
``moveit_ros/moveit_servo``: ``include/moveit_servo/utils/datatypes.hpp`` (Jazzy status
codes and ``SERVO_STATUS_CODE_MAP``), ``include/moveit_servo/status_codes.h`` (Humble's
numbering, published as ``std_msgs/Int8``), ``src/servo_node.cpp`` (services) and
``moveit_msgs/srv/ServoCommandType`` (command types).

========  =====================================================  ==============================
distro    enable (episode start)                                 pause (after a stop)
========  =====================================================  ==============================
Jazzy     ``~/pause_servo`` (SetBool false) if paused, then      ``~/pause_servo`` (SetBool true)
          ``~/switch_command_type`` (TWIST = 1)
Humble    ``~/start_servo`` (Trigger) the first time,            ``~/pause_servo`` (Trigger)
          ``~/unpause_servo`` (Trigger) after a pause
========  =====================================================  ==============================
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping

__all__ = [
    "StatusCode",
    "CommandType",
    "HUMBLE_CODE",
    "STATUS_MESSAGE",
    "HALT_STATUS",
    "HALT_CODES",
    "DISTROS",
    "SERVICES",
    "resolve_distro",
    "status_from_wire",
    "status_to_wire",
]


class StatusCode(enum.IntEnum):
    """MoveIt Servo status codes, Jazzy numbering (``moveit_msgs/ServoStatus.code``,
    ``utils/datatypes.hpp``)."""

    INVALID = -1
    NO_WARNING = 0
    DECELERATE_FOR_APPROACHING_SINGULARITY = 1
    HALT_FOR_SINGULARITY = 2
    DECELERATE_FOR_LEAVING_SINGULARITY = 3
    DECELERATE_FOR_COLLISION = 4
    HALT_FOR_COLLISION = 5
    JOINT_BOUND = 6


#: Jazzy code -> Humble's number for the same condition (``status_codes.h``, std_msgs/Int8).
HUMBLE_CODE: dict[StatusCode, int] = {
    StatusCode.INVALID: -1,
    StatusCode.NO_WARNING: 0,
    StatusCode.DECELERATE_FOR_APPROACHING_SINGULARITY: 1,
    StatusCode.HALT_FOR_SINGULARITY: 2,
    StatusCode.DECELERATE_FOR_COLLISION: 3,
    StatusCode.HALT_FOR_COLLISION: 4,
    StatusCode.JOINT_BOUND: 5,
    StatusCode.DECELERATE_FOR_LEAVING_SINGULARITY: 6,
}

#: Status messages, as MoveIt's ``SERVO_STATUS_CODE_MAP``.
STATUS_MESSAGE: dict[StatusCode, str] = {
    StatusCode.INVALID: "Invalid",
    StatusCode.NO_WARNING: "No warnings",
    StatusCode.DECELERATE_FOR_APPROACHING_SINGULARITY: "Moving closer to a singularity, decelerating",
    StatusCode.HALT_FOR_SINGULARITY: "Very close to a singularity, emergency stop",
    StatusCode.DECELERATE_FOR_LEAVING_SINGULARITY: "Moving away from a singularity, decelerating",
    StatusCode.DECELERATE_FOR_COLLISION: "Close to a collision, decelerating",
    StatusCode.HALT_FOR_COLLISION: "Collision detected, emergency stop",
    StatusCode.JOINT_BOUND: "Close to a joint bound (position or velocity), halting",
}


class CommandType(enum.IntEnum):
    """``moveit_msgs/srv/ServoCommandType`` values (upstream ``CommandType``)."""

    JOINT_JOG = 0
    TWIST = 1
    POSE = 2


#: The statuses on which Servo halts the robot (an episode that sees one ends as a fault).
HALT_STATUS = frozenset({StatusCode.HALT_FOR_SINGULARITY, StatusCode.HALT_FOR_COLLISION, StatusCode.JOINT_BOUND})

#: The interface generations: ``jazzy`` (ServoStatus, switch_command_type) and ``humble``.
DISTROS = ("jazzy", "humble")

#: Wire number of each halt status -> its name, per interface generation
#: (Jazzy 2, 5, 6; Humble 2, 4, 5).
HALT_CODES: dict[str, dict[int, str]] = {
    "jazzy": {int(c): c.name for c in sorted(HALT_STATUS)},
    "humble": {HUMBLE_CODE[c]: c.name for c in sorted(HALT_STATUS)},
}

#: Services (relative to Servo's namespace) each generation offers.
SERVICES: dict[str, tuple[str, ...]] = {
    "jazzy": ("pause_servo", "switch_command_type"),
    "humble": ("start_servo", "stop_servo", "pause_servo", "unpause_servo"),
}

_FROM_HUMBLE = {v: k for k, v in HUMBLE_CODE.items()}


def status_to_wire(code: StatusCode, distro: str) -> int:
    """The number ``~/status`` carries for ``code`` on ``distro`` (``"jazzy"`` | ``"humble"``)."""
    return HUMBLE_CODE[code] if distro == "humble" else int(code)


def status_from_wire(value: int, distro: str) -> StatusCode | None:
    """The :class:`StatusCode` of a ``~/status`` number on ``distro``; None if unknown."""
    if distro == "humble":
        return _FROM_HUMBLE.get(int(value))
    try:
        return StatusCode(int(value))
    except ValueError:
        return None


def resolve_distro(requested: str, have_moveit_msgs: bool, env: Mapping[str, str] | None = None) -> str:
    """``"jazzy"`` or ``"humble"`` for ``servo.distro`` (``auto`` | ``jazzy`` | ``humble``).

    ``auto``: ``ROS_DISTRO=humble`` -> humble; otherwise jazzy when moveit_msgs with
    ``ServoStatus``/``ServoCommandType`` is importable (``have_moveit_msgs``), else humble:
    without those types the Jazzy interface can neither be enabled (switch_command_type)
    nor watched (ServoStatus), while Humble's needs only std_srvs/std_msgs. The client
    re-checks against the services the running Servo offers when it enables it
    (:meth:`rt2_ros.ros.servo_client.ServoClient.enable`). The simulation's stand-in
    and the rt2 node use this one rule, so with ``auto`` on both they speak the same
    generation.

    Args:
        requested: the ``servo.distro`` value.
        have_moveit_msgs: whether ``moveit_msgs.msg.ServoStatus`` and
            ``moveit_msgs.srv.ServoCommandType`` import (the ROS side checks).
        env: environment to read ``ROS_DISTRO`` from (default ``os.environ``).

    Raises:
        ValueError: ``requested`` is not auto, jazzy or humble.
    """
    if requested in DISTROS:
        return requested
    if requested != "auto":
        raise ValueError(f"servo.distro must be auto, jazzy or humble, got {requested!r}")
    ros_distro = (env if env is not None else os.environ).get("ROS_DISTRO", "").strip().lower()
    if ros_distro == "humble":
        return "humble"
    return "jazzy" if have_moveit_msgs else "humble"

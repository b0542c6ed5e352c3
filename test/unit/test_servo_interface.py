"""MoveIt Servo's interface data and the one distro rule shared by the node's client and the sim."""

import pytest

from rt2_ros.servo_interface import (
    HALT_CODES,
    HUMBLE_CODE,
    CommandType,
    StatusCode,
    resolve_distro,
    status_from_wire,
    status_to_wire,
)


def test_halt_codes_per_generation_match_upstream_numbering():
    # Jazzy datatypes.hpp: 2, 5, 6; Humble status_codes.h: 2, 4, 5.
    assert HALT_CODES["jazzy"] == {2: "HALT_FOR_SINGULARITY", 5: "HALT_FOR_COLLISION", 6: "JOINT_BOUND"}
    assert HALT_CODES["humble"] == {2: "HALT_FOR_SINGULARITY", 4: "HALT_FOR_COLLISION", 5: "JOINT_BOUND"}
    assert int(CommandType.TWIST) == 1


def test_status_round_trips_through_both_wire_numberings():
    for code in StatusCode:
        for distro in ("jazzy", "humble"):
            assert status_from_wire(status_to_wire(code, distro), distro) is code
    assert status_to_wire(StatusCode.JOINT_BOUND, "humble") == HUMBLE_CODE[StatusCode.JOINT_BOUND] == 5
    assert status_from_wire(42, "jazzy") is None and status_from_wire(42, "humble") is None


@pytest.mark.parametrize(
    "requested, have_moveit_msgs, ros_distro, expected",
    [
        ("jazzy", False, "humble", "jazzy"),  # an explicit choice always wins
        ("humble", True, "jazzy", "humble"),
        ("auto", True, "", "jazzy"),
        ("auto", False, "", "humble"),
        ("auto", True, "humble", "humble"),
        ("auto", True, "jazzy", "jazzy"),
        ("auto", False, "jazzy", "humble"),  # no Servo types: the Jazzy interface cannot be enabled
    ],
)
def test_one_distro_rule(requested, have_moveit_msgs, ros_distro, expected):
    assert resolve_distro(requested, have_moveit_msgs, env={"ROS_DISTRO": ros_distro}) == expected


def test_unknown_distro_is_an_error():
    with pytest.raises(ValueError, match="auto, jazzy or humble"):
        resolve_distro("iron", True, env={})

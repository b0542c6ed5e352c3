"""Instruction parsing and task success checks (rt2_ros.sim.tasks): pure functions."""

import copy

import pytest

from rt2_ros.sim.tasks import (
    LIFT_HEIGHT_M,
    PUSH_DISTANCE_M,
    REACH_TOLERANCE_M,
    check_task,
    parse_instruction,
)


def _gt(red=(0.5, 0.1, 0.02), tcp=(0.3, 0.0, 0.5), size=0.04):
    return {
        "table_z_m": 0.0,
        "tcp": {"position": list(tcp)},
        "blocks": {
            "red": {
                "position": list(red),
                "orientation_xyzw": [0, 0, 0, 1],
                "size_m": size,
                "initial_position": list(red),
            },
            "blue": {"position": [0.6, -0.1, 0.02], "orientation_xyzw": [0, 0, 0, 1], "size_m": size},
        },
    }


@pytest.mark.parametrize(
    "text, kind, color, direction",
    [
        ("pick up the red block", "pick", "red", None),
        ("Pick up the RED block.", "pick", "red", None),
        ("lift the blue cube", "pick", "blue", None),
        ("grasp the green block", "pick", "green", None),
        ("please pick the yellow block up", "pick", "yellow", None),
        ("push the blue block left", "push", "blue", "left"),
        ("push the red block to the right", "push", "red", "right"),
        ("slide the green block forward", "push", "green", "forward"),
        ("move to the green block", "reach", "green", None),
        ("reach for the red block", "reach", "red", None),
        ("touch the blue block", "reach", "blue", None),
        # paraphrases of the generalisation test (issue 12): colour words map to the block
        ("lift the crimson block", "pick", "red", None),
        ("grab the scarlet cube", "pick", "red", None),
        ("go to the navy cube", "reach", "blue", None),
    ],
)
def test_instructions_parse_into_tasks(text, kind, color, direction):
    t = parse_instruction(text)
    assert (t.kind, t.color, t.direction) == (kind, color, direction)


@pytest.mark.parametrize(
    "text, why",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("pick up the purple block", "colour"),
        ("push the red block sideways", "direction"),
        ("dance", "cannot parse"),
        ("pick up the red", "cannot parse"),
    ],
)
def test_bad_instructions_are_rejected_with_the_reason(text, why):
    with pytest.raises(ValueError, match=why):
        parse_instruction(text)


def test_push_directions_follow_rep103():
    assert parse_instruction("push the red block left").direction_vector.tolist() == [0, 1, 0]
    assert parse_instruction("push the red block right").direction_vector.tolist() == [0, -1, 0]
    assert parse_instruction("push the red block forward").direction_vector.tolist() == [1, 0, 0]
    assert parse_instruction("push the red block backward").direction_vector.tolist() == [-1, 0, 0]


def test_pick_succeeds_only_when_the_block_is_lifted_high_enough():
    task = parse_instruction("pick up the red block")
    assert not check_task(task, _gt()).success
    just_below = _gt(red=(0.5, 0.1, 0.02 + LIFT_HEIGHT_M - 0.002))
    assert not check_task(task, just_below).success
    lifted = _gt(red=(0.5, 0.1, 0.02 + LIFT_HEIGHT_M + 0.002))
    res = check_task(task, lifted)
    assert res.success and res.value == pytest.approx(LIFT_HEIGHT_M + 0.002)


def test_push_is_measured_along_the_direction_from_the_start():
    task = parse_instruction("push the red block left")
    start = _gt()
    moved_left = _gt(red=(0.5, 0.1 + PUSH_DISTANCE_M + 0.01, 0.02))
    moved_right = _gt(red=(0.5, 0.1 - PUSH_DISTANCE_M - 0.01, 0.02))
    moved_forward = _gt(red=(0.5 + 0.2, 0.1, 0.02))
    assert check_task(task, moved_left, start).success
    assert not check_task(task, moved_right, start).success
    assert not check_task(task, moved_forward, start).success
    lifted_left = _gt(red=(0.5, 0.2, 0.1))  # carried, not pushed
    assert not check_task(task, lifted_left, start).success


def test_push_without_start_uses_the_initial_position():
    task = parse_instruction("push the red block left")
    gt = _gt(red=(0.5, 0.1 + PUSH_DISTANCE_M + 0.01, 0.02))
    gt["blocks"]["red"]["initial_position"] = [0.5, 0.1, 0.02]
    assert check_task(task, gt).success


def test_reach_needs_the_tcp_near_the_top_face():
    task = parse_instruction("move to the red block")
    top = (0.5, 0.1, 0.04)
    assert check_task(task, _gt(tcp=(top[0], top[1], top[2] + REACH_TOLERANCE_M - 0.002))).success
    assert not check_task(task, _gt(tcp=(top[0], top[1], top[2] + REACH_TOLERANCE_M + 0.002))).success
    assert not check_task(task, _gt(tcp=(top[0] + 0.03, top[1], top[2]))).success


def test_a_missing_block_is_an_error():
    gt = _gt()
    del gt["blocks"]["red"]
    with pytest.raises(ValueError, match="no red block"):
        check_task(parse_instruction("pick up the red block"), copy.deepcopy(gt))


def test_the_simulation_core_imports_no_ros_and_no_torch():
    """The ROS-free sim modules (house rule: rclpy only in *_node.py shells, torch only in
    the transformers backend) checked in a fresh interpreter."""
    import subprocess
    import sys

    mods = [
        "scene",
        "servo_standin",
        "tasks",
        "expert",
        "world",
        "inprocess",
        "report",
        "recording",
        "settings",
        "demo",
    ]
    code = (
        "import sys\n"
        + "".join(f"import rt2_ros.sim.{m}\n" for m in mods)
        + ("print(','.join(m for m in ('rclpy', 'torch', 'transformers', 'pybullet') if m in sys.modules))\n")
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "", f"imported: {p.stdout.strip()}"

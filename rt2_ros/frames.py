"""Which rotation takes command-frame vectors into the planning frame, without TF. ROS-free.

The safety envelope checks the workspace box in ``frames.planning_frame`` while the
twists are in ``frames.command_frame``. Without TF the node knows that rotation in
two cases only: the frames are the same (identity), or the command frame is the
end-effector frame (the rotation is the end-effector pose's orientation).
"""

from __future__ import annotations

import numpy as np

from rt2_ros.config import FramesConfig

__all__ = ["rotation_planning_from_command"]


def rotation_planning_from_command(
    frames: FramesConfig, ee_rotation: np.ndarray | None
) -> tuple[bool, np.ndarray | None]:
    """``(known, R)`` for the twists' frame.

    Args:
        frames: the ``frames`` section.
        ee_rotation: ``float64 (3, 3)`` orientation of ``frames.ee_frame`` in the planning
            frame (from the end-effector pose), or None when unknown.

    Returns:
        ``(True, None)``: command frame = planning frame (identity);
        ``(True, ee_rotation)``: command frame = end-effector frame;
        ``(False, None)``: the rotation needs TF (the workspace box cannot be applied).
    """
    if frames.command_frame == frames.planning_frame:
        return True, None
    if frames.command_frame == frames.ee_frame and ee_rotation is not None:
        return True, ee_rotation
    return False, None

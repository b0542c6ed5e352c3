"""Scene + Servo stand-in + gripper + task bookkeeping, stepped by the caller. ROS-free.

:class:`SimWorld` is what both the rclpy sim node (real time, its own thread) and the
in-process loop used by tests (:mod:`rt2_ros.sim.inprocess`) drive. One call of
:meth:`SimWorld.servo_tick` is one MoveIt Servo loop iteration followed by the
physics for one Servo period (``round(publish_period * physics_hz)`` steps).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from rt2_ros.servo_interface import StatusCode
from rt2_ros.sim.scene import Scene, SceneConfig
from rt2_ros.sim.servo_standin import ServoOutput, ServoParams, ServoStandin
from rt2_ros.sim.tasks import Task, TaskCheck, check_task, parse_instruction

__all__ = ["SimWorld", "TaskState"]

log = logging.getLogger("rt2_ros.sim.world")


@dataclasses.dataclass
class TaskState:
    """The task of the current instruction.

    Attributes:
        instruction: the raw instruction text.
        task: the parsed task, or None when the instruction could not be parsed.
        error: why it could not be parsed.
        start_gt: ground truth when the instruction arrived (reference for pushes).
        check: the latest success check, or None.
    """

    instruction: str
    task: Task | None
    error: str | None
    start_gt: dict[str, Any] | None
    check: TaskCheck | None = None

    def to_dict(self) -> dict[str, Any]:
        """The task and its check as a JSON-ready dict (``/sim/ground_truth``)."""
        return {
            "instruction": self.instruction,
            "kind": None if self.task is None else self.task.kind,
            "color": None if self.task is None else self.task.color,
            "direction": None if self.task is None else self.task.direction,
            "error": self.error,
            "success": bool(self.check.success) if self.check else False,
            "detail": self.check.detail if self.check else (self.error or ""),
        }


class SimWorld:
    """The simulated robot behind MoveIt Servo's interface.

    Args:
        scene_cfg: scene parameters.
        servo_params: Servo parameters (``publish_period_s`` sets the tick length).
        seed: seed of the first layout; :meth:`reset` without a seed uses the next one.
        require_command_type: see :class:`~rt2_ros.sim.servo_standin.ServoStandin`.
    """

    def __init__(
        self,
        scene_cfg: SceneConfig | None = None,
        servo_params: ServoParams | None = None,
        seed: int = 0,
        require_command_type: bool = True,
    ):
        self.scene = Scene(scene_cfg, seed=seed)
        self.servo = ServoStandin(self.scene, servo_params, require_command_type=require_command_type)
        self.substeps = max(1, int(round(self.servo.params.publish_period_s / self.scene.dt)))
        #: Length of one tick (one Servo period), s.
        self.tick_s = self.substeps * self.scene.dt
        self.seed = int(seed)
        self.task: TaskState | None = None
        self.last_output: ServoOutput | None = None
        self.servo.reset()

    # -- commands ------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> dict[str, Any]:
        """New randomised layout (``seed``, default: previous seed + 1), arm home, gripper
        open, Servo's held command forgotten, task cleared. Returns the layout as a dict."""
        self.seed = self.seed + 1 if seed is None else int(seed)
        layout = self.scene.reset(self.seed)
        self.servo.reset()
        self.task = None
        return {
            "seed": layout.seed,
            "blocks": {c: {"position": list(p), "yaw_rad": layout.yaws[c]} for c, p in layout.positions.items()},
        }

    def set_gripper(self, command: float, force_n: float | None = None) -> None:
        """Gripper command in [0, 1], 1 = open (``/rt2/gripper_command``), with an optional
        finger force limit ``force_n`` [N] (a GripperCommand goal's ``max_effort``).

        Raises:
            ValueError: NaN/inf or not a number (the gripper holds its last command).
        """
        self.scene.set_gripper(command, force_n)

    def set_instruction(self, text: str) -> TaskState:
        """Start tracking the task named by ``text`` (success is checked every tick)."""
        try:
            task, err = parse_instruction(text), None
        except ValueError as e:
            task, err = None, str(e)
        self.task = TaskState(text, task, err, self.scene.ground_truth())
        self._check()
        return self.task

    # -- stepping ---------------------------------------------------------------------------------
    def servo_tick(self, now_s: float, elapsed_s: float | None = None) -> ServoOutput | None:
        """One Servo loop iteration at ``now_s`` (node clock, s), then physics.

        Args:
            now_s: the time of this iteration (the staleness rule uses it).
            elapsed_s: wall time to simulate (s); default one Servo period. A real-time
                caller passes the time since its previous call, so the arm moves at the
                commanded speed in wall-clock time even when a call comes late (the
                controller keeps executing the last command meanwhile). Capped at 0.2 s.

        Returns:
            The Servo output (None while paused).
        """
        out = self.servo.update(now_s)
        n = self.substeps if elapsed_s is None else int(round(min(max(elapsed_s, 0.0), 0.2) / self.scene.dt))
        n = max(n, 1)
        if out is not None and out.positions is not None:
            duration = n * self.scene.dt
            # Servo's target is for one publish period; the controller keeps moving at the
            # commanded velocity for the whole interval it is given.
            extra = duration - self.servo.params.publish_period_s
            self.scene.set_arm_targets(out.positions + out.velocities * extra, out.velocities, duration)
        self.last_output = out
        self.scene.step(n)
        return out

    def _check(self, gt: dict[str, Any] | None = None) -> None:
        if self.task is None or self.task.task is None:
            return
        try:
            self.task.check = check_task(self.task.task, gt or self.scene.ground_truth(), self.task.start_gt)
        except ValueError as e:
            self.task.error = str(e)
            self.task.check = None

    def ground_truth(self) -> dict[str, Any]:
        """:meth:`Scene.ground_truth` plus ``"task"`` (:meth:`TaskState.to_dict` or None)
        and ``"servo"`` ({"status": Jazzy code, "message"})."""
        gt = self.scene.ground_truth()
        self._check(gt)
        gt["task"] = None if self.task is None else self.task.to_dict()
        st = self.servo.status
        gt["servo"] = {"status": int(st), "message": self.last_output.message if self.last_output else ""}
        return gt

    @property
    def status(self) -> StatusCode:
        """The Servo stand-in's status code."""
        return self.servo.status

    def close(self) -> None:
        """Disconnect the physics server."""
        self.scene.close()

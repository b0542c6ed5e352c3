"""The closed loop without ROS and in simulated time: Controller + SimWorld in one thread.

What the rt2 node and the sim node do over DDS, done here by direct calls, with the
simulation clock as the only clock (so it runs as fast as the CPU allows and is
deterministic for a deterministic policy). Used by fast tests (test_sim_expert.py) and
benchmarks/bench_sim.py; the demo and the end-to-end test go through DDS.

Per Servo tick (``world.tick_s``): camera frame when due -> ``Controller.on_image``;
end-effector pose -> ``Controller.on_ee_pose``; control step when due ->
``Controller.step`` (gripper command applied); ``Controller.servo_command`` ->
``ServoStandin.on_twist`` stamped now -> one Servo iteration and physics. Joint-space
policies (``Controller.joint_mode``): the joint state goes to ``Controller.on_joint_state``
each tick, and ``Controller.joint_command`` -> ``ServoStandin.on_joint_jog`` (Servo is
switched to JOINT_JOG) instead of the twist.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

from scipy.spatial.transform import Rotation

from rt2_ros.controller import Controller
from rt2_ros.episode import EpisodeState
from rt2_ros.servo_interface import CommandType
from rt2_ros.sim.report import EpisodeRecord
from rt2_ros.sim.world import SimWorld

__all__ = ["run_episode"]

#: Tolerance of the "is it due" comparisons, s: the Servo tick (0.034 s) meets the camera and
#: control grids exactly now and then (e.g. 50 ticks = 17 camera periods), and float rounding
#: of the absolute simulation time would otherwise decide, so the same layout ran differently
#: depending on how long the world had run before it.
_EPS_S = 1e-6


def run_episode(
    world: SimWorld,
    controller: Controller,
    instruction: str,
    seed: int | None = None,
    camera_period_s: float = 0.1,
    keep_frames: bool = True,
    on_step: Callable[[Any], None] | None = None,
    settle_s: float = 0.3,
    camera_phase_s: float = 0.0,
    camera_delay_s: float = 0.0,
) -> EpisodeRecord:
    """Reset the world, run one episode to its end, return the record.

    Args:
        world: the simulation (its Servo is started here if needed).
        controller: the ROS-free control loop with its policy.
        instruction: the task.
        seed: layout seed (default: the world's next one).
        camera_period_s: time between camera frames, s.
        keep_frames: keep every frame in the record (else first and last only).
        on_step: called with each :class:`~rt2_ros.controller.StepOutcome`.
        settle_s: simulated time after the end, so the success check sees the result.
        camera_phase_s: the first camera frame after the start comes this long after the first
            control step, s (over DDS the camera and the control timer run unsynchronised).
        camera_delay_s: a frame rendered at t reaches the controller at t + this, stamped t, s
            (over DDS: rendering, transport and the callback, about 30-80 ms in the sim).
            With the defaults (0, 0) every control step sees a frame rendered at that instant.
    """
    cfg = controller.cfg
    controller.set_now_fn(lambda: world.scene.time_s)  # simulated time: the inference takes none
    layout = world.reset(seed)
    if world.servo.command_type is None:
        world.servo.start()
    joint_mode = controller.joint_mode
    world.servo.set_command_type(CommandType.JOINT_JOG if joint_mode else CommandType.TWIST)
    names = list(cfg.servo.joint_names)
    wall0 = time.perf_counter()
    t = world.scene.time_s
    rec = EpisodeRecord(instruction=instruction, seed=layout["seed"], backend=cfg.policy.backend)
    rec.targets = {c: list(b["position"]) for c, b in layout["blocks"].items()}
    state = world.set_instruction(instruction)
    rec.target_color = state.task.color if state.task else None
    # first frame before the episode starts, so the policy has an image
    img = world.scene.render()
    controller.on_image(img, t)
    rec.frames.append(img)
    controller.on_instruction(instruction, t)
    next_cam, next_step = t + camera_period_s + camera_phase_s, t
    pending: deque = deque()  # (delivery time, image, capture stamp) with camera_delay_s
    start = t
    frame_id = cfg.frames.command_frame
    while True:
        t = world.scene.time_s
        if t >= next_cam - _EPS_S:
            img = world.scene.render()
            pending.append((t + camera_delay_s, img, t))
            next_cam += camera_period_s
            if keep_frames:
                rec.frames.append(img)
            else:
                rec.frames[1:] = [img]
        while pending and pending[0][0] <= t + _EPS_S:
            _, frame, stamp = pending.popleft()
            controller.on_image(frame, stamp)
        pos, quat = world.scene.ee_pose()
        if joint_mode or getattr(controller.policy, "uses_state", False):  # the policy reads the robot state
            controller.on_ee_pose(pos, t, orientation=Rotation.from_quat(quat).as_matrix())
            controller.on_joint_state(names, world.scene.joint_state()[0], t, t)
        else:
            controller.on_ee_pose(pos, t)
        rec.tcp_path.append(world.scene.tcp_position().tolist())
        due = controller.inference_due(t) if controller.chunked else t >= next_step - _EPS_S
        if due:
            out = controller.step(t)
            next_step += cfg.control.period_s
            if out is not None:
                if out.result is not None:
                    rec.latencies_ms.append(out.latency_ms)
                if out.rejected and out.rejected != "episode ended":
                    rec.rejected += 1
                if out.gripper is not None:
                    world.set_gripper(out.gripper)
                if on_step is not None:
                    on_step(out)
        cmd = controller.servo_command(t)
        for g in controller.drain_gripper_commands(t) if controller.chunked else ():  # chunks: per executed action
            world.set_gripper(g)
        _command(world, controller, cmd, frame_id, names, t)
        world.servo_tick(t)
        if controller.state is EpisodeState.FINISHED:
            break
        if t - start > cfg.control.max_duration_s + 5.0:  # belt and braces; the episode's time limit ends it first
            controller.cancel(t)
            break
    for _ in range(int(settle_s / world.tick_s)):
        cmd = controller.servo_command(world.scene.time_s)
        _command(world, controller, cmd, frame_id, names, world.scene.time_s)
        world.servo_tick(world.scene.time_s)
    rec.frames.append(world.scene.render())
    ep = controller.episode
    rec.steps, rec.reason = ep.step, (ep.reason.value if ep.reason else "")
    gt = world.ground_truth()
    task = gt.get("task") or {}
    rec.success, rec.detail = bool(task.get("success")), str(task.get("detail", ""))
    rec.final_blocks = {c: b["position"] for c, b in gt["blocks"].items()}
    rec.wall_s = time.perf_counter() - wall0
    return rec


def _command(world: SimWorld, controller: Controller, cmd, frame_id: str, names: list[str], t: float) -> None:
    """This tick's command to the Servo stand-in: the twist, or (joint mode) the JointJog."""
    if controller.joint_mode:
        jc = controller.joint_command(t)
        world.servo.on_joint_jog(list(jc.names), jc.velocities, (), t)
    else:
        world.servo.on_twist(frame_id, cmd.twist.linear, cmd.twist.angular, t)

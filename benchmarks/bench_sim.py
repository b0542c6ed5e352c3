#!/usr/bin/env python3
"""Costs of the closed-loop simulation (a script, not a test).

Times, on this machine, without ROS:

* ``render``: one 224 x 224 camera frame (PyBullet TinyRenderer, CPU);
* ``servo_tick``: one MoveIt Servo stand-in iteration (Jacobian pseudo-inverse,
  singularity and joint-limit checks) plus the physics for one Servo period
  (8 steps of 1/240 s);
* ``expert``: one scripted-expert inference (ground truth -> RT-2 action text -> decode);
* ``episode``: whole in-process episodes (Controller + expert + Servo stand-in +
  physics + a frame every ``--camera-period`` s) in simulated time: wall time per
  simulated second, i.e. how much faster than real time the loop could run;
* with ``--vla-model DIR`` (``rt2-ros make-test-model DIR``): in-process episodes of the
  random-weight test model, with the demo's settings, counting the episodes in which the
  Servo stand-in reported a halt (HALT_FOR_SINGULARITY, JOINT_BOUND), with and without
  the demo's 0.1 rad/s angular cap.

The real demo runs in real time over DDS (the Servo staleness rule compares wall
clock stamps); its numbers are in the demo's report (``rt2-ros demo``).

Examples::

    python benchmarks/bench_sim.py
    python benchmarks/bench_sim.py --episodes 6 --json /tmp/bench_sim.json

Report the numbers with the conditions (CPU, cores, load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _stats(xs_ms: list[float]) -> dict:
    xs = sorted(xs_ms)
    return {
        "median_ms": round(statistics.median(xs), 3),
        "p90_ms": round(xs[int(0.9 * (len(xs) - 1))], 3),
        "n": len(xs),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--renders", type=int, default=30)
    p.add_argument("--ticks", type=int, default=300)
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--camera-period", type=float, default=0.1, help="s between frames in the episodes")
    p.add_argument("--vla-model", default=None, help="test model directory: also run VLA episodes")
    p.add_argument("--vla-episodes", type=int, default=15)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)

    import numpy as np

    from rt2_ros.controller import Controller
    from rt2_ros.factory import make_policy
    from rt2_ros.sim.inprocess import run_episode
    from rt2_ros.sim.settings import load_sim_settings
    from rt2_ros.sim.world import SimWorld

    world = SimWorld(seed=1)
    world.servo.start()
    res: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "loadavg_1min": os.getloadavg()[0],
            "python": platform.python_version(),
        }
    }

    world.scene.render()
    t = []
    for _ in range(args.renders):
        t0 = time.perf_counter()
        world.scene.render()
        t.append((time.perf_counter() - t0) * 1e3)
    res["render_224"] = _stats(t)

    t, now = [], world.scene.time_s
    for i in range(args.ticks):
        v = 0.05 * np.array([np.sin(i / 20), np.cos(i / 20), 0.0])
        world.servo.on_twist("panda_link0", v, (0, 0, 0), now)
        t0 = time.perf_counter()
        world.servo_tick(now)
        t.append((time.perf_counter() - t0) * 1e3)
        now += world.tick_s
    res["servo_tick"] = {**_stats(t), "tick_s": world.tick_s}

    cfg = load_sim_settings().rt2_config()
    policy = make_policy(cfg, ground_truth=world.ground_truth)
    world.reset(2)
    world.set_instruction("pick up the red block")
    img = world.scene.render()
    t = []
    for _ in range(200):
        t0 = time.perf_counter()
        policy.infer(img, "pick up the red block")
        t.append((time.perf_counter() - t0) * 1e3)
    res["expert_infer"] = _stats(t)

    controller = Controller(cfg, policy)
    instructions = ["pick up the red block", "push the blue block left", "move to the green block"]
    eps = []
    for k in range(args.episodes):
        ins = instructions[k % len(instructions)]
        rec = run_episode(world, controller, ins, seed=10 + k, keep_frames=False, camera_period_s=args.camera_period)
        sim_s = rec.steps * cfg.control.period_s
        eps.append(
            {
                "instruction": ins,
                "steps": rec.steps,
                "reason": rec.reason,
                "success": rec.success,
                "wall_s": round(rec.wall_s, 2),
                "wall_per_sim_s": round(rec.wall_s / max(sim_s, 1e-9), 3),
            }
        )
    res["episodes_inprocess"] = eps
    if args.vla_model:
        res["vla_halts"] = {cap: _vla_halts(world, args.vla_model, args.vla_episodes, cap) for cap in ("0.1", "none")}
    world.close()
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def _vla_halts(world, model: str, n: int, cap: str) -> dict:
    """Episodes (of ``n``) of the test model in which Servo reported a halt code."""
    from rt2_ros.controller import Controller
    from rt2_ros.factory import make_policy
    from rt2_ros.servo_interface import StatusCode
    from rt2_ros.sim.inprocess import run_episode
    from rt2_ros.sim.settings import load_sim_settings
    from rt2_ros.testing.make_model import policy_overrides

    extra = {
        **policy_overrides(model),
        "control.max_steps": 20,
        "control.terminate_debounce": 21,
        "policy.num_threads": 1,
    }
    if cap != "none":
        extra.update({"safety.max_angular_speed_axis_radps": float(cap), "safety.max_angular_speed_radps": float(cap)})
    cfg = load_sim_settings().rt2_config(extra=extra)
    controller = Controller(cfg, make_policy(cfg))
    halted = 0
    orig = world.servo_tick
    for k in range(n):
        seen = set()

        def tick(now, elapsed=None):
            out = orig(now, elapsed)
            if out is not None:
                seen.add(out.status)
            return out

        world.servo_tick = tick
        try:
            run_episode(
                world, controller, "pick up the red block", seed=100 + k, keep_frames=False, camera_period_s=0.2
            )
        finally:
            world.servo_tick = orig
        halted += bool(seen & {StatusCode.HALT_FOR_SINGULARITY, StatusCode.JOINT_BOUND})
    return {"episodes": n, "with_halt": halted}


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Success of a trained VLA in the simulated loop, per task family (a script, not a test).

Two ways to run the episodes:

* ``--mode stack`` (the evaluation the README quotes): through the whole stack, as
  ``make demo`` runs it - the simulator node publishes the camera over DDS, the
  ``rt2_node`` runs the model with the local backend (a ``rt2-ros serve`` child), the
  MoveIt Servo stand-in moves the arm; real time. One ``rt2-ros demo --policies vla`` run
  per family.
* ``--mode inprocess``: the same Controller, model, Servo stand-in and physics in one
  process in simulated time (:func:`rt2_ros.sim.inprocess.run_episode`), no DDS: faster,
  for learning curves and ablations.

Layout seeds are ``--first-seed + k`` (the training data of ``make train`` uses seeds
from 100000 up, so the default 0.. are held out). The named block cycles through
``--colors``; ``--template`` sets the instruction wording per family (paraphrases).

Success rates come with a 95 % Wilson score interval. Writes ``--out``/``eval.json`` and,
per family, the demo's pictures (stack mode: ``report.md``, ``contact_sheet.png``,
``trajectories.png``).

Examples::

    python benchmarks/eval_vla.py --model models/rt2_sim_mini --episodes 50 --out out/eval
    python benchmarks/eval_vla.py --model out/train/nocot --mode inprocess --families reach \\
        --colors yellow --scene-colors yellow green blue --episodes 30 --out out/eval_yellow
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rt2_ros.sim.record_inprocess import FAMILY_TEMPLATES as TEMPLATES  # noqa: E402 - the training wording
from rt2_ros.sim.record_inprocess import PUSH_DIRECTIONS as DIRECTIONS  # noqa: E402


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate k/n (Wilson 1927)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def instructions_for(family: str, n: int, colors: list[str], template: str | None) -> list[str]:
    t = template or TEMPLATES[family]
    return [
        t.format(color=colors[k % len(colors)], direction=DIRECTIONS[(k // len(colors)) % len(DIRECTIONS)])
        for k in range(n)
    ]


def summarise(rows: list[dict]) -> dict:
    n = len(rows)
    k = sum(r["success"] for r in rows)
    by_term = sum(r["success"] and r["reason"] == "terminate" for r in rows)
    lat = sorted(x for r in rows for x in r.get("latencies_ms", []))
    lo, hi = wilson(k, n)
    out = {
        "episodes": n,
        "successes": k,
        "success_rate": round(k / n, 3) if n else None,
        "ci95": [round(lo, 3), round(hi, 3)],
        "successes_ended_by_terminate": by_term,
        "reasons": {},
    }
    for r in rows:
        out["reasons"][r["reason"] or "error"] = out["reasons"].get(r["reason"] or "error", 0) + 1
    if lat:
        out["latency_ms"] = {
            "p50": round(lat[len(lat) // 2], 1),
            "p99": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
            "n": len(lat),
        }
    return out


def run_stack(args, family: str, instructions: list[str], out: Path) -> list[dict]:
    from rt2_ros.sim import demo

    argv = [
        "--policies",
        "vla",
        "--model",
        args.model,
        "--episodes",
        str(len(instructions)),
        "--vla-max-steps",
        str(args.max_steps),
        "--seed",
        str(args.first_seed),
        "--out",
        str(out),
        "--no-progress",
        "--instructions",
        *instructions,
    ]
    demo.main(argv)
    rows = json.loads((out / "report.json").read_text())["episodes"]
    return rows


def run_inprocess(args, family: str, instructions: list[str], out: Path) -> list[dict]:
    from rt2_ros.config import with_model_settings
    from rt2_ros.controller import Controller
    from rt2_ros.factory import make_policy
    from rt2_ros.sim.inprocess import run_episode
    from rt2_ros.sim.record_frames import camera_timing
    from rt2_ros.sim.report import write_reports
    from rt2_ros.sim.scene import SceneConfig
    from rt2_ros.sim.settings import load_sim_settings
    from rt2_ros.sim.world import SimWorld

    cfg = load_sim_settings().rt2_config(
        extra={
            "policy.backend": "local",
            "policy.model_path": str(Path(args.model).resolve()),
            "policy.process": "in_process",
            "policy.num_threads": args.threads,
            "control.max_steps": args.max_steps,
        }
    )
    cfg, _ = with_model_settings(cfg)
    policy = make_policy(cfg)
    world = SimWorld(SceneConfig(colors=tuple(args.scene_colors)), seed=args.first_seed)
    rng = random.Random(args.first_seed)
    recs, rows = [], []
    try:
        for k, ins in enumerate(instructions):
            ctl = Controller(cfg, policy)
            seed = args.seeds[k] if args.seeds else args.first_seed + k
            timing = camera_timing(rng) if args.camera_jitter else {}
            rec = run_episode(world, ctl, ins, seed=seed, keep_frames=args.pictures, **timing)
            rec.backend = "vla"
            recs.append(rec)
            rows.append(rec.summary())
            print(
                f"  {family} #{k + 1}: {ins!r} seed {rec.seed}: {rec.reason} after {rec.steps} steps, "
                f"{'success' if rec.success else 'no success'} ({rec.detail})",
                flush=True,
            )
    finally:
        world.close()
        policy.close()
    if args.pictures:  # the demo's report: report.md/json, contact_sheet.png, trajectories.png
        write_reports(recs, out, {"mode": "inprocess", "model": args.model})
    return rows


def run_expert(args, family: str, instructions: list[str]) -> list[dict]:
    """The scripted expert on the same layouts and instructions, in process (simulated time;
    the same physics and Servo stand-in as the stack), for the comparison the README quotes."""
    from rt2_ros.controller import Controller
    from rt2_ros.sim.expert import ScriptedExpertPolicy
    from rt2_ros.sim.inprocess import run_episode
    from rt2_ros.sim.scene import SceneConfig
    from rt2_ros.sim.settings import load_sim_settings
    from rt2_ros.sim.world import SimWorld

    cfg = load_sim_settings().rt2_config()
    world = SimWorld(SceneConfig(colors=tuple(args.scene_colors)), seed=args.first_seed)
    rows = []
    try:
        for k, ins in enumerate(instructions):
            seed = args.seeds[k] if args.seeds else args.first_seed + k
            pol = ScriptedExpertPolicy.from_config(cfg, ground_truth=world.ground_truth)
            rows.append(run_episode(world, Controller(cfg, pol), ins, seed=seed, keep_frames=False).summary())
    finally:
        world.close()
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="trained model directory (rt2-ros train output)")
    p.add_argument("--mode", choices=["stack", "inprocess"], default="stack")
    p.add_argument("--families", nargs="+", default=["reach", "push", "pick"], choices=sorted(TEMPLATES))
    p.add_argument("--episodes", type=int, default=50, help="episodes (held-out layouts) per family")
    p.add_argument("--first-seed", type=int, default=0, help="layout seed of the first episode")
    p.add_argument("--max-steps", type=int, default=40, help="step limit per episode")
    p.add_argument("--colors", nargs="+", default=["red", "green", "blue"], help="named block colours, cycled")
    p.add_argument("--scene-colors", nargs="+", default=["red", "green", "blue"], help="inprocess: scene blocks")
    p.add_argument("--template", default=None, help="instruction template with {color} (and {direction})")
    p.add_argument("--threads", type=int, default=1, help="inprocess: torch threads")
    p.add_argument(
        "--camera-jitter",
        action="store_true",
        help="inprocess: per-episode camera phase and delay as over DDS (rt2_ros.sim.record_frames.camera_timing)",
    )
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="inprocess: these layout seeds instead")
    p.add_argument("--pictures", action="store_true", help="inprocess: the demo's report and pictures per family")
    p.add_argument("--expert", action="store_true", help="also the scripted expert on the same layouts (in process)")
    p.add_argument("--out", default="out/eval", help="output directory")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = {
        "model": args.model,
        "mode": args.mode,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "load_before": os.getloadavg(),
        "families": {},
    }
    t0 = time.monotonic()
    for family in args.families:
        n = len(args.seeds) if args.seeds else args.episodes
        ins = instructions_for(family, n, args.colors, args.template)
        run = run_stack if args.mode == "stack" else run_inprocess
        rows = run(args, family, ins, out / family)
        result["families"][family] = {**summarise(rows), "rows": rows}
        s = result["families"][family]
        if args.expert:
            ex = summarise(run_expert(args, family, ins))
            s["expert"] = {k: ex[k] for k in ("episodes", "successes", "success_rate", "ci95")}
            print(f"{family}: scripted expert on the same layouts {ex['successes']}/{ex['episodes']}", flush=True)
        print(
            f"{family}: {s['successes']}/{s['episodes']} = {s['success_rate']} (95% CI {s['ci95']}), "
            f"{s['successes_ended_by_terminate']} of the successes by terminate; {s['reasons']}",
            flush=True,
        )
    result["load_after"] = os.getloadavg()
    result["wall_s"] = round(time.monotonic() - t0, 1)
    (out / "eval.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({f: {k: v for k, v in s.items() if k != "rows"} for f, s in result["families"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

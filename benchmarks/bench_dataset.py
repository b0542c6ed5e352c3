#!/usr/bin/env python3
"""Speed of ``rt2-ros dataset build`` (a script, not a test): control steps written per second.

Records ``--episodes`` scripted-expert episodes of the simulator to MCAP without DDS
(:mod:`rt2_ros.sim.record_inprocess`: 224 x 224 camera at 10 Hz, end-effector pose,
gripper, the node's ``/rt2/action`` and ``/rt2/episode``, ground truth), then builds the
LeRobot dataset from them ``--repeats`` times and reports frames (control steps) per
second of the whole build (read + decode + PNG encode + parquet + statistics), the
input MCAP size and the dataset size per frame.

Examples::

    python benchmarks/bench_dataset.py
    python benchmarks/bench_dataset.py --episodes 8 --repeats 3 --json /tmp/bench_dataset.json

Report the numbers with the conditions (CPU, cores, load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

INSTRUCTIONS = ["pick up the red block", "push the blue block left", "move to the green block", "lift the blue block"]


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=6, help="expert episodes to record (default 6)")
    p.add_argument("--repeats", type=int, default=3, help="builds to time (default 3)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)

    from rt2_ros.sim.record_inprocess import record_expert_episodes
    from rt2_ros.sim.settings import load_sim_settings
    from rt2_ros.training.dataset import build_dataset

    cfg = load_sim_settings().rt2_config()
    with tempfile.TemporaryDirectory(prefix="bench_dataset_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        ins = [INSTRUCTIONS[k % len(INSTRUCTIONS)] for k in range(args.episodes)]
        bags = record_expert_episodes(tmp / "mcap", ins, list(range(500, 500 + args.episodes)), cfg)
        record_s = time.perf_counter() - t0
        times, frames = [], 0
        for r in range(args.repeats):
            t = time.perf_counter()
            rep = build_dataset([tmp / "mcap"], tmp / "ds", cfg, overwrite=True)
            times.append(time.perf_counter() - t)
            frames = rep.frames
        med = statistics.median(times)
        res = {
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "episodes": args.episodes,
            "frames": frames,
            "record_s": round(record_s, 2),
            "build_s_median": round(med, 3),
            "frames_per_s": round(frames / med, 1),
            "mcap_kb_per_frame": round(sum(b.stat().st_size for b in bags) / 1024 / frames, 1),
            "dataset_kb_per_frame": round(_size(tmp / "ds") / 1024 / frames, 1),
            "problems": len(rep.problems),
        }
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Speed of ``rt2-ros train`` (a script, not a test): training samples per second.

Builds a dataset from synthetic recordings (224 x 224 frames, ``--episodes`` episodes of
the RT-2 action format), makes the offline test models (``tiny`` ~0.3 M and ``small``
~60 M parameters, PaliGemma architecture, random init) and runs the real ``train()``
(Hugging Face Trainer, full fine-tuning, fp32 unless ``--bf16``) for ``--steps`` steps
per model, reporting the Trainer's ``train_samples_per_second`` (forward + backward +
optimizer + data loading and processing; first step included) and seconds per step.
Runs on CUDA when available (``--cpu`` forces the CPU).

Examples::

    python benchmarks/bench_train.py                       # tiny and small, CPU here
    python benchmarks/bench_train.py --sizes tiny --steps 50 --threads 1
    python benchmarks/bench_train.py --sizes small --bf16 --batch-size 16   # on a GPU

Report the numbers with the conditions (CPU, cores, load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test"))


def _dataset(tmp: Path, episodes: int) -> Path:
    import bag_fixtures
    import numpy as np
    from bag_fixtures import BagWriter, synth_episode  # the tests' MCAP writer

    from rt2_ros.config import load_config
    from rt2_ros.training.dataset import build_dataset

    bag_fixtures.IMAGE_HW = (224, 224)
    rng = np.random.default_rng(0)
    orig = bag_fixtures.frame_image

    def frame(k: int):
        img = orig(k)
        img[8:, :, 2] = rng.integers(0, 255, img[8:, :, 2].shape, dtype=np.uint8)
        return img

    bag_fixtures.frame_image = frame
    with BagWriter(tmp / "bench.mcap") as w:
        for k in range(episodes):
            synth_episode(w, 10.0 * k, 4.0, ["pick up the red block", "push the blue block left"][k % 2])
    build_dataset([tmp / "bench.mcap"], tmp / "ds", load_config())
    return tmp / "ds"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="tiny,small", help="comma-separated test model sizes (default tiny,small)")
    p.add_argument("--steps", type=int, default=None, help="steps per model (default: tiny 40, small 6)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import torch

    from rt2_ros.testing.make_model import make_test_model
    from rt2_ros.training.train import TrainOptions, train

    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        tmp = Path(tmp)
        ds = _dataset(tmp, args.episodes)
        for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
            base = make_test_model(tmp / f"base_{size}", size)
            steps = args.steps or (40 if size == "tiny" else 6)
            load0 = os.getloadavg()[0]
            t = time.perf_counter()
            m = train(
                TrainOptions(
                    dataset=str(ds),
                    base=str(base),
                    out=str(tmp / f"out_{size}"),
                    max_steps=steps,
                    batch_size=args.batch_size,
                    eval_episodes="0",
                    save_steps=10**6,
                    logging_steps=max(1, steps // 4),
                    report_to="none",
                    progress=False,
                    bf16=args.bf16,
                    cpu=args.cpu,
                    lr=1e-3,
                )
            )
            wall = time.perf_counter() - t
            results.append(
                {
                    "size": size,
                    "device": "cuda" if (torch.cuda.is_available() and not args.cpu) else "cpu",
                    "dtype": "bf16" if args.bf16 else "fp32",
                    "torch_threads": torch.get_num_threads(),
                    "batch_size": args.batch_size,
                    "steps": m["global_step"],
                    "samples_per_s": round(m["train_samples_per_second"], 2),
                    "s_per_step": round(m["train_runtime"] / max(1, m["global_step"]), 3),
                    "wall_s_incl_load_export": round(wall, 1),
                    "first_loss": m["first_logged_loss"],
                    "last_loss": m["last_logged_loss"],
                    "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
                }
            )
            print(json.dumps(results[-1]), flush=True)
    out = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "torch": torch.__version__, "results": results}
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

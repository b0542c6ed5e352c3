#!/usr/bin/env python3
"""Per-step latency of the local transformers backend (a script, not a test).

For each model size and dtype: build the offline test model (random weights,
``rt2_ros.testing.make_model``), load it with ``TransformersPolicy`` (warm-up
included), then time ``policy.infer`` on fresh random 224 x 224 RGB images with
cycling instructions. Reports median and p90 of the backend's own split
(``preprocess``: processor + host-to-device; ``model``: ``generate`` with the
action constraint; ``decode``: ids to action) and of the end-to-end wall time of
``infer`` (validation included), plus the rate ``1000 / median end-to-end``.

Examples::

    python benchmarks/bench_inference.py                       # tiny + small, fp32 + bf16, CPU
    python benchmarks/bench_inference.py --sizes tiny --steps 200
    python benchmarks/bench_inference.py --device cuda --openvla-7b   # on a GPU

``--openvla-7b`` builds, in memory and with random weights, a LLaVA-architecture
model at OpenVLA's size: a Llama-2-7B decoder (4096 hidden, 32 layers, 11008 MLP,
vocab 32064) behind a SigLIP-so400m/14 tower at 224 px (256 patch tokens, as
OpenVLA feeds its LLM); 7 action tokens from the last 256 ids of a 32000 vocab,
as OpenVLA decodes. It lacks OpenVLA's second (DINOv2-L, ~0.3 B) vision tower,
so it slightly under-estimates OpenVLA's vision cost. It is not built from
OpenVLA's prismatic config because that needs OpenVLA's own model code.

Numbers depend on the machine and on what else runs on it: report them with the
conditions (CPU model and cores, threads, load).
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

INSTRUCTIONS = [
    "pick up the red block",
    "move the sponge near the coke can",
    "open the top drawer",
    "put the banana into the white cup",
]


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def bench_policy(policy, steps: int, seed: int = 0, batch: int = 1, image_hw: tuple[int, int] = (224, 224)) -> dict:
    """Time ``steps`` calls of ``infer`` (or ``infer_batch`` of ``batch`` observations)."""
    from rt2_ros.policies.base import Observation

    rng = np.random.default_rng(seed)
    rows: dict[str, list[float]] = {"preprocess": [], "model": [], "decode": [], "end_to_end": []}
    valid = 0
    for i in range(steps):
        imgs = [rng.integers(0, 256, (*image_hw, 3), dtype=np.uint8) for _ in range(batch)]
        obs = [Observation(im, INSTRUCTIONS[(i + j) % len(INSTRUCTIONS)]) for j, im in enumerate(imgs)]
        t0 = time.perf_counter()
        results = policy.infer_batch(obs) if batch > 1 else [policy.infer(obs[0].image, obs[0].instruction)]
        t1 = time.perf_counter()
        valid += sum(r.action is not None for r in results)
        for k in ("preprocess", "model", "decode"):
            rows[k].append(results[0].timings_ms[k])
        rows["end_to_end"].append((t1 - t0) * 1e3)
    out = {k: {"median_ms": statistics.median(v), "p90_ms": _pct(v, 90)} for k, v in rows.items()}
    out["rate_hz"] = 1000.0 / out["end_to_end"]["median_ms"] * batch
    out["valid_actions"] = f"{valid}/{steps * batch}"
    return out


def _machine(device: str) -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    import transformers

    info["transformers"] = transformers.__version__
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="tiny,small", help="comma list of test model sizes (tiny, small)")
    ap.add_argument("--dtypes", default="fp32,bf16", help="comma list of fp32, bf16, fp16")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per case (default 100 tiny, 30 others)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--prompt", default="rt2", choices=["rt2", "cot"], help="rt2 (8 tokens) or cot (plan + 8)")
    ap.add_argument("--batch", type=int, default=1, help="observations per call (server-side batching)")
    ap.add_argument("--openvla-7b", action="store_true", help="also the OpenVLA-sized LLaVA (GPU; ~15 GB bf16)")
    ap.add_argument("--allow-7b-on-cpu", action="store_true", help="let --openvla-7b run on CPU (very slow)")
    ap.add_argument("--model-dir", default=None, help="reuse test models in this directory (DIR/<size>)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)

    import torch

    from rt2_ros.policies.transformers_policy import TransformersPolicy
    from rt2_ros.testing.make_model import make_test_model

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    sizes = [s for s in args.sizes.split(",") if s]
    dtypes = [d for d in args.dtypes.split(",") if d]
    results = []
    machine = _machine(device)
    print(f"# machine: {json.dumps(machine)}", flush=True)

    tmp = None
    base = Path(args.model_dir) if args.model_dir else None
    if base is None:
        tmp = tempfile.TemporaryDirectory(prefix="rt2_bench_")
        base = Path(tmp.name)
    for size in sizes:
        d = base / size
        if not (d / "config.json").is_file():
            t = time.perf_counter()
            make_test_model(d, size=size)
            print(f"# built {size} test model in {time.perf_counter() - t:.1f} s", flush=True)
        for dt in dtypes:
            t = time.perf_counter()
            policy = TransformersPolicy.from_pretrained(d, dtype=dt, device=device, prompt=args.prompt)
            load_s = time.perf_counter() - t
            steps = args.steps or (100 if size == "tiny" else 30)
            r = bench_policy(policy, steps, batch=args.batch)
            r.update(
                name=size,
                dtype=dt,
                device=device,
                steps=steps,
                batch=args.batch,
                load_s=load_s,
                params_m=policy.metadata.extra["num_parameters"] / 1e6,
                prompt=args.prompt,
            )
            results.append(r)
            print(json.dumps(r), flush=True)
            policy.close()
            del policy

    if args.openvla_7b:
        if device == "cpu" and not args.allow_7b_on_cpu:
            print("# --openvla-7b skipped: no GPU (use --allow-7b-on-cpu to force)", flush=True)
        else:
            from rt2_ros.codecs import OpenVLAActionTokenizer, select_unnorm_stats
            from rt2_ros.testing.make_model import OPENVLA_7B_LLAVA_DIMS, build_llava_model, example_statistics

            for dt in [d for d in dtypes if d != "fp32" or device == "cpu"] or ["bf16"]:
                t = time.perf_counter()
                model, processor = build_llava_model(
                    OPENVLA_7B_LLAVA_DIMS,
                    dtype={"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dt],
                    device=device,
                )
                policy = TransformersPolicy(
                    model,
                    processor,
                    model_id="openvla-7b-sized-llava (random)",
                    codec=OpenVLAActionTokenizer(32000, select_unnorm_stats(example_statistics(), None)[1]),
                    prompt="openvla",
                )
                load_s = time.perf_counter() - t
                steps = args.steps or 30
                r = bench_policy(policy, steps, batch=args.batch)
                r.update(
                    name="openvla-7b-sized",
                    dtype=dt,
                    device=device,
                    steps=steps,
                    batch=args.batch,
                    load_s=load_s,
                    params_m=policy.metadata.extra["num_parameters"] / 1e6,
                    prompt="openvla",
                )
                results.append(r)
                print(json.dumps(r), flush=True)
                policy.close()
                del policy, model
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()

    print()
    print(
        "| model | params | dtype | device | batch | preprocess ms (med/p90) | model ms (med/p90) "
        "| decode ms (med/p90) | end-to-end ms (med/p90) | rate Hz |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:

        def f(k: str) -> str:
            return f"{r[k]['median_ms']:.1f} / {r[k]['p90_ms']:.1f}"

        print(
            f"| {r['name']} | {r['params_m']:.1f} M | {r['dtype']} | {r['device']} | {r['batch']} | "
            f"{f('preprocess')} | {f('model')} | {f('decode')} | {f('end_to_end')} | {r['rate_hz']:.1f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

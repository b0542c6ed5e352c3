#!/usr/bin/env python3
"""Loopback overhead per request: openpi's protocol vs this project's, same model, one run.

    python benchmarks/bench_openpi.py                       # tiny test model, 400 requests per path
    python benchmarks/bench_openpi.py --requests 1000 --json out.json

Starts two ``rt2-ros serve`` subprocesses on loopback with the same tiny test model
(``rt2_ros.testing.make_model``, random weights, built offline): ``--protocol rt2`` and
``--protocol openpi`` (batching off: one robot). One robot per path sends 224x224 images
in a closed loop, in alternating blocks of ``--block`` requests (rt2, openpi, openpi's
own client when shared/fixtures/openpi is present, rt2, ...), so drifting machine load
hits all paths alike. Per path: the client's wall time per request, p50 / p99 (ms), and
the **overhead**: wall time minus the server's own preprocess + model + decode time for
that request (framing, msgpack, websocket, the batcher's queue, the client's own work:
openpi's ``resize_with_pad`` is a no-op at 224x224). The paths:

* ``rt2``: :class:`rt2_ros.remote.client.RemotePolicy` -> ``--protocol rt2``;
* ``openpi``: :class:`rt2_ros.remote.openpi_client.OpenPIPolicy` (``custom`` profile
  reading the server's metres / radians) -> ``--protocol openpi``;
* ``openpi_client``: openpi's own ``WebsocketClientPolicy`` -> ``--protocol openpi``.

Prints a Markdown table with the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.policies.base import Observation  # noqa: E402
from rt2_ros.remote.client import RemotePolicy  # noqa: E402
from rt2_ros.testing.serve import start_server  # noqa: E402

FIXTURE = ROOT.parent / "shared" / "fixtures" / "openpi" / "openpi-client" / "src"


def serve(model_dir: Path, protocol: str):
    return start_server(
        [
            "--model",
            str(model_dir),
            "--protocol",
            protocol,
            "--max-batch-size",
            "1",
            "--config",
            str(model_dir / "bench_config.yaml"),
        ],
        cwd=ROOT,
        timeout_s=120.0,
    )


def pct(xs, q):
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400, help="requests per path (default 400)")
    ap.add_argument("--block", type=int, default=50, help="requests per block before switching path")
    ap.add_argument("--json", default=None, help="write the numbers to this file")
    args = ap.parse_args(argv)

    import yaml

    from rt2_ros.testing.make_model import make_test_model, policy_overrides

    tmp = Path(tempfile.mkdtemp(prefix="bench_openpi_"))
    model_dir = make_test_model(tmp / "tiny", size="tiny", seed=0)
    over = {k: v for k, v in policy_overrides(model_dir).items() if not k.startswith("policy.")}
    nested: dict = {}
    for k, v in over.items():
        sec, name = k.split(".")
        nested.setdefault(sec, {})[name] = v
    (model_dir / "bench_config.yaml").write_text(yaml.safe_dump(nested))
    cfg = load_config(model_dir / "bench_config.yaml")

    load_before = os.getloadavg()
    procs = []
    try:
        p_rt2, url_rt2 = serve(model_dir, "rt2")
        procs.append(p_rt2)
        p_pi, url_pi = serve(model_dir, "openpi")
        procs.append(p_pi)

        from rt2_ros.remote.openpi_client import OpenPIPolicy
        from rt2_ros.remote.openpi_profile import PRESETS

        profile = dataclasses.replace(
            PRESETS["libero"](),
            name="custom",
            wrist_image_key="",
            state_layout="none",
            position_scale_m=1.0,
            rotation_scale_rad=1.0,
            rotation_convention=cfg.action.rotation_convention,
            gripper_open_value=cfg.action.high[6],
            gripper_closed_value=cfg.action.low[6],
            reject_above=1e6,
            action_clip=1e6,
            replan_steps=64,
        )
        clients = {
            "rt2": RemotePolicy(url_rt2, cfg.action, timeout_s=30),
            "openpi": OpenPIPolicy(url_pi, profile, cfg.action, timeout_s=30),
        }
        own = None
        if (FIXTURE / "openpi_client").is_dir():
            sys.path.insert(0, str(FIXTURE))
            import warnings

            warnings.filterwarnings("ignore", category=DeprecationWarning)
            from openpi_client import websocket_client_policy

            own = websocket_client_policy.WebsocketClientPolicy(url_pi)
            clients["openpi_client"] = own
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(8)]
        prompt = "pick up the red block"

        def one(name: str, i: int) -> tuple[float, float]:
            """(wall ms, server model-call ms) of one request."""
            img = images[i % len(images)]
            t0 = time.perf_counter()
            if name == "openpi_client":
                out = own.infer({"observation/image": img, "prompt": prompt})
                wall = (time.perf_counter() - t0) * 1e3
                return wall, sum(float(v) for v in out["policy_timing"].values())
            r = clients[name].infer_batch([Observation(img, prompt)])[0]
            wall = (time.perf_counter() - t0) * 1e3
            t = r.timings_ms
            if name == "rt2":  # the server's preprocess + model + decode (decode also holds the client's re-decode)
                return wall, t.get("preprocess", 0.0) + t.get("model", 0.0) + t.get("decode", 0.0)
            return wall, t.get("model", 0.0)  # OpenPIPolicy: the server's policy_timing sum

        for name in clients:  # warm-up
            for i in range(10):
                one(name, i)
        wall = {n: [] for n in clients}
        model_ms = {n: [] for n in clients}
        done = dict.fromkeys(clients, 0)
        while any(done[n] < args.requests for n in clients):
            for n in clients:
                k = min(args.block, args.requests - done[n])
                for i in range(k):
                    w, m = one(n, done[n] + i)
                    wall[n].append(w)
                    model_ms[n].append(m)
                done[n] += k
        load_after = os.getloadavg()
        out = {
            "machine": f"{platform.node()} {os.cpu_count()} CPUs",
            "load_before": load_before,
            "load_after": load_after,
            "requests_per_path": args.requests,
            "paths": {},
        }
        for n in clients:
            ov = [w - m for w, m in zip(wall[n], model_ms[n])]
            out["paths"][n] = {
                "wall_p50_ms": pct(wall[n], 50),
                "wall_p99_ms": pct(wall[n], 99),
                "model_p50_ms": pct(model_ms[n], 50),
                "overhead_p50_ms": pct(ov, 50),
                "overhead_p99_ms": pct(ov, 99),
            }
        print(
            f"load average before {load_before[0]:.2f} {load_before[1]:.2f}, after {load_after[0]:.2f} "
            f"{load_after[1]:.2f}; {args.requests} requests per path, tiny model, 224x224, loopback"
        )
        print(
            "| path | wall p50 [ms] | wall p99 [ms] | server model call p50 [ms] | overhead p50 [ms] | overhead p99 [ms] |"
        )
        print("|---|---|---|---|---|---|")
        for n, r in out["paths"].items():
            print(
                f"| {n} | {r['wall_p50_ms']:.2f} | {r['wall_p99_ms']:.2f} | {r['model_p50_ms']:.2f} | "
                f"{r['overhead_p50_ms']:.2f} | {r['overhead_p99_ms']:.2f} |"
            )
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))
        for c in clients.values():
            close = getattr(c, "close", None)
            if close:
                close()
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

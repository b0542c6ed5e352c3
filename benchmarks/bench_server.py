#!/usr/bin/env python3
"""Remote inference benchmark: throughput and latency vs number of robots, batching on/off.

    python benchmarks/bench_server.py                    # default: tiny + small (~60 M) models, ~4 min
    python benchmarks/bench_server.py --sizes tiny --clients 1,2,4,8,16 --duration-s 5
    python benchmarks/bench_server.py --json out.json    # also write the raw numbers

For each test model (``rt2_ros.testing.make_model``: random weights, PaliGemma
architecture, built offline) the benchmark starts two ``rt2-ros serve`` subprocesses
on loopback, batching on and batching off (so server and clients do not share a
Python interpreter), then for each client count N runs N robot clients per server
(:class:`rt2_ros.remote.client.RemotePolicy`, one thread each) in a closed loop:
every robot sends its next 224x224 image as soon as it has the previous answer, for
``--duration-s`` per mode. That measures the server's capacity (robots on a 5 Hz control loop
ask for less). Reported per run: throughput (actions/s over all robots: robots /
mean latency, Little's law for a closed loop), client latency p50/p99 (ms, wall
time of ``infer``, every request started in the window), the server's mean batch
size (``/healthz``), and failed requests.

Batching "on" is ``--max-batch-size 8 --max-wait-ms 5``; "off" is
``--max-batch-size 1``. The measured time of each run is split into ``--reps``
windows that alternate on, off, on, off, so drifting machine load (the project
machine is shared) affects both modes alike. The second part measures the loopback
overhead of the remote backend against the same model in-process (one robot,
224x224, tiny model), with the client's latency split (``timings_ms``: network,
server time outside the model).

Numbers depend on the machine; the README table says where they were taken.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.policies.base import PolicyError  # noqa: E402
from rt2_ros.remote.client import RemotePolicy  # noqa: E402
from rt2_ros.testing.serve import start_server  # noqa: E402

INSTRUCTIONS = ["pick up the red block", "open the top drawer", "push the blue cube left", "place the can in the bowl"]


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def start_model_server(model_dir: Path, max_batch_size: int, max_wait_ms: float) -> tuple[subprocess.Popen, str]:
    """``rt2-ros serve --model DIR`` on a free loopback port; returns (process, url)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("RT2_API_KEY", None)
    return start_server(
        [
            "--model",
            str(model_dir),
            "--max-batch-size",
            str(max_batch_size),
            "--max-wait-ms",
            str(max_wait_ms),
            "--log-level",
            "WARNING",
        ],
        env=env,
        cwd=ROOT,
        timeout_s=300,
    )


def health(url: str) -> dict:
    with urllib.request.urlopen(url.replace("ws://", "http://") + "/healthz", timeout=10) as r:
        return json.loads(r.read())


class Fleet:
    """N robot clients connected to one server, run in closed-loop windows."""

    def __init__(self, url: str, n: int, images: list[np.ndarray]):
        cfg = load_config()
        self.url, self.n, self.images = url, n, images
        self.clients = [RemotePolicy(url, cfg.action, timeout_s=120.0) for _ in range(n)]
        for c in self.clients:
            c.connect(timeout_s=60)
        self.latencies: list[float] = []
        self.splits: list[dict] = []
        self.actions = 0
        self.errors = 0
        self.seconds = 0.0
        self.batches = 0
        self.requests = 0

    def window(self, duration_s: float, warmup: int = 0) -> None:
        """``warmup`` untimed rounds, then every robot loops for ``duration_s``."""
        n = self.n
        lat: list[list[float]] = [[] for _ in range(n)]
        split: list[list[dict]] = [[] for _ in range(n)]
        errors = [0] * n
        barrier = threading.Barrier(n + 1)
        go = threading.Event()
        stop_at = [float("inf")]

        def robot(i: int) -> None:
            c, img, instr = self.clients[i], self.images[i % len(self.images)], INSTRUCTIONS[i % len(INSTRUCTIONS)]
            for _ in range(warmup):
                try:
                    c.infer(img, instr)
                except PolicyError:
                    pass
            barrier.wait()
            go.wait()
            while time.perf_counter() < stop_at[0]:  # every request started in the window counts
                t0 = time.perf_counter()
                try:
                    r = c.infer(img, instr)
                except PolicyError:
                    errors[i] += 1
                    continue
                lat[i].append((time.perf_counter() - t0) * 1e3)
                split[i].append(r.timings_ms)

        threads = [threading.Thread(target=robot, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        barrier.wait()
        h0 = health(self.url)
        t_start = time.perf_counter()
        stop_at[0] = t_start + duration_s
        go.set()
        for t in threads:
            t.join(duration_s + 300)
        h1 = health(self.url)
        self.seconds += duration_s
        self.batches += h1["batches"] - h0["batches"]
        self.requests += h1["requests"] - h0["requests"]
        self.latencies += [x for xs in lat for x in xs]
        self.splits += [d for ds in split for d in ds]
        self.actions += sum(len(xs) for xs in lat)
        self.errors += sum(errors)

    def close(self) -> None:
        for c in self.clients:
            c.close()

    def summary(self) -> dict:
        f = self.splits
        return {
            "clients": self.n,
            "actions": self.actions,
            "duration_s": self.seconds,
            # Closed loop (each robot waits for its answer): throughput = robots / mean latency
            # (Little's law). Unlike "answers in the window / window", it does not jump by a
            # whole batch when a window holds only a few batches (the 60 M model on CPU).
            "throughput_aps": self.n / (statistics.fmean(self.latencies) / 1e3) if self.latencies else float("nan"),
            "p50_ms": percentile(self.latencies, 50),
            "p99_ms": percentile(self.latencies, 99),
            "mean_batch": self.requests / self.batches if self.batches else float("nan"),
            "errors": self.errors,
            "model_ms_p50": percentile([d.get("model", float("nan")) for d in f], 50),
            "server_queue_ms_p50": percentile([d.get("server", float("nan")) for d in f], 50),
            "network_ms_p50": percentile([d.get("network", float("nan")) for d in f], 50),
        }


IN_PROCESS_SCRIPT = """
import json, sys, time
import numpy as np
from rt2_ros.config import load_config
from rt2_ros.factory import make_policy
from rt2_ros.testing.make_model import policy_overrides
model_dir, image_file, n, instruction = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
image = np.load(image_file)
policy = make_policy(load_config(overrides={**policy_overrides(model_dir), "policy.process": "in_process"}))
for _ in range(3):
    policy.infer(image, instruction)
out = []
for _ in range(n):
    t0 = time.perf_counter()
    policy.infer(image, instruction)
    out.append((time.perf_counter() - t0) * 1e3)
print("LATENCIES", json.dumps(out))
"""


def in_process_latencies(model_dir: Path, image: np.ndarray, n: int) -> list[float]:
    """Wall time of ``TransformersPolicy.infer`` (ms) in a fresh process, as the local
    backend of a robot would run it (a fresh interpreter, like the server's)."""
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "image.npy"
        np.save(f, image)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT))
        p = subprocess.run(
            [sys.executable, "-c", IN_PROCESS_SCRIPT, str(model_dir), str(f), str(n), INSTRUCTIONS[0]],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
    for line in p.stdout.splitlines():
        if line.startswith("LATENCIES "):
            return json.loads(line.split(" ", 1)[1])
    raise RuntimeError(f"in-process measurement failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")


def loopback_overhead(model_dir: Path, url: str, image: np.ndarray, n: int) -> dict:
    """One robot at 224x224: in-process TransformersPolicy vs RemotePolicy to the server.

    The overhead is measured per request from the client's latency split (network +
    server time outside the model), which the machine's load does not skew; the
    in-process and remote wall times (separate runs) are given for reference.
    """
    remote = RemotePolicy(url, load_config().action, timeout_s=60.0)
    remote.connect(timeout_s=30)
    for _ in range(3):
        remote.infer(image, INSTRUCTIONS[0])
    t_remote, splits = [], []

    def remote_block(k: int) -> None:
        for _ in range(k):
            t0 = time.perf_counter()
            r = remote.infer(image, INSTRUCTIONS[0])
            t_remote.append((time.perf_counter() - t0) * 1e3)
            splits.append(r.timings_ms)

    remote_block(n // 2)
    t_local = in_process_latencies(model_dir, image, n)  # the server is idle meanwhile
    remote_block(n - n // 2)
    remote.close()
    overhead = [s["network"] + s["server"] for s in splits]
    return {
        "n": n,
        "in_process_p50_ms": percentile(t_local, 50),
        "remote_p50_ms": percentile(t_remote, 50),
        "overhead_p50_ms": percentile(overhead, 50),
        "overhead_p99_ms": percentile(overhead, 99),
        "network_ms_p50": percentile([s["network"] for s in splits], 50),
        "server_other_ms_p50": percentile([s["server"] for s in splits], 50),
        "model_ms_p50": percentile([s.get("model", float("nan")) for s in splits], 50),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="tiny,small", help="test model sizes (tiny ~0.3 M, small ~60 M parameters)")
    ap.add_argument("--clients", default="1,2,4,8", help="robot counts")
    ap.add_argument("--duration-s", default=None, help="measured seconds per run; default tiny:4,small:10 (size:s,...)")
    ap.add_argument("--reps", type=int, default=2, help="on/off alternations per run (default 2)")
    ap.add_argument("--max-batch-size", type=int, default=8, help="batching on: max batch size")
    ap.add_argument("--max-wait-ms", type=float, default=5.0, help="batching on: max wait, ms")
    ap.add_argument(
        "--overhead-n", type=int, default=40, help="requests per side for the loopback-overhead part (0 = skip)"
    )
    ap.add_argument("--json", default=None, help="write all numbers to this file")
    args = ap.parse_args(argv)

    sizes = [s for s in args.sizes.split(",") if s]
    counts = [int(c) for c in args.clients.split(",") if c]
    durations = {"tiny": 4.0, "small": 8.0}
    warmups = {"tiny": 2, "small": 1}
    if args.duration_s:
        if ":" in args.duration_s:
            durations.update({k: float(v) for k, v in (kv.split(":") for kv in args.duration_s.split(","))})
        else:
            durations = {s: float(args.duration_s) for s in sizes}
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(max(counts))]

    from rt2_ros.testing.make_model import make_test_model

    out: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": os.getloadavg(),
        },
        "runs": [],
        "overhead": {},
    }
    t_all = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rt2_bench_server_") as tmp:
        for size in sizes:
            model_dir = make_test_model(Path(tmp) / size, size=size, seed=0)
            # Both servers up at once (an idle one costs no CPU); on and off alternate per
            # client count, so a change in machine load hits both alike.
            servers = {
                "on": start_model_server(model_dir, args.max_batch_size, args.max_wait_ms),
                "off": start_model_server(model_dir, 1, 0.0),
            }
            try:
                for n in counts:
                    fleets = {mode: Fleet(url, n, images) for mode, (_, url) in servers.items()}
                    # on, off, on, off: half the time each, so load drift hits both modes alike
                    for rep in range(args.reps):
                        for mode, fleet in fleets.items():
                            fleet.window(
                                durations.get(size, 5.0) / args.reps, warmup=(warmups.get(size, 1) if rep == 0 else 0)
                            )
                    for mode, fleet in fleets.items():
                        fleet.close()
                        r = fleet.summary()
                        r.update(size=size, batching=mode)
                        out["runs"].append(r)
                        print(
                            f"{size:5s} batching {mode:3s} clients {n:2d}: {r['throughput_aps']:7.1f} actions/s  "
                            f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  mean batch {r['mean_batch']:.2f}  "
                            f"errors {r['errors']}  load {os.getloadavg()[0]:.1f}",
                            flush=True,
                        )
                if size == sizes[0] and args.overhead_n > 0:
                    o = loopback_overhead(model_dir, servers["on"][1], images[0], args.overhead_n)
                    o["size"] = size
                    out["overhead"] = o
                    print(
                        f"{size} one robot 224x224: in-process p50 {o['in_process_p50_ms']:.1f} ms, remote p50 "
                        f"{o['remote_p50_ms']:.1f} ms; remote overhead p50 {o['overhead_p50_ms']:.2f} ms "
                        f"p99 {o['overhead_p99_ms']:.2f} ms (network {o['network_ms_p50']:.2f}, server outside "
                        f"the model {o['server_other_ms_p50']:.2f})",
                        flush=True,
                    )
            finally:
                for proc, _ in servers.values():
                    proc.terminate()
                for proc, _ in servers.values():
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
    out["total_s"] = time.monotonic() - t_all
    out["machine"]["loadavg_end"] = os.getloadavg()
    print()
    print(markdown(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


def markdown(out: dict) -> str:
    """The README table."""
    lines = [
        "| model | robots | batching off: actions/s | p50 / p99 ms | batching on: actions/s | p50 / p99 ms | mean batch | gain |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    runs = out["runs"]
    for size in dict.fromkeys(r["size"] for r in runs):
        for n in dict.fromkeys(r["clients"] for r in runs if r["size"] == size):
            on = next((r for r in runs if r["size"] == size and r["clients"] == n and r["batching"] == "on"), None)
            off = next((r for r in runs if r["size"] == size and r["clients"] == n and r["batching"] == "off"), None)
            if on is None or off is None:
                continue
            gain = on["throughput_aps"] / off["throughput_aps"] if off["throughput_aps"] else float("nan")
            lines.append(
                f"| {size} | {n} | {off['throughput_aps']:.1f} | {off['p50_ms']:.0f} / {off['p99_ms']:.0f} | "
                f"{on['throughput_aps']:.1f} | {on['p50_ms']:.0f} / {on['p99_ms']:.0f} | {on['mean_batch']:.2f} | "
                f"{gain:.2f}x |"
            )
    o = out.get("overhead")
    if o:
        lines += [
            "",
            f"One robot, 224x224, {o['size']} model, loopback: remote overhead per request p50 "
            f"{o['overhead_p50_ms']:.1f} ms, p99 {o['overhead_p99_ms']:.1f} ms (network {o['network_ms_p50']:.1f} ms, "
            f"server outside the model {o['server_other_ms_p50']:.1f} ms); wall time p50 in-process "
            f"{o['in_process_p50_ms']:.1f} ms vs remote {o['remote_p50_ms']:.1f} ms.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

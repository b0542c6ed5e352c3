#!/usr/bin/env python3
"""Good robots' latency while a key holder sends parse bombs to the same ``rt2-ros serve``.

    python benchmarks/bench_parse_bomb.py                      # 3 robots, 2 attackers, 4 x 15 s windows
    python benchmarks/bench_parse_bomb.py --robots 3 --attackers 2 --window-s 30 --reps 4

Starts one ``rt2-ros serve`` subprocess on loopback (the test suite's image policy,
``test/helpers/remote_fakes.py``, with ``--model-delay-ms`` of model time per call, 30 ms
by default, like a small model) with an API key. ``--robots`` robot clients
(:class:`rt2_ros.remote.client.RemotePolicy`, one thread each) step at ``--rate-hz``
(a control loop) and record the wall time of every ``infer``. Windows alternate: quiet
(robots only) and attacked (robots plus ``--attackers`` clients holding the key that send
parse bombs back to back: every frame each under the size and container limits but slow
to build, nested 16-entry arrays of 1.1 M objects, a map of a million keys, a 1000-deep
nesting, a 4 MiB string; each answered with an error frame), so drifting machine load
affects both alike. Reported: robot p50 / p99 (ms) quiet and attacked, the ratio of
the p50s (issue 21 asks <= 2), requests answered and failed, bombs sent, the server's
resident memory before and after, and the load average.

Numbers depend on the machine and its load; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import msgpack
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HELPERS = ROOT / "test" / "helpers"
sys.path.insert(0, str(ROOT))

from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.policies.base import PolicyError  # noqa: E402
from rt2_ros.remote.client import RemotePolicy  # noqa: E402
from rt2_ros.testing.serve import start_server  # noqa: E402

KEY = "bench-parse-bomb-key"


def _tree(depth: int):
    return [_tree(depth - 1) for _ in range(16)] if depth else list(range(16))


def _deep(n: int):
    x: list = []
    for _ in range(n):
        x = [x]
    return x


def bombs() -> list[bytes]:
    return [
        msgpack.packb({"type": "infer", "id": 1, "instruction": "x", "image": _tree(4)}),
        msgpack.packb({str(i): 0 for i in range(10**6)}),
        msgpack.packb({"type": "infer", "id": 2, "instruction": "x", "image": _deep(1000)}),
        msgpack.packb({"type": "infer", "id": 3, "instruction": "y" * (4 << 20), "image": b""}),
    ]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--robots", type=int, default=3)
    ap.add_argument("--attackers", type=int, default=2)
    ap.add_argument("--rate-hz", type=float, default=5.0, help="each robot's control rate")
    ap.add_argument("--model-delay-ms", type=float, default=30.0, help="model time per call")
    ap.add_argument("--window-s", type=float, default=15.0)
    ap.add_argument("--reps", type=int, default=2, help="quiet/attacked window pairs")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args(argv)

    from websockets.sync.client import connect

    from rt2_ros.remote.protocol import unpackb

    cfg = load_config()
    env = dict(
        os.environ,
        RT2_API_KEY=KEY,
        RT2_FAKE_DELAY_S=str(args.model_delay_ms / 1e3),
        PYTHONPATH=os.pathsep.join([str(HELPERS), os.environ.get("PYTHONPATH", "")]),
    )
    proc, url = start_server(["--policy", "remote_fakes:make_image_policy", "--no-warmup"], env=env)
    frames = bombs()
    phase = {"attack": False, "name": "quiet"}
    stop = threading.Event()
    lat: dict[str, list[float]] = {"quiet": [], "attacked": []}
    failed = {"quiet": 0, "attacked": 0}
    sent = [0]
    lock = threading.Lock()

    def robot(k: int) -> None:
        pol = RemotePolicy(url, cfg.action, api_key=KEY, timeout_s=2.0)
        img = np.full((224, 224, 3), k * 40, np.uint8)
        nxt = time.monotonic()
        while not stop.is_set():
            name = phase["name"]
            t0 = time.monotonic()
            try:
                pol.infer(img, "pick up the red block")
                with lock:
                    lat[name].append((time.monotonic() - t0) * 1e3)
            except PolicyError:
                with lock:
                    failed[name] += 1
            nxt += 1.0 / args.rate_hz
            time.sleep(max(0.0, nxt - time.monotonic()))
        pol.close()

    def attacker() -> None:
        while not stop.is_set():
            if not phase["attack"]:
                time.sleep(0.05)
                continue
            try:
                with connect(
                    url, additional_headers={"Authorization": f"Bearer {KEY}"}, proxy=None, max_size=2**23
                ) as ws:
                    ws.recv(timeout=10)  # metadata
                    while phase["attack"] and not stop.is_set():
                        for f in frames:
                            ws.send(f)
                            unpackb(ws.recv(timeout=30))
                            sent[0] += 1
            except Exception:  # noqa: BLE001 - the server may cut an abusive connection: reconnect
                time.sleep(0.05)

    rss0 = _rss_mb(proc.pid)
    load0 = os.getloadavg()[0]
    threads = [threading.Thread(target=robot, args=(k,), daemon=True) for k in range(args.robots)]
    threads += [threading.Thread(target=attacker, daemon=True) for _ in range(args.attackers)]
    for t in threads:
        t.start()
    try:
        time.sleep(2.0)  # connect, warm up
        with lock:
            lat["quiet"].clear()
        for _ in range(args.reps):
            for name in ("quiet", "attacked"):
                phase["name"], phase["attack"] = name, name == "attacked"
                time.sleep(args.window_s)
    finally:
        phase["attack"] = False
        stop.set()
        for t in threads:
            t.join(10)
        rss1 = _rss_mb(proc.pid)
        proc.terminate()
        proc.wait(10)
    load1 = os.getloadavg()[0]
    p = lambda xs, q: float(np.percentile(xs, q)) if xs else float("nan")  # noqa: E731
    out = {
        "robots": args.robots,
        "attackers": args.attackers,
        "rate_hz": args.rate_hz,
        "model_delay_ms": args.model_delay_ms,
        "quiet_p50_ms": p(lat["quiet"], 50),
        "quiet_p99_ms": p(lat["quiet"], 99),
        "attacked_p50_ms": p(lat["attacked"], 50),
        "attacked_p99_ms": p(lat["attacked"], 99),
        "answered": {k: len(v) for k, v in lat.items()},
        "failed": failed,
        "bombs_sent": sent[0],
        "server_rss_mb": [rss0, rss1],
        "load_1min": [load0, load1],
        "cpus": os.cpu_count(),
    }
    out["p50_ratio"] = out["attacked_p50_ms"] / out["quiet_p50_ms"]
    print(
        f"robots {args.robots} at {args.rate_hz:g} Hz, model {args.model_delay_ms:g} ms, {args.attackers} attackers: "
        f"p50 quiet {out['quiet_p50_ms']:.1f} ms, attacked {out['attacked_p50_ms']:.1f} ms "
        f"(x{out['p50_ratio']:.2f}); p99 {out['quiet_p99_ms']:.1f} / {out['attacked_p99_ms']:.1f} ms; "
        f"answered {out['answered']}, failed {failed}, bombs {sent[0]}, server RSS {rss0:.0f} -> {rss1:.0f} MB, "
        f"load {load0:.1f}-{load1:.1f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

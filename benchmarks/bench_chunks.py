"""Action chunks vs one action per inference (figures for the README; never a test assert).

Same tiny test model (random weights, RT-2 text), same control period, same servo rate,
real time, the node's two threads (a servo loop calling ``Controller.servo_command`` at
the servo rate, a worker calling ``Controller.step``: on the fixed control grid for one
action per inference, when ``Controller.inference_due`` says so for chunks), ROS-free.
For each execution mode it reports:

* ``waiting %``: the fraction of running time the arm was commanded to stand still
  because no action was there (waiting for the model);
* ``max jump``: the largest change of the commanded linear velocity between two
  consecutive servo ticks at a chunk boundary (a new chunk's first action, or the
  queue running dry / refilling), m/s per servo tick; for one action per inference every
  action is a boundary. The slew limit is ``safety.max_linear_accel_mps2 * servo period``;
  a stop (zero twist) is immediate, so a jump above it is the arm braking to wait (the
  last column counts boundary jumps above ``max_linear_accel * actual tick gap``);
* inferences, executed actions, p50 inference time.

Modes: ``1/inference`` (horizon 1), ``chunk open-loop`` (horizon 8, the whole chunk then
the next inference: the arm waits), ``chunk ahead`` (horizon 8, the next chunk requested
while ``--threshold`` actions remain), ``chunk ensemble`` (horizon 8, ACT temporal
ensembling, a chunk every period). The model's terminate field is ignored (random weights
would end episodes at random). ``--extra-latency-ms`` adds a sleep to every inference to
stand in for a bigger model.

Usage::

    python benchmarks/bench_chunks.py                       # tiny model, period 0.1 s, 20 s per mode
    python benchmarks/bench_chunks.py --extra-latency-ms 150 --seconds 20
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.controller import Controller  # noqa: E402
from rt2_ros.factory import make_policy  # noqa: E402
from rt2_ros.policies.base import Policy  # noqa: E402
from rt2_ros.servo_stream import ControlGrid  # noqa: E402
from rt2_ros.testing.make_model import make_test_model, policy_overrides  # noqa: E402


class NoTerminate(Policy):
    """Wraps a policy: same answers with every terminate flag cleared, plus an optional delay."""

    def __init__(self, inner: Policy, extra_s: float):
        self.inner, self.extra_s, self.metadata = inner, extra_s, inner.metadata
        self.latencies_ms: list[float] = []

    def infer_batch(self, observations):
        t0 = time.perf_counter()
        out = self.inner.infer_batch(observations)
        if self.extra_s:
            time.sleep(self.extra_s)
        self.latencies_ms.append((time.perf_counter() - t0) * 1e3)
        return [
            dataclasses.replace(r, actions=tuple(dataclasses.replace(a, terminate=False) for a in r.actions))
            for r in out
        ]


MODES = {
    "1/inference": {"action.horizon": 1},
    "chunk open-loop": {"action.horizon": 8, "control.chunk_threshold": 0},
    "chunk ahead": {"action.horizon": 8},  # threshold from --threshold
    "chunk ensemble": {"action.horizon": 8, "control.execute": "ensemble"},
}


def run_mode(model_dir: Path, name: str, args) -> dict:
    over = {
        **policy_overrides(model_dir),
        "control.period_s": args.period,
        "control.servo_rate_hz": args.servo_hz,
        "control.max_steps": 100000,
        "control.max_duration_s": 3600.0,
        "policy.num_threads": 1,
        "safety.max_image_age_s": 5.0,
        "safety.max_action_age_s": 5.0,
        **MODES[name],
    }
    if name == "chunk ahead":
        over["control.chunk_threshold"] = args.threshold
    cfg = load_config(overrides=over)
    policy = NoTerminate(make_policy(cfg), args.extra_latency_ms / 1e3)
    c = Controller(cfg, policy, now_fn=time.monotonic)
    img = np.full((224, 224, 3), 127, np.uint8)
    c.on_image(img, time.monotonic())
    c.on_instruction("pick up the red block", time.monotonic())
    stop = threading.Event()
    accepted = [0]

    def worker():
        grid = ControlGrid(cfg.control.period_s)
        while not stop.is_set():
            now = time.monotonic()
            if c.chunked:
                if c.inference_due(now):
                    out = c.step(now)
                    accepted[0] += out is not None and out.action is not None
                else:
                    time.sleep(0.005)
                continue
            w = grid.wait_s(now)
            if w > 0:
                time.sleep(min(w, 0.005))
                continue
            out = c.step(now)
            grid.stepped(now)
            accepted[0] += out is not None and out.action is not None

    th = threading.Thread(target=worker, daemon=True)
    th.start()
    ticks = []  # (t, vx vy vz, waiting, source)
    dt = 1.0 / cfg.control.servo_rate_hz
    t_next = time.monotonic()
    t_end = t_next + args.seconds
    while time.monotonic() < t_end:
        now = time.monotonic()
        c.on_image(img, now)
        cmd = c.servo_command(now)
        with c._lock:  # which action is running: its chunk (chunks) or the accepted count (1/inference)
            waiting = c.waiting_for_inference(now)
            src = (c._exec.chunk_seq if c._exec is not None else None) if c.chunked else accepted[0]
        ticks.append((now, *cmd.twist.linear, waiting, None if waiting else src))
        t_next += dt
        time.sleep(max(t_next - time.monotonic(), 0.0))
    stop.set()
    th.join(5.0)
    steps = c.episode.step
    c.cancel(time.monotonic())
    first = next((i for i, t in enumerate(ticks) if not t[4]), len(ticks))  # from the first action on
    run = ticks[first:]
    waiting = np.array([t[4] for t in run], dtype=bool)
    v = np.array([t[1:4] for t in run])
    jumps = np.linalg.norm(np.diff(v, axis=0), axis=1)
    gaps = np.minimum(np.diff([t[0] for t in run]), 5 * dt)  # the envelope's slew step uses the real gap
    allowed = cfg.safety.max_linear_accel_mps2 * gaps
    src = [t[5] for t in run]
    boundary = np.array([src[i + 1] != src[i] for i in range(len(run) - 1)], dtype=bool)
    lat = policy.latencies_ms
    return {
        "mode": name,
        "waiting_pct": 100.0 * waiting.mean() if len(waiting) else float("nan"),
        "max_jump": float(jumps[boundary].max()) if boundary.any() else 0.0,
        "max_jump_any": float(jumps.max()) if len(jumps) else 0.0,
        "over_slew": int(np.sum(boundary & (jumps > allowed + 1e-9))),
        "boundaries": int(boundary.sum()),
        "inferences": len(lat),
        "actions": steps,
        "p50_ms": float(np.median(lat)) if lat else float("nan"),
        "slew": cfg.safety.max_linear_accel_mps2 * dt,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--period", type=float, default=0.1, help="control period [s] (default 0.1)")
    ap.add_argument("--servo-hz", type=float, default=50.0, help="servo rate [Hz] (default 50)")
    ap.add_argument("--seconds", type=float, default=20.0, help="running time per mode [s] (default 20)")
    ap.add_argument("--threshold", type=int, default=3, help="chunk ahead: chunk_threshold (default 3)")
    ap.add_argument("--extra-latency-ms", type=float, default=0.0, help="sleep added to every inference [ms]")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ", ".join(MODES))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        model = make_test_model(Path(d) / "tiny")
        load0 = os.getloadavg()[0]
        rows = [run_mode(model, m.strip(), args) for m in args.modes.split(",")]
        load1 = os.getloadavg()[0]
    print(
        f"period {args.period} s, servo {args.servo_hz:.0f} Hz, {args.seconds:.0f} s per mode, "
        f"extra latency {args.extra_latency_ms:.0f} ms, threshold {args.threshold}, "
        f"load average {load0:.1f} -> {load1:.1f}, {os.cpu_count()} CPUs"
    )
    print(f"slew limit per servo tick: {rows[0]['slew']:.3f} m/s")
    print(
        "| mode | inference p50 ms | inferences | actions | waiting % | max jump at boundaries m/s/tick "
        "| boundary jumps above the slew limit |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['p50_ms']:.0f} | {r['inferences']} | {r['actions']} | "
            f"{r['waiting_pct']:.1f} | {r['max_jump']:.3f} | {r['over_slew']} of {r['boundaries']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

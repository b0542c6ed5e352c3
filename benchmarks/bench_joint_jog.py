#!/usr/bin/env python3
"""JointJog stream regularity of a joint-velocity openpi policy, in the simulated loop over DDS.

    python benchmarks/bench_joint_jog.py                 # 6 episodes
    python benchmarks/bench_joint_jog.py --episodes 20 --json out.json

Starts what ``rt2-ros demo --policies openpi_joint`` starts (each its own process): the
simulation with the MoveIt Servo stand-in, ``rt2-ros serve --protocol openpi`` serving the
joint-velocity expert (DROID layout), and ``rt2_node`` on ``policy.backend: openpi`` with
the ``droid`` profile (JointJog on ``/servo_node/delta_joint_cmds`` at
``control.servo_rate_hz``). A subscriber in this process records the arrival time and
header stamp of every ``control_msgs/JointJog`` and the episode transitions; only
messages inside running episodes count. Reported: inter-arrival p50 / p99 / max (ms),
gaps > 100 ms (MoveIt Servo's default ``incoming_command_timeout``: Servo would halt),
the largest gap between consecutive stamps, episodes and successes, and the 1-minute
load average before and after. Needs control_msgs (the ROS 2 tools kit).

``--compare-twist`` also runs the end-effector expert through the same protocol
(``--policies openpi``: TwistStamped on ``/servo_node/delta_twist_cmds``) right after, with
the same measurement, so the JointJog figures can be read against the twist stream's on
the same machine at the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=6)
    ap.add_argument("--domain-id", type=int, default=None)
    ap.add_argument("--out", default="out/bench_joint_jog")
    ap.add_argument("--json", default=None)
    ap.add_argument("--compare-twist", action="store_true", help="also measure the twist stream (openpi policy)")
    args = ap.parse_args(argv)
    results = {"openpi_joint": run(args, "openpi_joint")}
    if args.compare_twist:
        results["openpi"] = run(args, "openpi")
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def run(args, policy: str) -> dict:
    """One configuration: ``openpi_joint`` (JointJog) or ``openpi`` (TwistStamped)."""

    from rt2_ros.ros.joint_jog import HAVE_JOINT_JOG, JointJog

    if not HAVE_JOINT_JOG:
        raise SystemExit("error: control_msgs is not importable (build the ROS 2 tools kit)")
    from geometry_msgs.msg import TwistStamped

    from rt2_ros.sim import demo
    from rt2_ros.sim.driver_node import DemoDriver

    domain = args.domain_id if args.domain_id is not None else random.randint(40, 100)
    out = Path(args.out) / policy
    logs = out / "logs"
    env = demo._child_env(domain)
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rt2_yaml, sim_yaml = demo._repo_config("rt2.yaml", None), demo._repo_config("sim.yaml", None)
    load_before = os.getloadavg()
    sim = demo.NodeProcess(
        "rt2_sim",
        [sys.executable, "-m", "rt2_ros.sim.sim_node", *demo._ros_args("rt2_sim", [sim_yaml], {"seed": 0})],
        env,
        logs / "sim.log",
    )
    server = node = driver = None
    arrivals: list[tuple[float, float]] = []  # (monotonic arrival s, stamp s)
    running: list[list[float]] = []  # [start, end] monotonic
    lock = threading.Lock()
    records = []
    try:
        server, url = demo._start_openpi_server(policy, rt2_yaml, sim_yaml, env, logs)
        overrides = {**demo._policy_overrides_one(policy, args), "policy.server_url": url}
        node = demo.NodeProcess(
            "rt2_node",
            [sys.executable, "-m", "rt2_ros.ros.node", *demo._ros_args("rt2_node", [rt2_yaml, sim_yaml], overrides)],
            env,
            logs / "rt2_node.log",
        )
        driver = DemoDriver(domain)
        msgs = __import__("rt2_ros.ros.conversions", fromlist=["import_rt2_msgs"]).import_rt2_msgs()

        def on_jog(m):
            with lock:
                arrivals.append((time.monotonic(), m.header.stamp.sec + m.header.stamp.nanosec * 1e-9))

        def on_episode(m):
            with lock:
                if m.state == msgs.EpisodeStatus.STATE_RUNNING:
                    running.append([time.monotonic(), float("inf")])
                elif m.state == msgs.EpisodeStatus.STATE_FINISHED and running and running[-1][1] == float("inf"):
                    running[-1][1] = time.monotonic()

        if policy == "openpi_joint":
            driver.node.create_subscription(JointJog, "/servo_node/delta_joint_cmds", on_jog, 100)
        else:
            driver.node.create_subscription(TwistStamped, "/servo_node/delta_twist_cmds", on_jog, 100)
        driver.node.create_subscription(msgs.EpisodeStatus, "/rt2/episode", on_episode, 20)
        driver.wait_ready(120.0)
        for k in range(args.episodes):
            ins = demo.DEFAULT_INSTRUCTIONS[k % len(demo.DEFAULT_INSTRUCTIONS)]
            rec = driver.run_episode(ins, policy, timeout_s=120.0)
            records.append(rec)
            print(
                f"{policy} episode {k + 1}: {ins!r}: {rec.reason}, {'success' if rec.success else 'no success'}",
                flush=True,
            )
    finally:
        if driver is not None:
            driver.close()
        if node is not None:
            node.stop()
        if server is not None:
            server.terminate()
            server.wait(10)
        sim.stop()
    load_after = os.getloadavg()
    gaps, stamp_gaps = [], []
    with lock:
        for t0, t1 in running:
            inside = [(a, s) for a, s in arrivals if t0 <= a <= t1]
            for (a0, s0), (a1, s1) in zip(inside, inside[1:]):
                gaps.append((a1 - a0) * 1e3)
                stamp_gaps.append((s1 - s0) * 1e3)
    g = np.asarray(gaps)
    return {
        "topic": "/servo_node/delta_joint_cmds" if policy == "openpi_joint" else "/servo_node/delta_twist_cmds",
        "episodes": len(records),
        "successes": sum(1 for r in records if r.success),
        "messages_in_episodes": int(g.size + len(running)),
        "inter_arrival_p50_ms": float(np.percentile(g, 50)) if g.size else None,
        "inter_arrival_p99_ms": float(np.percentile(g, 99)) if g.size else None,
        "inter_arrival_max_ms": float(g.max()) if g.size else None,
        "gaps_over_100ms": int((g > 100).sum()),
        "gaps_over_50ms": int((g > 50).sum()),
        "stamp_gap_max_ms": float(max(stamp_gaps)) if stamp_gaps else None,
        "load_before": load_before,
        "load_after": load_after,
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    sys.exit(main())

"""Servo-stream timing measured from a separate subscriber process (issue 14).

For each configuration this starts, each in its own process: a camera (224x224 rgb8
at ``--camera-hz``, default 10 Hz), optionally an end-effector pose publisher
(``PoseStamped`` on ``/rt2/ee_pose`` at ``--pose-hz``, as a real arm's driver would) and an
instruction spammer (``--spam-hz`` instructions per second), ``rt2_node`` (``python -m rt2_ros.ros.node``'s ``main()``; 50 Hz twist
stream, one control step per 0.1 s), and a subscriber that sends the instruction
(again whenever an episode ends) and records the arrival time and stamp of every
``TwistStamped``. Reported per configuration: inter-arrival p50 / p99 / p99.9 / max
(ms), the p99 period error (|inter-arrival - servo period|, ms), counts of gaps > 100 ms
(MoveIt Servo's default ``incoming_command_timeout``) and > 50 ms, the largest gap between consecutive stamps (the node's own timer),
the same gaps by the middleware's reception time (``received_timestamp``: what a C++
subscriber such as MoveIt Servo sees, without the measuring Python process's own
scheduling delays), the
node's resident memory, and the 1-minute load average before and after.

Configurations (``--configs``):

* ``constant``: a policy that answers at once (no model);
* ``tiny-inproc`` / ``tiny-child`` / ``tiny-serve``: the tiny test model in the node's
  process (``policy.process: in_process``), in the node's policy child (the default),
  behind a separate ``rt2-ros serve`` (``policy.backend: remote``);
* ``small-inproc`` / ``small-child``: the ~60 M-parameter test model, same;
* a suffix ``@events`` runs the node on rclpy's ``EventsExecutor`` instead of the
  4-thread ``MultiThreadedExecutor``; ``@gil5`` / ``@gil1`` force a 5 ms / 1 ms GIL switch
  interval (by default the node sets 1 ms only with the model in its own process).

Not a test: numbers depend on the machine and its load. Usage::

    python benchmarks/bench_stream.py                       # default configurations, 45 s each
    python benchmarks/bench_stream.py --duration 600        # 10-minute runs
    python benchmarks/bench_stream.py --configs small-child small-child@events --duration 60
    # issue 21: pose from another process at 100 Hz, camera 30 Hz, 1 kHz instruction spam,
    # /rt2/stop called every 5 s (its response time reported; each stop restarts the episode)
    python benchmarks/bench_stream.py --configs constant --pose-hz 100 --camera-hz 30 --spam-hz 1000 \
        --stop-every 5 --duration 600
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()
DEFAULT_CONFIGS = ["constant", "tiny-inproc", "tiny-child", "tiny-serve", "small-inproc", "small-child"]
SERVO_HZ, PERIOD_S = 50.0, 0.1


# -- the constant policy (the node imports it as bench_stream:make_constant) ---------------
def make_constant(cfg):
    from rt2_ros.codecs import make_codec
    from rt2_ros.policies.base import Policy, PolicyMetadata, PolicyResult, check_image

    class Constant(Policy):
        def __init__(self):
            self.codec = make_codec(cfg.action)
            self.text = self.codec.encode([0.001, 0, 0, 0, 0, 0, 1.0])
            self.action = self.codec.decode(self.text)
            self.metadata = PolicyMetadata(action_format="rt2", model_id="constant", action_dim=8)

        def infer_batch(self, observations):
            for o in observations:
                check_image(o.image)
            return [PolicyResult(self.text, (), (self.action,), None, {"model": 0.0}) for _ in observations]

    return Constant()


# -- roles (each in its own process) -------------------------------------------------------
def _publish_at(node, pub, make_msg, rate_hz: float) -> None:
    """Publish ``make_msg()`` at ``rate_hz`` on a fixed grid until Ctrl-C (no catch-up bursts)."""
    import rclpy

    period = 1.0 / rate_hz
    next_t = time.monotonic()
    try:
        while rclpy.ok():
            pub.publish(make_msg())
            next_t += period
            now = time.monotonic()
            if next_t < now - period:
                next_t = now
            time.sleep(max(0.0, next_t - now))
    except KeyboardInterrupt:
        pass


def role_camera(rate_hz: float) -> int:
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_camera")
    pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
    img = Image(height=224, width=224, encoding="rgb8", step=224 * 3)
    img.header.frame_id = "camera"
    img.data = np.random.default_rng(0).integers(0, 256, 224 * 224 * 3, dtype=np.uint8).tobytes()

    def make():
        img.header.stamp = node.get_clock().now().to_msg()
        return img

    _publish_at(node, pub, make, rate_hz)
    return 0


def role_pose(rate_hz: float) -> int:
    """The arm's driver: the end-effector pose (inside config/rt2.yaml's workspace box)."""
    import rclpy
    from geometry_msgs.msg import PoseStamped

    rclpy.init()
    node = rclpy.create_node("bench_pose")
    pub = node.create_publisher(PoseStamped, "/rt2/ee_pose", 10)
    msg = PoseStamped()
    msg.header.frame_id = "panda_link0"
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = 0.45, 0.0, 0.3
    msg.pose.orientation.w = 1.0

    def make():
        msg.header.stamp = node.get_clock().now().to_msg()
        return msg

    _publish_at(node, pub, make, rate_hz)
    return 0


def role_spam(rate_hz: float) -> int:
    """Instruction spam: the same instruction ``rate_hz`` times per second."""
    import rclpy
    from std_msgs.msg import String

    rclpy.init()
    node = rclpy.create_node("bench_spam")
    pub = node.create_publisher(String, "/rt2/instruction", 10)
    msg = String(data="pick up the red block")
    _publish_at(node, pub, lambda: msg, rate_hz)
    return 0


def role_subscriber(duration_s: float, warmup_s: float, out: str, stop_every_s: float = 0.0) -> int:
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from rt2_ros.ros.conversions import import_rt2_msgs

    msgs = import_rt2_msgs()
    rclpy.init()
    node = rclpy.create_node("bench_stream_subscriber")
    arrivals: list[float] = []
    stamps: list[float] = []
    received: list[float] = []  # the middleware's reception time (s): what a C++ subscriber such as Servo would see
    restarts = [0]
    instr = node.create_publisher(String, "/rt2/instruction", 10)

    def on_twist(m, info):
        arrivals.append(time.monotonic())
        stamps.append(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)
        received.append((info.get("received_timestamp") or 0) * 1e-9)

    def on_episode(m):
        if m.state == msgs.EpisodeStatus.STATE_FINISHED:
            restarts[0] += 1
            instr.publish(String(data="pick up the red block"))

    node.create_subscription(TwistStamped, "/servo_node/delta_twist_cmds", on_twist, 1000)
    node.create_subscription(msgs.EpisodeStatus, "/rt2/episode", on_episode, 20)
    end_wait = time.monotonic() + 60
    while instr.get_subscription_count() == 0 and time.monotonic() < end_wait:
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(0.5)
    instr.publish(String(data="pick up the red block"))
    t0 = time.monotonic()
    while not arrivals and time.monotonic() - t0 < 60:
        rclpy.spin_once(node, timeout_sec=0.1)
    t_start = time.monotonic() + warmup_s
    load0 = os.getloadavg()[0]
    stop_client = node.create_client(Trigger, "/rt2/stop")
    stop_ms: list[float] = []
    pending: list = []  # (sent, future)
    next_stop = t_start + stop_every_s
    while time.monotonic() < t_start + duration_s:
        rclpy.spin_once(node, timeout_sec=0.01 if stop_every_s else 0.05)
        now = time.monotonic()
        if pending and pending[0][1].done():
            stop_ms.append((now - pending.pop()[0]) * 1e3)
        if stop_every_s and not pending and now >= next_stop:
            pending.append((now, stop_client.call_async(Trigger.Request())))
            next_stop = now + stop_every_s
    load1 = os.getloadavg()[0]
    keep = [(a, s, r) for a, s, r in zip(arrivals, stamps, received) if t_start <= a <= t_start + duration_s]
    Path(out).write_text(
        json.dumps(
            {
                "arrivals": [a for a, _, _ in keep],
                "stamps": [s for _, s, _ in keep],
                "received": [r for _, _, r in keep],
                "episode_restarts": restarts[0],
                "stop_ms": stop_ms,
                "load": [load0, load1],
                "duration_s": duration_s,
            }
        )
    )
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def role_node(executor: str, gil_s: float | None, ros_args: list[str]) -> int:
    import rt2_ros.ros.entry as entry
    import rt2_ros.ros.node as node_mod

    if executor == "events":
        from rclpy.experimental import EventsExecutor

        entry.MultiThreadedExecutor = lambda num_threads=None: EventsExecutor()
    if gil_s is not None:  # forced for every configuration (else the node decides)
        node_mod.GIL_SWITCH_INTERVAL_S = gil_s
        sys.setswitchinterval(gil_s)
    return node_mod.main([sys.argv[0], "--ros-args", *ros_args])


# -- orchestration ------------------------------------------------------------------------
def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def _rss_mb(pid: int) -> tuple[float, float]:
    """Resident memory of ``pid`` and of its children together (the policy child), MB."""
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            pids += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    out = []
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append(int(line.split()[1]) / 1024)
        except OSError:
            pass
    return (out[0] if out else float("nan")), sum(out[1:])


def run_config(name: str, args, models: dict[str, Path], env: dict, tmp: Path) -> dict:
    base, _, variant = name.partition("@")
    model, _, mode = base.partition("-")
    params = {
        "control.period_s": PERIOD_S,
        "control.servo_rate_hz": SERVO_HZ,
        "control.max_steps": 10_000_000,
        "control.max_duration_s": 1_000_000.0,
        "control.terminate_debounce": 100,
        "policy.timeout_s": 5.0,
        "policy.num_threads": 1,
    }
    server = None
    if model == "constant":
        params["policy.backend"] = "bench_stream:make_constant"
    else:
        from rt2_ros.testing.make_model import policy_overrides

        params.update(policy_overrides(models[model]))
        if mode == "inproc":
            params["policy.process"] = "in_process"
        elif mode == "serve":
            from rt2_ros.testing.serve import start_server

            server, url = start_server(
                ["--model", str(models[model]), "--max-batch-size", "1"],
                env=dict(env, RT2_API_KEY=""),
                timeout_s=300,
            )
            params.update({"policy.backend": "remote", "policy.server_url": url})
    ros_args = [a for k, v in params.items() for a in ("-p", f"{k}:={v}")]
    ros_args = ["--params-file", str(ROOT / "config" / "rt2.yaml"), *ros_args]
    node_log = open(tmp / f"{name}.node.log", "w")
    node = subprocess.Popen(
        [
            sys.executable,
            str(HERE),
            "--role",
            "node",
            "--executor",
            "events" if variant == "events" else "multi",
            *({"gil5": ["--gil", "0.005"], "gil1": ["--gil", "0.001"]}.get(variant, [])),
            "--",
            *ros_args,
        ],
        env=dict(env, PYTHONPATH=os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])),
        cwd=str(ROOT),
        stdout=node_log,
        stderr=subprocess.STDOUT,
    )
    out = tmp / f"{name}.json"
    try:
        t0 = time.monotonic()
        while "ready:" not in (tmp / f"{name}.node.log").read_text(errors="replace"):
            if node.poll() is not None or time.monotonic() - t0 > 600:
                raise RuntimeError(f"{name}: node did not start:\n" + (tmp / f"{name}.node.log").read_text()[-3000:])
            time.sleep(0.5)
        sub = subprocess.run(
            [
                sys.executable,
                str(HERE),
                "--role",
                "subscriber",
                "--duration",
                str(args.duration),
                "--stop-every",
                str(args.stop_every),
                "--out",
                str(out),
            ],
            env=env,
            cwd=str(ROOT),
            timeout=args.duration + 200,
        )
        rss = _rss_mb(node.pid)
        if sub.returncode != 0:
            raise RuntimeError(f"{name}: subscriber failed ({sub.returncode})")
    finally:
        if node.poll() is None:
            node.send_signal(signal.SIGINT)
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                node.kill()
        node_log.close()
        if server is not None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    if args.show_node_log:
        print((tmp / f"{name}.node.log").read_text(errors="replace")[-4000:], flush=True)
    data = json.loads(out.read_text())
    arr, st = data["arrivals"], data["stamps"]
    if len(arr) < 2:
        raise RuntimeError(f"{name}: the node published {len(arr)} twists in {data['duration_s']:.0f} s")
    gaps = [(b - a) * 1e3 for a, b in zip(arr, arr[1:])]
    sgaps = [(b - a) * 1e3 for a, b in zip(st, st[1:])]
    rx = data["received"]
    rgaps = [(b - a) * 1e3 for a, b in zip(rx, rx[1:])] if all(rx) else []
    return {
        "config": name,
        "pose_hz": args.pose_hz,
        "camera_hz": args.camera_hz,
        "spam_hz": args.spam_hz,
        "n": len(arr),
        "duration_s": data["duration_s"],
        "p50_ms": _pct(gaps, 50),
        "p99_ms": _pct(gaps, 99),
        "p99_period_error_ms": _pct([abs(g - 1e3 / SERVO_HZ) for g in gaps], 99),
        "p999_ms": _pct(gaps, 99.9),
        "max_ms": max(gaps),
        "gaps_over_100ms": sum(g > 100 for g in gaps),
        "gaps_over_50ms": sum(g > 50 for g in gaps),
        "max_stamp_gap_ms": max(sgaps),
        "stamp_gaps_over_100ms": sum(g > 100 for g in sgaps),
        "rx_max_ms": max(rgaps) if rgaps else None,
        "rx_gaps_over_100ms": sum(g > 100 for g in rgaps) if rgaps else None,
        "rx_p99_period_error_ms": _pct([abs(g - 1e3 / SERVO_HZ) for g in rgaps], 99) if rgaps else None,
        "node_rss_mb": rss[0],
        "child_rss_mb": rss[1],
        "episode_restarts": data["episode_restarts"],
        "stop_calls": len(data["stop_ms"]),
        "stop_p50_ms": _pct(data["stop_ms"], 50) if data["stop_ms"] else None,
        "stop_max_ms": max(data["stop_ms"]) if data["stop_ms"] else None,
        "load_1min": data["load"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--role",
        choices=["main", "camera", "pose", "spam", "subscriber", "node"],
        default="main",
        help=argparse.SUPPRESS,
    )
    p.add_argument("--out", default=None, help="results JSON (default out/bench_stream.json)")
    p.add_argument("--duration", type=float, default=45.0, help="measured seconds per configuration (600 = 10 min)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds after the first twist before measuring")
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help=f"default: {' '.join(DEFAULT_CONFIGS)}")
    p.add_argument("--models", default=str(ROOT / "out" / "models"), help="where the test models are (built if absent)")
    p.add_argument("--camera-hz", type=float, default=10.0, help="camera rate (default 10 Hz)")
    p.add_argument("--pose-hz", type=float, default=0.0, help="end-effector pose rate from another process (0: none)")
    p.add_argument("--spam-hz", type=float, default=0.0, help="instructions per second from another process (0: none)")
    p.add_argument("--show-node-log", action="store_true", help="print the end of each node's log")
    p.add_argument("--stop-every", type=float, default=0.0, help="call /rt2/stop this often, s (0: never)")
    p.add_argument("--executor", default="multi", help=argparse.SUPPRESS)
    p.add_argument("--gil", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("ros_args", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "camera":
        return role_camera(args.camera_hz)
    if args.role == "pose":
        return role_pose(args.pose_hz)
    if args.role == "spam":
        return role_spam(args.spam_hz)
    if args.role == "subscriber":
        return role_subscriber(args.duration, args.warmup, args.out, args.stop_every)
    if args.role == "node":
        return role_node(args.executor, args.gil, args.ros_args)

    from rt2_ros.testing.make_model import make_test_model

    models = {}
    for size in ("tiny", "small"):
        if any(c.startswith(size) for c in args.configs):
            d = Path(args.models) / size
            models[size] = d if (d / "config.json").exists() else make_test_model(d, size=size, seed=0)
    env = dict(os.environ, PYTHONUNBUFFERED="1", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
    feeds = [("camera", args.camera_hz), ("pose", args.pose_hz), ("spam", args.spam_hz)]
    procs = [
        subprocess.Popen([sys.executable, str(HERE), "--role", role, f"--{role}-hz", str(hz)], env=env, cwd=str(ROOT))
        for role, hz in feeds
        if hz > 0
    ]
    results = []
    print(
        f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, {args.duration:.0f} s per configuration; camera {args.camera_hz:g} Hz, "
        f"pose {args.pose_hz:g} Hz, instruction spam {args.spam_hz:g} Hz",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="bench_stream_") as tmp:
            for name in args.configs:
                r = run_config(name, args, models, env, Path(tmp))
                results.append(r)
                print(
                    f"{r['config']:<20} n={r['n']:<6} p50/p99/p99.9/max {r['p50_ms']:.1f} / {r['p99_ms']:.1f} / "
                    f"{r['p999_ms']:.1f} / {r['max_ms']:.1f} ms  p99 period error {r['p99_period_error_ms']:.1f} ms  "
                    f">100 ms: {r['gaps_over_100ms']}  "
                    f">50 ms: {r['gaps_over_50ms']}  max stamp gap {r['max_stamp_gap_ms']:.1f} ms (>100 ms: {r['stamp_gaps_over_100ms']})  "
                    + (
                        f"DDS reception: >100 ms: {r['rx_gaps_over_100ms']} max {r['rx_max_ms']:.1f} ms "
                        f"p99 period error {r['rx_p99_period_error_ms']:.1f} ms  "
                        if r["rx_max_ms"] is not None
                        else ""
                    )
                    + f"rss node {r['node_rss_mb']:.0f} MB (+child {r['child_rss_mb']:.0f})  "
                    f"load {r['load_1min'][0]:.1f}-{r['load_1min'][1]:.1f}"
                    + (
                        f"  /rt2/stop answered in p50 {r['stop_p50_ms']:.1f} max {r['stop_max_ms']:.1f} ms "
                        f"({r['stop_calls']} calls)"
                        if r["stop_calls"]
                        else ""
                    ),
                    flush=True,
                )
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    out = Path(args.out or ROOT / "out" / "bench_stream.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": os.uname().nodename, "cpus": os.cpu_count(), "results": results}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

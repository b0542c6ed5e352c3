"""Benchmarks of the rt2 node (figures for the README; never used as test asserts).

1. ``jitter``: servo-stream period (p50 / p99 / max) while a model runs in the same
   process. The rt2 node, a camera (224x224 at 15 Hz) and a probe subscriber run in
   one process on one ``MultiThreadedExecutor`` with the node's GIL switch interval,
   as ``python -m rt2_ros.ros.node`` does (``--switch-interval`` to compare).
   Reported twice: from the twist stamps (when the servo timer fired) and from the
   probe's arrival times (timer + DDS + the probe's callback).
2. ``overhead``: node time per inference step *excluding the model forward*, at
   224x224 and 640x480: image message -> RGB array -> controller (the image
   callback), then the control step -> RT2Action, gripper command and (when someone
   subscribes) the annotated image. The policy is a constant answer whose own time
   is measured and subtracted. DDS transport of the image is not included (see
   shared/docs/ros2-on-this-machine.md for those figures).

Usage::

    python benchmarks/bench_node.py                   # both, tiny test model
    python benchmarks/bench_node.py jitter --model small --seconds 30
    python benchmarks/bench_node.py overhead --steps 300 --json out.json

Needs the environment of scripts/run_tests.sh (venv + colcon install sourced).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# The source tree first (a colcon symlink install lists only the files present at build time).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import rclpy  # noqa: E402
from geometry_msgs.msg import TwistStamped  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from rt2_ros.codecs import make_codec  # noqa: E402
from rt2_ros.config import RT2Config  # noqa: E402
from rt2_ros.policies.base import Policy, PolicyMetadata, PolicyResult, check_image  # noqa: E402
from rt2_ros.ros.conversions import rgb_to_image_msg  # noqa: E402
from rt2_ros.ros.node import GIL_SWITCH_INTERVAL_S, Rt2Node  # noqa: E402


def _pct(x, q):
    return float(np.percentile(np.asarray(x, dtype=float), q)) if len(x) else float("nan")


def _summary_ms(x) -> dict:
    x = np.asarray(x, dtype=float) * 1e3
    return {
        "n": int(x.size),
        "p50_ms": _pct(x, 50),
        "p99_ms": _pct(x, 99),
        "max_ms": float(x.max()) if x.size else float("nan"),
    }


class ConstantPolicy(Policy):
    """Answers one fixed RT-2 action; measures its own time (to subtract it)."""

    def __init__(self, cfg: RT2Config):
        self.codec = make_codec(cfg.action)
        self.text = self.codec.encode([0.01, 0, 0, 0, 0, 0, 1.0])
        self.action = self.codec.decode(self.text)
        self.metadata = PolicyMetadata(action_format="rt2", model_id="constant", action_dim=8)
        self.own_s: list[float] = []

    def infer_batch(self, observations):
        t0 = time.perf_counter()
        out = []
        for o in observations:
            check_image(o.image)
            out.append(PolicyResult(self.text, (), (self.action,), None, {"model": 0.0}))
        self.own_s.append(time.perf_counter() - t0)
        return out


class Spinner:
    """A private context and a MultiThreadedExecutor in a background thread."""

    def __init__(self, threads: int = 4):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "77")))
        self.executor = MultiThreadedExecutor(num_threads=threads, context=self.context)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._spin, daemon=True)
        self._t.start()

    def _spin(self):
        while not self._stop.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001
                if self._stop.is_set():
                    return

    def close(self, nodes):
        for n in nodes:
            if hasattr(n, "shutdown"):
                n.shutdown()
        self._stop.set()
        self._t.join(5)
        self.executor.shutdown(timeout_sec=5)
        for n in nodes:
            n.destroy_node()
        self.context.try_shutdown()


def _model_policy(size: str, threads: int, workdir: Path):
    from rt2_ros.config import load_config
    from rt2_ros.factory import make_policy
    from rt2_ros.testing.make_model import make_test_model, policy_overrides

    model_dir = make_test_model(workdir / f"{size}_model", size=size, seed=0)
    overrides = dict(policy_overrides(model_dir), **{"policy.num_threads": threads, "policy.process": "in_process"})
    cfg = load_config(overrides=overrides)
    return make_policy(cfg), overrides


def bench_jitter(args) -> dict:
    """Servo-stream periods while the model runs in the same process."""
    with tempfile.TemporaryDirectory() as tmp:
        if args.model == "none":
            policy, overrides = ConstantPolicy(RT2Config()), {}
        else:
            policy, overrides = _model_policy(args.model, args.threads, Path(tmp))
        overrides = dict(
            overrides,
            **{
                "control.period_s": args.period,
                "control.max_steps": 100000,
                "control.max_duration_s": 3600.0,
                "control.servo_rate_hz": args.servo_hz,
                "safety.require_ee_pose": False,  # no pose source here: the conditions of the measurements
            },
        )
        sp = Spinner()
        node = Rt2Node(policy, context=sp.context, overrides=overrides)
        probe = Node("bench_probe", context=sp.context)
        sp.executor.add_node(node)
        sp.executor.add_node(probe)
        arrivals: list[tuple[float, float]] = []
        probe.create_subscription(
            TwistStamped,
            node.cfg.topics.twist,
            lambda m: arrivals.append((time.monotonic(), m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)),
            1000,
        )
        cam = probe.create_publisher(Image, node.cfg.topics.image, qos_profile_sensor_data)
        img = rgb_to_image_msg(np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8))
        stop = threading.Event()

        def camera():
            while not stop.is_set():
                img.header.stamp = probe.get_clock().now().to_msg()
                cam.publish(img)
                stop.wait(1 / 15)

        threading.Thread(target=camera, daemon=True).start()
        time.sleep(1.0)
        node.controller.on_instruction("pick up the red block", node.now_s())
        node._handle_transitions()
        time.sleep(1.0)  # warm-up
        arrivals.clear()
        lat: list[float] = []
        t_end = time.monotonic() + args.seconds
        while time.monotonic() < t_end:
            o = node.last_outcome
            if o is not None and o.result is not None and (not lat or lat[-1] != o.latency_ms):
                lat.append(o.latency_ms)
            time.sleep(0.01)
        stop.set()
        data = list(arrivals)
        sp.close([node, probe])
    arr = np.array([a for a, _ in data])
    stamps = np.array([s for _, s in data])
    return {
        "model": args.model,
        "torch_threads": args.threads,
        "control_period_s": args.period,
        "servo_rate_hz": args.servo_hz,
        "seconds": args.seconds,
        "steps": len(lat),
        "inference_latency_ms_p50": _pct(lat, 50),
        "stamp_period": _summary_ms(np.diff(stamps)),
        "arrival_period": _summary_ms(np.diff(arr)),
    }


def bench_overhead(args) -> dict:
    """Node time per step without the model forward, per image size."""
    out = {}
    for h, w in ((224, 224), (480, 640)):
        for annotated in (False, True):
            cfg = RT2Config()
            policy = ConstantPolicy(cfg)
            sp = Spinner()
            node = Rt2Node(
                policy,
                context=sp.context,
                start_worker=False,
                overrides={
                    "control.max_steps": 100000,
                    "control.max_duration_s": 3600.0,
                    "safety.require_ee_pose": False,
                },
            )
            probe = Node("bench_probe", context=sp.context)
            sp.executor.add_node(node)
            sp.executor.add_node(probe)
            if annotated:
                probe.create_subscription(Image, node.cfg.topics.annotated_image, lambda m: None, 2)
                t0 = time.monotonic()
                while node.annotated_pub.get_subscription_count() == 0 and time.monotonic() - t0 < 10:
                    time.sleep(0.01)
            msg = rgb_to_image_msg(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
            node.controller.on_instruction("pick up the red block", node.now_s())
            node._handle_transitions()
            t_img, t_step = [], []
            policy.own_s.clear()
            for i in range(args.steps + 20):
                msg.header.stamp = node.get_clock().now().to_msg()
                a = time.perf_counter()
                node.camera.on_image(msg)  # the image callback: message -> RGB -> controller
                b = time.perf_counter()
                node.run_step(node.now_s())  # the control step and its publications
                c = time.perf_counter()
                if i >= 20:  # warm-up
                    t_img.append(b - a)
                    t_step.append(c - b)
            own = np.array(policy.own_s[-args.steps :])
            step_wo_model = np.array(t_step) - own
            total = np.array(t_img) + step_wo_model
            key = f"{w}x{h}" + (" +annotated" if annotated else "")
            out[key] = {
                "image_callback": _summary_ms(t_img),
                "step_without_model": _summary_ms(step_wo_model),
                "total": _summary_ms(total),
                "policy_own": _summary_ms(own),
            }
            sp.close([node, probe])
    return out


def _table(res: dict) -> str:
    lines = []
    if "jitter" in res:
        j = res["jitter"]
        lines += [
            f"servo stream at {j['servo_rate_hz']:.0f} Hz, model {j['model']} "
            f"(p50 inference {j['inference_latency_ms_p50']:.0f} ms, {j['steps']} steps in {j['seconds']} s):",
            "| period | p50 ms | p99 ms | max ms |",
            "|---|---|---|---|",
        ]
        for k in ("stamp_period", "arrival_period"):
            s = j[k]
            lines.append(f"| {k.replace('_', ' ')} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['max_ms']:.1f} |")
    if "overhead" in res:
        lines += [
            "",
            "node overhead per step, model excluded (ms):",
            "| image | image callback p50/p99 | step w/o model p50/p99 | total p50/p99 |",
            "|---|---|---|---|",
        ]
        for k, v in res["overhead"].items():
            f = lambda s: f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f}"  # noqa: E731
            lines.append(f"| {k} | {f(v['image_callback'])} | {f(v['step_without_model'])} | {f(v['total'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="?", choices=["all", "jitter", "overhead"], default="all")
    p.add_argument("--model", choices=["tiny", "small", "none"], default="tiny", help="model in the jitter run")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--seconds", type=float, default=20.0, help="jitter: measured seconds")
    p.add_argument("--period", type=float, default=0.2, help="jitter: control period [s]")
    p.add_argument("--servo-hz", type=float, default=50.0, help="jitter: servo rate [Hz]")
    p.add_argument("--steps", type=int, default=200, help="overhead: steps per image size")
    p.add_argument("--json", default=None, help="write the results here too")
    p.add_argument(
        "--switch-interval",
        type=float,
        default=GIL_SWITCH_INTERVAL_S,
        help="sys.setswitchinterval [s]; main() of the node uses GIL_SWITCH_INTERVAL_S",
    )
    args = p.parse_args(argv)
    sys.setswitchinterval(args.switch_interval)
    res = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
            "switch_interval_s": args.switch_interval,
        }
    }
    if args.what in ("all", "jitter"):
        res["jitter"] = bench_jitter(args)
    if args.what in ("all", "overhead"):
        res["overhead"] = bench_overhead(args)
    print(_table(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

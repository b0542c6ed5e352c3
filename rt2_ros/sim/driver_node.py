"""The demo's own node (rclpy shell): sends instructions and watches what happens.

``rt2_demo`` resets the world through the rt2 node (``/rt2/reset``, which calls the
sim's ``/sim/reset``), publishes the instruction on ``/rt2/instruction``, and follows
the episode on ``/rt2/episode`` (rt2_ros/EpisodeStatus), ``/rt2/action`` (latency per
step), the camera and ``/sim/ground_truth`` (TCP path, task success). Optionally every
message of the episode on :data:`RECORD_TOPICS` goes to an MCAP file.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from rt2_ros.ros.conversions import image_msg_to_rgb, import_rt2_msgs
from rt2_ros.ros.servo_client import HAVE_MOVEIT_MSGS
from rt2_ros.servo_interface import resolve_distro
from rt2_ros.sim.report import EpisodeRecord

__all__ = ["DemoDriver", "RECORD_TOPICS", "EpisodeTimeout"]

#: (topic, type, sensor-data QoS?) recorded per episode with ``--record``.
RECORD_TOPICS = [
    ("/camera/image_raw", "sensor_msgs/msg/Image", True),
    ("/camera/camera_info", "sensor_msgs/msg/CameraInfo", True),
    ("/joint_states", "sensor_msgs/msg/JointState", False),
    ("/rt2/ee_pose", "geometry_msgs/msg/PoseStamped", False),
    ("/servo_node/delta_twist_cmds", "geometry_msgs/msg/TwistStamped", False),
    # The type the sim's servo_node publishes with servo.distro: auto (config/sim.yaml).
    (
        "/servo_node/status",
        "moveit_msgs/msg/ServoStatus" if resolve_distro("auto", HAVE_MOVEIT_MSGS) == "jazzy" else "std_msgs/msg/Int8",
        False,
    ),
    ("/rt2/gripper_command", "std_msgs/msg/Float64", False),
    ("/rt2/instruction", "std_msgs/msg/String", False),
    ("/rt2/action", "rt2_ros/msg/RT2Action", False),
    ("/rt2/episode", "rt2_ros/msg/EpisodeStatus", False),
    ("/sim/ground_truth", "std_msgs/msg/String", False),
]


class EpisodeTimeout(RuntimeError):
    """The episode did not start or finish in time."""


def _msg_class(datatype: str):
    import importlib

    pkg, _, name = datatype.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


class DemoDriver:
    """The ``rt2_demo`` node in its own rclpy context, spinning in a background thread.

    Args:
        domain_id: DDS domain of the sim and rt2 nodes.
        record_dir: write ``<prefix>ep<k>.mcap`` per episode there (None: no recording).
    """

    def __init__(self, domain_id: int, record_dir: str | Path | None = None):
        import rclpy

        self._msgs = import_rt2_msgs()
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node("rt2_demo", context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.context)
        self.executor.add_node(self.node)
        self._cond = threading.Condition()
        self._episodes: list[Any] = []
        self._actions: list[Any] = []
        self._frames: list[np.ndarray] = []
        self._gt: dict[str, Any] | None = None
        self._gts: list[dict[str, Any]] = []
        self._collect = False
        self.record_dir = Path(record_dir) if record_dir else None
        self._recorder = None
        self.recorded: list[Path] = []
        n = self.node
        self.instr_pub = n.create_publisher(String, "/rt2/instruction", 10)
        n.create_subscription(self._msgs.EpisodeStatus, "/rt2/episode", self._on_episode, QoSProfile(depth=50))
        n.create_subscription(self._msgs.RT2Action, "/rt2/action", self._on_action, 50)
        n.create_subscription(Image, "/camera/image_raw", self._on_image, qos_profile_sensor_data)
        n.create_subscription(String, "/sim/ground_truth", self._on_gt, 20)
        self.reset_client = n.create_client(Trigger, "/rt2/reset")
        if self.record_dir is not None:
            for topic, datatype, sensor in RECORD_TOPICS:
                n.create_subscription(
                    _msg_class(datatype),
                    topic,
                    self._make_raw_cb(topic),
                    qos_profile_sensor_data if sensor else 50,
                    raw=True,
                )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="rt2_demo_spin", daemon=True)
        self._thread.start()

    # -- plumbing --------------------------------------------------------------------------------
    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutting down
                if self._stop.is_set():
                    return

    def close(self) -> None:
        """Stop the recorder, the spin thread and the node."""
        if self._recorder is not None:
            self._recorder.close()
        self._stop.set()
        self._thread.join(3.0)
        try:
            self.executor.shutdown(timeout_sec=2.0)
            self.node.destroy_node()
        except Exception:  # noqa: BLE001
            pass
        self.context.try_shutdown()

    def _make_raw_cb(self, topic: str) -> Callable[[bytes], None]:
        def cb(data: bytes) -> None:
            rec = self._recorder
            if rec is not None:
                rec.write(topic, data)

        return cb

    def _on_episode(self, msg) -> None:
        with self._cond:
            self._episodes.append(msg)
            self._cond.notify_all()

    def _on_action(self, msg) -> None:
        with self._cond:
            if self._collect:
                self._actions.append(msg)

    def _on_image(self, msg: Image) -> None:
        with self._cond:
            if not self._collect:
                return
        try:
            rgb = image_msg_to_rgb(msg).copy()  # own the pixels: the message buffer is reused
        except ValueError:
            return
        with self._cond:
            if self._collect:
                self._frames.append(rgb)

    def _on_gt(self, msg: String) -> None:
        try:
            gt = json.loads(msg.data)
        except ValueError:
            return
        with self._cond:
            self._gt = gt
            if self._collect:
                self._gts.append(gt)
            self._cond.notify_all()

    def _wait(self, pred: Callable[[], bool], timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(pred, timeout_s)

    # -- steps -------------------------------------------------------------------------------------
    def wait_ready(self, timeout_s: float = 60.0, need_rt2_node: bool = True) -> None:
        """Wait until the sim publishes ground truth and (optionally) the rt2 node listens
        to instructions and offers ``/rt2/reset``.

        Raises:
            TimeoutError: with what is missing.
        """
        end = time.monotonic() + timeout_s
        if not self._wait(lambda: self._gt is not None, max(end - time.monotonic(), 0.1)):
            raise TimeoutError("no /sim/ground_truth from the simulation (is rt2_sim running on this ROS_DOMAIN_ID?)")
        if not need_rt2_node:
            return
        while time.monotonic() < end:
            if self.instr_pub.get_subscription_count() >= 2 and self.reset_client.service_is_ready():
                return
            time.sleep(0.05)
        raise TimeoutError("the rt2 node did not come up (no /rt2/instruction subscriber or /rt2/reset service)")

    def reset(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """``/rt2/reset`` (cancel, then the sim's new layout); returns the layout dict.

        Raises:
            TimeoutError, RuntimeError: no answer, or the reset failed.
        """
        done = threading.Event()
        fut = self.reset_client.call_async(Trigger.Request())
        fut.add_done_callback(lambda f: done.set())
        if not done.wait(timeout_s):
            raise TimeoutError("/rt2/reset did not answer")
        res = fut.result()
        if res is None or not res.success:
            raise RuntimeError(f"/rt2/reset failed: {getattr(res, 'message', '')}")
        text = res.message.split(": ", 1)[-1]
        try:
            layout = json.loads(text)
        except ValueError:
            raise RuntimeError(f"/rt2/reset answered an unexpected message: {res.message!r}") from None
        seed = layout.get("seed")
        # wait for ground truth from the new layout
        if not self._wait(lambda: self._gt is not None and self._gt.get("layout_seed") == seed, 10.0):
            raise TimeoutError("no ground truth from the new layout")
        return layout

    def run_episode(
        self,
        instruction: str,
        backend: str,
        timeout_s: float,
        record_name: str | None = None,
        on_progress: Callable[[int], None] | None = None,
        settle_s: float = 0.6,
    ) -> EpisodeRecord:
        """Reset, send ``instruction``, follow the episode to its end; returns the record.

        Raises:
            EpisodeTimeout: the episode did not start or end within ``timeout_s``.
        """
        layout = self.reset()
        rec = EpisodeRecord(instruction=instruction, seed=int(layout["seed"]), backend=backend)
        rec.targets = {c: list(b["position"]) for c, b in layout["blocks"].items()}
        with self._cond:
            self._actions, self._frames, self._gts = [], [], []
            self._collect = True
            n_ep = len(self._episodes)
        if record_name and self.record_dir is not None:
            from rt2_ros.sim.recording import McapRecorder

            r = McapRecorder(self.record_dir / f"{record_name}.mcap")
            for topic, datatype, _ in RECORD_TOPICS:
                r.add_channel(topic, datatype)
            self._recorder = r
        t0 = time.monotonic()
        self.instr_pub.publish(String(data=instruction))
        started = (
            lambda: any(
                m.state == 1 and m.instruction == instruction.strip()  # noqa: E731
                for m in self._episodes[n_ep:]
            )
        )
        if not self._wait(started, 10.0):
            self._finish_collect()
            raise EpisodeTimeout(f"the episode for {instruction!r} did not start within 10 s")
        finished = lambda: any(m.state == 2 for m in self._episodes[n_ep:])  # noqa: E731
        end = t0 + timeout_s
        while not self._wait(finished, 0.2):
            if on_progress is not None:
                with self._cond:
                    on_progress(len(self._actions))
            if time.monotonic() > end:
                self._finish_collect()
                raise EpisodeTimeout(f"the episode for {instruction!r} did not end within {timeout_s:.0f} s")
        rec.wall_s = time.monotonic() - t0
        with self._cond:
            fin = next(m for m in self._episodes[n_ep:] if m.state == 2)
        time.sleep(settle_s)  # the robot is stopped; let the ground truth catch up
        self._finish_collect()
        rec.steps, rec.reason = int(fin.step), fin.reason
        with self._cond:
            actions, frames, gts, gt = self._actions, self._frames, self._gts, self._gt
        rec.latencies_ms = [float(a.inference_latency_ms) for a in actions if a.inference_latency_ms > 0]
        rec.rejected = sum(1 for a in actions if not a.valid)
        rec.frames = frames
        rec.tcp_path = [g["tcp"]["position"] for g in gts if "tcp" in g]
        task = (gt or {}).get("task") or {}
        if task.get("instruction") == instruction:
            rec.success, rec.detail = bool(task.get("success")), str(task.get("detail", ""))
            rec.target_color = task.get("color")
        else:
            rec.detail = "no task check from the simulation"
        rec.final_blocks = {c: b["position"] for c, b in (gt or {}).get("blocks", {}).items()}
        if on_progress is not None:
            on_progress(rec.steps)
        return rec

    def _finish_collect(self) -> None:
        with self._cond:
            self._collect = False
        if self._recorder is not None:
            self.recorded.append(self._recorder.close())
            self._recorder = None

"""Helpers for tests that run real rclpy nodes over real DDS (no mocks).

* :class:`RosHarness`: a private rclpy context and a ``MultiThreadedExecutor``
  spinning in a background thread; nodes added to it run as they would under
  ``ros2 run``. Always closed with timeouts, so a test never hangs the suite.
* :class:`Collector`: a subscription that records every message with its arrival
  time and lets a test wait for a condition.
* :class:`ImageStreamer`: a camera stand-in publishing images at a rate, which a
  test can pause (stale camera) or switch to garbage frames.
* ``wait_*`` functions: wait for DDS matches (first discovery can take ~3 s here,
  ``shared/docs/ros2-on-this-machine.md``), services and conditions.
* :func:`ros_env`: the environment for a child process on the same DDS domain.

The domain: ``ROS_DOMAIN_ID`` when set, else one picked per test process, so test
runs of different people on one machine do not see each other's topics.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Callable, Iterable

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data

__all__ = [
    "DOMAIN_ID",
    "DISCOVERY_TIMEOUT_S",
    "RosHarness",
    "Collector",
    "ImageStreamer",
    "make_image_msg",
    "wait_until",
    "wait_for_subscribers",
    "wait_for_publishers",
    "call_service",
    "ros_env",
    "stamp_s",
    "all_zero",
    "is_zero_twist",
]

#: Generous: DDS discovery here takes 0.4 s usually and ~3 s in a quarter of runs.
DISCOVERY_TIMEOUT_S = 15.0

DOMAIN_ID = int(os.environ.get("ROS_DOMAIN_ID") or random.Random(os.getpid() ^ int(time.time())).randint(40, 101))


def stamp_s(stamp) -> float:
    """``builtin_interfaces/Time`` -> seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def wait_until(pred: Callable[[], bool], timeout_s: float, interval_s: float = 0.01) -> bool:
    """Poll ``pred`` until it is true (returns True) or ``timeout_s`` passes (False)."""
    end = time.monotonic() + timeout_s
    while True:
        if pred():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(interval_s)


def wait_for_subscribers(publisher, count: int = 1, timeout_s: float = DISCOVERY_TIMEOUT_S) -> bool:
    """Wait until ``publisher`` is matched with ``count`` subscriptions."""
    return wait_until(lambda: publisher.get_subscription_count() >= count, timeout_s)


def wait_for_publishers(subscription, count: int = 1, timeout_s: float = DISCOVERY_TIMEOUT_S) -> bool:
    """Wait until ``subscription`` is matched with ``count`` publishers."""
    return wait_until(lambda: subscription.get_publisher_count() >= count, timeout_s)


def call_service(node: Node, srv_type, name: str, request, timeout_s: float = DISCOVERY_TIMEOUT_S):
    """Call a service from a node spinning in a :class:`RosHarness`; returns the response.

    Raises:
        TimeoutError: the service did not appear or did not answer in time.
    """
    client = node.create_client(srv_type, name)
    try:
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"service {name} not available after {timeout_s} s")
        done = threading.Event()
        fut = client.call_async(request)
        fut.add_done_callback(lambda f: done.set())
        if not done.wait(timeout_s):
            raise TimeoutError(f"service {name} did not answer within {timeout_s} s")
        return fut.result()
    finally:
        node.destroy_client(client)


def ros_env(extra: dict | None = None) -> dict:
    """Environment for a child process that must share the tests' DDS domain."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(DOMAIN_ID)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


class RosHarness:
    """A private rclpy context spun by a ``MultiThreadedExecutor`` in a background thread.

    Use as a context manager, or call :meth:`close`. Nodes are created with
    ``context=harness.context`` and added with :meth:`add_node`; :meth:`close`
    calls ``shutdown()`` on nodes that have it (the rt2 node), destroys them, stops
    the executor and shuts the context down, each step with a timeout.

    Args:
        domain_id: DDS domain (default :data:`DOMAIN_ID`).
        num_threads: executor threads (the rt2 node needs >= 3: servo timer, inputs, probes).
    """

    def __init__(self, domain_id: int | None = None, num_threads: int = 6):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID if domain_id is None else domain_id)
        self.executor = MultiThreadedExecutor(num_threads=num_threads, context=self.context)
        self.nodes: list[Node] = []
        self.spin_errors: list[Exception] = []
        self._cleanups: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="ros_harness", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception as e:  # noqa: BLE001
                if self._stop.is_set() or not self.context.ok():
                    return
                # rclpy raises InvalidHandle when a test destroys an entity while the
                # executor waits on it; the next spin_once no longer sees it.
                self.spin_errors.append(e)

    def add_node(self, node: Node) -> Node:
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def make_node(self, name: str, **kwargs) -> Node:
        """A plain node (a test's probe) in this context, spinning."""
        return self.add_node(Node(name, context=self.context, **kwargs))

    def remove_node(self, node: Node) -> None:
        """Shut down (if it can), remove and destroy one node."""
        if hasattr(node, "shutdown"):
            node.shutdown()
        self.executor.remove_node(node)
        if node in self.nodes:
            self.nodes.remove(node)
        node.destroy_node()

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` first thing in :meth:`close` (e.g. stop an :class:`ImageStreamer`)."""
        self._cleanups.append(fn)

    def close(self, timeout_s: float = 5.0) -> None:
        for fn in reversed(self._cleanups):
            try:
                fn()
            except Exception:  # noqa: BLE001
                pass
        for node in list(self.nodes):
            if hasattr(node, "shutdown"):
                try:
                    node.shutdown()
                except Exception:  # noqa: BLE001
                    pass
        self._stop.set()
        self._thread.join(timeout_s)
        try:
            self.executor.shutdown(timeout_sec=timeout_s)
        except Exception:  # noqa: BLE001
            pass
        for node in list(self.nodes):
            try:
                node.destroy_node()
            except Exception:  # noqa: BLE001
                pass
        self.nodes.clear()
        self.context.try_shutdown()

    def __enter__(self) -> "RosHarness":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Collector:
    """Records ``(arrival_monotonic_s, msg)`` for every message on a topic.

    Args:
        node: a spinning node to subscribe on.
        msg_type, topic, qos: as for ``create_subscription`` (default depth 100, reliable).
    """

    def __init__(self, node: Node, msg_type, topic: str, qos: QoSProfile | int = 100):
        self.topic = topic
        self._items: list[tuple[float, object]] = []
        self._cond = threading.Condition()
        self.sub = node.create_subscription(msg_type, topic, self._cb, qos)

    def _cb(self, msg) -> None:
        with self._cond:
            self._items.append((time.monotonic(), msg))
            self._cond.notify_all()

    @property
    def items(self) -> list[tuple[float, object]]:
        with self._cond:
            return list(self._items)

    @property
    def messages(self) -> list:
        return [m for _, m in self.items]

    def clear(self) -> None:
        with self._cond:
            self._items.clear()

    def wait_for(self, pred: Callable[[object], bool], timeout_s: float, start: int = 0):
        """First message (from index ``start``) satisfying ``pred``, or None after ``timeout_s``."""
        end = time.monotonic() + timeout_s
        i = start
        with self._cond:
            while True:
                while i < len(self._items):
                    if pred(self._items[i][1]):
                        return self._items[i][1]
                    i += 1
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def wait_count(self, n: int, timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self._items) >= n, timeout_s)


def make_image_msg(
    height: int = 120,
    width: int = 160,
    encoding: str = "rgb8",
    stamp=None,
    frame_id: str = "camera",
    data: bytes | None = None,
    seed: int = 0,
):
    """A ``sensor_msgs/Image``; ``data`` defaults to a deterministic pattern of the right size."""
    from sensor_msgs.msg import Image

    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "16UC1": 2, "32FC1": 4}.get(encoding, 3)
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width, msg.encoding = height, width, encoding
    msg.step = width * channels
    if data is None:
        rng = np.random.default_rng(seed)
        data = rng.integers(0, 256, size=height * width * channels, dtype=np.uint8).tobytes()
    msg.data = data
    return msg


class ImageStreamer:
    """Publishes camera images at ``rate_hz`` from ``node`` (a camera stand-in).

    Stamps are the node clock at publication. :meth:`pause` / :meth:`resume` model
    a camera that stops; :attr:`factory` may be replaced (e.g. by one making garbage
    frames). :attr:`last_stamp_s` is the stamp of the newest published frame.
    """

    def __init__(
        self,
        node: Node,
        topic: str,
        rate_hz: float = 20.0,
        height: int = 120,
        width: int = 160,
        qos: QoSProfile | None = None,
    ):
        self.node = node
        self.pub = node.create_publisher(
            __import__("sensor_msgs.msg", fromlist=["Image"]).Image, topic, qos or qos_profile_sensor_data
        )
        self.period_s = 1.0 / rate_hz
        base = make_image_msg(height, width)
        self.factory: Callable[[object], object] = lambda stamp: _restamp(base, stamp)
        self.last_stamp_s: float | None = None
        self.published = 0
        self._run = threading.Event()
        self._run.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="image_streamer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._run.is_set():
                now = self.node.get_clock().now()
                try:
                    self.pub.publish(self.factory(now.to_msg()))
                except Exception:  # noqa: BLE001 - context shut down under us
                    if self._stop.is_set() or not self.node.context.ok():
                        return
                    raise
                self.last_stamp_s = now.nanoseconds * 1e-9
                self.published += 1
            self._stop.wait(self.period_s)

    def pause(self) -> float | None:
        """Stop publishing; returns the stamp (s) of the last frame sent."""
        self._run.clear()
        time.sleep(self.period_s * 2)  # let an in-flight publish finish
        return self.last_stamp_s

    def resume(self) -> None:
        self._run.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)


def _restamp(msg, stamp):
    msg.header.stamp = stamp
    return msg


def all_zero(twist_msgs: Iterable) -> bool:
    """True when every ``TwistStamped`` is the zero twist."""
    return all(_is_zero(m) for m in twist_msgs)


def _is_zero(m) -> bool:
    t = m.twist
    return not any((t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z))


def is_zero_twist(m) -> bool:
    """True for the zero ``TwistStamped``."""
    return _is_zero(m)

"""The rt2 node's camera input: ``sensor_msgs/Image`` (and optionally ``CompressedImage``) -> the controller.

Both arrive with sensor-data QoS and a reader history of one (``INPUT_QOS``: only the
newest frame waits while a callback runs, so no backlog builds); each message becomes an RGB ``uint8 (H, W, 3)``
array (:mod:`rt2_ros.ros.conversions`) stamped with ``header.stamp`` (the arrival time
when that is zero, with a warning) and goes to
:meth:`rt2_ros.controller.Controller.on_image`. A message that does not convert or
that the controller refuses is a logged rejection; the previous image stays.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from rt2_ros.config import TopicsConfig
from rt2_ros.controller import Controller
from rt2_ros.ros.conversions import compressed_msg_to_rgb, image_msg_to_rgb, stamp_to_s

__all__ = ["ImageInput", "INPUT_QOS"]

#: The camera's subscription QoS: sensor data (best effort, volatile), keep the newest frame only.
INPUT_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=qos_profile_sensor_data.reliability,
    durability=qos_profile_sensor_data.durability,
)


class ImageInput:
    """Subscribes ``topics.image`` (and ``topics.compressed_image`` when set).

    Args:
        node: the rt2 node.
        topics: the ``topics`` section.
        controller: receives the images.
        now_s: the node clock, s.
        reject: ``(kind, what, reason)`` logs a rejected input (throttled).
        warn_once: ``(key, text)`` logs a warning once per key.
        callback_group: for the subscriptions.

    Attributes:
        latest: the newest accepted image as ``(rgb, header.stamp, header.frame_id)``, or None.
    """

    def __init__(
        self,
        node: Node,
        topics: TopicsConfig,
        controller: Controller,
        now_s: Callable[[], float],
        reject: Callable[[str, str, str], None],
        warn_once: Callable[[str, str], None],
        callback_group=None,
    ):
        self.controller, self.now_s, self._reject, self._warn_once = controller, now_s, reject, warn_once
        self.latest: tuple[np.ndarray, Any, str] | None = None
        qos, g = INPUT_QOS, callback_group
        node.create_subscription(Image, topics.image, self.on_image, qos, callback_group=g)
        if topics.compressed_image:
            node.create_subscription(
                CompressedImage, topics.compressed_image, self.on_compressed, qos, callback_group=g
            )

    def _stamp_s(self, header) -> float:
        s = stamp_to_s(header.stamp)
        if s == 0.0:
            self._warn_once("zero_stamp", "camera images have a zero header.stamp: using the arrival time instead")
            return self.now_s()
        return s

    def _accept(self, rgb: np.ndarray, header) -> None:
        try:
            self.controller.on_image(rgb, self._stamp_s(header), self.now_s())
        except ValueError as e:
            self._reject("image", "image", str(e))
            return
        self.latest = (rgb, header.stamp, header.frame_id)

    def on_image(self, msg: Image) -> None:
        """Subscription callback: a ``sensor_msgs/Image``; an unsupported encoding or a wrong size is logged and ignored."""
        try:
            rgb = image_msg_to_rgb(msg)
        except ValueError as e:
            self._reject("image", "image", str(e))
            return
        self._accept(rgb, msg.header)

    def on_compressed(self, msg: CompressedImage) -> None:
        """Subscription callback: a ``sensor_msgs/CompressedImage``; a frame that does not decode is logged and ignored."""
        try:
            rgb = compressed_msg_to_rgb(msg)
        except ValueError as e:
            self._reject("image", "compressed image", str(e))
            return
        self._accept(rgb, msg.header)

"""A camera and a user in their own process (tests: DDS between processes).

Publishes rgb8 images on /camera/image_raw at 20 Hz (sensor-data QoS) and, once
rt2_node's instruction subscription is matched, one instruction (argv[1]) on
/rt2/instruction; runs for argv[2] seconds (default 20).
"""

import sys
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String


def run(instruction: str, duration_s: float) -> int:
    rclpy.init()
    node = rclpy.create_node("rt2_test_camera")
    cam = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
    instr = node.create_publisher(String, "/rt2/instruction", 10)
    img = Image(height=120, width=160, encoding="rgb8", step=480)
    img.header.frame_id = "camera"
    img.data = np.random.default_rng(0).integers(0, 256, 120 * 160 * 3, dtype=np.uint8).tobytes()
    sent = False
    end = time.monotonic() + duration_s
    try:
        while time.monotonic() < end:
            img.header.stamp = node.get_clock().now().to_msg()
            cam.publish(img)
            if not sent and instr.get_subscription_count() > 0 and cam.get_subscription_count() > 0:
                time.sleep(0.2)  # let the matched reader settle
                instr.publish(String(data=instruction))
                sent = True
                print("instruction sent", flush=True)
            time.sleep(0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0 if sent else 3


if __name__ == "__main__":
    sys.exit(
        run(
            sys.argv[1] if len(sys.argv) > 1 else "pick up the red block",
            float(sys.argv[2]) if len(sys.argv) > 2 else 20.0,
        )
    )

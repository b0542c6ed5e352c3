"""The rclpy shell: the rt2 node, its parameters, message conversions, MoveIt Servo client, markers, gripper, homing and entry helper."""

"""rt2_ros: an RT-2-style vision-language-action model in a ROS 2 control loop.

The package splits into a ROS-free core (``action_tokenizer``, ``motion``,
``safety``, ``episode``, ``controller``, ``policies``, ``config``), which imports
neither rclpy nor torch, and thin rclpy shells (``node``, ``sim``).

Keep this file free of imports: in a colcon build, rosidl_generator_py installs
its generated ``rt2_ros/msg`` into the same Python package.
"""

__version__ = "0.1.0"

"""rt2_ros: an RT-2-style vision-language-action model in a ROS 2 control loop.

The package splits into a ROS-free core (``action_tokenizer``, ``motion``,
``safety``, ``episode``, ``controller``, ``policies``, ``config``), which imports
neither rclpy nor torch, and thin rclpy shells (``node``, ``sim``).

Keep this file free of imports: in a colcon build, rosidl_generator_py installs
its generated ``rt2_ros/msg`` into the same Python package.
"""

__version__ = "0.1.0"

# The source tree and a colcon install both hold an rt2_ros directory; only the
# install has the generated messages (rt2_ros.msg). Let the package span both, so
# `import rt2_ros.msg` works whichever copy comes first on sys.path (stdlib pkgutil).
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

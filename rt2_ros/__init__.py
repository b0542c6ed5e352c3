"""rt2_ros: an RT-2-style vision-language-action model in a ROS 2 control loop; the top-level modules are the ROS-free, torch-free core."""

__version__ = "0.1.0"

# The source tree and a colcon install both hold an rt2_ros directory; only the
# install has the generated messages (rt2_ros.msg). Let the package span both, so
# `import rt2_ros.msg` works whichever copy comes first on sys.path (stdlib pkgutil).
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

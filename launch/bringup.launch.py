"""Bring up the rt2 node (and RViz): ``ros2 launch rt2_ros bringup.launch.py``.

Examples::

    ros2 launch rt2_ros bringup.launch.py model_path:=/models/my_rt2 camera_topic:=/camera/color/image_raw
    ros2 launch rt2_ros bringup.launch.py backend:=remote server_url:=ws://gpu-box:8000 rviz:=false
    ros2 launch rt2_ros bringup.launch.py params_file:=/path/to/my_rt2.yaml use_sim_time:=true

Every parameter lives in the params file (default: the package's ``config/rt2.yaml``);
the launch arguments below override single parameters, and an empty argument leaves
the file's value alone. Without ``ros2 launch`` the same node starts with::

    python -m rt2_ros.ros.node --ros-args --params-file config/rt2.yaml -p policy.model_path:=/models/my_rt2

Nothing outlives a failed launch: with ``rviz:=true`` RViz is looked up before any
process starts (not installed: a clear error, nothing started), and when ``rt2_node``
exits while the launch runs (a bad parameter, a missing model) the launch ends at once
with a non-zero status after the node's own error message.

Only the standard ``launch`` / ``launch_ros`` API is used.
"""

from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import ExecutableInPackage, FindPackageShare

from launch import LaunchDescription

# Launch argument -> the rt2_node parameter it overrides (when not empty).
PARAM_ARGS = {
    "backend": "policy.backend",
    "model_path": "policy.model_path",
    "server_url": "policy.server_url",
    "openpi_profile": "openpi.profile",
    "camera_topic": "topics.image",
    "twist_topic": "topics.twist",
    "servo_namespace": "servo.namespace",
    "planning_frame": "frames.planning_frame",
    "command_frame": "frames.command_frame",
    "ee_frame": "frames.ee_frame",
}

#: Launch-argument names of backends -> ``policy.backend`` values (the expert is a MODULE:CALLABLE).
BACKENDS = {"scripted": "rt2_ros.sim.expert:make_policy"}

ARGUMENTS = [
    (
        "backend",
        "",
        "policy backend: local (the model in a child process the node supervises) | remote (rt2-ros serve) | openpi (an openpi "
        "policy server: docs/openpi.md) | scripted (the sim's expert) | MODULE:CALLABLE; empty = params file",
        None,
    ),
    ("model_path", "", "local backend: checkpoint directory (save_pretrained layout)", None),
    ("server_url", "", "remote / openpi backend: inference server URL, e.g. ws://127.0.0.1:8000", None),
    ("openpi_profile", "", "openpi backend: libero | droid | custom; empty = params file", None),
    ("camera_topic", "", "sensor_msgs/Image input topic", None),
    (
        "twist_topic",
        "",
        "TwistStamped output; empty = <servo_namespace>/delta_twist_cmds when "
        "servo_namespace is given, else the params file",
        None,
    ),
    ("servo_namespace", "", "MoveIt Servo node (its ~/services and ~/status), e.g. /servo_node", None),
    ("planning_frame", "", "frame of the workspace box and end-effector pose", None),
    ("command_frame", "", "frame_id of the twists sent to Servo", None),
    ("ee_frame", "", "end-effector frame", None),
    (
        "params_file",
        PathJoinSubstitution([FindPackageShare("rt2_ros"), "config", "rt2.yaml"]),
        "rt2 parameters file",
        None,
    ),
    ("rviz", "true", "start RViz with rviz/rt2.rviz", ["true", "false"]),
    (
        "rviz_config",
        PathJoinSubstitution([FindPackageShare("rt2_ros"), "rviz", "rt2.rviz"]),
        "RViz configuration",
        None,
    ),
    ("use_sim_time", "false", "use /clock (simulation time)", ["true", "false"]),
]


def _require_rviz(context) -> None:
    """With ``rviz:=true``, fail before anything starts when rviz2 is not installed."""
    try:
        ExecutableInPackage(package="rviz2", executable="rviz2").perform(context)
    except Exception as e:  # noqa: BLE001 - PackageNotFoundError / SubstitutionFailure: same answer
        raise RuntimeError(
            f"rviz:=true but RViz is not available ({e}): install rviz2 (apt install ros-$ROS_DISTRO-rviz2) "
            "or pass rviz:=false; nothing was started"
        ) from None


def _on_rt2_exit(event, context):
    """rt2_node exited while the launch runs: end the launch at once, non-zero unless the
    node exited 0, which it does only when stopped by SIGINT / SIGTERM (Ctrl-C in a terminal
    reaches the whole process group, and on a busy machine the node can be gone before
    launch has handled its own SIGINT: that is a clean stop, not an error)."""
    if context.is_shutdown:
        return None  # the launch is ending and stopping its processes: expected
    if event.returncode == 0:
        return [EmitEvent(event=Shutdown(reason="rt2_node was stopped"))]
    # An exception here ends ros2 launch with status 1, stopping every other process.
    raise RuntimeError(f"rt2_node exited with code {event.returncode}; its error is printed above (and in ROS_LOG_DIR)")


def _nodes(context):
    if LaunchConfiguration("rviz").perform(context) == "true":
        _require_rviz(context)
    overrides = {}
    for arg, param in PARAM_ARGS.items():
        value = LaunchConfiguration(arg).perform(context)
        if value != "":
            overrides[param] = value
    if "policy.backend" in overrides:
        overrides["policy.backend"] = BACKENDS.get(overrides["policy.backend"], overrides["policy.backend"])
    if "servo.namespace" in overrides and "topics.twist" not in overrides:
        overrides["topics.twist"] = overrides["servo.namespace"].rstrip("/") + "/delta_twist_cmds"
    # Every overridden parameter is a string: keep it one (no YAML guessing of "123" or "true").
    overrides = {k: ParameterValue(v, value_type=str) for k, v in overrides.items()}
    use_sim_time = LaunchConfiguration("use_sim_time").perform(context) == "true"
    rt2 = Node(
        package="rt2_ros",
        executable="rt2_node",
        name="rt2_node",
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), overrides, {"use_sim_time": use_sim_time}],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rt2_rviz",
        output="log",
        arguments=["-d", LaunchConfiguration("rviz_config")],
        parameters=[{"use_sim_time": use_sim_time}],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return [RegisterEventHandler(OnProcessExit(target_action=rt2, on_exit=_on_rt2_exit)), rt2, rviz]


def generate_launch_description():
    args = []
    for name, default, description, choices in ARGUMENTS:
        kwargs = {"default_value": default, "description": description}
        if choices is not None:
            kwargs["choices"] = choices
        args.append(DeclareLaunchArgument(name, **kwargs))
    return LaunchDescription(args + [OpaqueFunction(function=_nodes)])

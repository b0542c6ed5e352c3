"""The closed-loop demo for ROS users: ``ros2 launch rt2_ros sim.launch.py``.

Starts the simulation (``rt2_sim``: PyBullet Panda, camera, MoveIt Servo stand-in at
``/servo_node``), the rt2 node (``rt2_node``, parameters ``config/rt2.yaml`` then
``config/sim.yaml``) and the episode runner (``rt2_demo --attach``), which runs
``episodes`` episodes, prints the per-episode table, writes the contact sheet and the
trajectory plot into ``out``, and then ends the launch. What ``make demo`` does, with
the nodes under ``ros2 launch`` (one policy per launch).

Examples::

    ros2 launch rt2_ros sim.launch.py
    ros2 launch rt2_ros sim.launch.py backend:=local model_path:=/tmp/tiny episodes:=3 max_steps:=20 \
        terminate_debounce:=21
    ros2 launch rt2_ros sim.launch.py record:=true out:=/tmp/rt2_demo rviz:=true
    ros2 launch rt2_ros sim.launch.py backend:=remote server_url:=ws://127.0.0.1:8000

The launch ends when the episode runner is done, with its exit status. Nothing outlives
it: arguments are checked (and RViz looked up when ``rviz:=true``) before any process
starts, and when ``rt2_sim`` or ``rt2_node`` exits early (a bad parameter, a missing
model, an unreachable server) the launch ends at once with a non-zero status, after the
node's own error message.

Without ``ros2 launch`` (this machine has no ``launch``): ``rt2-ros demo`` starts the
same nodes as processes (``make demo``).

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

#: Launch-argument names of backends -> ``policy.backend`` values (the expert is a MODULE:CALLABLE).
BACKENDS = {"scripted": "rt2_ros.sim.expert:make_policy"}

ARGUMENTS = [
    (
        "backend",
        "scripted",
        "policy backend of the rt2 node: scripted (the sim's expert) | local (a model)",
        ["scripted", "local", "remote"],
    ),
    ("model_path", "", "local backend: model directory (e.g. made by rt2-ros make-test-model)", None),
    ("server_url", "", "remote backend: inference server URL (rt2-ros serve), e.g. ws://127.0.0.1:8000", None),
    ("episodes", "5", "episodes to run", None),
    ("max_steps", "", "episode step limit; empty = config/sim.yaml", None),
    (
        "terminate_debounce",
        "",
        "consecutive terminate tokens that end an episode; empty = params file "
        "(a random-weight test model: set it above max_steps)",
        None,
    ),
    (
        "seed",
        "0",
        "layout seed: every episode resets the simulation to the next seed, so episode k uses seed + k",
        None,
    ),
    ("out", "out/demo", "output directory (report, contact sheet, trajectory plot)", None),
    ("record", "false", "record every episode to MCAP in <out>/mcap", ["true", "false"]),
    (
        "params_file",
        PathJoinSubstitution([FindPackageShare("rt2_ros"), "config", "rt2.yaml"]),
        "rt2 parameters file",
        None,
    ),
    (
        "sim_params_file",
        PathJoinSubstitution([FindPackageShare("rt2_ros"), "config", "sim.yaml"]),
        "simulation parameters file (sections rt2_node, rt2_sim, servo_node)",
        None,
    ),
    ("rviz", "false", "start RViz with rviz/rt2.rviz", ["true", "false"]),
]


def _section(path: str, node: str) -> dict:
    """The ``node`` section of a ROS parameters file, flattened to dotted names."""
    import yaml

    with open(path) as f:
        data = yaml.safe_load(f) or {}
    sec = (data.get(node) or data.get("/" + node) or {}).get("ros__parameters") or {}

    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    return flat(sec)


def _int_arg(get, name: str, minimum: int) -> int:
    """The launch argument ``name`` as an integer >= ``minimum``; a clear error naming it otherwise."""
    text = get(name)
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ValueError(f"launch argument {name}:={text!r} must be an integer >= {minimum}; nothing was started")
    return value


def _require_rviz(context) -> None:
    """With ``rviz:=true``, fail before anything starts when rviz2 is not installed."""
    try:
        ExecutableInPackage(package="rviz2", executable="rviz2").perform(context)
    except Exception as e:  # noqa: BLE001 - PackageNotFoundError / SubstitutionFailure: same answer
        raise RuntimeError(
            f"rviz:=true but RViz is not available ({e}): install rviz2 (apt install ros-$ROS_DISTRO-rviz2) "
            "or pass rviz:=false; nothing was started"
        ) from None


def _on_exit(name: str, *, ends_launch: bool = False):
    """An ``OnProcessExit`` callback: the episode runner (``ends_launch``) ends the launch with
    its status; any other node that exits while the launch runs ends it at once, non-zero."""

    def handler(event, context):
        if context.is_shutdown:
            return None  # the launch is ending and stopping its processes: expected
        code = event.returncode
        if ends_launch and code == 0:
            return [EmitEvent(event=Shutdown(reason=f"{name} finished"))]
        what = "finished with" if ends_launch else "exited early with"
        # An exception here ends ros2 launch with status 1, stopping every other process.
        raise RuntimeError(f"{name} {what} exit code {code}; its error is printed above (and in ROS_LOG_DIR)")

    return handler


def _nodes(context):
    get = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    # Everything that can fail is checked before the first process starts.
    sim_file = get("sim_params_file")
    backend = get("backend")
    episodes = _int_arg(get, "episodes", 1)
    seed = _int_arg(get, "seed", 0)
    if get("rviz") == "true":
        _require_rviz(context)
    # rclpy lets a file's node-specific section win over wildcard values, and launch_ros
    # passes dict parameters as wildcards: so the sim file's sections are merged here with
    # the launch arguments on top, and passed as one dict after the rt2 file.
    rt2_params = _section(sim_file, "rt2_node")
    rt2_params["policy.backend"] = ParameterValue(BACKENDS.get(backend, backend), value_type=str)
    for arg, param in (("model_path", "policy.model_path"), ("server_url", "policy.server_url")):
        if get(arg):
            rt2_params[param] = ParameterValue(get(arg), value_type=str)
    for arg, param in (("max_steps", "control.max_steps"), ("terminate_debounce", "control.terminate_debounce")):
        if get(arg):
            rt2_params[param] = ParameterValue(_int_arg(get, arg, 1), value_type=int)
    # The sim process holds two nodes, rt2_sim and servo_node; their parameter names do not
    # overlap (servo_node's all start with moveit_servo.), so one dict serves both.
    sim_params = {**_section(sim_file, "rt2_sim"), **_section(sim_file, "servo_node"), "seed": seed}
    # No name= here: a name remap would rename both nodes of the process.
    sim = Node(
        package="rt2_ros",
        executable="rt2_sim",
        output="screen",
        parameters=[sim_params],
    )
    rt2 = Node(
        package="rt2_ros",
        executable="rt2_node",
        name="rt2_node",
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), rt2_params],
    )
    demo_args = ["--attach", "--policies", backend, "--episodes", str(episodes), "--out", get("out")]
    if get("record") == "true":
        demo_args.append("--record")
    demo = Node(
        package="rt2_ros",
        executable="rt2_demo",
        name="rt2_demo",
        output="screen",
        arguments=demo_args,
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rt2_rviz",
        output="log",
        arguments=["-d", PathJoinSubstitution([FindPackageShare("rt2_ros"), "rviz", "rt2.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    # The episode runner ends the launch when the report is written; the simulation or the
    # rt2 node dying first ends it at once (non-zero), instead of the runner waiting for them.
    handlers = [
        RegisterEventHandler(OnProcessExit(target_action=demo, on_exit=_on_exit("rt2_demo", ends_launch=True))),
        RegisterEventHandler(OnProcessExit(target_action=sim, on_exit=_on_exit("rt2_sim"))),
        RegisterEventHandler(OnProcessExit(target_action=rt2, on_exit=_on_exit("rt2_node"))),
    ]
    return handlers + [sim, rt2, demo, rviz]


def generate_launch_description():
    args = []
    for name, default, description, choices in ARGUMENTS:
        kwargs = {"default_value": default, "description": description}
        if choices is not None:
            kwargs["choices"] = choices
        args.append(DeclareLaunchArgument(name, **kwargs))
    return LaunchDescription(args + [OpaqueFunction(function=_nodes)])

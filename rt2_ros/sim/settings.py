"""The simulation's parameters: the schemas of its nodes and ``config/sim.yaml``. ROS-free.

:class:`SimNodeParams` (node ``rt2_sim``) and :class:`ServoNodeParams` (node
``servo_node``, declared under ``moveit_servo.``) are the schemas the sim nodes declare
as typed, ranged, described ROS parameters (:mod:`rt2_ros.ros.params`).

``config/sim.yaml`` is a ROS 2 parameters file with one section per node (``rt2_node``,
``rt2_sim``, ``servo_node``); for code that runs without ROS (the in-process loop, the
demo) its sections become plain dicts here, the ``rt2_node`` one flattened to dotted
names that :func:`rt2_ros.config.load_config` takes as overrides.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from rt2_ros.config import ConfigError, RT2Config, default_config_path, load_config

__all__ = [
    "SimSettings",
    "SimNodeParams",
    "ServoNodeParams",
    "SERVO_PARAM_PREFIX",
    "default_sim_config_path",
    "load_sim_settings",
    "flatten",
    "CameraParams",
    "GripperActionParams",
    "SimTopicsParams",
    "SimServoParams",
    "ServoScaleParams",
]

#: ``servo_node`` declares :class:`ServoNodeParams` under this prefix, as moveit_servo does.
SERVO_PARAM_PREFIX = "moveit_servo."


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CameraParams(_Params):
    """``rt2_sim``'s ``camera.*``: the simulated camera."""

    rate_hz: float = Field(10.0, gt=0, description="camera frames per second [Hz]")
    width: int = Field(224, ge=1, description="image width [px]")
    height: int = Field(224, ge=1, description="image height [px]")
    frame_id: str = Field("camera_color_optical_frame", description="header.frame_id of the images")
    shadows: bool = Field(False, description="render shadows (doubles the render time)")


class SimTopicsParams(_Params):
    """``rt2_sim``'s ``topics.*``: the topics the simulation publishes and reads."""

    image: str = Field("/camera/image_raw", description="sensor_msgs/Image rgb8 out")
    camera_info: str = Field("/camera/camera_info", description="sensor_msgs/CameraInfo out")
    joint_states: str = Field("/joint_states", description="sensor_msgs/JointState out")
    ee_pose: str = Field("/rt2/ee_pose", description="geometry_msgs/PoseStamped of panda_hand in panda_link0 out")
    gripper: str = Field("/rt2/gripper_command", description="std_msgs/Float64 in [0 closed, 1 open] in")
    instruction: str = Field("/rt2/instruction", description="std_msgs/String instruction in (the task to check)")
    ground_truth: str = Field("/sim/ground_truth", description="std_msgs/String JSON ground truth out")


class GripperActionParams(_Params):
    """The sim's ``control_msgs/action/GripperCommand`` server (as ros2_controllers'
    GripperActionController on ``panda_finger_joint1``)."""

    name: str = Field(
        "/rt2/gripper_command",
        description="GripperCommand action name (served when control_msgs is importable); empty = off",
    )
    goal_tolerance_m: float = Field(0.002, gt=0, description="a goal is reached within this distance [m]")
    stall_timeout_s: float = Field(0.5, gt=0, description="fingers moving less than 0.5 mm in this time stall [s]")
    allow_stalling: bool = Field(
        False, description="a stalled goal succeeds (true) or is aborted (false, GripperActionController's default)"
    )


class SimServoParams(_Params):
    """``rt2_sim``'s ``servo.*``: the MoveIt Servo stand-in's name and interface generation."""

    namespace: str = Field("/servo_node", description="full name of the MoveIt Servo stand-in node")
    distro: Literal["auto", "jazzy", "humble"] = Field(
        "auto", description="Servo interface generation (auto: jazzy with moveit_msgs, else humble)"
    )


class SimNodeParams(_Params):
    """Parameters of the ``rt2_sim`` node (same names as ``config/sim.yaml``)."""

    seed: int = Field(0, description="seed of the initial layout; every reset uses the next one (seed + 1, ...)")
    blocks: list[str] = Field(["red", "green", "blue"], description="colours of the blocks on the table")
    camera: CameraParams = CameraParams()
    topics: SimTopicsParams = SimTopicsParams()
    reset_service: str = Field("/sim/reset", description="std_srvs/Trigger: new layout, arm home, gripper open")
    servo: SimServoParams = SimServoParams()
    gripper_action: GripperActionParams = GripperActionParams()


class ServoScaleParams(_Params):
    """``moveit_servo.scale.*``: the scale of unitless commands."""

    linear: float = Field(0.4, description="scale of unitless linear input [m/s]")
    rotational: float = Field(0.8, description="scale of unitless angular input [rad/s]")
    joint: float = Field(0.5, description="scale of unitless JointJog input [rad/s]")


class ServoNodeParams(_Params):
    """MoveIt Servo's parameters the stand-in reads (names of moveit_servo's
    ``servo_parameters.yaml``, declared under :data:`SERVO_PARAM_PREFIX`)."""

    planning_frame: str = Field("panda_link0", description="frame the Jacobian is expressed in")
    ee_frame: str = Field("panda_hand", description="the controlled frame")
    robot_link_command_frame: str = Field("panda_link0", description="frame of twists with an empty frame_id (Humble)")
    publish_period: float = Field(0.034, gt=0, description="Servo loop period [s]")
    incoming_command_timeout: float = Field(0.1, gt=0, description="a twist this old is stale: halt [s]")
    command_in_type: Literal["speed_units", "unitless"] = Field(
        "speed_units", description="speed_units: m/s and rad/s; unitless: [-1, 1] times scale"
    )
    scale: ServoScaleParams = ServoScaleParams()
    lower_singularity_threshold: float = Field(
        17.0, gt=0, description="Jacobian condition number where deceleration starts"
    )
    hard_stop_singularity_threshold: float = Field(
        30.0, gt=0, description="Jacobian condition number where the arm halts"
    )
    leaving_singularity_threshold_multiplier: float = Field(
        2.0, description="softer deceleration when moving away from a singularity"
    )
    joint_limit_margin: float = Field(0.1, ge=0, description="margin to the joint position limits [rad]")
    halt_all_joints_in_cartesian_mode: bool = Field(True, description="halt every joint when one reaches its margin")
    halt_all_joints_in_joint_mode: bool = Field(
        True, description="JointJog: halt every joint when one reaches its margin"
    )
    cartesian_command_in_topic: str = Field("~/delta_twist_cmds", description="geometry_msgs/TwistStamped in")
    joint_command_in_topic: str = Field(
        "~/delta_joint_cmds", description="control_msgs/JointJog in (when control_msgs is importable)"
    )
    status_topic: str = Field("~/status", description="Servo status out")


def default_sim_config_path() -> Path:
    """``config/sim.yaml`` next to the ``config/rt2.yaml`` in use."""
    return default_config_path().parent / "sim.yaml"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@dataclasses.dataclass
class SimSettings:
    """The sections of ``config/sim.yaml``.

    Attributes:
        path: the file.
        rt2_overrides: dotted rt2 parameters (e.g. ``{"control.max_steps": 60}``).
        sim: dotted ``rt2_sim`` parameters.
        servo: dotted ``servo_node`` parameters (``moveit_servo.`` prefix removed).
    """

    path: Path
    rt2_overrides: dict[str, Any]
    sim: dict[str, Any]
    servo: dict[str, Any]

    def rt2_config(self, rt2_path: str | Path | None = None, extra: dict[str, Any] | None = None) -> RT2Config:
        """``config/rt2.yaml`` (or ``rt2_path``) with this file's overrides and ``extra`` on top.

        Raises:
            ConfigError: invalid values.
        """
        return load_config(rt2_path, {**self.rt2_overrides, **(extra or {})})


def _section(data: dict, name: str) -> dict:
    for key in (name, "/" + name):
        sec = data.get(key)
        if isinstance(sec, dict):
            return sec.get("ros__parameters") or {}
    return {}


def load_sim_settings(path: str | Path | None = None) -> SimSettings:
    """Read ``config/sim.yaml``.

    Raises:
        ConfigError: unreadable file or not a mapping.
    """
    path = Path(path) if path is not None else default_sim_config_path()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    servo = {k.removeprefix("moveit_servo."): v for k, v in flatten(_section(data, "servo_node")).items()}
    return SimSettings(path, flatten(_section(data, "rt2_node")), flatten(_section(data, "rt2_sim")), servo)

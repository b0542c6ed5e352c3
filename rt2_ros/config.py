"""Configuration: one schema for ``config/rt2.yaml``, the core and the node's ROS parameters.

The schema is a pydantic model (validation, types, ranges and descriptions in one
place; pydantic is a well-kept library, so we do not hand-roll validation). The node
walks it to declare typed ROS parameters with ranges and descriptions
(:func:`flat_fields`) and rebuilds a validated :class:`RT2Config` from their values
(:func:`config_from_flat`). ROS-free.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "RT2Config",
    "ConfigError",
    "load_config",
    "default_config_path",
    "flat_fields",
    "config_to_flat",
    "config_from_flat",
    "MODEL_SETTINGS_FILE",
    "with_model_settings",
    "ActionConfig",
    "PolicyConfig",
    "ControlConfig",
    "FramesConfig",
    "SafetyConfig",
    "GripperConfig",
    "TopicsConfig",
    "ServoConfig",
    "ResetConfig",
    "OpenPIConfig",
]

#: In a model directory written by ``rt2-ros train``: the ``action`` section and
#: ``policy.prompt`` the model was trained with (ROS parameters-file form).
MODEL_SETTINGS_FILE = "rt2_ros_policy.yaml"


class ConfigError(ValueError):
    """A parameter file or value that does not validate; the message names each bad field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ActionConfig(_Section):
    """The ``action`` section: how model output decodes into actions (format, bins, bounds in m / rad / gripper units, chunk horizon)."""

    format: Literal["rt2", "openvla", "int_text", "fast"] = Field(
        "rt2",
        description="rt2: 8 integers in 256 bins; openvla: 7 token ids; int_text: 7 integers in [0, bins] "
        "(VLA-0); fast: DCT + BPE tokens (FAST)",
    )
    horizon: int = Field(1, ge=1, le=64, description="actions per model output (a chunk); 1 = one per inference")
    bins: int = Field(256, ge=2, le=4096, description="bins per continuous dimension (RT-2: 256; int_text: 1000)")
    decode_to: Literal["center", "edge"] = Field("center", description="decode bins to centres or RT-1 edges")
    terminate_token: int = Field(0, ge=0, description="first-field value that means terminate (RT-1: 0)")
    continue_token: int = Field(1, ge=0, description="first-field value for keep going (RT-1: 1)")
    rotation_convention: Literal["rpy", "rotvec"] = Field(
        "rpy", description="rotation delta as roll-pitch-yaw (extrinsic xyz) or rotation vector"
    )
    low: list[float] = Field(
        [-0.05, -0.05, -0.05, -0.25, -0.25, -0.25, 0.0],
        description="lower bounds dx dy dz [m] drx dry drz [rad] gripper",
    )
    high: list[float] = Field(
        [0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0],
        description="upper bounds dx dy dz [m] drx dry drz [rad] gripper",
    )
    token_pattern: str = Field(
        "", description="RT-2 action token spelling with {k} for the bin, e.g. <act_{k}>; empty = auto-detect"
    )
    openvla_vocab_size: int = Field(32000, ge=257, description="OpenVLA tokenizer vocab size without padding")
    unnorm_key: str = Field("", description="OpenVLA dataset statistics key; empty = the only one")
    statistics_path: str = Field("", description="dataset_statistics.json path; empty = in model_path")
    fast_tokenizer_path: str = Field("", description="FAST BPE tokenizer.json (or its directory) of the checkpoint")
    fast_scale: float = Field(10.0, gt=0.0, le=1e6, description="FAST DCT coefficient scale")
    fast_min_token: int = Field(0, ge=-100000, le=100000, description="FAST smallest quantised DCT coefficient")
    fast_vocab_size: int = Field(1024, ge=1, le=1000000, description="FAST BPE vocabulary size")
    fast_id_offset: int = Field(0, ge=0, description="model id of FAST token 0 (or, reversed, the id it is taken from)")
    fast_id_reversed: bool = Field(False, description="FAST id = fast_id_offset - model id (pi0-FAST)")

    @model_validator(mode="after")
    def _check(self) -> "ActionConfig":
        if len(self.low) != 7 or len(self.high) != 7:
            raise ValueError("action.low and action.high need 7 values each")
        if any(h <= lo for lo, h in zip(self.low, self.high)):
            raise ValueError("action.high must exceed action.low in every dimension")
        if self.terminate_token >= self.bins or self.continue_token >= self.bins:
            raise ValueError("terminate_token and continue_token must be < bins")
        if self.terminate_token == self.continue_token:
            raise ValueError("terminate_token and continue_token must differ")
        return self


class PolicyConfig(_Section):
    """The ``policy`` section: which backend runs the model, where, and how."""

    backend: str = Field(
        "local",
        description="local | remote | openpi (an openpi policy server) | MODULE:CALLABLE (CALLABLE(cfg) returns the Policy)",
        json_schema_extra={"constraints": "one of: local, remote, openpi, or MODULE:CALLABLE"},
    )
    model_path: str = Field("", description="local checkpoint directory")
    prompt: Literal["rt2", "openvla", "cot"] = Field("rt2", description="prompt template")
    dtype: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="model dtype")
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:N")
    num_threads: int = Field(0, ge=0, le=256, description="torch CPU threads, 0 = default")
    trust_remote_code: bool = Field(
        False, description="run model code shipped in the checkpoint (OpenVLA loads natively without it)"
    )
    server_url: str = Field("ws://127.0.0.1:8000", description="remote inference server URL")
    api_key_env: str = Field("RT2_API_KEY", description="environment variable with the server API key")
    timeout_s: float = Field(1.0, gt=0.0, le=60.0, description="remote reply timeout [s]")
    process: Literal["child", "in_process"] = Field(
        "child",
        description="local backend: child (the model in a supervised child process) | in_process (in the node)",
    )
    child_start_timeout_s: float = Field(
        120.0, gt=0.0, le=3600.0, description="local child: longest wait for the model to load [s]"
    )
    child_hang_timeout_s: float = Field(
        10.0, gt=0.0, le=3600.0, description="local child: no reply for this long while asked = hung, restart [s]"
    )
    max_failed_steps: int = Field(
        50,
        ge=0,
        le=1000000,
        description="steps in a row whose policy call failed (server unreachable, timeout, child down) before the "
        "episode ends as a fault; 0 = never",
    )

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        module, sep, attr = v.partition(":")
        if v in ("local", "remote", "openpi") or (sep and module and attr and " " not in v):
            return v
        raise ValueError(f"backend must be local, remote, openpi or MODULE:CALLABLE, got {v!r}")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v != "cpu" and not (v == "cuda" or (v.startswith("cuda:") and v[5:].isdigit())):
            raise ValueError("device must be cpu, cuda or cuda:N")
        return v


class ControlConfig(_Section):
    """The ``control`` section: control period, servo rate, episode limits, chunk execution."""

    period_s: float = Field(0.2, gt=0.0, le=10.0, description="control period, one model action per period [s]")
    servo_rate_hz: float = Field(50.0, gt=0.0, le=1000.0, description="twist publishing rate [Hz]")
    max_steps: int = Field(100, ge=1, description="episode step limit")
    max_duration_s: float = Field(120.0, gt=0.0, description="episode time limit [s]")
    terminate_debounce: int = Field(1, ge=1, le=100, description="consecutive terminate tokens needed")
    max_instruction_rate_hz: float = Field(
        10.0,
        ge=0.0,
        le=1000.0,
        description="instructions per second accepted on average (bursts of 5 pass); more are refused; 0 = no limit "
        "[Hz]",
    )
    execute: Literal["open_loop", "ensemble"] = Field(
        "open_loop", description="chunks: open_loop (newest chunk wins) or ensemble (ACT temporal ensembling)"
    )
    execute_steps: int = Field(0, ge=0, le=64, description="chunks: actions run from each chunk, 0 = all")
    chunk_threshold: int = Field(
        0, ge=0, le=64, description="chunks: infer the next chunk when at most this many actions remain"
    )
    ensemble_decay: float = Field(
        0.01, ge=0.0, le=10.0, description="ensemble: weight exp(-decay * i) of the i-th oldest chunk"
    )
    no_motion_timeout_s: float = Field(
        0.0,
        ge=0.0,
        le=3600.0,
        description="end the episode (no_motion) when the commanded motion stayed below 1 mm/s, 0.01 rad/s and no "
        "joint above 0.01 rad/s for this long; for policies without terminate; 0 = off [s]",
    )


class FramesConfig(_Section):
    """The ``frames`` section: planning, command and end-effector frames."""

    planning_frame: str = Field("panda_link0", min_length=1, description="frame of the workspace box")
    command_frame: str = Field("panda_link0", min_length=1, description="frame_id of twists to Servo")
    ee_frame: str = Field("panda_hand", min_length=1, description="end-effector frame")


class SafetyConfig(_Section):
    """The ``safety`` section: speed and acceleration caps, the workspace box, watchdogs."""

    max_linear_speed_axis_mps: float = Field(0.25, gt=0.0, le=5.0, description="per-axis linear speed cap [m/s]")
    max_linear_speed_mps: float = Field(0.3, gt=0.0, le=5.0, description="linear speed norm cap [m/s]")
    max_angular_speed_axis_radps: float = Field(1.0, gt=0.0, le=20.0, description="per-axis angular speed cap [rad/s]")
    max_angular_speed_radps: float = Field(1.2, gt=0.0, le=20.0, description="angular speed norm cap [rad/s]")
    max_linear_accel_mps2: float = Field(3.0, gt=0.0, le=100.0, description="linear slew limit [m/s^2]")
    max_angular_accel_radps2: float = Field(12.0, gt=0.0, le=500.0, description="angular slew limit [rad/s^2]")
    workspace_enabled: bool = Field(True, description="clip motion at the workspace box faces")
    workspace_min: list[float] = Field([0.2, -0.5, 0.0], description="box minimum x y z in planning_frame [m]")
    workspace_max: list[float] = Field([0.8, 0.5, 0.8], description="box maximum x y z in planning_frame [m]")
    require_ee_pose: bool = Field(
        True,
        description="no motion while the end-effector pose is unknown; false: move without it, the workspace "
        "box then unchecked (warned)",
    )
    max_reach_m: float = Field(
        1.5, gt=0.0, le=100.0, description="reject end-effector poses further from the planning_frame origin [m]"
    )
    max_image_age_s: float = Field(1.0, gt=0.0, description="stop when the newest image is older [s]")
    camera_loss_grace_s: float = Field(
        2.0,
        ge=0.0,
        le=3600.0,
        description="end the episode as a fault after max_image_age_s plus this without images [s]",
    )
    max_action_age_s: float = Field(1.0, gt=0.0, description="stop when the newest action is older [s]")
    max_pose_age_s: float = Field(0.5, gt=0.0, description="older end-effector pose counts as unknown [s]")
    max_joint_velocity_radps: list[float] = Field(
        [1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.2],
        description="joint-space policies: per-joint speed cap, servo.joint_names order [rad/s]",
    )
    max_joint_accel_radps2: float = Field(
        10.0, gt=0.0, le=1000.0, description="joint-space policies: per-joint slew limit [rad/s^2]"
    )
    joint_position_min: list[float] = Field(
        [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973],
        description="joint-space policies: lower position limits (Panda's URDF) [rad]",
    )
    joint_position_max: list[float] = Field(
        [2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973],
        description="joint-space policies: upper position limits (Panda's URDF) [rad]",
    )
    joint_limit_margin_rad: float = Field(
        0.1, ge=0.0, le=1.0, description="joint-space: a joint this close to a limit may only move away [rad]"
    )

    @model_validator(mode="after")
    def _check(self) -> "SafetyConfig":
        if len(self.workspace_min) != 3 or len(self.workspace_max) != 3:
            raise ValueError("safety.workspace_min and workspace_max need 3 values each")
        if any(h <= lo for lo, h in zip(self.workspace_min, self.workspace_max)):
            raise ValueError("safety.workspace_max must exceed workspace_min on every axis")
        n = len(self.max_joint_velocity_radps)
        if not (len(self.joint_position_min) == len(self.joint_position_max) == n) or n < 1:
            raise ValueError(
                "safety.max_joint_velocity_radps, joint_position_min and joint_position_max need one value per joint"
            )
        if any(not (0 < v <= 20) for v in self.max_joint_velocity_radps):
            raise ValueError("safety.max_joint_velocity_radps must be in (0, 20] rad/s")
        if any(h <= lo for lo, h in zip(self.joint_position_min, self.joint_position_max)):
            raise ValueError("safety.joint_position_max must exceed joint_position_min for every joint")
        return self


class GripperConfig(_Section):
    """The ``gripper`` section: the gripper command output."""

    enabled: bool = Field(True, description="publish gripper commands")
    output: Literal["float64", "action"] = Field("float64", description="std_msgs/Float64 or GripperCommand action")
    binarize: bool = Field(False, description="snap the command to 0/1 at threshold")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="binarisation threshold on the [0, 1] command")
    invert: bool = Field(False, description="model value means closedness")
    open_position_m: float = Field(0.04, ge=0.0, description="GripperCommand position for open [m]")
    closed_position_m: float = Field(0.0, ge=0.0, description="GripperCommand position for closed [m]")
    max_effort_n: float = Field(40.0, ge=0.0, description="GripperCommand max effort [N]")


class TopicsConfig(_Section):
    """The ``topics`` section: every topic the node uses."""

    image: str = Field("/camera/image_raw", description="sensor_msgs/Image input")
    compressed_image: str = Field("", description="sensor_msgs/CompressedImage input; empty = off")
    instruction: str = Field("/rt2/instruction", description="std_msgs/String input")
    ee_pose: str = Field("/rt2/ee_pose", description="geometry_msgs/PoseStamped input when TF is not used")
    twist: str = Field("/servo_node/delta_twist_cmds", description="geometry_msgs/TwistStamped output")
    joint_jog: str = Field(
        "/servo_node/delta_joint_cmds", description="control_msgs/JointJog output (joint-space policies)"
    )
    joint_states: str = Field("/joint_states", description="sensor_msgs/JointState input (joint-space policies)")
    gripper: str = Field("/rt2/gripper_command", description="gripper output topic or action name")
    action: str = Field("/rt2/action", description="rt2_ros/RT2Action output")
    episode: str = Field("/rt2/episode", description="rt2_ros/EpisodeStatus output")
    markers: str = Field("/rt2/markers", description="visualization_msgs/MarkerArray output")
    annotated_image: str = Field("/rt2/annotated_image", description="annotated camera image output")


class ServoConfig(_Section):
    """The ``servo`` section: the MoveIt Servo node and its interface generation."""

    namespace: str = Field("/servo_node", description="MoveIt Servo node name")
    distro: Literal["auto", "jazzy", "humble"] = Field("auto", description="Servo interface generation")
    use_tf: bool = Field(True, description="end-effector pose from TF when tf2_ros is importable")
    joint_names: list[str] = Field(
        [f"panda_joint{i}" for i in range(1, 8)],
        min_length=1,
        description="the arm's joints, in the order of joint-space actions and safety.joint_* lists",
    )


class ResetConfig(_Section):
    """The ``reset`` section: homing for ``/rt2/reset``."""

    home_named_state: str = Field("ready", description="SRDF named state for /rt2/reset")
    planning_group: str = Field("panda_arm", min_length=1, description="MoveIt planning group moved by /rt2/reset")
    home_before_episode: bool = Field(False, description="go home before every episode")
    reset_service: str = Field("/sim/reset", description="std_srvs/Trigger fallback reset service")


class OpenPIConfig(_Section):
    """``policy.backend: openpi``: the profile (see :mod:`rt2_ros.remote.openpi_profile`).

    A preset (``libero``, ``droid``) fixes every field but ``replan_steps``; the other
    fields apply to ``profile: custom`` only (their defaults are LIBERO's values).
    """

    profile: Literal["libero", "droid", "rt2_ros", "custom"] = Field(
        "libero", description="libero | droid | rt2_ros (rt2-ros serve --protocol openpi) | custom"
    )
    replan_steps: int = Field(
        0, ge=0, le=64, description="actions executed per chunk before the next request; 0 = the profile's (5, 8)"
    )
    action_space: Literal["ee_delta", "joint_velocity"] = Field("ee_delta", description="custom: action space")
    image_key: str = Field("observation/image", description="custom: request key of the camera image")
    wrist_image_key: str = Field("observation/wrist_image", description="custom: wrist image key (sent black); ''=none")
    image_height: int = Field(224, ge=16, le=2048, description="custom: image height after resize_with_pad [px]")
    image_width: int = Field(224, ge=16, le=2048, description="custom: image width after resize_with_pad [px]")
    state_layout: Literal["eef_pos_axisangle_gripper_qpos", "joint_position_gripper_position", "none"] = Field(
        "eef_pos_axisangle_gripper_qpos", description="custom: what state the request carries"
    )
    state_key: str = Field("observation/state", description="custom: request key of the EE state")
    joint_position_key: str = Field("observation/joint_position", description="custom: joint positions key")
    gripper_position_key: str = Field("observation/gripper_position", description="custom: gripper position key")
    action_dim: int = Field(7, ge=2, le=32, description="custom: action columns used (7 for ee_delta)")
    action_clip: float = Field(1.0, gt=0.0, le=1e6, description="custom: actions clipped to +-this")
    reject_above: float = Field(
        10.0, gt=0.0, le=1e6, description="custom: a chunk with a value beyond +-this is refused"
    )
    position_scale_m: float = Field(0.05, gt=0.0, le=1.0, description="custom: metres per position unit per step [m]")
    rotation_scale_rad: float = Field(
        0.5, gt=0.0, le=3.2, description="custom: radians per rotation unit per step [rad]"
    )
    rotation_convention: Literal["rotvec", "rpy"] = Field("rotvec", description="custom: rotation columns' convention")
    joint_velocity_scale_radps: float = Field(
        3.0, gt=0.0, le=10.0, description="custom: rad/s per joint velocity unit [rad/s]"
    )
    gripper_open_value: float = Field(-1.0, ge=-1e6, le=1e6, description="custom: gripper value meaning open")
    gripper_closed_value: float = Field(1.0, ge=-1e6, le=1e6, description="custom: gripper value meaning closed")
    control_hz: float = Field(20.0, gt=0.0, le=1000.0, description="custom: the policy's control rate [Hz]")


class RT2Config(_Section):
    """All parameters of ``config/rt2.yaml`` (see that file for units and meaning)."""

    action: ActionConfig = ActionConfig()
    policy: PolicyConfig = PolicyConfig()
    control: ControlConfig = ControlConfig()
    frames: FramesConfig = FramesConfig()
    safety: SafetyConfig = SafetyConfig()
    gripper: GripperConfig = GripperConfig()
    topics: TopicsConfig = TopicsConfig()
    servo: ServoConfig = ServoConfig()
    reset: ResetConfig = ResetConfig()
    openpi: OpenPIConfig = OpenPIConfig()

    @model_validator(mode="after")
    def _check_joints(self) -> "RT2Config":
        n = len(self.servo.joint_names)
        if len(self.safety.max_joint_velocity_radps) != n:
            raise ValueError(
                f"servo.joint_names names {n} joints: safety.max_joint_velocity_radps, joint_position_min and "
                "joint_position_max need one value per joint"
            )
        return self


def default_config_path() -> Path:
    """``config/rt2.yaml`` of the source tree, or of the installed share directory."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "config" / "rt2.yaml",):
        if cand.is_file():
            return cand
    try:  # installed by colcon / pip data_files
        from ament_index_python.packages import get_package_share_directory  # type: ignore

        return Path(get_package_share_directory("rt2_ros")) / "config" / "rt2.yaml"
    except Exception:  # noqa: BLE001 - ament index absent or package not installed
        import sys

        return Path(sys.prefix) / "share" / "rt2_ros" / "config" / "rt2.yaml"


def _format_validation_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "invalid rt2_ros configuration: " + "; ".join(parts)


def _ros_params_section(data: Any, path: str) -> dict:
    """Accept both the ROS params-file form ``{node: {ros__parameters: {...}}}`` and plain."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    for v in data.values():
        if isinstance(v, dict) and "ros__parameters" in v:
            return v["ros__parameters"] or {}
    return data


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> RT2Config:
    """Load and validate a parameters file.

    Args:
        path: YAML file (ROS params-file form or plain nested form); default
            :func:`default_config_path`.
        overrides: dotted names to values, e.g. ``{"control.period_s": 0.1}``.

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or out-of-range value.
    """
    path = Path(path) if path is not None else default_config_path()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read config {path}: {e}") from None
    nested = _ros_params_section(data, str(path))
    if overrides:
        flat = dict(config_to_flat(_validate(nested)))
        flat.update(overrides)
        return config_from_flat(flat)
    return _validate(nested)


def _validate(nested: dict) -> RT2Config:
    try:
        return RT2Config.model_validate(nested)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e)) from None


def flat_fields(model: type[BaseModel] = RT2Config, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Yield ``(dotted_name, pydantic FieldInfo, annotation)`` for every leaf parameter."""
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from flat_fields(ann, prefix + name + ".")
        else:
            yield prefix + name, info, ann


def config_to_flat(cfg: RT2Config) -> dict[str, Any]:
    """``{"control.period_s": 0.2, ...}`` for every leaf parameter."""
    out: dict[str, Any] = {}
    for section, sub in cfg:
        for name, value in sub:
            out[f"{section}.{name}"] = value
    return out


def config_from_flat(flat: dict[str, Any]) -> RT2Config:
    """Rebuild a validated config from dotted names (e.g. the node's parameters).

    Raises:
        ConfigError: unknown name or invalid value.
    """
    nested: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        section, _, name = key.partition(".")
        if not name or "." in name:
            raise ConfigError(f"invalid rt2_ros configuration: unknown parameter {key!r}")
        nested.setdefault(section, {})[name] = list(value) if isinstance(value, tuple) else value
    return _validate(nested)


def with_model_settings(cfg: RT2Config) -> tuple[RT2Config, list[str]]:
    """``cfg`` with the codec settings of its local model applied.

    A model trained by ``rt2-ros train`` carries the ``action`` section and
    ``policy.prompt`` it was trained with in ``<policy.model_path>/rt2_ros_policy.yaml``
    (:data:`MODEL_SETTINGS_FILE`). They belong to the model (its output is only
    meaningful with them), so they win over the parameters file: the directory alone is
    enough to run it. Other backends, and model directories without the file, are
    returned unchanged.

    Returns:
        ``(config, names)``: the config to run with and the dotted names that changed.

    Raises:
        ConfigError: the file is unreadable, not YAML, holds other keys, or invalid values.
    """
    if cfg.policy.backend != "local" or not cfg.policy.model_path:
        return cfg, []
    path = Path(cfg.policy.model_path).expanduser() / MODEL_SETTINGS_FILE
    if not path.is_file():
        return cfg, []
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    nested = _ros_params_section(data, str(path))
    model_flat = dict(config_to_flat(_validate({k: v for k, v in nested.items() if k == "action"})))
    wanted = {k: v for k, v in model_flat.items() if k.startswith("action.")}
    prompt = (nested.get("policy") or {}).get("prompt") if isinstance(nested.get("policy"), dict) else None
    if prompt is not None:
        wanted["policy.prompt"] = prompt
    unknown = set(nested) - {"action", "policy"} or set(nested.get("policy") or {}) - {"prompt"}
    if unknown:
        raise ConfigError(f"{path}: only the action section and policy.prompt belong there, not {sorted(unknown)}")
    flat = config_to_flat(cfg)
    changed = sorted(k for k, v in wanted.items() if flat.get(k) != v)
    if not changed:
        return cfg, []
    flat.update(wanted)
    return config_from_flat(flat), changed

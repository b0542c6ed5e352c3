"""How an openpi-served policy sees this robot: observation keys, state, action layout.

openpi's policies are trained per embodiment, and the observation a runtime sends
and the meaning of the ``actions`` it gets back are the runtime's business, not the
protocol's. A :class:`Profile` states both for one embodiment; the presets are read
from openpi's own runtimes and policy transforms (``shared/fixtures/openpi/examples``):

``libero`` (``examples/libero/main.py``, ``src/openpi/policies/libero_policy.py``):
    request ``observation/image`` and ``observation/wrist_image`` (uint8 224 x 224,
    ``image_tools.resize_with_pad``), ``observation/state`` = end-effector position
    (3, m) + axis-angle (3, rad, robosuite's ``quat2axisangle``) + gripper finger
    positions (2, m, ``robot0_gripper_qpos``), ``prompt``; answer ``[H, 7]`` (LiberoOutputs
    keeps 7 dims): robosuite OSC_POSE deltas in [-1, 1] - position scaled by 0.05 m and
    rotation (axis-angle) by 0.5 rad per control step (robosuite's ``osc_pose`` controller
    config ``output_max``), gripper -1 = open, +1 = close (``LIBERO_DUMMY_ACTION =
    [0] * 6 + [-1]``); the first ``replan_steps = 5`` are executed; LIBERO runs at 20 Hz.
``droid`` (``examples/droid/main.py``, ``src/openpi/policies/droid_policy.py``):
    request ``observation/exterior_image_1_left``, ``observation/wrist_image_left``
    (224 x 224, ``resize_with_pad``), ``observation/joint_position`` (7, rad),
    ``observation/gripper_position`` (1, 0 = open .. 1 = closed), ``prompt``; answer
    ``[10, 8]``: 7 joint velocities + gripper position, clipped to [-1, 1], gripper
    binarised at 0.5; ``open_loop_horizon = 8`` executed; DROID runs at 15 Hz
    (``DROID_CONTROL_FREQUENCY``).
``rt2_ros``:
    ``rt2-ros serve --protocol openpi`` with the robot's own ``action`` configuration:
    answers in metres and radians per step (scale 1, roll-pitch-yaw, the server says so
    in its metadata), gripper 1 = open / 0 = closed (``action.low/high[6]`` = 0, 1),
    no state, one action per request unless the served model answers chunks.
``custom``:
    every field from the ``openpi`` parameters.

Absent cameras (this node has one camera, no wrist camera) are sent as black images,
which is how openpi's transforms fill a missing view (``np.zeros_like``).
ROS-free: numpy, scipy and Pillow.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = [
    "Profile",
    "PRESETS",
    "STATE_LAYOUTS",
    "profile_from_config",
    "resize_with_pad",
    "quat_xyzw_to_axisangle",
    "state_arrays",
    "EE_STATE",
    "JOINT_STATE",
]

#: State layouts: LIBERO's (eef pos 3 + axis-angle 3 + finger qpos 2 in one array) and
#: DROID's (joint positions 7 and gripper position 1 under two keys); ``none`` sends none.
EE_STATE = "eef_pos_axisangle_gripper_qpos"
#: DROID's state layout: ``observation/joint_position`` (7) and ``observation/gripper_position`` (1).
JOINT_STATE = "joint_position_gripper_position"
#: Every valid ``Profile.state_layout``: :data:`EE_STATE`, :data:`JOINT_STATE`, or ``"none"``.
STATE_LAYOUTS = (EE_STATE, JOINT_STATE, "none")

#: Franka Hand finger joint travel: each finger opens 0.04 m (robosuite's Panda gripper
#: ``robot0_gripper_qpos`` is the two finger joints, about +0.04 / -0.04 m open).
FINGER_OPEN_M = 0.04


@dataclasses.dataclass(frozen=True)
class Profile:
    """One embodiment's view of an openpi policy (see the module doc for the presets).

    Attributes:
        name: ``libero``, ``droid`` or ``custom``.
        action_space: ``ee_delta`` (end-effector displacement per step, executed as
            twists) or ``joint_velocity`` (joint velocities, executed as JointJog).
        image_key: request key of the camera image.
        wrist_image_key: request key of the wrist image (sent black), "" = none.
        image_height, image_width: size the images are brought to with openpi's
            ``resize_with_pad`` (px).
        state_layout: one of :data:`STATE_LAYOUTS`.
        state_key: request key of the EE state array (``eef_pos_axisangle_gripper_qpos``).
        joint_position_key, gripper_position_key: request keys of the joint layout.
        action_dim: columns of ``actions`` used (the answer may hold more, as pi0's
            padded 32 dims before the output transform; fewer is refused).
        action_clip: every used value is clipped to ``[-action_clip, action_clip]``
            (robosuite's controller input range, DROID's ``np.clip(action, -1, 1)``);
            values beyond ``reject_above`` make the whole chunk rejected.
        reject_above: magnitude above which a value is implausible (not clipped: refused).
        position_scale_m: metres per unit of the position columns (ee_delta).
        rotation_scale_rad: radians per unit of the rotation columns (ee_delta).
        rotation_convention: ``rotvec`` (axis-angle) or ``rpy`` (ee_delta).
        joint_velocity_scale_radps: rad/s per unit of a joint column (joint_velocity).
        gripper_open_value, gripper_closed_value: the answer's gripper value for
            fully open / closed (the last used column).
        replan_steps: actions executed from each chunk before the next request
            (openpi's ``replan_steps`` / ``open_loop_horizon``).
        control_hz: the rate the policy was trained at (one action per period), Hz.
    """

    name: str
    action_space: str
    image_key: str
    wrist_image_key: str
    image_height: int
    image_width: int
    state_layout: str
    state_key: str
    joint_position_key: str
    gripper_position_key: str
    action_dim: int
    action_clip: float
    reject_above: float
    position_scale_m: float
    rotation_scale_rad: float
    rotation_convention: str
    joint_velocity_scale_radps: float
    gripper_open_value: float
    gripper_closed_value: float
    replan_steps: int
    control_hz: float

    def __post_init__(self) -> None:
        if self.action_space not in ("ee_delta", "joint_velocity"):
            raise ValueError(f"openpi.action_space must be ee_delta or joint_velocity, got {self.action_space!r}")
        if not self.image_key:
            raise ValueError("openpi.image_key must name the request key of the camera image")
        if not (16 <= self.image_height <= 2048 and 16 <= self.image_width <= 2048):
            raise ValueError("openpi.image_height / image_width must be in [16, 2048] px")
        if self.state_layout not in STATE_LAYOUTS:
            raise ValueError(f"openpi.state_layout must be one of {STATE_LAYOUTS}, got {self.state_layout!r}")
        if self.state_layout == EE_STATE and not self.state_key:
            raise ValueError(f"openpi.state_key is needed for state_layout {EE_STATE}")
        if self.state_layout == JOINT_STATE and not (self.joint_position_key and self.gripper_position_key):
            raise ValueError(f"openpi.joint_position_key and gripper_position_key are needed for {JOINT_STATE}")
        want = 7 if self.action_space == "ee_delta" else None
        if want is not None and self.action_dim != want:
            raise ValueError(
                f"an ee_delta profile uses 7 action columns (dx dy dz drx dry drz g), got {self.action_dim}"
            )
        if self.action_space == "joint_velocity" and not 2 <= self.action_dim <= 17:
            raise ValueError(f"a joint_velocity profile uses 2..17 columns (joints + gripper), got {self.action_dim}")
        for name in ("action_clip", "reject_above", "position_scale_m", "rotation_scale_rad"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"openpi.{name} must be finite and > 0, got {v}")
        if not (math.isfinite(self.joint_velocity_scale_radps) and self.joint_velocity_scale_radps > 0):
            raise ValueError("openpi.joint_velocity_scale_radps must be finite and > 0")
        if self.reject_above < self.action_clip:
            raise ValueError("openpi.reject_above must be >= action_clip")
        if self.rotation_convention not in ("rotvec", "rpy"):
            raise ValueError(f"openpi.rotation_convention must be rotvec or rpy, got {self.rotation_convention!r}")
        g0, g1 = self.gripper_open_value, self.gripper_closed_value
        if not (math.isfinite(g0) and math.isfinite(g1)) or g0 == g1:
            raise ValueError("openpi.gripper_open_value and gripper_closed_value must be finite and differ")
        if not 1 <= self.replan_steps <= 64:
            raise ValueError(f"openpi.replan_steps must be in [1, 64], got {self.replan_steps}")
        if not (math.isfinite(self.control_hz) and 0 < self.control_hz <= 1000):
            raise ValueError(f"openpi.control_hz must be in (0, 1000], got {self.control_hz}")

    @property
    def joints(self) -> int:
        """Joint columns of a joint_velocity profile (all used columns but the gripper)."""
        return self.action_dim - 1

    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict (what the node logs and checks against server metadata)."""
        return dataclasses.asdict(self)

    # -- answer -> actions ---------------------------------------------------------------
    def check_chunk(self, actions: Any) -> np.ndarray:
        """The used, clipped columns of an ``actions`` answer: ``float64 (H, action_dim)``.

        Raises:
            ValueError: not a float/int array of shape ``(H, >= action_dim)`` with
                ``1 <= H <= 1024``, non-finite values, or a value beyond ``reject_above``
                (the whole chunk is refused: no motion from garbage).
        """
        if not isinstance(actions, np.ndarray) or actions.dtype.kind not in "fiu":
            raise ValueError(f"'actions' must be a numeric array, got {type(actions).__name__}")
        if actions.ndim != 2 or not 1 <= actions.shape[0] <= 1024 or actions.shape[1] < self.action_dim:
            raise ValueError(
                f"'actions' must have shape (H, {self.action_dim}) (H in [1, 1024]), got {tuple(actions.shape)}"
            )
        a = np.asarray(actions[:, : self.action_dim], dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError("'actions' holds NaN or infinite values")
        peak = float(np.max(np.abs(a)))
        if peak > self.reject_above:
            raise ValueError(f"'actions' holds {peak:.3g}, beyond openpi.reject_above {self.reject_above}")
        return np.clip(a, -self.action_clip, self.action_clip)

    def gripper_open_fraction(self, value: float) -> float:
        """The answer's gripper value as an opening in [0, 1] (1 = open)."""
        f = (value - self.gripper_closed_value) / (self.gripper_open_value - self.gripper_closed_value)
        return float(np.clip(f, 0.0, 1.0))

    def ee_delta(self, row: np.ndarray, rotation_convention: str) -> tuple[np.ndarray, np.ndarray]:
        """One ee_delta row -> ``(delta_position m (3,), delta_rotation rad (3,))``, the
        rotation in ``rotation_convention`` (the robot's ``action.rotation_convention``)."""
        dp = row[0:3] * self.position_scale_m
        dr = row[3:6] * self.rotation_scale_rad
        if self.rotation_convention != rotation_convention:
            rot = Rotation.from_rotvec(dr) if self.rotation_convention == "rotvec" else Rotation.from_euler("xyz", dr)
            dr = rot.as_rotvec() if rotation_convention == "rotvec" else rot.as_euler("xyz")
        return dp, dr


def _libero() -> Profile:
    return Profile(
        name="libero",
        action_space="ee_delta",
        image_key="observation/image",
        wrist_image_key="observation/wrist_image",
        image_height=224,
        image_width=224,
        state_layout=EE_STATE,
        state_key="observation/state",
        joint_position_key="",
        gripper_position_key="",
        action_dim=7,
        action_clip=1.0,
        reject_above=10.0,
        position_scale_m=0.05,
        rotation_scale_rad=0.5,
        rotation_convention="rotvec",
        joint_velocity_scale_radps=1.0,
        gripper_open_value=-1.0,
        gripper_closed_value=1.0,
        replan_steps=5,
        control_hz=20.0,
    )


def _droid() -> Profile:
    return Profile(
        name="droid",
        action_space="joint_velocity",
        image_key="observation/exterior_image_1_left",
        wrist_image_key="observation/wrist_image_left",
        image_height=224,
        image_width=224,
        state_layout=JOINT_STATE,
        state_key="",
        joint_position_key="observation/joint_position",
        gripper_position_key="observation/gripper_position",
        action_dim=8,
        action_clip=1.0,
        reject_above=10.0,
        position_scale_m=0.05,
        rotation_scale_rad=0.5,
        rotation_convention="rotvec",
        # DROID's RobotIKSolver: a joint velocity of 1 moves a joint at most
        # max_joint_delta = 0.2 rad per 1/15 s step, i.e. 3 rad/s; the joint-space
        # envelope caps it further (safety.max_joint_velocity_radps).
        joint_velocity_scale_radps=3.0,
        gripper_open_value=0.0,
        gripper_closed_value=1.0,
        replan_steps=8,
        control_hz=15.0,
    )


def _rt2_ros() -> Profile:
    return dataclasses.replace(
        _libero(),
        name="rt2_ros",
        wrist_image_key="",
        state_layout="none",
        state_key="",
        position_scale_m=1.0,
        rotation_scale_rad=1.0,
        rotation_convention="rpy",
        gripper_open_value=1.0,
        gripper_closed_value=0.0,
        replan_steps=64,
        control_hz=5.0,
    )


#: The named presets.
PRESETS = {"libero": _libero, "droid": _droid, "rt2_ros": _rt2_ros}


def profile_from_config(openpi_cfg: Any) -> Profile:
    """The :class:`Profile` of an ``openpi`` config section (:class:`rt2_ros.config.OpenPIConfig`).

    A preset (``libero``, ``droid``) takes its values from :data:`PRESETS`, with only
    ``replan_steps`` overridable (0 = the preset's); ``custom`` takes every field from
    the section.

    Raises:
        ValueError: an unknown profile, or invalid custom values (the message names the field).
    """
    c = openpi_cfg
    if c.profile in PRESETS:
        p = PRESETS[c.profile]()
        return dataclasses.replace(p, replan_steps=c.replan_steps) if c.replan_steps else p
    if c.profile != "custom":
        raise ValueError(f"openpi.profile must be libero, droid or custom, got {c.profile!r}")
    fields = {f.name for f in dataclasses.fields(Profile)} - {"name"}
    values = {k: getattr(c, k) for k in fields}
    if not values["replan_steps"]:
        raise ValueError("openpi.replan_steps must be >= 1 for the custom profile")
    return Profile(name="custom", **values)


def resize_with_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """openpi's ``image_tools.resize_with_pad`` (``tf.image.resize_with_pad`` with PIL,
    bilinear): scale by ``1 / max(w / width, h / height)`` (sizes truncated to int),
    paste centred (offsets truncated) on a black ``height x width`` image. An image
    already of that size is returned as it is.

    Args:
        image: uint8 (H, W, 3).

    Returns:
        uint8 (height, width, 3).
    """
    from PIL import Image

    if image.shape[:2] == (height, width):
        return image
    im = Image.fromarray(image)
    cur_w, cur_h = im.size
    ratio = max(cur_w / width, cur_h / height)
    rh, rw = int(cur_h / ratio), int(cur_w / ratio)
    resized = im.resize((rw, rh), resample=Image.BILINEAR)
    canvas = Image.new(resized.mode, (width, height), 0)
    canvas.paste(resized, (max(0, int((width - rw) / 2)), max(0, int((height - rh) / 2))))
    return np.asarray(canvas)


def quat_xyzw_to_axisangle(q: Any) -> np.ndarray:
    """robosuite's ``quat2axisangle`` (LIBERO's state, copied into openpi's
    ``examples/libero/main.py``): quaternion (x, y, z, w) -> axis * angle (rad), the
    angle ``2 acos(w)`` in [0, 2 pi); zero for a (near-)identity rotation."""
    q = np.asarray(q, dtype=np.float64)
    w = float(np.clip(q[3], -1.0, 1.0))
    den = math.sqrt(1.0 - w * w)
    if math.isclose(den, 0.0):
        return np.zeros(3)
    return q[:3] * 2.0 * math.acos(w) / den


def state_arrays(profile: Profile, state: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """The request's state entries built from the robot state the controller passes.

    Args:
        profile: the profile.
        state: ``ee_position`` (3, m), ``ee_rotation`` (3x3 matrix, planning frame),
            ``gripper_open`` (last commanded opening in [0, 1]), ``joint_positions``
            (rad, the arm's joints in order).

    Returns:
        The request keys and float32 arrays (empty for ``state_layout: none``).

    Raises:
        ValueError: the state the layout needs is unknown (no pose, no joint states).
    """
    if profile.state_layout == "none":
        return {}
    state = state or {}
    g_open = float(state.get("gripper_open", 1.0))
    if profile.state_layout == EE_STATE:
        pos, rot = state.get("ee_position"), state.get("ee_rotation")
        if pos is None or rot is None:
            raise ValueError("the end-effector pose (position and orientation) is unknown")
        q = Rotation.from_matrix(np.asarray(rot, dtype=np.float64)).as_quat()  # x y z w
        qpos = np.array([FINGER_OPEN_M * g_open, -FINGER_OPEN_M * g_open])
        arr = np.concatenate([np.asarray(pos, dtype=np.float64), quat_xyzw_to_axisangle(q), qpos])
        return {profile.state_key: arr.astype(np.float32)}
    joints = state.get("joint_positions")
    if joints is None:
        raise ValueError("the joint positions are unknown (no /joint_states yet)")
    joints = np.asarray(joints, dtype=np.float64)
    grip = profile.gripper_open_value + (1.0 - g_open) * (profile.gripper_closed_value - profile.gripper_open_value)
    return {
        profile.joint_position_key: joints.astype(np.float32),
        profile.gripper_position_key: np.array([grip], dtype=np.float32),
    }

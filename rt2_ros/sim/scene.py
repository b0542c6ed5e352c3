"""The simulated world: a Franka Panda on a table with coloured blocks (PyBullet, ROS-free).

Why PyBullet: its PyPI wheel ships everything the scene needs (``pybullet_data``:
``franka_panda/panda.urdf`` with meshes, ``table/table.urdf``), its TinyRenderer
renders 224x224 RGB on the CPU in ~40 ms with no GPU, display or EGL, and it
computes link Jacobians (``calculateJacobian``) for the Servo stand-in's
differential IK. MuJoCo would render with EGL but needs an arm model from another
package (gymnasium-robotics, robosuite), a larger dependency for the same scene.

Frames (REP 103/105, metres, radians): the world frame *is* ``panda_link0`` (the arm
base sits at the origin, x forward, z up), so every position here is in the planning
frame. The table top is the plane z = 0 and spans x in [-0.25, 1.25], y in [-0.5, 0.5].
The end-effector frame is ``panda_hand`` (URDF link); the tool centre point (TCP,
between the fingertips) is ``panda_grasptarget``, 0.105 m along the hand's z axis.

One :class:`Scene` owns one PyBullet client (``pybullet.DIRECT``); call every method
from the thread that created it (PyBullet clients are not thread-safe).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from rt2_ros.sim.tasks import COLORS

__all__ = ["SceneConfig", "Layout", "Scene", "READY_JOINTS_RAD", "ARM_JOINTS", "FINGER_JOINTS"]

#: MoveIt's "ready" named state of the Panda (moveit_resources_panda SRDF), rad.
READY_JOINTS_RAD = (0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4)
ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
#: Panda joint torque limits (URDF ``effort``), N m.
_ARM_EFFORT_NM = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
_FINGER_MAX_M = 0.04


@dataclasses.dataclass
class SceneConfig:
    """Scene parameters (all SI).

    Attributes:
        colors: block colours (keys of :data:`rt2_ros.sim.tasks.COLORS`), one block each.
        block_size_m: cube edge length (the Panda hand opens to 0.08 m).
        block_mass_kg: cube mass.
        block_friction: lateral friction coefficient of blocks (fingers: 1.0 in the URDF).
        layout_min_m, layout_max_m: (x, y) box the block centres are drawn from.
        min_separation_m: minimum distance between block centres.
        max_yaw_rad: block yaw drawn uniformly from [-max_yaw, max_yaw].
        image_width, image_height: camera resolution, pixels.
        fov_deg: vertical field of view, degrees.
        camera_eye_m, camera_target_m: camera position and look-at point (planning frame).
        shadows: render shadows (about twice the render time).
        physics_hz: physics step rate.
        home_joints_rad: arm joint positions after a reset.
        finger_force_n: gripper finger force.
        arm_position_gain: 1/s, gain of the joint position correction added to the
            commanded joint velocity.
    """

    colors: tuple[str, ...] = ("red", "green", "blue")
    block_size_m: float = 0.04
    block_mass_kg: float = 0.05
    block_friction: float = 1.0
    layout_min_m: tuple[float, float] = (0.42, -0.20)
    layout_max_m: tuple[float, float] = (0.62, 0.20)
    min_separation_m: float = 0.11
    max_yaw_rad: float = math.pi / 4
    image_width: int = 224
    image_height: int = 224
    fov_deg: float = 52.0
    camera_eye_m: tuple[float, float, float] = (1.10, 0.30, 0.75)
    camera_target_m: tuple[float, float, float] = (0.43, 0.0, 0.16)
    shadows: bool = False
    physics_hz: float = 240.0
    home_joints_rad: tuple[float, ...] = READY_JOINTS_RAD
    finger_force_n: float = 40.0
    arm_position_gain: float = 20.0

    def __post_init__(self) -> None:
        unknown = [c for c in self.colors if c not in COLORS]
        if unknown or not self.colors or len(set(self.colors)) != len(self.colors):
            raise ValueError(f"colors must be distinct names from {list(COLORS)}, got {list(self.colors)}")
        if not 0.01 <= self.block_size_m <= 0.07:
            raise ValueError(
                f"block_size_m must be in [0.01, 0.07] m (gripper opens to 0.08 m), got {self.block_size_m}"
            )
        if self.image_width < 16 or self.image_height < 16:
            raise ValueError("image size must be at least 16x16 pixels")
        if len(self.home_joints_rad) != 7:
            raise ValueError("home_joints_rad needs 7 values")
        if not self.physics_hz >= 60:
            raise ValueError("physics_hz must be >= 60")


@dataclasses.dataclass(frozen=True)
class Layout:
    """One randomised layout: ``positions`` (color -> (x, y, z) m) and ``yaws`` (rad)."""

    seed: int
    positions: dict[str, tuple[float, float, float]]
    yaws: dict[str, float]


def sample_layout(cfg: SceneConfig, seed: int) -> Layout:
    """Draw block positions with :class:`numpy.random.Generator` (PCG64) from ``seed``.

    Rejection sampling for ``min_separation_m``; the same seed always gives the same layout.

    Raises:
        RuntimeError: the separation cannot be met in the layout box.
    """
    rng = np.random.default_rng(seed)
    lo, hi = np.asarray(cfg.layout_min_m), np.asarray(cfg.layout_max_m)
    for _ in range(1000):
        xy = rng.uniform(lo, hi, size=(len(cfg.colors), 2))
        d = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=-1) + np.eye(len(xy)) * 1e9
        if d.min() >= cfg.min_separation_m:
            break
    else:
        raise RuntimeError("cannot place the blocks with the requested separation; enlarge the layout box")
    yaws = rng.uniform(-cfg.max_yaw_rad, cfg.max_yaw_rad, size=len(cfg.colors))
    z = cfg.block_size_m / 2
    return Layout(
        seed=int(seed),
        positions={c: (float(x), float(y), z) for c, (x, y) in zip(cfg.colors, xy)},
        yaws={c: float(w) for c, w in zip(cfg.colors, yaws)},
    )


class Scene:
    """The PyBullet world.

    Args:
        cfg: scene parameters.
        seed: seed of the first layout.

    Raises:
        ImportError: pybullet is not installed (``pip install rt2_ros[sim]``).
    """

    def __init__(self, cfg: SceneConfig | None = None, seed: int = 0):
        import pybullet as p
        import pybullet_data

        self.p = p
        self.cfg = cfg or SceneConfig()
        self.client = p.connect(p.DIRECT)
        self._closed = False
        pc = dict(physicsClientId=self.client)
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), **pc)
        p.setGravity(0, 0, -9.81, **pc)
        self.dt = 1.0 / self.cfg.physics_hz
        p.setPhysicsEngineParameter(fixedTimeStep=self.dt, numSolverIterations=50, **pc)
        p.loadURDF("plane.urdf", [0, 0, -0.625], **pc)
        self.table = p.loadURDF("table/table.urdf", [0.5, 0, -0.625], useFixedBase=True, **pc)
        self.arm = p.loadURDF("franka_panda/panda.urdf", [0, 0, 0], useFixedBase=True, **pc)
        self._pc = pc

        self.link_index: dict[str, int] = {"panda_link0": -1}
        joint_index: dict[str, int] = {}
        for j in range(p.getNumJoints(self.arm, **pc)):
            info = p.getJointInfo(self.arm, j, **pc)
            joint_index[info[1].decode()] = j
            self.link_index[info[12].decode()] = j
        self.arm_ids = [joint_index[n] for n in ARM_JOINTS]
        self.finger_ids = [joint_index[n] for n in FINGER_JOINTS]
        self.hand_link = self.link_index["panda_hand"]
        self.tcp_link = self.link_index["panda_grasptarget"]
        infos = [p.getJointInfo(self.arm, j, **pc) for j in self.arm_ids]
        #: ``float64 (7,)`` joint position limits (rad) and velocity limits (rad/s), from the URDF.
        self.lower = np.array([i[8] for i in infos])
        self.upper = np.array([i[9] for i in infos])
        self.max_velocity = np.array([i[11] for i in infos])
        # All movable joints, in PyBullet's order (calculateJacobian wants them all).
        self._movable = [
            j for j in range(p.getNumJoints(self.arm, **pc)) if p.getJointInfo(self.arm, j, **pc)[2] != p.JOINT_FIXED
        ]
        for j in self._movable:
            p.changeDynamics(self.arm, j, linearDamping=0, angularDamping=0, **pc)
        self._target_q = np.asarray(self.cfg.home_joints_rad, dtype=np.float64)
        self._target_qd = np.zeros(7)
        self._target_t_end = 0.0
        for f in self.finger_ids:
            p.changeDynamics(self.arm, f, lateralFriction=1.5, spinningFriction=0.01, frictionAnchor=1, **pc)

        size = self.cfg.block_size_m
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[size / 2] * 3, **pc)
        self.blocks: dict[str, int] = {}
        for c in self.cfg.colors:
            vis = p.createVisualShape(p.GEOM_BOX, halfExtents=[size / 2] * 3, rgbaColor=COLORS[c], **pc)
            b = p.createMultiBody(self.cfg.block_mass_kg, col, vis, [0, 0, -1], **pc)
            p.changeDynamics(
                b, -1, lateralFriction=self.cfg.block_friction, spinningFriction=0.002, rollingFriction=0.0001, **pc
            )
            self.blocks[c] = b

        w, h = self.cfg.image_width, self.cfg.image_height
        self._view = p.computeViewMatrix(self.cfg.camera_eye_m, self.cfg.camera_target_m, [0, 0, 1], **pc)
        self._proj = p.computeProjectionMatrixFOV(self.cfg.fov_deg, w / h, 0.05, 4.0, **pc)
        self.time_s = 0.0
        self.gripper_command = 1.0
        self.layout: Layout | None = None
        self._initial: dict[str, tuple[float, float, float]] = {}
        self.reset(seed)

    # -- lifecycle ------------------------------------------------------------------------
    def reset(self, seed: int) -> Layout:
        """New layout from ``seed``, arm at home, gripper open; settles 0.25 s of physics.

        Raises:
            RuntimeError: the blocks cannot be placed (see ``sample_layout``).
        """
        p, pc = self.p, self._pc
        layout = sample_layout(self.cfg, seed)
        self.teleport_arm(self.cfg.home_joints_rad)
        for f in self.finger_ids:
            p.resetJointState(self.arm, f, _FINGER_MAX_M, 0.0, **pc)
        for c, b in self.blocks.items():
            quat = p.getQuaternionFromEuler([0, 0, layout.yaws[c]])
            p.resetBasePositionAndOrientation(b, layout.positions[c], quat, **pc)
            p.resetBaseVelocity(b, [0, 0, 0], [0, 0, 0], **pc)
        self.set_gripper(1.0)
        self.layout = layout
        self.step(int(0.25 / self.dt))
        self._initial = {c: tuple(self.block_pose(c)[0].tolist()) for c in self.blocks}
        return layout

    def close(self) -> None:
        """Disconnect the PyBullet client (idempotent)."""
        if not self._closed:
            self._closed = True
            try:
                self.p.disconnect(physicsClientId=self.client)
            except Exception:  # noqa: BLE001 - already gone
                pass

    def __enter__(self) -> "Scene":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- physics ----------------------------------------------------------------------------
    def step(self, n: int = 1) -> None:
        """Advance the physics by ``n`` steps of ``1 / physics_hz`` s.

        Before each step the arm's joint velocity motors get the commanded velocity plus
        a correction towards the reference ``q_ref(t) = target - velocity * (t_end - t)``
        (a joint trajectory controller interpolating to the Servo target), so the arm
        follows the commanded joint velocities and holds still on zero velocity.
        """
        p, pc = self.p, self._pc
        for _ in range(int(n)):
            q = np.array([s[0] for s in p.getJointStates(self.arm, self.arm_ids, **pc)])
            remaining = max(self._target_t_end - self.time_s, 0.0)
            q_ref = self._target_q - self._target_qd * remaining
            qd_cmd = self._target_qd * (remaining > 0) + self.cfg.arm_position_gain * (q_ref - q)
            qd_cmd = np.clip(qd_cmd, -self.max_velocity, self.max_velocity)
            p.setJointMotorControlArray(
                self.arm,
                self.arm_ids,
                p.VELOCITY_CONTROL,
                targetVelocities=qd_cmd.tolist(),
                forces=list(_ARM_EFFORT_NM),
                **pc,
            )
            p.stepSimulation(**pc)
            self.time_s += self.dt

    def set_arm_targets(
        self, positions: np.ndarray, velocities: np.ndarray | None = None, duration_s: float = 0.0
    ) -> None:
        """Joint position targets (rad, ``(7,)``, clipped to the joint limits) to reach in
        ``duration_s`` seconds moving at ``velocities`` (rad/s; None = zero: go there and hold).
        """
        self._target_q = np.clip(np.asarray(positions, dtype=np.float64), self.lower, self.upper)
        self._target_qd = np.zeros(7) if velocities is None else np.asarray(velocities, dtype=np.float64).copy()
        self._target_t_end = self.time_s + max(float(duration_s), 0.0)

    def teleport_arm(self, positions: Sequence[float]) -> None:
        """Put the arm at joint positions (rad, ``(7,)``) at rest, and hold it there.

        Raises:
            ValueError: not 7 finite values within the joint limits.
        """
        q = np.asarray(positions, dtype=np.float64).reshape(-1)
        if q.shape != (7,) or not np.all(np.isfinite(q)) or np.any(q < self.lower) or np.any(q > self.upper):
            raise ValueError(f"need 7 finite joint positions within the limits, got {q.tolist()}")
        for j, v in zip(self.arm_ids, q):
            self.p.resetJointState(self.arm, j, float(v), 0.0, **self._pc)
        self.set_arm_targets(q)

    def set_gripper(self, command: float, force_n: float | None = None) -> None:
        """Gripper command in [0, 1] (1 = open, 0.08 m between the fingers; 0 = closed).

        Args:
            command: the opening in [0, 1].
            force_n: finger motor force limit [N]; None = ``finger_force_n``. A force too
                small to move the fingers leaves them where they are (a stalled gripper).

        Raises:
            ValueError: not a finite number (values outside [0, 1] are clipped), or a
                negative / non-finite force.
        """
        if not isinstance(command, (int, float, np.floating)) or not math.isfinite(command):
            raise ValueError(f"gripper command must be a finite number in [0, 1], got {command!r}")
        force = self.cfg.finger_force_n if force_n is None else float(force_n)
        if not math.isfinite(force) or force < 0:
            raise ValueError(f"gripper force must be a finite number >= 0 N, got {force_n!r}")
        self.gripper_command = float(min(max(command, 0.0), 1.0))
        target = self.gripper_command * _FINGER_MAX_M
        self.p.setJointMotorControlArray(
            self.arm,
            self.finger_ids,
            self.p.POSITION_CONTROL,
            targetPositions=[target, target],
            forces=[force] * 2,
            positionGains=[0.05, 0.05],
            **self._pc,
        )

    # -- state ---------------------------------------------------------------------------------
    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured arm joint positions (rad) and velocities (rad/s), ``float64 (7,)`` each."""
        st = self.p.getJointStates(self.arm, self.arm_ids, **self._pc)
        return np.array([s[0] for s in st]), np.array([s[1] for s in st])

    def finger_positions(self) -> np.ndarray:
        """``float64 (2,)`` finger joint positions, m (each 0..0.04)."""
        return np.array([s[0] for s in self.p.getJointStates(self.arm, self.finger_ids, **self._pc)])

    def link_pose(self, link: str) -> tuple[np.ndarray, np.ndarray]:
        """World (= ``panda_link0``) pose of a URDF link frame: position (m, ``(3,)``) and
        quaternion (x, y, z, w).

        Raises:
            KeyError: unknown link name.
        """
        idx = self.link_index[link]
        if idx < 0:
            pos, quat = self.p.getBasePositionAndOrientation(self.arm, **self._pc)
            return np.asarray(pos), np.asarray(quat)
        st = self.p.getLinkState(self.arm, idx, computeForwardKinematics=True, **self._pc)
        return np.asarray(st[4]), np.asarray(st[5])

    def frame_rotation(self, frame: str) -> np.ndarray | None:
        """``(3, 3)`` rotation taking vectors in ``frame`` to the planning frame, or None
        when the frame is unknown (only the arm's URDF links are known)."""
        if frame not in self.link_index:
            return None
        _, q = self.link_pose(frame)
        return np.array(self.p.getMatrixFromQuaternion(q.tolist())).reshape(3, 3)

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """``panda_hand`` pose: position (m) and quaternion (x, y, z, w) in ``panda_link0``."""
        return self.link_pose("panda_hand")

    def tcp_position(self) -> np.ndarray:
        """Tool centre point (``panda_grasptarget``) position, m."""
        return self.link_pose("panda_grasptarget")[0]

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """``float64 (6, 7)`` geometric Jacobian of the ``panda_hand`` frame origin at
        joint positions ``q`` (rad): rows vx vy vz wx wy wz in the planning frame, as
        MoveIt's ``RobotState::getJacobian`` returns for the group's tip link."""
        fingers = self.finger_positions().tolist()
        qa = np.asarray(q, dtype=np.float64).tolist() + fingers
        zeros = [0.0] * len(qa)
        # localPosition (0, 0, 0) is the link's URDF frame origin (checked against finite
        # differences of the link pose in test_sim_scene.py).
        lin, ang = self.p.calculateJacobian(self.arm, self.hand_link, [0.0, 0.0, 0.0], qa, zeros, zeros, **self._pc)
        return np.vstack([np.asarray(lin)[:, :7], np.asarray(ang)[:, :7]])

    def block_pose(self, color: str) -> tuple[np.ndarray, np.ndarray]:
        """Block centre position (m) and quaternion (x, y, z, w).

        Raises:
            KeyError: no block of that colour.
        """
        pos, quat = self.p.getBasePositionAndOrientation(self.blocks[color], **self._pc)
        return np.asarray(pos), np.asarray(quat)

    def ground_truth(self) -> dict[str, Any]:
        """Everything the scripted expert and the task checks need, JSON-ready.

        Returns:
            A dict with the keys ``time_s``, ``table_z_m``, ``layout_seed``, ``ee``
            (``frame``, ``position``, ``orientation_xyzw``), ``tcp`` (``position``),
            ``gripper`` (``command``, ``opening_m``), ``joints`` (``names``,
            ``positions``) and ``blocks`` (per colour: ``position``,
            ``orientation_xyzw``, ``size_m``, ``initial_position``); positions in m in
            ``panda_link0``.
        """
        ee_p, ee_q = self.ee_pose()
        q, _ = self.joint_state()
        blocks = {}
        for c in self.blocks:
            bp, bq = self.block_pose(c)
            blocks[c] = {
                "position": bp.tolist(),
                "orientation_xyzw": bq.tolist(),
                "size_m": self.cfg.block_size_m,
                "initial_position": list(self._initial.get(c, tuple(bp.tolist()))),
            }
        return {
            "time_s": self.time_s,
            "table_z_m": 0.0,
            "layout_seed": None if self.layout is None else self.layout.seed,
            "ee": {"frame": "panda_hand", "position": ee_p.tolist(), "orientation_xyzw": ee_q.tolist()},
            "tcp": {"position": self.tcp_position().tolist()},
            "gripper": {"command": self.gripper_command, "opening_m": float(self.finger_positions().sum())},
            "joints": {"names": list(ARM_JOINTS), "positions": q.tolist()},
            "blocks": blocks,
        }

    # -- camera ---------------------------------------------------------------------------------
    def render(self) -> np.ndarray:
        """Render the camera: ``uint8 (H, W, 3)`` RGB (TinyRenderer, CPU)."""
        w, h = self.cfg.image_width, self.cfg.image_height
        _, _, rgba, _, _ = self.p.getCameraImage(
            w,
            h,
            self._view,
            self._proj,
            renderer=self.p.ER_TINY_RENDERER,
            shadow=int(self.cfg.shadows),
            lightDirection=[0.6, 0.4, 1.0],
            **self._pc,
        )
        img = np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4)
        return np.ascontiguousarray(img[:, :, :3])

    def camera_matrix(self) -> np.ndarray:
        """``float64 (3, 3)`` pinhole intrinsics K (pixels) of the rendered image."""
        w, h = self.cfg.image_width, self.cfg.image_height
        fy = (h / 2) / math.tan(math.radians(self.cfg.fov_deg) / 2)
        return np.array([[fy, 0, (w - 1) / 2], [0, fy, (h - 1) / 2], [0, 0, 1.0]])

    def camera_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Pose of the camera optical frame (z forward, x right, y down; REP 103 camera
        convention) in ``panda_link0``: position (m) and rotation matrix ``(3, 3)``."""
        eye = np.asarray(self.cfg.camera_eye_m, dtype=np.float64)
        fwd = np.asarray(self.cfg.camera_target_m) - eye
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0, 0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        return eye, np.column_stack([right, down, fwd])

    def project(self, points: Sequence[Sequence[float]]) -> np.ndarray:
        """Pixel coordinates ``(N, 2)`` (u right, v down) of planning-frame points ``(N, 3)``."""
        eye, R = self.camera_pose()
        pc = (np.asarray(points, dtype=np.float64) - eye) @ R
        K = self.camera_matrix()
        uv = (pc @ K.T)[:, :2] / pc[:, 2:3]
        return uv

"""A joint-velocity expert for the simulator: the scripted expert's end-effector plan turned
into joint velocities with the Panda's Jacobian, answered in openpi's DROID layout. ROS-free.

Served with ``rt2-ros serve --protocol openpi --policy rt2_ros.sim.joint_expert:make_policy``
it stands in for a DROID checkpoint (``pi05_droid``), so that the node's joint-space path
(``openpi.profile: droid`` -> :class:`~rt2_ros.joint_space.JointAction` -> JointJog ->
the Servo stand-in) can be shown to reach the named block:

* request: DROID's observation (``observation/joint_position`` (7, rad) is read; the
  images are not: the expert reads the simulator's ground truth, as
  :mod:`rt2_ros.sim.expert` does);
* the scripted expert's next action (dx dy dz [m], roll-pitch-yaw deltas [rad] per
  control period, gripper 1 = open) becomes the twist ``delta / period``; joint
  velocities ``pinv(J(q)) @ twist`` with the geometric Jacobian of ``panda_hand`` at the
  observed joints (:meth:`rt2_ros.sim.scene.Scene.jacobian`, a kinematic copy of the
  simulated Panda in this process: the sim's "inverse kinematics");
* answer: ``[H, 8]`` in DROID's units: joint velocity / ``joint_velocity_scale_radps``
  (the droid profile's 3 rad/s per unit), gripper position 0 = open .. 1 = closed; the
  same joint velocities for each of the H rows (the expert plans one step; ``H`` =
  ``openpi.replan_steps`` of the profile, 8), the gripper of the expert's first step.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import numpy as np

from rt2_ros.config import RT2Config
from rt2_ros.joint_space import JointAction
from rt2_ros.motion import rotation_delta_to_rotvec
from rt2_ros.policies.base import Observation, Policy, PolicyMetadata, PolicyResult
from rt2_ros.remote.openpi_profile import PRESETS

__all__ = ["JointExpertPolicy", "make_policy"]


class JointExpertPolicy(Policy):
    """See the module doc.

    Args:
        cfg: the robot's configuration (``control.period_s``, ``action.rotation_convention``).
        inner: the scripted expert (:class:`rt2_ros.sim.expert.ScriptedExpertPolicy`).
        horizon: rows per answer.
    """

    uses_state = True
    action_space = "joint_velocity"

    def __init__(self, cfg: RT2Config, inner: Policy, horizon: int = 8):
        self.cfg = cfg
        self.inner = inner
        self.horizon = int(horizon)
        self.scale = PRESETS["droid"]().joint_velocity_scale_radps
        self._scene = None
        self._lock = threading.Lock()
        self.metadata = PolicyMetadata(
            action_format="openpi", model_id="sim-joint-expert", action_dim=8, extra={"layout": "droid"}
        )

    def _jacobian(self, q: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._scene is None:
                from rt2_ros.sim.scene import Scene

                self._scene = Scene()
            return self._scene.jacobian(q)

    def infer_batch(self, observations: Sequence[Observation]) -> list[PolicyResult]:
        """One DROID chunk per observation.

        Raises:
            ValueError: no (or a malformed) ``observation/joint_position`` in the state.
        """
        out = []
        for obs in observations:
            q = (obs.state or {}).get("observation/joint_position")
            q = np.asarray(q, dtype=np.float64) if q is not None else None
            if q is None or q.shape != (7,) or not np.all(np.isfinite(q)):
                raise ValueError("the joint expert needs observation/joint_position: 7 finite values")
            r = self.inner.infer(obs.image, obs.instruction)
            if not r.actions:
                out.append(PolicyResult(r.text, r.token_ids, (), r.error, r.timings_ms))
                continue
            a = r.actions[0]
            period = self.cfg.control.period_s
            twist = np.concatenate(
                [
                    a.delta_position / period,
                    rotation_delta_to_rotvec(a.delta_rotation, self.cfg.action.rotation_convention) / period,
                ]
            )
            qd = np.linalg.pinv(self._jacobian(q)) @ twist
            grip_closed = 1.0 - float(np.clip(a.gripper, 0.0, 1.0))
            ja = JointAction(a.terminate, np.zeros(3), np.zeros(3), grip_closed, joint_velocities=qd / self.scale)
            out.append(PolicyResult(r.text, r.token_ids, (ja,) * self.horizon, None, r.timings_ms))
        return out

    def reset(self) -> None:
        self.inner.reset()

    def close(self) -> None:
        with self._lock:
            if self._scene is not None:
                self._scene.close()
                self._scene = None
        self.inner.close()


def make_policy(cfg: RT2Config, **kwargs: Any) -> JointExpertPolicy:
    """``rt2-ros serve --policy rt2_ros.sim.joint_expert:make_policy``: the scripted expert
    (fed by ``/sim/ground_truth`` unless ``ground_truth=`` is given) behind the Jacobian."""
    from rt2_ros.sim.expert import make_policy as make_expert

    horizon = kwargs.pop("horizon", 8)
    return JointExpertPolicy(cfg, make_expert(cfg, **kwargs), horizon=horizon)

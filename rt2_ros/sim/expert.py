"""Scripted expert policy: simulator ground truth in, RT-2 action *text* out. ROS-free.

The expert stands in for a trained model so that the whole loop can be shown to
succeed: it reads the true block and end-effector poses (not the image), plans the
next end-effector displacement with a small state machine per task kind (see
:mod:`rt2_ros.sim.tasks`), and answers with the RT-2 action string that the project's
codec produces (:meth:`rt2_ros.codecs.RT2ActionTokenizer.encode` with the
configured bounds), terminate token included once the task's success check holds.
The text is decoded by the same codec, so quantisation, bounds, terminate handling,
twist conversion, safety envelope and Servo all act on it as on a model's output.

Ground truth comes from a callable returning the dict of
:meth:`rt2_ros.sim.scene.Scene.ground_truth` (in-process), or, when the expert runs
inside the rt2 node and the simulator in another process, from the sim's
``/sim/ground_truth`` topic (:class:`rt2_ros.sim.ground_truth_node.GroundTruthSubscriber`,
created lazily on the first inference so that no rclpy is imported here).

Action convention (``config/rt2.yaml``): displacements dx dy dz in the command frame
(``panda_link0``), rotation deltas as extrinsic roll-pitch-yaw, gripper 1 = open.

Chunks (``action.horizon`` H > 1; formats rt2, int_text and fast, whose bounds are
``action.low``/``high``):
the expert plans H steps ahead on a predicted state (the TCP and hand moved by each planned
displacement, blocks and gripper as observed) and answers with the codec's encoding of the
chunk (RT-2 / integer text: the text; FAST: the token ids). Only the first step
advances its state machine; the predicted steps never close-then-lift (that waits for the
observed gripper) and never terminate (that waits for the observed task check), so a chunk
executed open loop is safe even when its prediction drifts. The state machine continues
from the predicted state at the step where the next observation is expected
(``steps_per_inference``, from ``control.execute_steps``/``chunk_threshold``).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from rt2_ros.codecs import ActionCodec, make_codec
from rt2_ros.config import RT2Config
from rt2_ros.policies.base import (
    Observation,
    Policy,
    PolicyError,
    PolicyMetadata,
    PolicyResult,
    check_image,
    result_from_output,
)
from rt2_ros.sim.tasks import LIFT_HEIGHT_M, PUSH_DISTANCE_M, REACH_TOLERANCE_M, Task, check_task, parse_instruction

__all__ = ["ExpertParams", "Phase", "ScriptedExpertPolicy", "DEFAULT_GROUND_TRUTH_TOPIC", "make_policy"]

DEFAULT_GROUND_TRUTH_TOPIC = "/sim/ground_truth"
#: Distance from the panda_hand origin to the TCP along the hand's z axis [m] (panda.urdf).
TCP_OFFSET_M = 0.105


class Phase(str, enum.Enum):
    APPROACH = "approach"
    DESCEND = "descend"
    CLOSE = "close"
    LIFT = "lift"
    PUSH = "push"
    DONE = "done"


@dataclasses.dataclass
class ExpertParams:
    """Tuning of the expert (SI units).

    Attributes:
        max_step_m: largest translation per control step (norm), m; keep it inside the
            action bounds and the safety speed caps (``max_step_m / period_s``).
        max_rot_step_rad: largest rotation per control step, rad.
        gain: fraction of the remaining error commanded per step (1 = dead-beat).
        hover_m: TCP height above the block top while approaching, m.
        grasp_height_m: TCP above the block centre when grasping, m (the fingertips then
            stay clear of the table even when the arm overshoots a little).
        descend_step_m: largest step of the final descent, m (slower near the table).
        lift_m: how far the TCP rises after the grasp, m.
        push_standoff_m: gap between TCP and block face before a push, m.
        reach_clearance_m: TCP target above the block's top face for a reach, m.
        close_steps: control steps to wait with the gripper closing.
        max_gt_age_s: ground truth older than this is "no ground truth", s.
        first_gt_timeout_s: on the first inference, wait this long for ground truth, s.
    """

    max_step_m: float = 0.045
    max_rot_step_rad: float = 0.15
    gain: float = 1.0
    hover_m: float = 0.07
    grasp_height_m: float = 0.003
    descend_step_m: float = 0.025
    lift_m: float = 0.16
    push_standoff_m: float = 0.035
    reach_clearance_m: float = 0.008
    close_steps: int = 3
    max_gt_age_s: float = 1.0
    first_gt_timeout_s: float = 5.0


@dataclasses.dataclass
class _Plan:
    delta: np.ndarray  # (7,) dx dy dz [m] drx dry drz [rad] gripper
    terminate: bool
    phase: Phase
    note: str


def _wrap(a: float, period: float) -> float:
    """Wrap angle ``a`` into [-period/2, period/2)."""
    return (a + period / 2) % period - period / 2


class ScriptedExpertPolicy(Policy):
    """The expert. One observation at a time; stateful per episode (:meth:`reset`).

    Args:
        codec: the RT-2 codec the node decodes with (same bounds!).
        ground_truth: callable returning the newest ground-truth dict (or None when
            there is none yet). Its ``"received_monotonic_s"`` key, when present, is
            used for the age check.
        params: tuning.
        clock: monotonic clock for the age check and timings.

    Raises (from :meth:`infer_batch`):
        PolicyError: no ground truth, or ground truth older than ``max_gt_age_s``.
        ValueError: an invalid image (as every backend).
    """

    def __init__(
        self,
        codec: ActionCodec,
        ground_truth: Callable[[], Mapping[str, Any] | None],
        params: ExpertParams | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.codec = codec
        self.ground_truth = ground_truth
        self.params = params or ExpertParams()
        self.clock = clock
        bounds = getattr(codec, "bounds", None)
        self.metadata = PolicyMetadata(
            action_format=codec.format,
            model_id="scripted-expert",
            action_dim=codec.tokens_per_action,
            bounds=None if bounds is None else {"low": bounds.low.tolist(), "high": bounds.high.tolist()},
            extra={"backend": "scripted", "uses": "simulator ground truth", "horizon": codec.horizon},
        )
        self._predicting = False
        #: Chunks: control steps executed per inference (the rest of a chunk is replaced by
        #: the next); set by :meth:`from_config` from ``control.*``.
        self.steps_per_inference = 1
        self._closer: Callable[[], None] | None = None
        self._waited_for_gt = False
        self.reset()

    @classmethod
    def from_config(
        cls,
        cfg: RT2Config,
        ground_truth: Callable[[], Mapping[str, Any] | None] | None = None,
        ground_truth_topic: str = DEFAULT_GROUND_TRUTH_TOPIC,
        params: ExpertParams | None = None,
        **_: Any,
    ) -> "ScriptedExpertPolicy":
        """Build from the config's ``action`` section (the codec the node uses).

        Without ``ground_truth`` the expert subscribes to ``ground_truth_topic`` (JSON in
        std_msgs/String, published by the sim node) on its first inference; this needs
        an initialised rclpy context (the rt2 node's).
        """
        if cfg.action.format == "openvla":
            raise ValueError(
                "the scripted expert answers in rt2, int_text or fast actions (bounded by action.low/high); "
                "openvla's actions depend on dataset statistics"
            )
        codec = make_codec(cfg.action)
        c = cfg.control
        n = min(c.execute_steps or codec.horizon, codec.horizon)
        per = 1 if c.execute == "ensemble" or codec.horizon == 1 else max(1, n - c.chunk_threshold)
        if ground_truth is not None:
            pol = cls(codec, ground_truth, params)
            pol.steps_per_inference = per
            return pol
        holder: dict[str, Any] = {}

        def subscriber():
            if "sub" not in holder:
                from rt2_ros.sim.ground_truth_node import GroundTruthSubscriber

                holder["sub"] = GroundTruthSubscriber(ground_truth_topic)
            return holder["sub"]

        def lazy_ground_truth() -> Mapping[str, Any] | None:
            return subscriber().latest()

        pol = cls(codec, lazy_ground_truth, params)
        pol.steps_per_inference = per
        pol._closer = lambda: holder["sub"].close() if "sub" in holder else None
        pol.metadata.extra["ground_truth_topic"] = ground_truth_topic
        try:  # subscribe now when a ROS context is up (inside the rt2 node), so discovery starts early
            subscriber()
        except (ImportError, RuntimeError):
            pass  # no rclpy context yet: subscribe on the first inference
        return pol

    # -- Policy interface ---------------------------------------------------------------------
    def reset(self) -> None:
        self._instruction: str | None = None
        self._task: Task | None = None
        self._task_error: str | None = None
        self._phase = Phase.APPROACH
        self._phase_steps = 0
        self._start_gt: Mapping[str, Any] | None = None
        self._last_opening: float | None = None
        self._last_tcp: np.ndarray | None = None
        self.steps = 0

    def close(self) -> None:
        if self._closer is not None:
            self._closer()

    @property
    def phase(self) -> Phase:
        return self._phase

    def infer_batch(self, observations: Sequence[Observation]) -> list[PolicyResult]:
        return [self._infer_one(o) for o in observations]

    def _infer_one(self, obs: Observation) -> PolicyResult:
        t0 = self.clock()
        check_image(obs.image)
        if not obs.instruction.strip():
            raise ValueError("instruction is empty")
        gt = self.ground_truth()
        if gt is None and not self._waited_for_gt:
            # First call: the ground-truth topic may still be in DDS discovery (up to ~3 s).
            self._waited_for_gt = True
            end = self.clock() + self.params.first_gt_timeout_s
            while gt is None and self.clock() < end:
                time.sleep(0.05)
                gt = self.ground_truth()
        if gt is None:
            raise PolicyError("scripted expert: no ground truth yet (is the simulator running?)")
        rx = gt.get("received_monotonic_s")
        if rx is not None and self.clock() - float(rx) > self.params.max_gt_age_s:
            raise PolicyError(f"scripted expert: ground truth is {self.clock() - float(rx):.2f} s old")
        if obs.instruction != self._instruction:
            self._start_episode(obs.instruction, gt)
        t1 = self.clock()
        if self._task is None:
            err = f"scripted expert cannot do this instruction: {self._task_error}"
            return PolicyResult("", (), (), err, {"preprocess": (t1 - t0) * 1e3, "model": 0.0, "decode": 0.0})
        try:
            plans = self._plan_chunk(self._task, gt)
        except (KeyError, ValueError, TypeError) as e:
            raise PolicyError(f"scripted expert: bad ground truth: {e}") from None
        self.steps += 1
        if self.codec.horizon == 1 and self.codec.format == "rt2":
            text = self.codec.encode(plans[0].delta, terminate=plans[0].terminate)
            encoded: Any = text
        else:
            encoded = self.codec.encode_chunk(np.array([p.delta for p in plans]), [p.terminate for p in plans])
        t2 = self.clock()
        # Decoded like any model's output (a failure, impossible with our own encoder, is "no action").
        if isinstance(encoded, tuple):  # OpenVLA, FAST: the codec decodes token ids
            text, ids = encoded
            result = result_from_output(self.codec, text, tuple(ids), action_ids=ids)
        else:
            text = encoded
            result = result_from_output(self.codec, text, tuple(int(t) for t in text.split()))
        result.timings_ms.update(preprocess=(t1 - t0) * 1e3, model=(t2 - t1) * 1e3, decode=(self.clock() - t2) * 1e3)
        return result

    # -- planning -------------------------------------------------------------------------------
    def _plan_chunk(self, task: Task, gt: Mapping[str, Any]) -> list[_Plan]:
        """``codec.horizon`` plans: the first from the observation (it advances the state
        machine), the rest from the state predicted by applying each plan's displacement."""
        first = self._plan(task, gt)
        plans = [first]
        if self.codec.horizon == 1:
            return plans
        # The next observation comes after about steps_per_inference executed steps: the state
        # machine continues from the predicted state there.
        keep = max(1, min(self.steps_per_inference, self.codec.horizon))
        saved = (self._phase, self._phase_steps, self._last_opening, self._last_tcp)
        self._predicting = True
        try:
            g = _predict(gt, first.delta)
            for k in range(1, self.codec.horizon):
                if k == keep:
                    saved = (self._phase, self._phase_steps, self._last_opening, self._last_tcp)
                if plans[-1].terminate:
                    plans.append(_Plan(np.zeros(7), True, Phase.DONE, "done"))
                    continue
                p = self._plan(task, g)
                if p.terminate:  # never from a prediction: hold and let the next observation decide
                    p = _Plan(np.concatenate([np.zeros(6), [p.delta[6]]]), False, p.phase, "hold")
                plans.append(p)
                g = _predict(g, p.delta)
        finally:
            self._predicting = False
            self._phase, self._phase_steps, self._last_opening, self._last_tcp = saved
        return plans

    def _start_episode(self, instruction: str, gt: Mapping[str, Any]) -> None:
        self.reset()
        self._instruction = instruction
        self._start_gt = gt
        try:
            self._task = parse_instruction(instruction)
            if self._task.color not in gt["blocks"]:
                self._task, self._task_error = None, f"there is no {parse_instruction(instruction).color} block"
        except ValueError as e:
            self._task, self._task_error = None, str(e)

    def _set_phase(self, phase: Phase) -> None:
        if phase is not self._phase:
            self._phase, self._phase_steps = phase, 0

    def _plan(self, task: Task, gt: Mapping[str, Any]) -> _Plan:
        self._phase_steps += 1
        hand = np.asarray(gt["ee"]["position"], dtype=np.float64)
        R_hand = Rotation.from_quat(gt["ee"]["orientation_xyzw"])
        tcp = (
            np.asarray(gt["tcp"]["position"], dtype=np.float64)
            if "tcp" in gt
            else hand + R_hand.apply([0, 0, TCP_OFFSET_M])
        )
        b = gt["blocks"][task.color]
        block = np.asarray(b["position"], dtype=np.float64)
        half = float(b["size_m"]) / 2
        table_z = float(gt.get("table_z_m", 0.0))
        block_yaw = Rotation.from_quat(b["orientation_xyzw"]).as_euler("xyz")[2]
        opening = float(gt.get("gripper", {}).get("opening_m", 0.08))
        done = check_task(task, gt, self._start_gt)
        if task.kind == "pick":
            return self._plan_pick(
                task, tcp, R_hand, block, half, table_z, block_yaw, opening, done.success, done.value
            )
        if task.kind == "push":
            return self._plan_push(task, tcp, R_hand, block, half, table_z, done.success, done.value)
        return self._plan_reach(tcp, R_hand, block, half, block_yaw, done.success, done.value)

    def _motion(
        self,
        tcp: np.ndarray,
        target: np.ndarray,
        R_hand: Rotation,
        yaw: float | None,
        gripper: float,
        max_step: float | None = None,
    ) -> np.ndarray:
        """7 action values moving the TCP towards ``target`` and the hand towards
        pointing down with ``yaw`` (None: keep the current yaw)."""
        prm = self.params
        d = (target - tcp) * prm.gain
        lim = prm.max_step_m if max_step is None else max_step
        n = float(np.linalg.norm(d))
        if n > lim:
            d *= lim / n
        cur_yaw = math.atan2(R_hand.as_matrix()[1, 0], R_hand.as_matrix()[0, 0])
        want = Rotation.from_euler("z", cur_yaw if yaw is None else yaw) * Rotation.from_euler("x", math.pi)
        err = (want * R_hand.inv()).as_rotvec()
        a = float(np.linalg.norm(err))
        if a > prm.max_rot_step_rad:
            err *= prm.max_rot_step_rad / a
        rpy = Rotation.from_rotvec(err).as_euler("xyz")
        return np.concatenate([d, rpy, [gripper]])

    @staticmethod
    def _grasp_yaw(R_hand: Rotation, block_yaw: float) -> float:
        """Hand yaw nearest the current one that puts the fingers across two block faces."""
        m = R_hand.as_matrix()
        cur = math.atan2(m[1, 0], m[0, 0])
        return cur + _wrap(block_yaw - cur, math.pi / 2)

    def _yaw_error(self, R_hand: Rotation, yaw: float) -> float:
        m = R_hand.as_matrix()
        return abs(_wrap(yaw - math.atan2(m[1, 0], m[0, 0]), 2 * math.pi))

    def _plan_pick(self, task, tcp, R_hand, block, half, table_z, block_yaw, opening, success, lifted) -> _Plan:
        prm = self.params
        hold = np.zeros(7)
        if success and lifted >= LIFT_HEIGHT_M + 0.01:
            self._set_phase(Phase.DONE)
            hold[6] = 0.0
            return _Plan(hold, True, Phase.DONE, f"block lifted {lifted:.3f} m")
        yaw = self._grasp_yaw(R_hand, block_yaw)
        hover = np.array([block[0], block[1], block[2] + half + prm.hover_m])
        grasp_z = max(block[2] + prm.grasp_height_m, table_z + 0.015)
        slipped = block[2] - half - table_z < 0.01 and tcp[2] - block[2] > 0.05
        if self._phase in (Phase.LIFT, Phase.CLOSE) and slipped and not self._predicting:  # blocks are not predicted
            self._set_phase(Phase.APPROACH)  # lifted without the block: it slipped, start over
        if self._phase is Phase.APPROACH:
            xy_err = float(np.linalg.norm(hover[:2] - tcp[:2]))
            if xy_err < 0.012 and abs(hover[2] - tcp[2]) < 0.025 and self._yaw_error(R_hand, yaw) < 0.06:
                self._set_phase(Phase.DESCEND)
            else:
                return _Plan(self._motion(tcp, hover, R_hand, yaw, 1.0), False, Phase.APPROACH, "approach")
        if self._phase is Phase.DESCEND:
            target = np.array([block[0], block[1], grasp_z])
            if abs(target[2] - tcp[2]) < 0.006 and float(np.linalg.norm(target[:2] - tcp[:2])) < 0.008:
                self._set_phase(Phase.CLOSE)
            else:
                return _Plan(
                    self._motion(tcp, target, R_hand, yaw, 1.0, max_step=prm.descend_step_m),
                    False,
                    Phase.DESCEND,
                    "descend",
                )
        if self._phase is Phase.CLOSE:
            settled = self._last_opening is not None and abs(self._last_opening - opening) < 0.001
            self._last_opening = opening
            closed = self._phase_steps > prm.close_steps and (settled or self._phase_steps > prm.close_steps + 3)
            if closed and not self._predicting:  # lifting waits for the observed gripper
                self._set_phase(Phase.LIFT)
            else:
                return _Plan(self._motion(tcp, tcp, R_hand, None, 0.0), False, Phase.CLOSE, "close gripper")
        target = np.array([tcp[0], tcp[1], grasp_z + prm.lift_m])
        return _Plan(self._motion(tcp, target, R_hand, None, 0.0), False, Phase.LIFT, "lift")

    def _plan_push(self, task, tcp, R_hand, block, half, table_z, success, moved) -> _Plan:
        prm = self.params
        u = task.direction_vector
        if success and moved >= PUSH_DISTANCE_M + 0.01:
            self._set_phase(Phase.DONE)
            return _Plan(np.zeros(7), True, Phase.DONE, f"block pushed {moved:.3f} m")
        push_z = max(block[2] - 0.002, table_z + 0.012)
        behind = block - u * (half + prm.push_standoff_m)
        pre = np.array([behind[0], behind[1], block[2] + half + prm.hover_m])
        # The hand's yaw puts the closed fingers' flat side across the push direction.
        yaw = math.atan2(u[1], u[0])
        m = R_hand.as_matrix()
        cur = math.atan2(m[1, 0], m[0, 0])
        yaw = cur + _wrap(yaw - cur, math.pi / 2)
        if self._phase is Phase.APPROACH:
            if float(np.linalg.norm(pre[:2] - tcp[:2])) < 0.012 and abs(pre[2] - tcp[2]) < 0.025:
                self._set_phase(Phase.DESCEND)
            else:
                return _Plan(self._motion(tcp, pre, R_hand, yaw, 0.0), False, Phase.APPROACH, "approach")
        if self._phase is Phase.DESCEND:
            target = np.array([behind[0], behind[1], push_z])
            if abs(target[2] - tcp[2]) < 0.008:
                self._set_phase(Phase.PUSH)
            else:
                return _Plan(
                    self._motion(tcp, target, R_hand, yaw, 0.0, max_step=prm.descend_step_m),
                    False,
                    Phase.DESCEND,
                    "descend",
                )
        # Push: drive the TCP through the block's centre line along u, correcting sideways.
        lateral = (block - tcp) - u * float(np.dot(block - tcp, u))
        target = tcp + u * prm.max_step_m + lateral
        target[2] = push_z
        if float(np.dot(block - tcp, u)) < 0 and not self._predicting:  # overtook the block: go around again
            self._set_phase(Phase.APPROACH)
        return _Plan(self._motion(tcp, target, R_hand, yaw, 0.0), False, Phase.PUSH, f"push, moved {moved:.3f} m")

    def _plan_reach(self, tcp, R_hand, block, half, block_yaw, success, dist) -> _Plan:
        prm = self.params
        # Aim a little above the top face: the TCP then never presses on the block, and
        # an overshoot from the loop's latency still ends within the tolerance.
        top = block + np.array([0.0, 0.0, half + prm.reach_clearance_m])
        moved = math.inf if self._last_tcp is None else float(np.linalg.norm(tcp - self._last_tcp))
        self._last_tcp = tcp.copy()
        if success and dist <= REACH_TOLERANCE_M * 0.75 and moved < 0.004:
            self._set_phase(Phase.DONE)
            return _Plan(np.zeros(7), True, Phase.DONE, f"TCP {dist:.3f} m from the block top")
        hover = top + np.array([0.0, 0.0, prm.hover_m])
        if self._phase is Phase.APPROACH:
            if float(np.linalg.norm(hover[:2] - tcp[:2])) < 0.012 and abs(hover[2] - tcp[2]) < 0.025:
                self._set_phase(Phase.DESCEND)
            else:
                return _Plan(self._motion(tcp, hover, R_hand, None, 0.0), False, Phase.APPROACH, "approach")
        return _Plan(
            self._motion(tcp, top, R_hand, None, 0.0, max_step=prm.descend_step_m), False, Phase.DESCEND, "descend"
        )


def _predict(gt: Mapping[str, Any], delta: np.ndarray) -> dict[str, Any]:
    """Ground truth after the arm performed ``delta`` (dx dy dz [m], extrinsic rpy [rad] in
    the base frame), blocks and gripper as they were."""
    g = dict(gt)
    R = Rotation.from_quat(gt["ee"]["orientation_xyzw"])
    hand = np.asarray(gt["ee"]["position"], dtype=np.float64)
    tcp = np.asarray(gt["tcp"]["position"], dtype=np.float64) if "tcp" in gt else hand + R.apply([0, 0, TCP_OFFSET_M])
    R_new = Rotation.from_euler("xyz", delta[3:6]) * R
    tcp_new = tcp + delta[0:3]
    g["ee"] = {
        **gt["ee"],
        "position": (tcp_new - R_new.apply([0, 0, TCP_OFFSET_M])).tolist(),
        "orientation_xyzw": R_new.as_quat().tolist(),
    }
    if "tcp" in gt:
        g["tcp"] = {**gt["tcp"], "position": tcp_new.tolist()}
    return g


def make_policy(cfg: RT2Config, **kwargs: Any) -> ScriptedExpertPolicy:
    """``policy.backend: rt2_ros.sim.expert:make_policy`` (``config/sim.yaml``): the expert,
    fed by the simulator's ground-truth topic unless ``ground_truth=`` is given; keyword
    arguments as :meth:`ScriptedExpertPolicy.from_config`.

    Raises:
        ValueError: ``action.format: openvla``, or an action configuration
            :func:`rt2_ros.codecs.make_codec` refuses.
    """
    return ScriptedExpertPolicy.from_config(cfg, **kwargs)

"""The control loop core: observations and instructions in, servo commands out.

The rclpy node (``rt2_ros.ros.node``) is a thin shell around :class:`Controller`: it
converts messages, calls these methods from its callbacks, and publishes what they
return. ROS-free and clock-agnostic (every method takes ``now_s``); thread-safe, so
:meth:`Controller.step` (the model, slow) runs on a worker thread while
:meth:`Controller.servo_command` (fast) runs on the servo timer.

Inputs never contend with the control path (issue 21): the newest end-effector pose and
image each live in a latest-value slot, one immutable tuple replaced by a single
attribute store (atomic under the GIL), which :meth:`Controller.servo_command` and :meth:`Controller.step`
read without a lock. The controller's lock guards only the episode, the action queue and
the twist, which the servo tick, the control step, instructions and stops change. With
the one lock taken by every pose and image callback (100 Hz-1 kHz), a callback thread
preempted inside it held up the servo tick until it got the GIL back behind the other
callback threads: gaps of 0.2-1 s in the twist stream (issue 21, a sampling profile).
Instructions are bounded before they reach the lock (:class:`InstructionRateLimit`,
its own small lock; dropped ones are counted), and nothing received before a stop
(:meth:`Controller.cancel`, :meth:`Controller.set_estop`) starts an episode after it (``received_ns``).

Per control period the worker calls :meth:`Controller.step`: the policy runs on the newest
image, its output is decoded; a valid action becomes the velocity ``delta / period``
(:func:`rt2_ros.motion.delta_to_twist`) held for one control period, then zero
until the next action (``shared/docs/rt2-reference.md``, MoveIt Servo: twists are
velocities). Every servo tick passes the :class:`~rt2_ros.safety.SafetyEnvelope`.

Action chunks (``action.horizon`` > 1): :meth:`Controller.step` queues the whole chunk in an
:class:`~rt2_ros.chunking.ActionQueue` (action ``k`` due at ``t_inference + k * period``);
:meth:`servo_command` executes one queued action per control period (open loop, or ACT's
temporal ensembling with ``control.execute: ensemble``), counts it as an episode step,
ends the episode at a terminate inside the chunk, and passes every tick through the
envelope. The caller asks :meth:`inference_due` when to infer the next chunk: when at
most ``control.chunk_threshold`` actions remain (inference ahead, LeRobot's async
pattern), while the servo ticks keep executing the queue. Horizon 1 is unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import numpy as np

from rt2_ros.chunking import ActionQueue, Executed
from rt2_ros.codecs import Action, make_codec
from rt2_ros.config import RT2Config
from rt2_ros.episode import EndReason, Episode, EpisodeState, Transition
from rt2_ros.joint_space import JointAction, JointEnvelope, JointServoCommand
from rt2_ros.motion import Twist, delta_to_twist, gripper_command
from rt2_ros.policies.base import Observation, Policy, PolicyError, PolicyResult, check_image
from rt2_ros.policies.prompts import check_instruction
from rt2_ros.safety import MAX_FUTURE_S, SafetyEnvelope, ServoCommand
from rt2_ros.throttle import RejectionLog

__all__ = ["Controller", "StepOutcome", "EpisodeInfo", "InstructionRateLimit", "WARN_PERIOD_S"]

log = logging.getLogger("rt2_ros.controller")

#: Repeated warnings of one kind (motion held for an unknown pose, motion without the
#: workspace box) are logged at most once per this many seconds of wall time [s].
WARN_PERIOD_S = 5.0


class InstructionRateLimit:
    """Token bucket: ``rate_hz`` instructions per second on average, bursts of ``burst``.

    Instruction spam (1 kHz) would otherwise restart the episode and log at the
    publisher's rate; a person or a task planner sending a few in quick succession
    passes. ``rate_hz`` 0 turns the limit off. Times are seconds on the caller's clock.
    """

    def __init__(self, rate_hz: float, burst: int = 5):
        self.rate_hz = float(rate_hz)
        self.burst = float(burst)
        self._tokens = self.burst
        self._t: float | None = None

    def take(self, now_s: float) -> bool:
        """Spend one instruction at ``now_s``; False when over the limit."""
        if self.rate_hz <= 0:
            return True
        if self._t is not None:
            self._tokens = min(self.burst, self._tokens + max(now_s - self._t, 0.0) * self.rate_hz)
        self._t = now_s
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclasses.dataclass(frozen=True)
class StepOutcome:
    """What one control step did (the node publishes it as ``RT2Action``).

    Attributes:
        episode_id: the episode this step belongs to.
        instruction: its instruction.
        result: the policy's answer (None when the policy failed or was not run).
        action: the accepted action (None when rejected or the policy failed).
        twist: the velocity that will be held for the control period (zero if none).
        gripper: gripper command in [0, 1] (1 = open) to send now, or None = hold.
        rejected: why no motion was commanded (decode error, policy error, stale
            image, ...), or None.
        transitions: episode transitions this step caused.
        latency_ms: wall time of the policy call, ms.
    """

    episode_id: int
    instruction: str
    result: PolicyResult | None
    action: Action | None
    twist: Twist
    gripper: float | None
    rejected: str | None
    transitions: tuple[Transition, ...]
    latency_ms: float


@dataclasses.dataclass(frozen=True)
class EpisodeInfo:
    """A consistent snapshot of the current (or last) episode, for status displays.

    Attributes:
        episode_id: 0 before the first episode.
        instruction: its instruction ("" before the first).
        step: actions taken.
        state: idle, running or finished.
        reason: why it finished (None while running or idle).
    """

    episode_id: int
    instruction: str
    step: int
    state: EpisodeState
    reason: EndReason | None


class Controller:
    """Episode + policy + codec + safety envelope, driven by the caller's clock.

    Args:
        cfg: the whole configuration.
        policy: any :class:`~rt2_ros.policies.base.Policy`.
        clock: wall clock used only to measure latency (default ``time.perf_counter``).
        now_fn: the caller's clock (the one ``now_s`` comes from: the node clock, ROS
            time under ``use_sim_time``), read again after inference so an action's
            period starts on that clock. None: ``now_s`` plus the measured latency.
    """

    def __init__(self, cfg: RT2Config, policy: Policy, clock=time.perf_counter, now_fn=None):
        self.cfg = cfg
        self.policy = policy
        self._clock = clock
        self._now_fn = now_fn
        self._lock = threading.RLock()
        self._transitions: list[Transition] = []
        self.episode = Episode(
            cfg.control.max_steps,
            cfg.control.max_duration_s,
            cfg.control.terminate_debounce,
            on_stop=self._on_stop,
        )
        self.envelope = SafetyEnvelope(cfg.safety, servo_period_s=1.0 / cfg.control.servo_rate_hz)
        #: Latest-value slots (see the module doc): (image, stamp_s) and (position, stamp_s, R_pc,
        #: rotation 3x3 or None).
        self._image_slot: tuple[np.ndarray, float] | None = None
        self._image_lock = threading.Lock()  # producers only: the out-of-order check
        self._pose_slot: tuple[np.ndarray, float, np.ndarray | None, np.ndarray | None] | None = None
        #: Wall time (ns, ``time.time_ns``) of the latest stop or e-stop: an instruction received
        #: before it never starts an episode (see :meth:`on_instruction`).
        self._stop_mark_ns = 0
        #: Instructions dropped: over the rate limit, or received before a later stop.
        self.dropped_instructions = 0
        self._failed_steps = 0  # consecutive failed policy calls in this episode
        self._twist = Twist.zero()
        self._twist_until_s = -np.inf
        #: Decoded gripper values of the configured action format, mapped to the [0, 1] command.
        codec = make_codec(cfg.action)
        self._gripper_range = codec.gripper_range
        self.last_stop_reasons: tuple[str, ...] = ()
        #: Actions per model output; > 1: chunk execution through the action queue.
        self.horizon = int(codec.horizon)
        #: openpi's policies answer chunks whatever action.horizon says (``emits_chunks``).
        self.chunked = self.horizon > 1 or bool(getattr(policy, "emits_chunks", False))
        #: The robot state passed to policies that read it (``uses_state``): the EE
        #: orientation (3x3, planning frame), the last gripper opening, the joint positions.
        self._gripper_open = 1.0
        #: Latest-value slot of the joint state: (positions rad in servo.joint_names order, names, stamp_s).
        self._joint_slot: tuple[np.ndarray, tuple[str, ...], float] | None = None
        #: Joint-space policies (``action_space == "joint_velocity"``): JointJog output through
        #: the joint envelope (:meth:`joint_command`) instead of twists.
        self.joint_mode = getattr(policy, "action_space", "ee_delta") == "joint_velocity"
        sc = cfg.safety
        self.joint_envelope = JointEnvelope(
            cfg.servo.joint_names,
            sc.max_joint_velocity_radps,
            sc.joint_position_min,
            sc.joint_position_max,
            sc.joint_limit_margin_rad,
            sc.max_joint_accel_radps2,
            1.0 / cfg.control.servo_rate_hz,
        )
        self._last_motion_s = -np.inf
        c = cfg.control
        self._queue = ActionQueue(c.period_s, cfg.safety.max_action_age_s, c.execute, c.ensemble_decay, c.execute_steps)
        self._exec: Executed | None = None
        self._exec_slot: int | None = None
        self._exec_decided = False
        self._grippers: list[tuple[int, float]] = []
        self._next_infer_s = -np.inf
        self._last_infer_s = -np.inf
        #: Chunk mode: actions executed in this controller's life (diagnostics).
        self.executed_actions = 0
        self._instruction_budget = InstructionRateLimit(cfg.control.max_instruction_rate_hz)
        self._budget_lock = threading.Lock()
        self._warnings = RejectionLog(WARN_PERIOD_S)
        s = cfg.safety
        if s.workspace_enabled and not s.require_ee_pose:
            log.warning(
                "safety.require_ee_pose is false: while the end-effector pose is unknown (none received, older "
                "than safety.max_pose_age_s, or rejected) the arm moves WITHOUT the workspace box"
            )

    def set_now_fn(self, now_fn) -> None:
        """Read the time after an inference from ``now_fn`` (the caller's clock, s) instead of
        adding the measured wall-clock latency to ``now_s``: an in-process loop in simulated
        time passes the simulation clock, in which the paused world spends no time on the
        inference, so its episodes are deterministic whatever the machine's load."""
        self._now_fn = now_fn

    def _warn_throttled(self, key: str, text: str) -> None:
        """Log ``text`` at most once per :data:`WARN_PERIOD_S` per ``key`` (:class:`RejectionLog`)."""
        if self._warnings.record(key) is not None:
            log.warning(text)

    # -- inputs ----------------------------------------------------------------------
    def _on_stop(self, t: Transition) -> None:
        self._twist, self._twist_until_s = Twist.zero(), -np.inf
        self.envelope.reset_slew()
        self.joint_envelope.zero()
        self._reset_chunks()

    def _reset_chunks(self) -> None:
        """A stop or a new episode: the queue is cleared, nothing queued ever runs."""
        self._queue.clear()
        self._exec, self._exec_slot, self._exec_decided = None, None, False
        self._grippers.clear()
        self._next_infer_s = self._last_infer_s = -np.inf

    def _record(self, ts) -> list[Transition]:
        ts = [t for t in ts if t is not None]
        self._transitions.extend(ts)
        return ts

    @staticmethod
    def _check_stamp(what: str, stamp_s: float, now_s: float | None) -> None:
        if not np.isfinite(stamp_s):
            raise ValueError(f"{what} stamp must be finite, got {stamp_s}")
        if now_s is not None and stamp_s > now_s + MAX_FUTURE_S:
            raise ValueError(f"{what} stamp is {stamp_s - now_s:.2f} s in the future of this clock (clock skew?)")

    def on_image(self, image: np.ndarray, stamp_s: float, now_s: float | None = None) -> None:
        """Store the newest RGB image (uint8 (H, W, 3)) stamped ``stamp_s`` (s).

        An older frame than the stored one is ignored, unless the stored one lies in
        the future of ``now_s`` (the clock jumped back, e.g. a simulation reset).

        Raises:
            ValueError: bad image, or a stamp more than ``MAX_FUTURE_S`` after
                ``now_s`` (the previous image stays; nothing moves on it).
        """
        check_image(image)
        self._check_stamp("image", stamp_s, now_s)
        with self._image_lock:  # other image callbacks only, never the control path
            slot = self._image_slot
            newest = None if slot is None else slot[1]
            jumped_back = now_s is not None and newest is not None and newest > now_s + MAX_FUTURE_S
            if newest is not None and stamp_s < newest and not jumped_back:
                return  # out-of-order frame: keep the newer one
            self._image_slot = (image, float(stamp_s))
            self.envelope.image_watchdog.feed(stamp_s, now_s)

    def on_ee_pose(
        self,
        position: np.ndarray,
        stamp_s: float,
        rotation_planning_from_command=None,
        now_s: float | None = None,
        orientation: np.ndarray | None = None,
    ) -> None:
        """Store the end-effector position (m, planning frame) stamped ``stamp_s``
        that arrived at ``now_s`` (the caller's clock; None: unknown). Its age counts
        from the earlier of the two, so a sender clock ahead cannot keep it fresh.
        ``orientation``: the end effector's rotation matrix (3, 3) in the planning frame,
        for policies that read the pose (openpi's LIBERO state); None: unknown.

        Raises:
            ValueError: not 3 finite values, a position further than
                ``safety.max_reach_m`` from the planning frame origin (the stored pose
                is then forgotten: unknown, no motion with ``require_ee_pose``), or a
                stamp more than ``MAX_FUTURE_S`` after ``now_s``.
        """
        p = np.asarray(position, dtype=np.float64)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            self._forget_pose()
            raise ValueError(f"end-effector position must be 3 finite values, got {position!r}")
        peak = float(np.max(np.abs(p)))  # (the norm of 1e300 overflows)
        reach = peak if peak > self.cfg.safety.max_reach_m else float(np.linalg.norm(p))
        if reach > self.cfg.safety.max_reach_m:
            self._forget_pose()
            raise ValueError(
                f"end-effector position {np.array2string(p, precision=3)} is {reach:.3g} m from the planning frame "
                f"origin, beyond safety.max_reach_m = {self.cfg.safety.max_reach_m} m (implausible)"
            )
        self._check_stamp("end-effector pose", stamp_s, now_s)
        if now_s is not None and np.isfinite(now_s):
            stamp_s = min(float(stamp_s), float(now_s))
        rot = None
        if orientation is not None:
            rot = np.asarray(orientation, dtype=np.float64)
            if rot.shape != (3, 3) or not np.all(np.isfinite(rot)):
                rot = None
        r_pc = None if rotation_planning_from_command is None else np.asarray(rotation_planning_from_command)
        self._pose_slot = (p, float(stamp_s), r_pc, rot)  # one store: readers see all of it or none

    def _forget_pose(self) -> None:
        self._pose_slot = None

    def on_joint_state(self, names, positions, stamp_s: float, now_s: float | None = None) -> None:
        """Store the arm's joint positions (rad; ``names`` in any order, kept in
        ``servo.joint_names`` order) stamped ``stamp_s``: openpi's DROID state and the
        joint envelope's position limits.

        Raises:
            ValueError: names and positions differ in length, a joint of ``servo.joint_names``
                is missing, or a position is not finite (the stored joint state is then forgotten).
        """
        q_all = np.asarray(positions, dtype=np.float64).reshape(-1)
        index = {str(n): i for i, n in enumerate(names)}
        want = self.cfg.servo.joint_names
        missing = [n for n in want if n not in index]
        if len(names) != q_all.size or missing or not np.all(np.isfinite(q_all)):
            self._joint_slot = None
            why = f"missing {missing}" if missing else "one finite position per name needed"
            raise ValueError(f"joint state rejected: {why} ({len(names)} names, {q_all.size} values)")
        q = np.array([q_all[index[n]] for n in want])
        names = want
        self._check_stamp("joint state", stamp_s, now_s)
        if now_s is not None and np.isfinite(now_s):
            stamp_s = min(float(stamp_s), float(now_s))
        self._joint_slot = (q, tuple(names), float(stamp_s))  # one store, like the pose slot

    def robot_state(self, now_s: float) -> dict:
        """:attr:`~rt2_ros.policies.base.Observation.state` now: the pose and the joints only
        when fresh (not older than ``safety.max_pose_age_s``). Reads the latest-value slots
        without the lock, like the servo tick."""
        st: dict = {"gripper_open": self._gripper_open}
        pose = self._pose_slot  # read once: position, stamp and rotation of one message
        pos = None if pose is None else self._ee_position_now(now_s, pose)
        if pos is not None and pose[3] is not None:
            st["ee_position"], st["ee_rotation"] = pos.copy(), pose[3].copy()
        js = self._joint_slot
        q = self._joints_now(now_s, js)
        if q is not None:
            st["joint_positions"], st["joint_names"] = q.copy(), js[1]
        return st

    def on_instruction(self, text: str, now_s: float, received_ns: int | None = None) -> list[Transition]:
        """Start an episode (preempting a running one).

        Args:
            text: the instruction.
            now_s: the caller's clock, s.
            received_ns: when the instruction was received (ns on ``time.time_ns``'s clock,
                e.g. the DDS reception time); None or 0: now. One received before the
                latest :meth:`cancel` or :meth:`set_estop` is dropped (a backlog of
                instructions must not restart what a stop ended).

        Raises:
            ValueError: an instruction :func:`~rt2_ros.policies.prompts.check_instruction`
                refuses (empty, too long, control characters), one over
                ``control.max_instruction_rate_hz`` (:class:`InstructionRateLimit`;
                the running episode goes on), one received before the latest stop, or
                the e-stop is engaged. Dropped ones are counted in :attr:`dropped_instructions`.
        """
        text = check_instruction(text)
        if received_ns and received_ns < self._stop_mark_ns:
            self.dropped_instructions += 1
            raise ValueError("received before the latest stop (/rt2/stop or the e-stop): ignored")
        with self._budget_lock:  # spam is dropped here, before it reaches the controller's lock
            if not self._instruction_budget.take(now_s):
                self.dropped_instructions += 1
                raise ValueError(
                    f"instructions arrive faster than control.max_instruction_rate_hz "
                    f"({self.cfg.control.max_instruction_rate_hz} per s): ignored"
                )
        with self._lock:
            if received_ns and received_ns < self._stop_mark_ns:  # a stop came while we waited
                self.dropped_instructions += 1
                raise ValueError("received before the latest stop (/rt2/stop or the e-stop): ignored")
            if self.envelope.estop_engaged:
                raise ValueError("emergency stop is engaged; clear it (/rt2/e_stop false) before a new episode")
            ts = self.episode.start(text, now_s)
            self._failed_steps = 0
            self._reset_chunks()
            self.envelope.action_watchdog.feed(now_s)  # the first action has max_action_age_s to arrive
            self._last_motion_s = now_s  # the no-motion rule counts from the start
            self.policy.reset()
            return self._record(ts)

    def cancel(self, now_s: float, mark_ns: int | None = None) -> Transition | None:
        """End the running episode as ``cancelled`` (``/rt2/stop``). Instructions received
        before ``mark_ns`` (ns, ``time.time_ns``; default now) never start an episode."""
        self._mark_stop(mark_ns)
        with self._lock:
            return (self._record([self.episode.cancel(now_s)]) or [None])[0]

    def _mark_stop(self, mark_ns: int | None) -> None:
        self._stop_mark_ns = max(self._stop_mark_ns, time.time_ns() if mark_ns is None else int(mark_ns))

    def set_estop(self, engaged: bool, now_s: float, mark_ns: int | None = None) -> Transition | None:
        """Latch (True) or clear (False) the emergency stop; latching ends the episode, and
        instructions received before ``mark_ns`` (ns, ``time.time_ns``; default now) never
        start one (nor, after a clear, those received before the clear)."""
        self._mark_stop(mark_ns)
        with self._lock:
            if engaged:
                self.envelope.engage_estop()
                return (self._record([self.episode.e_stop(now_s)]) or [None])[0]
            self.envelope.clear_estop()
            return None

    def fault(self, detail: str, now_s: float) -> Transition | None:
        """End the running episode as ``fault`` (e.g. Servo reported a halt)."""
        with self._lock:
            return (self._record([self.episode.fault(detail, now_s)]) or [None])[0]

    @property
    def has_transitions(self) -> bool:
        """Whether :meth:`drain_transitions` has something (a lock-free hint for callers)."""
        return bool(self._transitions)

    def drain_transitions(self) -> list[Transition]:
        """Transitions since the last call, oldest first (publish each on /rt2/episode)."""
        if not self._transitions:
            return []
        with self._lock:
            out, self._transitions = self._transitions, []
            return out

    # -- the model step ------------------------------------------------------------------
    def step(self, now_s: float) -> StepOutcome | None:
        """One control step: run the policy on the newest image and arm the twist.

        Call once per control period from a worker thread. Returns None when no
        episode is running (nothing was done).
        """
        with self._lock:
            # Chunks: the step limit counts executed actions, checked by the servo tick.
            ts = self._record([self.episode.tick(now_s, check_steps=not self.chunked), self._check_camera_loss(now_s)])
            if not self.episode.running:
                return None if not ts else self._outcome(None, None, "episode ended", ts, 0.0)
            if self.chunked:
                if self.episode.step >= self.cfg.control.max_steps:
                    return None  # the last actions run out; the servo tick ends the episode
                self._last_infer_s = now_s
                self._next_infer_s = now_s + self.cfg.control.period_s  # after a failure: one period later
            episode_id, instruction = self.episode.episode_id, self.episode.instruction
            slot = self._image_slot
            image = None if slot is None else slot[0]
            state = self.robot_state(now_s) if getattr(self.policy, "uses_state", False) else None
            if image is None or self.envelope.image_watchdog.expired(now_s):
                age = self.envelope.image_watchdog.age(now_s)
                return self._outcome(None, None, f"no fresh image (newest is {age:.2f} s old)", ts, 0.0)

        t0 = self._clock()
        try:
            if state is None:
                result = self.policy.infer(image, instruction)
            else:
                result = self.policy.infer_batch([Observation(image, instruction, state)])[0]
            error = result.error
        except (PolicyError, ValueError) as e:
            result, error = None, f"policy failed: {e}"
        except Exception as e:  # noqa: BLE001 - a backend bug must not kill the loop
            log.exception("policy raised")
            result, error = None, f"policy raised {type(e).__name__}: {e}"
        latency_ms = (self._clock() - t0) * 1e3

        with self._lock:
            if self.episode.episode_id != episode_id or not self.episode.running:
                return self._outcome(result, None, "episode changed during inference", [], latency_ms)
            if result is None:
                self._failed_steps += 1
                limit = self.cfg.policy.max_failed_steps
                if limit and self._failed_steps >= limit:
                    detail = (
                        f"the policy failed {self._failed_steps} steps in a row (policy.max_failed_steps {limit}); "
                        f"last: {error}"
                    )
                    log.warning(detail)
                    ts += self._record([self.episode.fault(detail, now_s)])
                    return self._outcome(result, None, error, ts, latency_ms)
            else:
                self._failed_steps = 0
            if result is None or result.action is None:
                # Garbage output or backend failure: no motion, count the step.
                ts += self._record([self.episode.on_action(False, now_s)])
                return self._outcome(result, None, error or "no action", ts, latency_ms)
            if self.chunked:
                return self._accept_chunk(result, now_s, ts, latency_ms, t0)
            action = result.action
            try:
                twist = delta_to_twist(action, self.cfg.control.period_s, self.cfg.action.rotation_convention)
                grip = None
                if self.cfg.gripper.enabled:
                    g = self.cfg.gripper
                    lo, hi = self._gripper_range
                    grip = gripper_command(action.gripper, lo, hi, g.invert, g.binarize, g.threshold)
            except ValueError as e:
                ts += self._record([self.episode.on_action(False, now_s)])
                return self._outcome(result, None, f"invalid action: {e}", ts, latency_ms)
            end = self.episode.on_action(action.terminate, now_s)
            ts += self._record([end])
            now_after = self._now_fn() if self._now_fn is not None else now_s + (self._clock() - t0)
            self.envelope.action_watchdog.feed(now_after)
            if end is not None or self.episode.pending_terminate():
                self._twist, self._twist_until_s = Twist.zero(), -np.inf  # hold still, gripper held
                return self._outcome(result, action, None, ts, latency_ms, twist=Twist.zero(), gripper=None)
            if grip is not None and self._stop_now(now_after):
                grip = None  # the arm is held stopped: so is the gripper
            if grip is not None:
                self._gripper_open = grip
            self._twist = twist
            self._twist_until_s = now_after + self.cfg.control.period_s
            return self._outcome(result, action, None, ts, latency_ms, twist=twist, gripper=grip)

    def _check_camera_loss(self, now_s: float) -> Transition | None:
        """End the running episode as a fault when no fresh image came for
        ``max_image_age_s + camera_loss_grace_s`` (counted from the episode start at
        the earliest). Call with the lock held."""
        if not self.episode.running:
            return None
        sc = self.cfg.safety
        limit = sc.max_image_age_s + sc.camera_loss_grace_s
        age = self.envelope.image_watchdog.age(now_s)
        silent = self.episode.elapsed_s(now_s)
        if -MAX_FUTURE_S <= age < np.inf:
            silent = min(silent, age)
        if silent <= limit:
            return None
        t = self.cfg.topics
        topics = " or ".join(repr(x) for x in (t.image, t.compressed_image) if x)
        detail = (
            f"camera lost: no fresh image on {topics} for {silent:.1f} s (safety.max_image_age_s "
            f"{sc.max_image_age_s} s + safety.camera_loss_grace_s {sc.camera_loss_grace_s} s)"
        )
        log.warning(detail)
        return self.episode.fault(detail, now_s)

    def _accept_chunk(self, result: PolicyResult, now_s: float, ts: list, latency_ms: float, t0: float) -> StepOutcome:
        """Queue a decoded chunk (under the lock): every action must convert to a finite
        twist and gripper command, else the whole chunk is rejected (no motion, one step)."""
        items = []
        try:
            for a in result.actions:
                self._check_joint_action(a)
                twist = delta_to_twist(a, self.cfg.control.period_s, self.cfg.action.rotation_convention)
                grip = None
                if self.cfg.gripper.enabled:
                    g = self.cfg.gripper
                    lo, hi = self._gripper_range
                    grip = gripper_command(a.gripper, lo, hi, g.invert, g.binarize, g.threshold)
                items.append((a, twist, grip))
        except ValueError as e:
            ts += self._record([self.episode.on_action(False, now_s)])
            return self._outcome(result, None, f"invalid action in the chunk: {e}", ts, latency_ms)
        self._queue.add_chunk(now_s, items)
        self._next_infer_s = -np.inf
        now_after = self._now_fn() if self._now_fn is not None else now_s + (self._clock() - t0)
        self.envelope.action_watchdog.feed(now_after)
        return self._outcome(result, result.action, None, ts, latency_ms, twist=items[0][1], gripper=None)

    def _check_joint_action(self, a: Action) -> None:
        """Joint mode takes only :class:`JointAction` with one finite velocity per joint (and
        the twist mode none). Raises ValueError."""
        if isinstance(a, JointAction) != self.joint_mode:
            raise ValueError(
                "joint-velocity action for a twist policy" if not self.joint_mode else "not a joint action"
            )
        if self.joint_mode:
            v = np.asarray(a.joint_velocities)
            if v.shape != (len(self.cfg.servo.joint_names),) or not np.all(np.isfinite(v)):
                raise ValueError(
                    f"joint action needs {len(self.cfg.servo.joint_names)} finite velocities, got shape {v.shape}"
                )

    def _joints_now(self, now_s: float, js=None) -> np.ndarray | None:
        """The joint positions of ``js`` (default: the slot's) when fresh (not older than
        ``safety.max_pose_age_s``), else None."""
        js = self._joint_slot if js is None else js
        if js is None:
            return None
        age = now_s - js[2]
        return js[0] if -MAX_FUTURE_S <= age <= self.cfg.safety.max_pose_age_s else None

    def _note_motion(self, now_s: float, moving: bool) -> None:
        """The no-motion rule (``control.no_motion_timeout_s``), under the lock: the running
        episode ends as ``no_motion`` when nothing was commanded to move for that long."""
        if not self.episode.running:
            return
        if moving:
            self._last_motion_s = now_s
            return
        limit = self.cfg.control.no_motion_timeout_s
        if limit > 0 and now_s - self._last_motion_s >= limit:
            self._record(
                [
                    self.episode.finish(
                        EndReason.NO_MOTION,
                        now_s,
                        detail=f"no commanded motion for {limit:.1f} s (control.no_motion_timeout_s)",
                    )
                ]
            )

    def joint_command(self, now_s: float) -> JointServoCommand:
        """Joint mode: the JointJog to publish now (call right after :meth:`servo_command`
        in the same servo tick: that call starts the slot's action). The current action's
        joint velocities through the :class:`~rt2_ros.joint_space.JointEnvelope`; zero
        outside a running episode, between actions and on every stop."""
        with self._lock:
            running = self.episode.running
            v = None
            ex = self._exec
            if running and ex is not None and self._exec_decided and self._queue.slot_at(now_s) == self._exec_slot:
                if isinstance(ex.action, JointAction):
                    v = ex.action.joint_velocities
            stop = self.envelope.stop_reasons(now_s, watch_inputs=running)
            if not running:
                cmd = self.joint_envelope.zero(stop)
            else:
                cmd = self.joint_envelope.filter(v, self._joints_now(now_s), stop)
            self._note_motion(now_s, bool(np.max(np.abs(cmd.velocities), initial=0.0) >= 0.01))
            if cmd.reasons:
                self.last_stop_reasons = cmd.reasons
            return cmd

    def inference_due(self, now_s: float) -> bool:
        """Chunk mode: whether the caller should run :meth:`Controller.step` now.

        True while an episode runs and the queue holds at most ``control.chunk_threshold``
        unfinished actions (0: only when it is empty, the arm then waits for the model);
        with ``execute: ensemble`` also once per control period (ACT infers every step).
        After a failed or refused inference, not before one control period has passed.
        Horizon 1: always False (the caller keeps its fixed control grid).
        """
        with self._lock:
            if not self.chunked or not self.episode.running or now_s < self._next_infer_s:
                return False
            if self.episode.step >= self.cfg.control.max_steps:
                return False
            c = self.cfg.control
            if self._queue.remaining(now_s) <= c.chunk_threshold:
                return True
            return c.execute == "ensemble" and now_s - self._last_infer_s >= c.period_s

    def queued_actions(self, now_s: float) -> int:
        """Chunk mode: actions queued and not yet finished (the current one included)."""
        with self._lock:
            return self._queue.remaining(now_s) if self.chunked else 0

    def waiting_for_inference(self, now_s: float) -> bool:
        """Whether a running episode has no action to execute at ``now_s`` (the arm is
        commanded to stand still until the model answers)."""
        with self._lock:
            if not self.episode.running:
                return False
            if self.chunked:
                return not self._exec_decided or self._queue.slot_at(now_s) != self._exec_slot
            return now_s >= self._twist_until_s

    def drain_gripper_commands(self, now_s: float) -> list[float]:
        """Chunk mode: gripper commands in [0, 1] of the actions that started since the last
        call, to send now (none after a stop, or while the envelope forces one)."""
        with self._lock:
            out, self._grippers = self._grippers, []
            if not self.episode.running or self._stop_now(now_s):
                return []
            return [g for eid, g in out if eid == self.episode.episode_id]

    def _chunk_twist(self, now_s: float) -> tuple[Twist, float]:
        """Chunk mode, under the lock: the twist of the current slot's action and how long it
        still holds (s). Starting an action counts an episode step, may end the episode
        (terminate, step limit) and queues its gripper command."""
        q = self._queue
        slot = q.slot_at(now_s)
        if slot is None:
            if self.episode.step >= self.cfg.control.max_steps:
                self._record([self.episode.tick(now_s)])
            return Twist.zero(), 0.0
        if slot != self._exec_slot:
            self._exec_slot, self._exec, self._exec_decided = slot, None, False
        if not self._exec_decided:
            if self.episode.step >= self.cfg.control.max_steps:
                self._record([self.episode.tick(now_s)])  # the last action had its whole period
                return Twist.zero(), 0.0
            ex = q.take(now_s)
            if ex is None:
                return Twist.zero(), 0.0  # waiting for the model; a chunk may still start this slot
            self._exec_decided = True
            self.executed_actions += 1
            end = self.episode.on_action(ex.action.terminate, now_s)
            self._record([end])
            if end is not None or self.episode.pending_terminate():
                self._exec = None  # terminate inside the chunk: stop here (gripper held)
                return Twist.zero(), 0.0
            self.envelope.action_watchdog.feed(now_s)
            self._exec = ex
            if ex.gripper is not None:
                self._grippers.append((self.episode.episode_id, ex.gripper))
                self._gripper_open = ex.gripper
        if self._exec is None:
            return Twist.zero(), 0.0
        return self._exec.twist, max(q.slot_start_s(slot + 1) - now_s, 0.0)

    def _ee_position_now(self, now_s: float, pose=None) -> np.ndarray | None:
        """The end-effector position of ``pose`` (default: the slot's) if its stamp is
        fresh (not older than ``max_pose_age_s``, not in the future), else None."""
        pose = self._pose_slot if pose is None else pose
        if pose is None:
            return None
        age = now_s - pose[1]
        return pose[0] if -MAX_FUTURE_S <= age <= self.cfg.safety.max_pose_age_s else None

    def _stop_now(self, now_s: float) -> bool:
        """Whether the envelope forces a stop now (e-stop, watchdogs, required pose unknown)."""
        if self.envelope.stop_reasons(now_s):
            return True
        return self.cfg.safety.require_ee_pose and self._ee_position_now(now_s) is None

    def send_gripper_if_allowed(self, episode_id: int, now_s: float, send) -> bool:
        """Call ``send()`` (which publishes a step's gripper command) only if that
        step's episode is still the running one and nothing forces a stop, atomically
        with respect to stops, e-stops and new instructions. Returns whether it sent."""
        with self._lock:
            if not (self.episode.running and self.episode.episode_id == episode_id) or self._stop_now(now_s):
                return False
            send()
            return True

    def _outcome(self, result, action, rejected, ts, latency_ms, twist=None, gripper=None) -> StepOutcome:
        return StepOutcome(
            self.episode.episode_id,
            self.episode.instruction,
            result,
            action,
            twist if twist is not None else Twist.zero(),
            gripper,
            rejected,
            tuple(ts),
            latency_ms,
        )

    # -- the servo tick ---------------------------------------------------------------------
    def servo_command(self, now_s: float) -> ServoCommand:
        """The twist to publish now (call at the servo rate).

        While an action's period lasts: its velocity, limited by the envelope; after
        it, or outside a running episode: zero (a stop).
        """
        with self._lock:
            ts = self._record([self.episode.tick(now_s, check_steps=False), self._check_camera_loss(now_s)])
            running = self.episode.running
            if running and self.chunked:
                n_before = len(self._transitions)
                twist, horizon = self._chunk_twist(now_s)
                ts = ts + self._transitions[n_before:]
                running = self.episode.running
            elif not running or now_s >= self._twist_until_s:
                twist, horizon = Twist.zero(), 0.0
            else:
                twist, horizon = self._twist, self._twist_until_s - now_s
            pose = self._pose_slot  # read once: position, stamp and rotation of one message
            r_pc = None if pose is None else pose[2]
            ee = None if pose is None else self._ee_position_now(now_s, pose)
            if ee is not None:
                # The pose is up to max_pose_age_s old: the arm has moved on since, at about
                # the last commanded velocity. Check the box from where it is now.
                v = self.envelope.last_twist.linear
                v = v if r_pc is None else r_pc @ v
                ee = ee + v * max(now_s - pose[1], 0.0)
            cmd = self.envelope.filter(
                twist,
                now_s,
                ee_position=ee,
                horizon_s=horizon,
                rotation_planning_from_command=r_pc,
                watch_inputs=running,
            )
            if cmd.stop and not twist.is_zero:
                log.debug("stop: %s", cmd.reasons)
            if not self.joint_mode:
                lin, ang = cmd.twist.linear, cmd.twist.angular
                self._note_motion(now_s, bool(np.linalg.norm(lin) >= 1e-3 or np.linalg.norm(ang) >= 0.01))
            if self.joint_mode:
                pass  # the end-effector pose does not gate joint motion (the joint envelope does)
            elif "ee_pose_unknown" in cmd.reasons:
                self._warn_throttled(
                    "pose_unknown",
                    "no motion: the end-effector pose is unknown (none received on TF / topics.ee_pose, older than "
                    "safety.max_pose_age_s, or rejected); the workspace box needs it (safety.require_ee_pose)",
                )
            elif "workspace_unchecked" in cmd.reasons:
                self._warn_throttled(
                    "box_unchecked",
                    "moving WITHOUT the workspace box: the end-effector pose is unknown and "
                    "safety.require_ee_pose is false",
                )
            if ts or (cmd.stop and cmd.reasons):
                self.last_stop_reasons = cmd.reasons
            return cmd

    @property
    def state(self) -> EpisodeState:
        """The episode's state (:class:`rt2_ros.episode.EpisodeState`)."""
        return self.episode.state

    @property
    def running(self) -> bool:
        """An episode is running."""
        return self.episode.running

    @property
    def estop_engaged(self) -> bool:
        """The emergency stop is latched (cleared only by :meth:`set_estop` False)."""
        return self.envelope.estop_engaged

    @property
    def stop_reasons(self) -> tuple[str, ...]:
        """Why the envelope last forced a stop (e.g. ``("e_stop",)``); empty if it did not."""
        return self.last_stop_reasons

    def episode_info(self) -> EpisodeInfo:
        """The current (or last) episode's id, instruction, step, state and end reason."""
        with self._lock:
            ep = self.episode
            return EpisodeInfo(ep.episode_id, ep.instruction, ep.step, ep.state, ep.reason)

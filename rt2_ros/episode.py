"""Episode logic: idle -> running -> finished, with the reason. ROS-free, clock-agnostic.

RT-2 ends an episode when the model emits the terminate token (arXiv:2307.15818
section 3.2); OpenVLA has no such token and ends by step or time limit (openvla
issue #45). Every transition out of ``running`` commands a stop: it calls
``on_stop`` and the returned :class:`Transition` has ``stop=True``.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Callable

__all__ = ["EpisodeState", "EndReason", "Transition", "Episode"]


class EpisodeState(enum.IntEnum):
    """Values match ``rt2_ros/msg/EpisodeStatus`` STATE_* constants."""

    IDLE = 0
    RUNNING = 1
    FINISHED = 2


class EndReason(str, enum.Enum):
    """Why an episode ended (the ``reason`` of ``/rt2/episode``)."""

    TERMINATE = "terminate"
    STEP_LIMIT = "step_limit"
    TIME_LIMIT = "time_limit"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"
    E_STOP = "e_stop"
    FAULT = "fault"
    NO_MOTION = "no_motion"


@dataclasses.dataclass(frozen=True)
class Transition:
    """A change of episode state (what ``/rt2/episode`` publishes).

    Attributes:
        state: the new state.
        reason: why the episode finished (None when it started).
        detail: free text (fault message, preempting instruction).
        instruction: the episode's instruction.
        step: control steps taken.
        elapsed_s: seconds since the episode started.
        episode_id: increases by one per started episode.
        stop: True when the robot must stop (every transition out of running).
    """

    state: EpisodeState
    reason: EndReason | None
    detail: str
    instruction: str
    step: int
    elapsed_s: float
    episode_id: int
    stop: bool


class Episode:
    """One robot episode at a time.

    Args:
        max_steps: finish with ``step_limit`` once this many actions were taken.
        max_duration_s: finish with ``time_limit`` after this long, s.
        terminate_debounce: finish with ``terminate`` after this many *consecutive*
            terminate actions (1 = at the first).
        on_stop: called with the transition whenever the robot must stop.
    """

    def __init__(
        self,
        max_steps: int = 100,
        max_duration_s: float = 120.0,
        terminate_debounce: int = 1,
        on_stop: Callable[[Transition], None] | None = None,
    ):
        if max_steps < 1 or not max_duration_s > 0 or terminate_debounce < 1:
            raise ValueError("max_steps >= 1, max_duration_s > 0 and terminate_debounce >= 1 are required")
        self.max_steps = int(max_steps)
        self.max_duration_s = float(max_duration_s)
        self.terminate_debounce = int(terminate_debounce)
        self.on_stop = on_stop
        self.state = EpisodeState.IDLE
        self.reason: EndReason | None = None
        self.detail = ""
        self.instruction = ""
        self.step = 0
        self.episode_id = 0
        self._start_s = 0.0
        self._end_s = 0.0
        self._terminate_streak = 0

    @property
    def running(self) -> bool:
        """True while an episode runs."""
        return self.state is EpisodeState.RUNNING

    def elapsed_s(self, now_s: float) -> float:
        """Seconds since the episode started (to its end once it ended; 0 before the first)."""
        if self.state is EpisodeState.IDLE:
            return 0.0
        end = now_s if self.running else self._end_s
        return max(end - self._start_s, 0.0)

    def _transition(self, now_s: float, stop: bool) -> Transition:
        t = Transition(
            self.state,
            self.reason,
            self.detail,
            self.instruction,
            self.step,
            self.elapsed_s(now_s),
            self.episode_id,
            stop,
        )
        if stop and self.on_stop is not None:
            self.on_stop(t)
        return t

    def finish(self, reason: EndReason, now_s: float, detail: str = "") -> Transition | None:
        """End the running episode (no-op, returning None, when not running)."""
        if not self.running:
            return None
        self._end_s = now_s
        self.state, self.reason, self.detail = EpisodeState.FINISHED, reason, detail
        return self._transition(now_s, stop=True)

    def start(self, instruction: str, now_s: float) -> list[Transition]:
        """Start an episode; a running one is first finished as ``preempted``.

        Raises:
            ValueError: empty or blank instruction (the running episode is untouched).
        """
        instruction = instruction.strip()
        if not instruction:
            raise ValueError("instruction is empty")
        out = []
        pre = self.finish(EndReason.PREEMPTED, now_s, detail=f"new instruction: {instruction}")
        if pre is not None:
            out.append(pre)
        self.episode_id += 1
        self.state, self.reason, self.detail = EpisodeState.RUNNING, None, ""
        self.instruction, self.step, self._terminate_streak = instruction, 0, 0
        self._start_s = now_s
        out.append(self._transition(now_s, stop=False))
        return out

    def on_action(self, terminate: bool, now_s: float) -> Transition | None:
        """Count one model action; returns the transition if the episode ended.

        A terminate action is counted but not executed: the episode ends (after
        ``terminate_debounce`` consecutive ones) and the robot stops.
        """
        if not self.running:
            return None
        self.step += 1
        self._terminate_streak = self._terminate_streak + 1 if terminate else 0
        if self._terminate_streak >= self.terminate_debounce:
            return self.finish(EndReason.TERMINATE, now_s)
        return None

    def tick(self, now_s: float, check_steps: bool = True) -> Transition | None:
        """Check the time limit and (with ``check_steps``) the step limit; returns the
        transition if the episode ended.

        The step limit is checked when the next step is due (the controller's
        ``step``), not in :meth:`on_action`, so the last allowed action gets its whole
        control period before the stop.
        """
        if not self.running:
            return None
        if self.elapsed_s(now_s) >= self.max_duration_s:
            return self.finish(EndReason.TIME_LIMIT, now_s)
        if check_steps and self.step >= self.max_steps:
            return self.finish(EndReason.STEP_LIMIT, now_s)
        return None

    def cancel(self, now_s: float) -> Transition | None:
        """End the running episode as ``cancelled`` (``/rt2/stop``); None when none runs."""
        return self.finish(EndReason.CANCELLED, now_s)

    def e_stop(self, now_s: float) -> Transition | None:
        """End the running episode by the emergency stop; None when none runs."""
        return self.finish(EndReason.E_STOP, now_s)

    def fault(self, detail: str, now_s: float) -> Transition | None:
        """End the running episode as a ``fault`` with ``detail``; None when none runs."""
        return self.finish(EndReason.FAULT, now_s, detail=detail)

    def pending_terminate(self) -> bool:
        """True while a terminate streak is building (debounce > 1): hold still."""
        return self._terminate_streak > 0

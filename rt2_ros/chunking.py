"""Executing action chunks: a time-indexed queue, open-loop execution and ACT's temporal
ensembling. ROS-free, clock-agnostic (every call takes ``now_s``, s, on the caller's clock).

A chunk inferred on an observation taken at ``t`` holds ``H`` actions; action ``k`` is due
at ``t + k * period`` and is meant to run for one control period. The queue keeps every
queued action in the slot of a grid of control periods anchored at the first chunk of
the episode: slot ``round((t + k * period - anchor) / period)``, so an action runs at
most half a period from its due time, and overlapping chunks share slots (ACT's temporal
ensembling averages per time step). Per slot one action is executed:

* ``open_loop``: the newest chunk's (a new chunk replaces every older action from its
  first slot on; with ``execute_steps`` n only its first n actions are queued), as
  openpi's clients play a chunk (``shared/docs/rt2-reference.md``, "Executing chunks");
* ``ensemble``: the weighted mean of every chunk's action for that slot, weights
  ``exp(-decay * i)`` with ``i = 0`` the oldest prediction (ACT, Zhao et al. 2023,
  section 3.3 / ``imitate_episodes.py`` ``temporal_agg``: ``exp_weights =
  np.exp(-k * np.arange(n))``, k = 0.01).

Never replayed: a slot's actions are dropped once the slot has passed, and an action
whose due time lies more than ``max_age_s`` in the past is dropped even inside its slot
(``safety.max_action_age_s``). :meth:`ActionQueue.clear` (a stop) empties everything.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from rt2_ros.codecs import Action
from rt2_ros.motion import Twist

__all__ = ["QueuedAction", "Executed", "ActionQueue"]


@dataclasses.dataclass(frozen=True)
class QueuedAction:
    """One action of a chunk, ready to execute.

    Attributes:
        action: the decoded action (displacement over one control period).
        twist: its velocity (m/s, rad/s, command frame), ``delta / period``.
        gripper: its gripper command in [0, 1] (1 = open), or None (gripper disabled).
        due_s: when it is due, ``t_inference + index * period`` (s).
        chunk_seq: the chunk's sequence number (1, 2, ... per episode; newer is larger).
        index: its position ``k`` in the chunk.
    """

    action: Action
    twist: Twist
    gripper: float | None
    due_s: float
    chunk_seq: int
    index: int


@dataclasses.dataclass(frozen=True)
class Executed:
    """The action a slot executes.

    Attributes:
        action: the action (for ``ensemble`` the weighted mean of the predictions; its
            ``terminate`` is the newest prediction's).
        twist: the velocity to hold for the rest of the slot (m/s, rad/s).
        gripper: the gripper command in [0, 1], or None.
        slot: the slot index.
        chunk_seq, index: the newest contributing chunk and the action's index in it.
        n_predictions: how many chunks contributed (1 for ``open_loop``).
    """

    action: Action
    twist: Twist
    gripper: float | None
    slot: int
    chunk_seq: int
    index: int
    n_predictions: int


class ActionQueue:
    """The time-indexed action queue (see the module doc). Not thread-safe: the
    :class:`~rt2_ros.controller.Controller` calls it under its lock.

    Args:
        period_s: the control period, s (> 0): one action per period.
        max_age_s: an action due longer ago than this is dropped, s (> 0).
        mode: ``"open_loop"`` or ``"ensemble"``.
        decay: ensemble weight decay ``k`` in ``exp(-k * i)`` (>= 0).
        execute_steps: actions queued from each chunk; 0 = all.

    Raises:
        ValueError: a bad period, age, mode, decay or ``execute_steps``.
    """

    def __init__(
        self,
        period_s: float,
        max_age_s: float,
        mode: str = "open_loop",
        decay: float = 0.01,
        execute_steps: int = 0,
    ):
        if not (math.isfinite(period_s) and period_s > 0):
            raise ValueError(f"period_s must be finite and > 0, got {period_s}")
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s}")
        if mode not in ("open_loop", "ensemble"):
            raise ValueError(f"mode must be 'open_loop' or 'ensemble', got {mode!r}")
        if not (math.isfinite(decay) and decay >= 0):
            raise ValueError(f"decay must be finite and >= 0, got {decay}")
        if execute_steps < 0:
            raise ValueError(f"execute_steps must be >= 0, got {execute_steps}")
        self.period_s = float(period_s)
        self.max_age_s = float(max_age_s)
        self.mode = mode
        self.decay = float(decay)
        self.execute_steps = int(execute_steps)
        self.anchor_s: float | None = None
        self._slots: dict[int, list[QueuedAction]] = {}
        self._seq = 0

    # -- time grid -------------------------------------------------------------------------
    def slot_at(self, now_s: float) -> int | None:
        """The slot ``now_s`` lies in (None before the first chunk)."""
        if self.anchor_s is None:
            return None
        return math.floor((now_s - self.anchor_s) / self.period_s + 1e-9)

    def slot_start_s(self, slot: int) -> float:
        """When ``slot`` starts, s (the queue must have an anchor)."""
        assert self.anchor_s is not None
        return self.anchor_s + slot * self.period_s

    # -- filling and emptying ---------------------------------------------------------------
    def clear(self) -> None:
        """Drop every queued action and the grid (a stop, a new episode)."""
        self.anchor_s = None
        self._slots.clear()
        self._seq = 0

    def add_chunk(self, t_s: float, items: Sequence[tuple[Action, Twist, float | None]]) -> list[int]:
        """Queue a chunk inferred on an observation taken at ``t_s`` (s).

        Args:
            t_s: the inference's time; action ``k`` is due at ``t_s + k * period_s``.
            items: ``(action, twist, gripper)`` per action, in execution order.

        Returns:
            The slots the queued actions went to (the first ``execute_steps`` of them).
        """
        if not items:
            return []
        if self.anchor_s is None:
            self.anchor_s = float(t_s)
        self._seq += 1
        n = len(items) if self.execute_steps == 0 else min(self.execute_steps, len(items))
        slots = []
        for k, (action, twist, gripper) in enumerate(items[:n]):
            due = t_s + k * self.period_s
            slot = int(round((due - self.anchor_s) / self.period_s))
            slots.append(slot)
        if self.mode == "open_loop":  # the newest chunk replaces every older action from its first slot on
            for s in [s for s in self._slots if s >= slots[0]]:
                del self._slots[s]
        for k, ((action, twist, gripper), slot) in enumerate(zip(items[:n], slots)):
            qa = QueuedAction(action, twist, gripper, t_s + k * self.period_s, self._seq, k)
            self._slots.setdefault(slot, []).append(qa)
        return slots

    def _prune(self, now_s: float) -> int | None:
        cur = self.slot_at(now_s)
        if cur is None:
            return None
        for s in [s for s in self._slots if s < cur]:
            del self._slots[s]  # a passed slot is never replayed
        for s, entries in list(self._slots.items()):
            fresh = [e for e in entries if now_s - e.due_s <= self.max_age_s]
            if len(fresh) != len(entries):
                if fresh:
                    self._slots[s] = fresh
                else:
                    del self._slots[s]
        return cur

    def remaining(self, now_s: float) -> int:
        """Actions not yet finished: slots from the current one on that hold an action."""
        cur = self._prune(now_s)
        return 0 if cur is None else sum(1 for s in self._slots if s >= cur)

    def queued_slots(self, now_s: float) -> list[int]:
        """The slots (from the current one on) that hold actions, in order."""
        cur = self._prune(now_s)
        return [] if cur is None else sorted(s for s in self._slots if s >= cur)

    def take(self, now_s: float) -> Executed | None:
        """The action the current slot executes (None when it holds none: the arm waits)."""
        cur = self._prune(now_s)
        if cur is None or cur not in self._slots:
            return None
        entries = sorted(self._slots[cur], key=lambda e: e.chunk_seq)
        newest = entries[-1]
        if self.mode == "open_loop" or len(entries) == 1:
            return Executed(newest.action, newest.twist, newest.gripper, cur, newest.chunk_seq, newest.index, 1)
        w = np.exp(-self.decay * np.arange(len(entries)))
        w = w / w.sum()
        vec = np.einsum("i,ij->j", w, np.array([e.action.vector for e in entries]))
        lin = np.einsum("i,ij->j", w, np.array([e.twist.linear for e in entries]))
        ang = np.einsum("i,ij->j", w, np.array([e.twist.angular for e in entries]))
        grips = [e.gripper for e in entries]
        grip = None if any(g is None for g in grips) else float(np.dot(w, np.array(grips, dtype=np.float64)))
        action = dataclasses.replace(
            newest.action, delta_position=vec[0:3], delta_rotation=vec[3:6], gripper=float(vec[6])
        )
        return Executed(action, Twist(lin, ang), grip, cur, newest.chunk_seq, newest.index, len(entries))

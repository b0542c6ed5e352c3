"""Read ROS 2 MCAP recordings into control steps: image, end-effector state, action, task.

ROS-free: the ``mcap`` and ``mcap-ros2-support`` libraries read the files and decode the
CDR messages from the message definitions stored in them, so no ROS installation is
needed. Input: MCAP files (``rt2-ros demo --record``, ``ros2 bag record -s mcap``; a
rosbag2 directory is searched for its ``*.mcap`` files).

This module makes episodes and control steps of the messages; reading the MCAP files is
:mod:`rt2_ros.training.bag_reader`, the shared types :mod:`rt2_ros.training.bag_types` (their
public names are re-exported here).

Topics read (names from the ``topics`` section of ``config/rt2.yaml`` unless given):

* camera: ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) or
  ``sensor_msgs/CompressedImage`` (``<image topic>/compressed`` is used when the raw
  topic has no messages); one or more cameras, each becomes
  ``observation.images.<camera>``;
* instruction: ``std_msgs/String``;
* end-effector pose: ``geometry_msgs/PoseStamped`` in ``frames.planning_frame``;
  when that topic is absent, ``/tf`` + ``/tf_static`` (``tf2_msgs/TFMessage``) from
  ``planning_frame`` to ``ee_frame``;
* gripper: command ``std_msgs/Float64`` in [0, 1] (1 = open, the node's output); an
  optional state topic, ``std_msgs/Float64`` in [0, 1] or ``sensor_msgs/JointState``
  (finger joint positions summed and divided by the open width);
* episode status ``rt2_ros/EpisodeStatus`` and the node's ``rt2_ros/RT2Action``, when
  recorded.

Episodes: from ``/rt2/episode`` transitions (RUNNING starts one, FINISHED ends it with
its reason). Without that topic: a non-empty instruction starts an episode; the next
instruction, an empty one or ``stop`` ends it. An episode still running when the bag
ends is cut there (not terminal).

Time: the recorder's log time of every message (one clock for all topics). Control
steps: the recorded ``/rt2/action`` steps (observation time = log time minus the
step's inference latency) where that topic has valid actions, else a grid of
``control.period_s`` from the first moment every stream has data. Per step: the latest
camera frame not older than ``max_image_age_s`` (default one period), the end-effector
pose interpolated (linear, slerp) between two samples at most ``max_pose_gap_s``
(default one period) apart, the gripper value in effect. Nothing is interpolated across
a longer gap: such steps are skipped and reported, and the episode's steps on either
side become separate dataset episodes.

Action (7 values, the RT-2 order ``dx dy dz drx dry drz gripper``): the recorded
action (e.g. the scripted expert's), else the displacement between the poses of this
step and the next, in ``frames.command_frame`` (the planning frame, or the
end-effector frame for body-frame commands), rotation as ``action.rotation_convention``
(roll-pitch-yaw extrinsic xyz, or a rotation vector): ``R_delta = R_next R^T``, the
rotation :func:`rt2_ros.motion.delta_to_twist` turns back into the angular velocity.
The gripper value is the command in effect at the end of the step. The episode's last
step has no next pose: it gets zero motion and ``terminate`` when the episode ended by
``terminate`` (or the operator's stop), else it is dropped.

Bad input never raises for one bag: every problem becomes a :class:`Problem` (bag, time
into the bag, what, control steps lost) and the rest of the data is used.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

# Re-exported: ``rt2_ros.training.bags`` stays the one import for readers of recordings.
from rt2_ros.training.bag_reader import Scan, decode_image, decode_images, find_bags, tf_pose_stream
from rt2_ros.training.bag_types import (
    ACTION_NAMES,
    COMPRESSED_TYPES,
    EPS,
    IMAGE_TYPES,
    STATE_NAMES,
    BagResult,
    BagTopics,
    Problem,
    ReadOptions,
    Segment,
    Stream,
    camera_name,
    select,
)

__all__ = [
    "BagTopics",
    "ReadOptions",
    "Segment",
    "Problem",
    "BagResult",
    "find_bags",
    "read_bag",
    "decode_image",
    "camera_name",
    "STATE_NAMES",
    "ACTION_NAMES",
]

log = logging.getLogger(__name__)

#: Instruction texts that end an episode when no episode topic was recorded.
STOP_WORDS = ("", "stop", "cancel", "done")
_RUNNING, _FINISHED = 1, 2


# -- pose series ---------------------------------------------------------------------------


def _valid_pose(v: np.ndarray) -> bool:
    if not np.all(np.isfinite(v)):
        return False
    n = float(np.linalg.norm(v[3:7]))
    return abs(n - 1.0) < 0.1


class _PoseSeries:
    """Pose samples of one clock segment: times, ``(N, 7)`` values (NaN rows = invalid)."""

    def __init__(self, t: np.ndarray, v: np.ndarray):
        order = np.argsort(t, kind="stable")
        self.t, self.v = t[order], v[order]
        self.ok = np.array([_valid_pose(x) for x in self.v], dtype=bool) if len(self.v) else np.zeros(0, bool)

    def __len__(self) -> int:
        return len(self.t)

    def at(self, tq: np.ndarray, max_gap: float) -> tuple[np.ndarray, np.ndarray]:
        """Interpolated poses ``(M, 7)`` and per-query status: 0 ok, 1 gap, 2 invalid sample."""
        n = len(self.t)
        out = np.full((len(tq), 7), np.nan)
        status = np.ones(len(tq), dtype=np.int8)
        if n == 0:
            return out, status
        eps = EPS
        i = np.searchsorted(self.t, tq + eps, side="right") - 1
        for k, (q, a) in enumerate(zip(tq, i)):
            if a < 0:
                continue
            if abs(self.t[a] - q) <= eps:
                if self.ok[a]:
                    out[k], status[k] = self.v[a], 0
                else:
                    status[k] = 2
                continue
            b = a + 1
            if b >= n or self.t[b] - self.t[a] > max_gap + eps:
                continue
            if not (self.ok[a] and self.ok[b]):
                status[k] = 2
                continue
            w = (q - self.t[a]) / (self.t[b] - self.t[a])
            pa, pb = self.v[a], self.v[b]
            pos = pa[:3] + w * (pb[:3] - pa[:3])
            ra, rb = Rotation.from_quat(pa[3:]), Rotation.from_quat(pb[3:])
            rot = ra * Rotation.from_rotvec(w * (ra.inv() * rb).as_rotvec())
            out[k, :3], out[k, 3:] = pos, rot.as_quat()
            status[k] = 0
        return out, status


# -- episodes ------------------------------------------------------------------------------


@dataclasses.dataclass
class _Episode:
    t_start: float
    seg_start: int
    instruction: str
    t_end: float = math.inf
    seg_end: int = -1
    reason: str = "bag_end"


def _episodes(scan: Scan) -> list[_Episode]:
    has_status = any(k == "episode" for _, _, k, _ in scan.events)
    out: list[_Episode] = []
    cur: _Episode | None = None
    last_instruction = ""

    def close(t: float, seg: int, reason: str) -> None:
        nonlocal cur
        if cur is not None:
            cur.t_end, cur.seg_end, cur.reason = t, seg, reason
            out.append(cur)
            cur = None

    for t, seg, kind, value in scan.events:
        if kind == "instruction":
            text = value.strip()
            if has_status:
                last_instruction = text or last_instruction
                continue
            stop = text.lower() in STOP_WORDS
            close(t, seg, "stop" if stop else "next_instruction")
            if not stop:
                cur = _Episode(t, seg, text)
            continue
        state, reason, instruction = value
        if state == _RUNNING:
            instr = instruction.strip() or last_instruction
            if cur is not None and cur.instruction == instr:
                continue
            close(t, seg, "preempted")
            cur = _Episode(t, seg, instr)
        elif state == _FINISHED:
            close(t, seg, reason or "finished")
    if cur is not None:
        last_seg = max((s for st in scan.streams.values() for s in st.seg), default=cur.seg_start)
        cur.seg_end = last_seg
        out.append(cur)
    return out


#: End reasons whose last step carries the terminate flag (the task was declared done).
TERMINAL_REASONS = ("terminate", "stop", "next_instruction")


# -- the reader ----------------------------------------------------------------------------


def read_bag(path: str | Path, topics: BagTopics, opts: ReadOptions) -> BagResult:
    """Read one MCAP file into :class:`Segment` s (see the module doc).

    Never raises for bad data in the file: problems are returned in
    :attr:`BagResult.problems` (a bag without camera or pose gets no segments).

    Raises:
        OSError: the file cannot be read.
    """
    path = Path(path)
    name = path.name
    scan = Scan(path, topics, opts)
    try:
        scan.run()
    except OSError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt file is one bad bag
        return BagResult(name, [], [Problem(name, 0.0, "bad_message", f"cannot read the file: {e}")])
    problems = list(scan.bad)
    for before, after in scan.jumps:
        problems.append(
            Problem(
                name,
                before,
                "clock_jump",
                f"clock jumped back {before - after:.2f} s (to {after:.2f} s); "
                "episodes running across it are cut there",
                1,
            )
        )
    result = BagResult(name, [], problems, messages=scan.count)
    cams = scan.resolved_images()
    missing = [t for c, t in cams.items() if not scan.streams.get(t) or not scan.streams[t].t]
    if missing:
        have = sorted(k for k, v in scan.types.items() if v in IMAGE_TYPES + COMPRESSED_TYPES)
        problems.append(
            Problem(name, 0.0, "no_image_topic", f"no messages on image topic(s) {missing} (image topics here: {have})")
        )
        return result
    pose_stream = scan.streams.get(topics.ee_pose)
    if pose_stream is None or not pose_stream.t:
        pose_stream = tf_pose_stream(scan, opts.planning_frame, opts.ee_frame)
        if pose_stream is None or not pose_stream.t:
            problems.append(
                Problem(
                    name,
                    0.0,
                    "no_pose",
                    f"no end-effector pose: {topics.ee_pose} has no messages and {topics.tf} has no "
                    f"{opts.planning_frame} -> {opts.ee_frame} chain",
                )
            )
            return result
    frames = {f for _, f in pose_stream.v if f}
    if frames and frames != {opts.planning_frame}:
        problems.append(
            Problem(
                name,
                pose_stream.t[0],
                "bad_message",
                f"end-effector poses are in {sorted(frames)}, not the planning frame {opts.planning_frame!r}; "
                "actions are derived as if they were",
            )
        )
    episodes = _episodes(scan)
    result.episodes = len(episodes)
    need_images: dict[str, dict[int, list[tuple[int, int]]]] = {c: {} for c in cams}
    pending: list[tuple[_Episode, int, int, dict[str, Any]]] = []
    for e_idx, ep in enumerate(episodes):
        try:
            from rt2_ros.policies.prompts import check_instruction

            task = check_instruction(ep.instruction)
        except ValueError as err:
            problems.append(
                Problem(
                    name,
                    ep.t_start,
                    "no_instruction",
                    f"episode {e_idx + 1} has no usable instruction ({err}); the whole episode is skipped",
                    max(
                        0,
                        int(
                            round(((ep.t_end if math.isfinite(ep.t_end) else ep.t_start) - ep.t_start) / opts.period_s)
                        ),
                    )
                    + 1,
                )
            )
            continue
        ep.instruction = task
        for piece, (seg, lo, hi) in enumerate(_pieces(ep)):
            steps = _steps_for_piece(scan, pose_stream, cams, ep, seg, lo, hi, opts, problems, name)
            for s_idx, st in enumerate(steps):
                pending.append((ep, e_idx, piece * 1000 + s_idx, st))
                for c in cams:
                    for k, img_seq in enumerate(st["image_seq"][c]):
                        need_images[c].setdefault(img_seq, []).append((len(pending) - 1, k))
    if not pending:
        return result
    images = decode_images(path, cams, need_images, problems, name, scan)
    for p_idx, (ep, e_idx, seg_idx, st) in enumerate(pending):
        frames_ok = np.ones(len(st["t"]), dtype=bool)
        per_cam: dict[str, list[np.ndarray]] = {}
        for c in cams:
            lst = []
            for k, img_seq in enumerate(st["image_seq"][c]):
                img = images[c].get(img_seq)
                if img is None:
                    frames_ok[k] = False
                lst.append(img)
            per_cam[c] = lst
        # a bad image splits the run like a gap
        for run in _runs(frames_ok):
            lo, hi = run
            last = hi == len(frames_ok) and st["done"]
            result.segments.append(
                Segment(
                    bag=name,
                    task=ep.instruction,
                    images={c: per_cam[c][lo:hi] for c in cams},
                    state=st["state"][lo:hi],
                    action=st["action"][lo:hi],
                    terminate=st["terminate"][lo:hi],
                    done=bool(last),
                    start_time_s=float(st["t"][lo]),
                    step_times_s=np.asarray(st["t"][lo:hi]),
                    reason=ep.reason,
                    episode_in_bag=e_idx,
                    segment_in_episode=seg_idx,
                    action_source=st["source"],
                )
            )
    by_ep: dict[int, int] = {}
    for s in result.segments:
        s.segment_in_episode = by_ep.get(s.episode_in_bag, 0)
        by_ep[s.episode_in_bag] = s.segment_in_episode + 1
    return result


def _pieces(ep: _Episode) -> list[tuple[int, float, float]]:
    """(clock segment, from, to) pieces of an episode; several when it spans clock jumps."""
    end_seg = ep.seg_end if ep.seg_end >= 0 else ep.seg_start
    if end_seg == ep.seg_start:
        return [(ep.seg_start, ep.t_start, ep.t_end)]
    out = [(ep.seg_start, ep.t_start, math.inf)]
    out += [(s, -math.inf, math.inf) for s in range(ep.seg_start + 1, end_seg)]
    out.append((end_seg, -math.inf, ep.t_end))
    return out


def _runs(ok: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) index ranges of consecutive True values."""
    out, start = [], None
    for i, v in enumerate(ok):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(ok)))
    return out


def _held(t: np.ndarray, vals: list[float], tq: np.ndarray) -> np.ndarray:
    """Latest value at or before each query; before the first: the first (NaN when none)."""
    if len(t) == 0:
        return np.full(len(tq), np.nan)
    v = np.asarray(vals, dtype=np.float64)
    i = np.searchsorted(t, tq + EPS, side="right") - 1
    return v[np.clip(i, 0, len(v) - 1)]


def _steps_for_piece(
    scan: Scan,
    pose_stream: Stream,
    cams: dict[str, str],
    ep: _Episode,
    seg: int,
    lo: float,
    hi: float,
    opts: ReadOptions,
    problems: list[Problem],
    bag: str,
) -> list[dict[str, Any]]:
    """Valid runs of control steps of one episode piece (one clock segment)."""
    T = opts.period_s
    cam_t = {c: select(scan.streams[t], seg) for c, t in cams.items()}
    pt, pv = select(pose_stream, seg)
    poses = _PoseSeries(pt, np.asarray([p for p, _ in pv], dtype=np.float64).reshape(-1, 7))
    at, av = select(scan.streams.get(scan.topics.action), seg)
    if len(poses) == 0 or any(len(ct) == 0 for ct, _ in cam_t.values()):
        return []
    # Leading/trailing trim: an episode starts where every stream has data near it (a
    # recording that begins with the instruction has its first frame a little later).
    age, gap = opts.image_age_s, opts.pose_gap_s
    firsts, lasts = [], []
    for ct, _ in cam_t.values():
        after = ct[ct >= lo - age]
        before = ct[ct <= hi]
        if len(after) == 0 or len(before) == 0:
            return []
        firsts.append(after[0])
        lasts.append(before[-1] + age)
    p_after, p_before = poses.t[poses.t >= lo - gap], poses.t[poses.t <= hi + gap]
    if len(p_after) == 0 or len(p_before) == 0:
        return []
    cover_lo = max([lo, p_after[0]] + firsts)
    cover_hi = min([hi, p_before[-1]] + lasts)
    if cover_hi < cover_lo:
        return []
    t_obs = np.asarray([at[k] - av[k][2] for k in range(len(at))], dtype=np.float64)
    in_ep = (t_obs >= lo - EPS) & (t_obs <= hi + EPS) if len(at) else np.zeros(0, bool)
    use_recorded = opts.action_source == "recorded" or (opts.action_source == "auto" and bool(np.any(in_ep)))
    terminal = ep.reason in TERMINAL_REASONS and hi == ep.t_end
    if use_recorded:
        sel = [k for k in np.flatnonzero(in_ep)]
        tq = t_obs[sel]
        keep = (tq >= cover_lo - EPS) & (tq <= cover_hi + EPS)
        sel = [k for k, ok in zip(sel, keep) if ok]
        tq = tq[keep]
        actions = np.asarray([av[k][0] for k in sel], dtype=np.float64).reshape(-1, 7)
        term = np.asarray([av[k][1] for k in sel], dtype=bool)
        source = "recorded"
    else:
        n = int(math.floor((cover_hi - cover_lo) / T + 1e-6)) + 1
        tq = cover_lo + T * np.arange(n)
        source = "poses"
    if len(tq) == 0:
        return []
    # images: latest frame not older than the allowed age
    status = np.zeros(len(tq), dtype=np.int8)  # 0 ok, 1 image gap, 2 nan pose, 3 pose gap
    gap_cam = [""] * len(tq)
    img_seq: dict[str, np.ndarray] = {}
    for c, (ct, cv) in cam_t.items():
        j = np.searchsorted(ct, tq + EPS, side="right") - 1
        ok = (j >= 0) & ((tq - ct[np.clip(j, 0, None)]) <= opts.image_age_s + EPS)
        for k in np.flatnonzero(~ok):
            if status[k] == 0:
                status[k], gap_cam[k] = 1, cams[c]
        img_seq[c] = np.asarray([cv[x] if x >= 0 else -1 for x in j], dtype=np.int64)
    pose, pst = poses.at(tq, opts.pose_gap_s)
    status[(status == 0) & (pst == 2)] = 2
    status[(status == 0) & (pst == 1)] = 3
    # gripper
    gs_t, gs_v = (
        select(scan.streams.get(scan.topics.gripper_state), seg)
        if scan.topics.gripper_state
        else (
            np.zeros(0),
            [],
        )
    )
    gc_t, gc_v = select(scan.streams.get(scan.topics.gripper_command), seg)
    if len(gs_t):
        grip_state = _held(gs_t, gs_v, tq)
    elif len(gc_t):
        grip_state = _held(gc_t, gc_v, tq)
    else:
        grip_state = np.full(len(tq), float(opts.default_gripper))
    if source == "poses":
        t_next = tq + T
        if len(gc_t):
            grip_act = _held(gc_t, gc_v, t_next - 1e-6)
        elif len(gs_t):
            grip_act = _held(gs_t, gs_v, t_next)
        else:
            grip_act = np.full(len(tq), float(opts.default_gripper))
        actions = np.full((len(tq), 7), np.nan)
        term = np.zeros(len(tq), dtype=bool)
        for k in range(len(tq)):
            if status[k] != 0:
                continue
            if k + 1 < len(tq):
                if pst[k + 1] == 0:
                    actions[k] = _delta(pose[k], pose[k + 1], grip_act[k], opts)
                else:  # no pose at the end of this step: no action for it
                    status[k] = 2 if pst[k + 1] == 2 else 3
            elif terminal:
                actions[k] = np.concatenate([np.zeros(6), [grip_state[k]]])
                term[k] = True
            else:
                status[k] = 5  # last step of a cut episode: no next pose, dropped silently
    _report_bad(status, tq, gap_cam, pose, problems, bag, T, cam_t, poses)
    state = np.concatenate([pose, grip_state[:, None]], axis=1)
    flip = state[:, 6] < 0
    state[flip, 3:7] *= -1
    out = []
    ok_all = status == 0
    runs = _runs(ok_all)
    for r_lo, r_hi in runs:
        last_step = bool(np.all(status[r_hi:] == 5))  # nothing but the undroppable tail after it
        out.append(
            {
                "t": tq[r_lo:r_hi],
                "state": state[r_lo:r_hi],
                "action": actions[r_lo:r_hi],
                "terminate": term[r_lo:r_hi],
                "image_seq": {c: img_seq[c][r_lo:r_hi] for c in cams},
                "done": bool(last_step and hi == ep.t_end and math.isfinite(ep.t_end)),
                "source": source,
            }
        )
    return out


def _delta(p0: np.ndarray, p1: np.ndarray, gripper: float, opts: ReadOptions) -> np.ndarray:
    r0, r1 = Rotation.from_quat(p0[3:]), Rotation.from_quat(p1[3:])
    if opts.command_frame == opts.planning_frame:
        dp, rd = p1[:3] - p0[:3], r1 * r0.inv()
    else:  # end-effector (body) frame
        dp, rd = r0.inv().apply(p1[:3] - p0[:3]), r0.inv() * r1
    rot = rd.as_euler("xyz") if opts.rotation_convention == "rpy" else rd.as_rotvec()
    return np.concatenate([dp, rot, [gripper]])


_KIND = {1: "image_gap", 2: "nan_pose", 3: "pose_gap"}


def _report_bad(status, tq, gap_cam, pose, problems, bag, T, cam_t, poses) -> None:
    k, n = 0, len(status)
    while k < n:
        s = int(status[k])
        if s in (0, 5):
            k += 1
            continue
        kind = _KIND[s]
        j = k
        while j < n and _KIND.get(int(status[j])) == kind:
            j += 1
        t_from, t_to = float(tq[k]), float(tq[j - 1])
        if kind == "image_gap":
            topic = gap_cam[k]
            msg = f"no camera frame on {topic} for {t_to - t_from + T:.2f} s (frames older than {T:.2f} s are not used)"
        elif kind == "nan_pose":
            msg = "end-effector pose is NaN or not a unit quaternion"
        else:
            msg = f"no end-effector pose for more than {T:.2f} s (nothing is interpolated across a gap)"
        problems.append(Problem(bag, t_from, kind, msg + f", until {t_to:.2f} s", j - k))
        k = j

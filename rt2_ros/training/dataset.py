"""``rt2-ros dataset build``: recordings -> a LeRobotDataset v3.0 directory.

Layout (huggingface/lerobot ``src/lerobot/datasets/utils.py``, codebase version v3.0)::

    meta/info.json                         features, fps, counts, path templates
    meta/stats.json                        per feature: min max mean std count q01 q10 q50 q90 q99
    meta/tasks.parquet                     task (index) -> task_index
    meta/episodes/chunk-000/file-000.parquet   one row per episode: length, tasks, data file,
                                           dataset_from_index/to_index, stats/<feature>/<stat>, rt2/* tracing
    data/chunk-000/file-000.parquet        one row per control step, one row group per episode
    meta/rt2_ros.json                      (ours; LeRobot ignores it) the config sections used, sources, problems

Features per step: ``observation.images.<camera>`` (``image``: PNG bytes in the parquet
file), ``observation.state`` (float32 8: x y z qx qy qz qw gripper), ``action`` (float32 7:
dx dy dz drx dry drz gripper, see :mod:`rt2_ros.training.bags`), ``terminate`` (bool, the
RT-2 terminate field), ``next.done`` (bool, last step of a recorded episode), and
LeRobot's ``timestamp`` (``frame_index / fps``), ``frame_index``, ``episode_index``,
``index``, ``task_index``. ``fps`` = ``1 / control.period_s`` (one row per control step).

Why images and not video: the policy is trained on the exact pixels the node will see
(raw ``sensor_msgs/Image``), so frames are stored lossless (PNG) instead of re-encoded
with a lossy video codec; training reads a row with its image in one parquet lookup
(no seeking and decoding of an mp4 per sample, no torchcodec/ffmpeg at training time),
and LeRobot reads ``image`` features from parquet natively. The price is size: about
60-100 kB per 224 x 224 frame against a few kB in H.264.

Statistics: exact (``numpy.quantile``, linear) over all steps for vectors; for images per
channel over all pixels scaled to [0, 1], quantiles from the exact 256-level histogram.
Everything is written with pyarrow (``datasets.Features`` gives the Hugging Face schema
metadata) and pandas; nothing by hand.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rt2_ros.training.bags import (
    ACTION_NAMES,
    STATE_NAMES,
    BagTopics,
    Problem,
    ReadOptions,
    Segment,
    camera_name,
    find_bags,
    read_bag,
)

__all__ = [
    "CODEBASE_VERSION",
    "QUANTILES",
    "BuildReport",
    "build_dataset",
    "load_dataset_meta",
    "DatasetMeta",
    "add_arguments",
    "run",
]

CODEBASE_VERSION = "v3.0"
#: Quantiles LeRobot stores (``compute_stats.py`` DEFAULT_QUANTILES).
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
RT2_META = "meta/rt2_ros.json"
_DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


# -- statistics ---------------------------------------------------------------------------------


def vector_stats(x: np.ndarray) -> dict[str, list]:
    """LeRobot-style statistics of ``(N, D)`` (or ``(N,)``) values per dimension.

    Returns:
        ``{"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}``, each a
        list of D floats (``count``: ``[N]``).

    Raises:
        ValueError: no values.
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.shape[0] == 0:
        raise ValueError("no values to compute statistics of")
    out: dict[str, list] = {
        "min": a.min(0).tolist(),
        "max": a.max(0).tolist(),
        "mean": a.mean(0).tolist(),
        "std": a.std(0).tolist(),
        "count": [int(a.shape[0])],
    }
    for q in QUANTILES:
        out[f"q{int(round(q * 100)):02d}"] = np.quantile(a, q, axis=0).tolist()
    return out


class ImageStats:
    """Per-channel statistics of uint8 RGB frames, pixels scaled to [0, 1]; exact
    quantiles from 256-level histograms. Shapes follow LeRobot: ``(3, 1, 1)``."""

    def __init__(self) -> None:
        self.hist = np.zeros((3, 256), dtype=np.int64)
        self.frames = 0

    def add(self, img: np.ndarray) -> None:
        for c in range(3):
            self.hist[c] += np.bincount(img[:, :, c].reshape(-1), minlength=256)
        self.frames += 1

    def merge(self, other: "ImageStats") -> None:
        self.hist += other.hist
        self.frames += other.frames

    def result(self) -> dict[str, list]:
        levels = np.arange(256, dtype=np.float64) / 255.0
        n = self.hist.sum(1).astype(np.float64)
        mean = (self.hist * levels).sum(1) / n
        var = (self.hist * levels**2).sum(1) / n - mean**2
        cum = np.cumsum(self.hist, axis=1)
        lo = np.array([levels[np.flatnonzero(h)[0]] for h in self.hist])
        hi = np.array([levels[np.flatnonzero(h)[-1]] for h in self.hist])

        def col(v: np.ndarray) -> list:
            return [[[float(x)]] for x in v]

        out = {
            "min": col(lo),
            "max": col(hi),
            "mean": col(mean),
            "std": col(np.sqrt(np.maximum(var, 0.0))),
            "count": [int(self.frames)],
        }
        for q in QUANTILES:
            idx = np.array([int(np.searchsorted(cum[c], q * n[c])) for c in range(3)])
            out[f"q{int(round(q * 100)):02d}"] = col(levels[np.clip(idx, 0, 255)])
        return out


# -- writing ------------------------------------------------------------------------------------


def _png(img: np.ndarray) -> bytes:
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _features(cams: dict[str, tuple[int, int]]) -> dict[str, dict]:
    feats: dict[str, dict] = {}
    for cam, (h, w) in cams.items():
        feats[f"observation.images.{cam}"] = {
            "dtype": "image",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
        }
    feats["observation.state"] = {"dtype": "float32", "shape": [len(STATE_NAMES)], "names": list(STATE_NAMES)}
    feats["action"] = {"dtype": "float32", "shape": [len(ACTION_NAMES)], "names": list(ACTION_NAMES)}
    feats["terminate"] = {"dtype": "bool", "shape": [1], "names": None}
    feats["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    feats.update(json.loads(json.dumps(_DEFAULT_FEATURES)))
    return feats


def _hf_features(features: dict[str, dict]) -> Any:
    """``datasets.Features`` for the LeRobot features (as ``get_hf_features_from_features``)."""
    import datasets

    out = {}
    for key, ft in features.items():
        if ft["dtype"] == "image":
            out[key] = datasets.Image()
        elif list(ft["shape"]) == [1]:
            out[key] = datasets.Value(ft["dtype"])
        else:
            out[key] = datasets.Sequence(datasets.Value(ft["dtype"]), length=int(ft["shape"][0]))
    return datasets.Features(out)


class _DataWriter:
    """Parquet data files with rotation at ``max_mb``, one row group per episode."""

    def __init__(self, root: Path, schema: Any, max_mb: float):
        self.root, self.schema, self.max_bytes = root, schema, max_mb * 1e6
        self.chunk, self.file, self._writer, self._bytes = 0, 0, None, 0.0

    def write(self, table: Any, nbytes: float) -> tuple[int, int]:
        import pyarrow.parquet as pq

        if self._writer is not None and self._bytes + nbytes > self.max_bytes:
            self._writer.close()
            self._writer = None
            self.file += 1
            if self.file >= CHUNKS_SIZE:
                self.chunk, self.file = self.chunk + 1, 0
        if self._writer is None:
            path = self.root / DATA_PATH.format(chunk_index=self.chunk, file_index=self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(str(path), self.schema, compression="snappy")
            self._bytes = 0.0
        self._writer.write_table(table)
        self._bytes += nbytes
        return self.chunk, self.file

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# -- build ----------------------------------------------------------------------------------------


class BuildReport:
    """What a build did: counts, problems, timing."""

    def __init__(self) -> None:
        self.bags = 0
        self.bags_used = 0
        self.recorded_episodes = 0
        self.episodes = 0
        self.frames = 0
        self.tasks: list[str] = []
        self.problems: list[Problem] = []
        self.seconds = 0.0
        self.messages = 0
        self.clipped_fraction: list[float] = []

    def skipped(self) -> dict[str, dict[str, int]]:
        """kind -> {"stretches": n, "steps": n}."""
        out: dict[str, dict[str, int]] = {}
        for p in self.problems:
            d = out.setdefault(p.kind, {"stretches": 0, "steps": 0})
            d["stretches"] += 1
            d["steps"] += p.steps
        return out

    def to_dict(self) -> dict[str, Any]:
        """The report as ``meta/rt2_ros.json`` stores it."""
        return {
            "bags": self.bags,
            "bags_used": self.bags_used,
            "recorded_episodes": self.recorded_episodes,
            "episodes": self.episodes,
            "frames": self.frames,
            "tasks": len(self.tasks),
            "skipped": self.skipped(),
            "problems": [str(p) for p in self.problems],
            "seconds": self.seconds,
            "frames_per_s": self.frames / self.seconds if self.seconds > 0 else None,
            "action_fraction_outside_bounds": self.clipped_fraction,
        }


def build_dataset(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    cfg: Any = None,
    *,
    cameras: Sequence[str] | None = None,
    gripper_state: str = "",
    action_source: str = "auto",
    robot_type: str | None = None,
    overwrite: bool = False,
    data_file_mb: float = 100.0,
    progress: bool = False,
    log: Any = None,
) -> BuildReport:
    """Read the recordings and write the dataset (see the module doc).

    Args:
        inputs: MCAP files or directories.
        out_dir: dataset root to create.
        cfg: :class:`~rt2_ros.config.RT2Config` (topics, frames, ``control.period_s``,
            ``action``); default ``config/rt2.yaml``.
        cameras: image topics (default ``topics.image``).
        gripper_state: optional gripper state topic.
        action_source: ``auto`` | ``recorded`` | ``poses``.
        robot_type: stored in info.json.
        overwrite: replace an existing ``out_dir``.
        data_file_mb: start a new data file beyond this size (LeRobot default 100 MB).
        progress: tqdm bar over the bags.
        log: callable for messages (default: print to stderr).

    Returns:
        The :class:`BuildReport` (also in ``meta/rt2_ros.json``).

    Raises:
        FileNotFoundError: no inputs.
        FileExistsError: ``out_dir`` exists (without ``overwrite``).
        ValueError: no usable step in any input (the problems are in the message), or bad options.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rt2_ros.config import load_config

    cfg = cfg or load_config()
    say = log or (lambda m: print(m, file=sys.stderr))
    t_start = time.perf_counter()
    bags = find_bags(inputs)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} exists and is not empty (use --overwrite)")
        shutil.rmtree(out)
    topics = BagTopics.from_config(cfg, images=cameras, gripper_state=gripper_state)
    opts = ReadOptions.from_config(cfg, action_source=action_source)
    fps_f = 1.0 / cfg.control.period_s
    fps = int(round(fps_f))
    if abs(fps - fps_f) > 1e-6 or fps < 1:
        raise ValueError(f"control.period_s {cfg.control.period_s} s is not 1/integer: LeRobot needs an integer fps")
    cam_names = [camera_name(t) for t in topics.images]
    report = BuildReport()
    report.bags = len(bags)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)

    features: dict[str, dict] | None = None
    writer: _DataWriter | None = None
    hf = None
    cam_shapes: dict[str, tuple[int, int]] = {}
    task_index: dict[str, int] = {}
    episode_rows: list[dict[str, Any]] = []
    all_state, all_action, all_term, all_done = [], [], [], []
    all_ts, all_fi, all_ei, all_ti = [], [], [], []
    img_stats = {c: ImageStats() for c in cam_names}
    index = 0

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(bags), desc="bags", unit="bag", dynamic_ncols=True)
    try:
        for bag in bags:
            res = read_bag(bag, topics, opts)
            report.messages += res.messages
            report.recorded_episodes += res.episodes
            report.problems.extend(res.problems)
            used = False
            for seg in res.segments:
                shapes = {c: seg.images[c][0].shape[:2] for c in cam_names}
                if not cam_shapes:
                    cam_shapes = dict(shapes)
                    features = _features(cam_shapes)
                    hf = _hf_features(features)
                    writer = _DataWriter(tmp, hf.arrow_schema, data_file_mb)
                if shapes != cam_shapes:
                    report.problems.append(
                        Problem(
                            seg.bag,
                            seg.start_time_s,
                            "bad_image",
                            f"camera frames are {shapes}, the dataset's are {cam_shapes}; episode skipped",
                            len(seg),
                        )
                    )
                    continue
                row = _write_episode(seg, len(episode_rows), index, fps, task_index, writer, hf, cam_names, img_stats)
                episode_rows.append(row)
                n = len(seg)
                all_state.append(seg.state)
                all_action.append(seg.action)
                all_term.append(seg.terminate)
                done = np.zeros(n, bool)
                done[-1] = seg.done
                all_done.append(done)
                all_ts.append(np.arange(n) / fps)
                all_fi.append(np.arange(n))
                all_ei.append(np.full(n, row["episode_index"]))
                all_ti.append(np.full(n, task_index[seg.task]))
                index += n
                used = True
            report.bags_used += int(used)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{len(episode_rows)} episodes, {index} frames")
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    if not episode_rows:
        shutil.rmtree(tmp, ignore_errors=True)
        lines = "\n  ".join(str(p) for p in report.problems[:20]) or "(no episodes found)"
        raise ValueError(f"no usable control step in {len(bags)} recording(s):\n  {lines}")
    assert features is not None

    # meta/episodes
    ep_table = pa.Table.from_pylist(episode_rows)
    ep_path = tmp / EPISODES_PATH.format(chunk_index=0, file_index=0)
    ep_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(ep_table, str(ep_path))
    # meta/tasks
    tasks = sorted(task_index, key=task_index.get)
    pd.DataFrame({"task_index": [task_index[t] for t in tasks]}, index=pd.Index(tasks, name="task")).to_parquet(
        tmp / "meta" / "tasks.parquet"
    )
    # meta/stats
    stats: dict[str, Any] = {
        "observation.state": vector_stats(np.concatenate(all_state).astype(np.float32)),
        "action": vector_stats(np.concatenate(all_action).astype(np.float32)),
        "terminate": vector_stats(np.concatenate(all_term).astype(np.float64)),
        "next.done": vector_stats(np.concatenate(all_done).astype(np.float64)),
        "timestamp": vector_stats(np.concatenate(all_ts)),
        "frame_index": vector_stats(np.concatenate(all_fi)),
        "episode_index": vector_stats(np.concatenate(all_ei)),
        "index": vector_stats(np.arange(index)),
        "task_index": vector_stats(np.concatenate(all_ti)),
    }
    for c in cam_names:
        stats[f"observation.images.{c}"] = img_stats[c].result()
    (tmp / "meta" / "stats.json").write_text(json.dumps(stats, indent=2))
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": len(episode_rows),
        "total_frames": index,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": int(math.ceil(data_file_mb)),
        "video_files_size_in_mb": 200,
        "fps": fps,
        "splits": {"train": f"0:{len(episode_rows)}"},
        "data_path": DATA_PATH,
        "video_path": None,
        "features": features,
    }
    (tmp / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    actions = np.concatenate(all_action)
    low, high = np.asarray(cfg.action.low), np.asarray(cfg.action.high)
    report.clipped_fraction = np.mean((actions < low) | (actions > high), axis=0).round(4).tolist()
    report.episodes, report.frames, report.tasks = len(episode_rows), index, tasks
    report.seconds = time.perf_counter() - t_start
    rt2_meta = {
        "generator": "rt2-ros dataset build",
        "period_s": cfg.control.period_s,
        "frames": cfg.frames.model_dump(),
        "action": cfg.action.model_dump(),
        "action_source": action_source,
        "cameras": {camera_name(t): t for t in topics.images},
        "topics": {k: v for k, v in vars(topics).items() if k != "images"},
        "sources": [str(b) for b in bags],
        "report": report.to_dict(),
    }
    (tmp / RT2_META).write_text(json.dumps(rt2_meta, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    for k, frac in enumerate(report.clipped_fraction):
        if frac > 0.01:
            say(
                f"warning: {frac:.1%} of the {ACTION_NAMES[k]} actions lie outside action bounds "
                f"[{low[k]}, {high[k]}]; training clips them (widen action.low/high?)"
            )
    return report


def _write_episode(
    seg: Segment,
    ep_index: int,
    start: int,
    fps: int,
    task_index: dict[str, int],
    writer: _DataWriter,
    hf: Any,
    cams: list[str],
    img_stats: dict[str, ImageStats],
) -> dict[str, Any]:
    import pyarrow as pa

    n = len(seg)
    ti = task_index.setdefault(seg.task, len(task_index))
    cols: dict[str, Any] = {}
    nbytes = 0.0
    ep_img_stats = {}
    for c in cams:
        pngs = [_png(img) for img in seg.images[c]]
        nbytes += sum(len(b) for b in pngs)
        cols[f"observation.images.{c}"] = [{"bytes": b, "path": None} for b in pngs]
        st = ImageStats()
        for img in seg.images[c]:
            st.add(img)
        img_stats[c].merge(st)
        ep_img_stats[c] = st.result()
    done = np.zeros(n, bool)
    done[-1] = seg.done
    cols["observation.state"] = seg.state.astype(np.float32).tolist()
    cols["action"] = seg.action.astype(np.float32).tolist()
    cols["terminate"] = seg.terminate.astype(bool).tolist()
    cols["next.done"] = done.tolist()
    cols["timestamp"] = (np.arange(n, dtype=np.float64) / fps).astype(np.float32).tolist()
    cols["frame_index"] = list(range(n))
    cols["episode_index"] = [ep_index] * n
    cols["index"] = list(range(start, start + n))
    cols["task_index"] = [ti] * n
    table = pa.Table.from_pydict(cols, schema=hf.arrow_schema)
    chunk, file = writer.write(table, nbytes + n * 200)
    row: dict[str, Any] = {
        "episode_index": ep_index,
        "tasks": [seg.task],
        "length": n,
        "data/chunk_index": chunk,
        "data/file_index": file,
        "dataset_from_index": start,
        "dataset_to_index": start + n,
        "meta/episodes/chunk_index": 0,
        "meta/episodes/file_index": 0,
        "rt2/bag": seg.bag,
        "rt2/start_time_s": float(seg.start_time_s),
        "rt2/reason": seg.reason,
        "rt2/recorded_episode": int(seg.episode_in_bag),
        "rt2/segment": int(seg.segment_in_episode),
        "rt2/action_source": seg.action_source,
    }
    ep_stats: dict[str, Any] = {
        "observation.state": vector_stats(seg.state.astype(np.float32)),
        "action": vector_stats(seg.action.astype(np.float32)),
        "timestamp": vector_stats(np.asarray(cols["timestamp"])),
        "frame_index": vector_stats(np.arange(n)),
        "episode_index": vector_stats(np.full(n, ep_index)),
        "index": vector_stats(np.arange(start, start + n)),
        "task_index": vector_stats(np.full(n, ti)),
    }
    for c in cams:
        ep_stats[f"observation.images.{c}"] = ep_img_stats[c]
    for feat, st in ep_stats.items():
        for name, val in st.items():
            row[f"stats/{feat}/{name}"] = val
    return row


# -- reading back (training, tests) -------------------------------------------------------------


class DatasetMeta:
    """The metadata of a dataset directory written by :func:`build_dataset` (or LeRobot v3.0).

    Attributes:
        root: the dataset directory.
        info: ``meta/info.json``.
        stats: ``meta/stats.json``.
        tasks: task texts by ``task_index``.
        episodes: one dict per episode.
        cameras: the feature keys of the images.
        rt2: ``meta/rt2_ros.json`` (or {}).
    """

    def __init__(self, root: Path, info: dict, stats: dict, tasks: list[str], episodes: list[dict], rt2: dict):
        self.root, self.info, self.stats, self.tasks, self.episodes, self.rt2 = root, info, stats, tasks, episodes, rt2
        self.cameras = [k for k, f in info["features"].items() if f["dtype"] == "image"]

    @property
    def fps(self) -> int:
        """Frames per second of the dataset (``info.json``)."""
        return int(self.info["fps"])

    def data_files(self) -> list[Path]:
        """The dataset's data parquet files, in chunk and file order."""
        files = sorted(
            {(int(e["data/chunk_index"]), int(e["data/file_index"])) for e in self.episodes},
        )
        return [self.root / self.info["data_path"].format(chunk_index=c, file_index=f) for c, f in files]


def load_dataset_meta(root: str | Path) -> DatasetMeta:
    """Read ``meta/`` of a v3.0 dataset.

    Raises:
        FileNotFoundError: not a dataset directory.
        ValueError: another codebase version, or a dataset with video features (``rt2-ros train``
            reads image features).
    """
    import pandas as pd
    import pyarrow.parquet as pq

    root = Path(root)
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"{root} is not a LeRobot dataset (no meta/info.json)")
    info = json.loads(info_path.read_text())
    if info.get("codebase_version") != CODEBASE_VERSION:
        raise ValueError(f"{root}: codebase_version {info.get('codebase_version')!r}, expected {CODEBASE_VERSION}")
    stats_path = root / "meta" / "stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    tdf = pd.read_parquet(root / "meta" / "tasks.parquet")
    tasks = [""] * len(tdf)
    for task, ti in zip(tdf.index, tdf["task_index"]):
        tasks[int(ti)] = str(task)
    eps: list[dict] = []
    for f in sorted((root / "meta" / "episodes").glob("*/*.parquet")):
        tab = pq.read_table(str(f))
        cols = [c for c in tab.column_names if not c.startswith("stats/")]
        eps.extend(tab.select(cols).to_pylist())
    eps.sort(key=lambda e: int(e["episode_index"]))
    rt2_path = root / RT2_META
    rt2 = json.loads(rt2_path.read_text()) if rt2_path.is_file() else {}
    return DatasetMeta(root, info, stats, tasks, eps, rt2)


# -- CLI ----------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rt2-ros dataset``."""
    sub = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    b = sub.add_parser("build", help="recordings (MCAP) -> LeRobotDataset v3.0 directory")
    b.add_argument("inputs", nargs="+", help="MCAP files or directories (searched for *.mcap)")
    b.add_argument("--out", required=True, help="dataset directory to create")
    b.add_argument(
        "--config", default=None, help="rt2 parameters file (topics, frames, period, action; default config/rt2.yaml)"
    )
    b.add_argument("--camera", action="append", default=None, help="image topic (repeat for several cameras)")
    b.add_argument("--gripper-state", default="", help="gripper state topic (Float64 [0,1] or JointState)")
    b.add_argument(
        "--action-source", choices=["auto", "recorded", "poses"], default="auto", help="where actions come from"
    )
    b.add_argument("--robot-type", default=None, help="robot type stored in info.json")
    b.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    v = sub.add_parser("vqa", help="sim recordings (ground truth) -> VQA dataset for co-fine-tuning")
    v.add_argument("inputs", nargs="+", help="MCAP files or directories with /sim/ground_truth and a camera")
    v.add_argument("--out", required=True, help="VQA dataset directory to create")
    v.add_argument("--camera", default="/camera/image_raw", help="image topic")
    v.add_argument("--every", type=int, default=5, help="use every N-th camera frame (default 5)")
    v.add_argument("--seed", type=int, default=0, help="question sampling seed")
    v.add_argument("--overwrite", action="store_true", help="replace an existing output directory")


def run(args: argparse.Namespace) -> int:
    """``rt2-ros dataset build|vqa``."""
    from rt2_ros.config import ConfigError, load_config

    if args.dataset_command == "vqa":
        from rt2_ros.training.vqa import build_vqa_dataset

        try:
            n = build_vqa_dataset(
                args.inputs, args.out, camera=args.camera, every=args.every, seed=args.seed, overwrite=args.overwrite
            )
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(json.dumps({"out": str(Path(args.out).resolve()), "pairs": n}, indent=2))
        return 0
    try:
        cfg = load_config(args.config)
        report = build_dataset(
            args.inputs,
            args.out,
            cfg,
            cameras=args.camera,
            gripper_state=args.gripper_state,
            action_source=args.action_source,
            robot_type=args.robot_type,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (OSError, ValueError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for p in report.problems[:50]:
        print(f"skipped: {p}", file=sys.stderr)
    if len(report.problems) > 50:
        print(f"... and {len(report.problems) - 50} more (all in meta/rt2_ros.json)", file=sys.stderr)
    d = report.to_dict()
    d.pop("problems")
    print(json.dumps({"out": str(Path(args.out).resolve()), **d}, indent=2))
    return 0

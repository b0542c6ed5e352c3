"""Episode records and what the demo leaves behind: table, contact sheet, trajectory plot.

ROS-free. Images are composed with Pillow (contact sheet) and drawn with matplotlib
(trajectory plot, ``Agg`` backend, no display needed): both well-kept libraries, so no
image code of our own beyond placing tiles.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rt2_ros.sim.tasks import COLORS

__all__ = [
    "EpisodeRecord",
    "format_table",
    "summary_line",
    "write_reports",
    "contact_sheet",
    "trajectory_plot",
]


@dataclasses.dataclass
class EpisodeRecord:
    """What happened in one episode.

    Attributes:
        instruction: the instruction.
        seed: layout seed.
        backend: policy backend (``scripted``, ``local``, ...).
        steps: control steps (model actions) taken.
        reason: why it ended (``terminate``, ``step_limit``, ``time_limit``, ``fault``, ...).
        success: the sim's task check when the episode ended.
        detail: the check's measured value in words.
        wall_s: wall-clock time from the instruction to the end of the episode, s.
        latencies_ms: policy latency per step, ms.
        frames: camera frames (uint8 (H, W, 3)) seen during the episode, in order.
        tcp_path: ``(N, 3)`` TCP positions (m, ``panda_link0``) during the episode.
        targets: block positions at the start ({color: [x, y, z]}, m).
        final_blocks: block positions at the end.
        target_color: the named block's colour (None if the instruction was not understood).
        rejected: steps whose model output was rejected (no motion).
        error: what went wrong outside the episode (timeout, node died), else "".
    """

    instruction: str
    seed: int
    backend: str = ""
    steps: int = 0
    reason: str = ""
    success: bool = False
    detail: str = ""
    wall_s: float = 0.0
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    frames: list[np.ndarray] = dataclasses.field(default_factory=list)
    tcp_path: list[list[float]] = dataclasses.field(default_factory=list)
    targets: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    final_blocks: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    target_color: str | None = None
    rejected: int = 0
    error: str = ""

    @property
    def mean_latency_ms(self) -> float:
        """Mean policy latency per step, ms (NaN when no step ran)."""
        return float(np.mean(self.latencies_ms)) if self.latencies_ms else math.nan

    def summary(self) -> dict[str, Any]:
        """One JSON-ready row (no frames, no paths; the policy latency of every step, ms)."""
        lat = self.mean_latency_ms
        return {
            "backend": self.backend,
            "instruction": self.instruction,
            "seed": self.seed,
            "steps": self.steps,
            "reason": self.reason,
            "success": bool(self.success),
            "detail": self.detail,
            "wall_s": round(self.wall_s, 2),
            "mean_latency_ms": None if math.isnan(lat) else round(lat, 2),
            "latencies_ms": [round(float(x), 2) for x in self.latencies_ms],
            "rejected_steps": self.rejected,
            "error": self.error,
        }


_COLUMNS = [
    ("#", 3),
    ("policy", 9),
    ("instruction", 30),
    ("seed", 4),
    ("steps", 5),
    ("end", 10),
    ("success", 7),
    ("wall s", 6),
    ("latency ms", 10),
]


def _row(i: int, r: EpisodeRecord) -> list[str]:
    lat = r.mean_latency_ms
    return [
        str(i),
        r.backend,
        r.instruction,
        str(r.seed),
        str(r.steps),
        r.reason or r.error[:10] or "-",
        "yes" if r.success else "no",
        f"{r.wall_s:.1f}",
        "-" if math.isnan(lat) else f"{lat:.1f}",
    ]


def format_table(records: Sequence[EpisodeRecord], markdown: bool = False) -> str:
    """The per-episode table: policy, instruction, layout seed, steps, termination reason,
    success, wall time (s) and mean inference latency (ms), one row per episode."""
    rows = [_row(i + 1, r) for i, r in enumerate(records)]
    if markdown:
        head = "| " + " | ".join(c for c, _ in _COLUMNS) + " |"
        sep = "|" + "|".join("---" for _ in _COLUMNS) + "|"
        return "\n".join([head, sep] + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(w, *(len(r[k]) for r in rows)) if rows else w for k, (_, w) in enumerate(_COLUMNS)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    lines = [fmt([c for c, _ in _COLUMNS]), fmt(["-" * w for w in widths])]
    return "\n".join(lines + [fmt(r) for r in rows])


def summary_line(records: Sequence[EpisodeRecord]) -> str:
    """Per backend: successes / episodes, termination reasons and mean latency."""
    out = []
    for backend in dict.fromkeys(r.backend for r in records):
        rs = [r for r in records if r.backend == backend]
        reasons: dict[str, int] = {}
        for r in rs:
            reasons[r.reason or "error"] = reasons.get(r.reason or "error", 0) + 1
        lats = [x for r in rs for x in r.latencies_ms]
        lat = f", mean latency {np.mean(lats):.1f} ms" if lats else ""
        why = ", ".join(f"{k} {v}" for k, v in reasons.items())
        out.append(f"{backend}: {sum(r.success for r in rs)}/{len(rs)} succeeded ({why}){lat}")
    return "\n".join(out)


def write_reports(
    records: Sequence[EpisodeRecord], out_dir: str | Path, meta: dict[str, Any] | None = None
) -> dict[str, Path]:
    """Write ``report.md`` (table + summary), ``report.json`` (rows + ``meta``),
    ``contact_sheet.png`` and ``trajectories.png`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "report_md": out / "report.md",
        "report_json": out / "report.json",
        "contact_sheet": out / "contact_sheet.png",
        "trajectories": out / "trajectories.png",
    }
    paths["report_md"].write_text(
        "# rt2_ros closed-loop demo\n\n"
        + format_table(records, markdown=True)
        + "\n\n"
        + summary_line(records).replace("\n", "  \n")
        + "\n"
    )
    paths["report_json"].write_text(
        json.dumps({"meta": meta or {}, "episodes": [r.summary() for r in records]}, indent=2)
    )
    contact_sheet(records).save(paths["contact_sheet"])
    trajectory_plot(records, paths["trajectories"])
    return paths


def _pick_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    if not frames:
        return [None, None, None]
    return [frames[0], frames[len(frames) // 2], frames[-1]]


def contact_sheet(records: Sequence[EpisodeRecord], label_width: int = 300, tile: int | None = None):
    """A PIL image: one row per episode, its first, middle and last camera frame, with
    a label (policy, instruction, steps, how it ended, success).

    Args:
        records: the episodes.
        label_width: width of the label column, pixels.
        tile: frame size in pixels (default: the frames' own height).
    """
    from PIL import Image, ImageDraw, ImageFont

    first = next((f for r in records for f in r.frames), None)
    size = tile or (first.shape[0] if first is not None else 224)
    pad, head = 6, 28
    n = max(len(records), 1)
    W = label_width + 3 * (size + pad) + pad
    H = head + n * (size + pad) + pad
    sheet = Image.new("RGB", (W, H), (250, 250, 250))
    d = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=15)
        small = ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1: bitmap font only
        font = small = ImageFont.load_default()
    for k, title in enumerate(("first frame", "middle frame", "last frame")):
        d.text((label_width + pad + k * (size + pad) + 4, 6), title, fill=(60, 60, 60), font=font)
    for i, r in enumerate(records):
        y = head + i * (size + pad)
        ok = r.success
        d.rectangle([pad, y, label_width - pad, y + size], fill=(226, 244, 226) if ok else (248, 228, 228))
        lines = [
            f"#{i + 1}  {r.backend}  (seed {r.seed})",
            *_wrap_text(r.instruction, 30),
            f"{r.steps} steps, ended: {r.reason or r.error or '?'}",
            "SUCCESS" if ok else "no success",
            r.detail[:36],
        ]
        lat = r.mean_latency_ms
        if not math.isnan(lat):
            lines.append(f"latency {lat:.1f} ms/step, {r.wall_s:.1f} s")
        for j, line in enumerate(lines):
            d.text(
                (pad + 8, y + 8 + j * 19),
                line,
                fill=(20, 90, 20) if (line == "SUCCESS") else (30, 30, 30),
                font=font if j < 1 + len(_wrap_text(r.instruction, 30)) else small,
            )
        for k, f in enumerate(_pick_frames(r.frames)):
            x = label_width + pad + k * (size + pad)
            if f is None:
                d.rectangle([x, y, x + size, y + size], outline=(180, 180, 180))
                continue
            im = Image.fromarray(np.asarray(f, dtype=np.uint8))
            if im.size != (size, size):
                im = im.resize((size, size))
            sheet.paste(im, (x, y))
    return sheet


def _wrap_text(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def trajectory_plot(records: Sequence[EpisodeRecord], path: str | Path, ncols: int = 5) -> Path:
    """Top-down (x-y, ``panda_link0``) view of every episode: the TCP path coloured by
    height, the blocks where they started (filled squares) and ended (outlines), the
    named block ringed. Writes a PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    n = max(len(records), 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.1 * ncols + 0.8, 3.3 * nrows + 0.5), squeeze=False, layout="constrained"
    )
    norm = plt.Normalize(0.0, 0.45)
    cmap = plt.get_cmap("viridis")
    lc = None
    for i, ax in enumerate(axes.flat):
        if i >= len(records):
            ax.axis("off")
            continue
        r = records[i]
        for c, p in r.targets.items():
            rgba = COLORS.get(c, (0.5, 0.5, 0.5, 1))
            ax.scatter([p[0]], [p[1]], marker="s", s=90, color=rgba, zorder=3)
            if c == r.target_color:
                ax.scatter(
                    [p[0]], [p[1]], marker="o", s=420, facecolors="none", edgecolors="k", linewidths=1.2, zorder=4
                )
        for c, p in r.final_blocks.items():
            rgba = COLORS.get(c, (0.5, 0.5, 0.5, 1))
            ax.scatter([p[0]], [p[1]], marker="s", s=90, facecolors="none", edgecolors=[rgba], linewidths=1.5, zorder=3)
        path_xyz = np.asarray(r.tcp_path, dtype=np.float64).reshape(-1, 3)
        if len(path_xyz) >= 2:
            seg = np.stack([path_xyz[:-1, :2], path_xyz[1:, :2]], axis=1)
            lc = LineCollection(seg, cmap=cmap, norm=norm, linewidths=2.0, zorder=2)
            lc.set_array(0.5 * (path_xyz[:-1, 2] + path_xyz[1:, 2]))
            ax.add_collection(lc)
            ax.plot(*path_xyz[0, :2], marker="^", color="k", ms=6, zorder=5)
            ax.plot(*path_xyz[-1, :2], marker="x", color="k", ms=7, zorder=5)
            # inset: TCP height over the episode (descend, grasp, lift show up here)
            ins = ax.inset_axes([0.60, 0.04, 0.37, 0.26])
            ins.plot(np.linspace(0, 1, len(path_xyz)), path_xyz[:, 2], color="k", lw=1.0)
            ins.axhline(0.0, color="saddlebrown", lw=0.8)
            ins.set_ylim(-0.02, 0.6)
            ins.set_xticks([])
            ins.set_yticks([0, 0.5])
            ins.tick_params(labelsize=5, length=2, pad=1)
            ins.set_title("z [m] over time", fontsize=5, pad=1)
            ins.patch.set_alpha(0.8)
        ax.set_xlim(0.15, 0.85)
        ax.set_ylim(-0.35, 0.35)
        ax.set_aspect("equal")
        ax.grid(True, lw=0.3)
        ok = "OK" if r.success else "no"
        ax.set_title(
            f"#{i + 1} {r.backend}: {r.instruction}\n{r.steps} steps, {r.reason or r.error}, success {ok}", fontsize=7.5
        )
        ax.tick_params(labelsize=6)
        if i % ncols == 0:
            ax.set_ylabel("y [m]", fontsize=7)
        if i // ncols == nrows - 1:
            ax.set_xlabel("x [m]", fontsize=7)
    fig.suptitle(
        "TCP paths, top view (panda_link0, x forward, y left); filled squares: blocks at start, "
        "outlines: at end; ring: named block; ^ start, x end; inset: TCP height",
        fontsize=8.5,
    )
    if lc is not None:
        cb = fig.colorbar(lc, ax=axes, shrink=0.6, pad=0.01)
        cb.set_label("TCP height z [m]", fontsize=7)
        cb.ax.tick_params(labelsize=6)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

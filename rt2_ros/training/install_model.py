"""Install a trained model directory as a shipped checkpoint, with its model card.

``python -m rt2_ros.training.install_model SRC DST --command "make train" --data-seeds ...``
copies what the node needs from an ``rt2-ros train`` output (model weights, configs,
processor and tokenizer, ``dataset_statistics.json``, ``rt2_ros_policy.yaml``,
``training_metrics.json``) - not the Trainer checkpoints or logs - and writes ``README.md``:
the training card ``rt2-ros train`` wrote, plus how it was made (command, data seeds,
steps, wall time), the sha256 of every file, and, with ``--eval-json``
(``benchmarks/eval_vla.py``), the measured success per task family. ROS-free, torch-free.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["SHIPPED_FILES", "install_model", "sha256_of", "main"]

#: Files of an ``rt2-ros train`` output that a shipped checkpoint carries.
SHIPPED_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "processor_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "dataset_statistics.json",
    "rt2_ros_policy.yaml",
    "training_metrics.json",
    "training_summary.json",
)


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _eval_lines(eval_json: Path) -> list[str]:
    data = json.loads(eval_json.read_text())
    lines = [
        f"Measured with `benchmarks/eval_vla.py --mode {data.get('mode')}` ({data.get('machine')}; "
        f"load {data.get('load_before')} before, {data.get('load_after')} after; {data.get('wall_s')} s):",
        "",
        "| family | success | 95% CI (Wilson) | successes ended by the model's terminate | ends | latency p50/p99 ms "
        "| scripted expert, same layouts |",
        "|---|---|---|---|---|---|---|",
    ]
    for fam, s in data.get("families", {}).items():
        lat = s.get("latency_ms") or {}
        ex = s.get("expert")
        lines.append(
            f"| {fam} | {s['successes']}/{s['episodes']} | {s['ci95'][0]:.2f}-{s['ci95'][1]:.2f} | "
            f"{s['successes_ended_by_terminate']}/{s['successes']} | {s['reasons']} | "
            f"{lat.get('p50', '-')}/{lat.get('p99', '-')} | "
            + (f"{ex['successes']}/{ex['episodes']}" if ex else "-")
            + " |"
        )
    return lines


def install_model(
    src: str | Path,
    dst: str | Path,
    command: str,
    data_seeds: str,
    train_seconds: float | None = None,
    eval_json: str | Path | None = None,
    max_bytes: int = 25 * 1024 * 1024,
    script: str = "scripts/train_demo_vla.sh",
    eval_jsons: Sequence[str | Path] = (),
) -> Path:
    """Copy the shipped files of ``src`` into ``dst`` (replacing it) and write the card.

    Raises:
        FileNotFoundError: ``src`` lacks ``model.safetensors`` or ``config.json``.
        ValueError: the copied files exceed ``max_bytes`` (the repository's 25 MB budget).
    """
    src, dst = Path(src), Path(dst)
    for need in ("model.safetensors", "config.json", "rt2_ros_policy.yaml"):
        if not (src / need).is_file():
            raise FileNotFoundError(f"{src} has no {need}: not an rt2-ros train output")
    files = [src / f for f in SHIPPED_FILES if (src / f).is_file()]
    total = sum(f.stat().st_size for f in files)
    if total > max_bytes:
        raise ValueError(f"{src}: {total / 2**20:.1f} MiB to ship, more than {max_bytes / 2**20:.0f} MiB")
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in files:
        shutil.copy2(f, dst / f.name)
    metrics = (
        json.loads((src / "training_metrics.json").read_text()) if (src / "training_metrics.json").is_file() else {}
    )
    card = (src / "README.md").read_text() if (src / "README.md").is_file() else ""
    card = card.replace(str(src.resolve()), str(dst))
    lines = [
        card.rstrip(),
        "",
        "## How this checkpoint was made",
        "",
        f"- command: `{command}` (from a clean clone; {script})",
        f"- data seeds (layouts): {data_seeds}; evaluation layouts use seeds below 100000",
        f"- optimizer steps: {metrics.get('global_step')}",
        *([] if card else [f"- {k}: {v}" for k, v in metrics.get("card", {}).items()]),
    ]
    if train_seconds is not None:
        lines.append(f"- wall time of the whole recipe: {train_seconds:.0f} s")
    evals = [Path(e) for e in ([eval_json] if eval_json else []) + list(eval_jsons)]
    if evals:
        lines += ["", "## Success in the simulated loop"]
        for e in evals:
            lines += ["", *_eval_lines(e)]
    lines += ["", "## Files (sha256)", ""]
    lines += [f"- `{f.name}`: {sha256_of(dst / f.name)}" for f in files]
    (dst / "README.md").write_text("\n".join(lines) + "\n")
    return dst


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: install a trained directory with its model card; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m rt2_ros.training.install_model", description=__doc__.splitlines()[0])
    p.add_argument("src", help="rt2-ros train output directory")
    p.add_argument("dst", help="where to install it (replaced)")
    p.add_argument("--command", required=True, help="the command that made it")
    p.add_argument("--data-seeds", required=True, help="the layout seeds of its data, in words")
    p.add_argument("--train-seconds", type=float, default=None, help="wall time of the recipe, s")
    p.add_argument("--eval-json", action="append", default=[], help="benchmarks/eval_vla.py output to quote (repeat)")
    p.add_argument("--script", default="scripts/train_demo_vla.sh", help="the script behind --command")
    a = p.parse_args(argv)
    try:
        out = install_model(
            a.src, a.dst, a.command, a.data_seeds, a.train_seconds, None, script=a.script, eval_jsons=a.eval_json
        )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"installed {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Learning curve of a trained VLA: closed-loop success against training steps (a script, not a test).

Every Trainer checkpoint in ``MODEL/checkpoints/checkpoint-N`` (``rt2-ros train
--save-steps``) is run as a model directory - its weights with the final output's processor,
tokenizer and ``rt2_ros_policy.yaml`` - through ``benchmarks/eval_vla.py --mode inprocess``
(Controller, Servo stand-in and physics in simulated time) on the same held-out layouts,
plus the final model. Writes ``--out``/``learning_curve.json`` and ``learning_curve.png``
(success with its 95 % Wilson interval against steps, per family).

Example::

    python benchmarks/learning_curve.py --model out/train/model --families reach --episodes 30
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import eval_vla  # noqa: E402

_WEIGHTS = ("model.safetensors", "config.json")


def checkpoint_dirs(model: Path) -> list[tuple[int, Path]]:
    found = []
    for ck in (model / "checkpoints").glob("checkpoint-*"):
        if (ck / "model.safetensors").is_file():
            found.append((int(ck.name.split("-")[-1]), ck))
    return sorted(found)


def as_model_dir(model: Path, ck: Path, dst: Path) -> Path:
    """A model directory with the checkpoint's weights and the final output's other files."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in model.iterdir():
        if f.is_file() and f.name not in _WEIGHTS:
            shutil.copy2(f, dst / f.name)
    for name in _WEIGHTS:
        shutil.copy2(ck / name, dst / name)
    return dst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="rt2-ros train output directory (with checkpoints/)")
    p.add_argument("--families", nargs="+", default=["reach"])
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--first-seed", type=int, default=5000)
    p.add_argument("--out", default="out/learning_curve")
    a = p.parse_args(argv)
    model, out = Path(a.model), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    final_step = json.loads((model / "training_metrics.json").read_text()).get("global_step")
    points = [(n, as_model_dir(model, ck, out / "models" / f"step{n}")) for n, ck in checkpoint_dirs(model)]
    if final_step not in {n for n, _ in points}:
        points.append((int(final_step), model))
    curve = []
    for step, mdir in points:
        argv_e = ["--model", str(mdir), "--mode", "inprocess", "--episodes", str(a.episodes)]
        argv_e += ["--first-seed", str(a.first_seed), "--out", str(out / f"step{step}"), "--families", *a.families]
        eval_vla.main(argv_e)
        res = json.loads((out / f"step{step}" / "eval.json").read_text())
        row = {"step": step}
        for fam, s in res["families"].items():
            row[fam] = {k: s[k] for k in ("successes", "episodes", "success_rate", "ci95", "reasons")}
        curve.append(row)
        print(json.dumps(row), flush=True)
    (out / "learning_curve.json").write_text(json.dumps(curve, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    for fam in a.families:
        xs = [r["step"] for r in curve]
        ys = [r[fam]["success_rate"] for r in curve]
        lo = [r[fam]["success_rate"] - r[fam]["ci95"][0] for r in curve]
        hi = [r[fam]["ci95"][1] - r[fam]["success_rate"] for r in curve]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=fam)
    ax.set_xlabel("optimizer steps (batch 16)")
    ax.set_ylabel("success (95% CI)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{model.name}: {a.episodes} held-out layouts per point", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png")
    print(f"wrote {out / 'learning_curve.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

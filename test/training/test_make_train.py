"""``make train`` (scripts/train_demo_vla.sh) end to end at toy scale: record expert episodes
and yellow-block VQA scenes, build both datasets, make the random-init mini base, train a
couple of steps with the VQA mix and the 33-bin codec; the model directory is complete and
nothing is installed into models/ unless asked."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

pytest.importorskip("pybullet")
pytest.importorskip("rclpy")
pytest.importorskip("torch")
pytest.importorskip("datasets")

ROOT = Path(__file__).resolve().parents[2]


def test_make_train_runs_the_whole_recipe_at_toy_scale(tmp_path):
    env = dict(os.environ)
    env.update(
        RT2_TRAIN_OUT=str(tmp_path / "train"),
        RT2_TRAIN_STEPS="2",
        RT2_TRAIN_EPISODES="1 1 0",
        RT2_TRAIN_VQA_EPISODES="1 0 0",
        RT2_TRAIN_WORKERS="1",
        OMP_NUM_THREADS="1",
    )
    env.pop("RT2_TRAIN_INSTALL", None)
    shipped = sorted((ROOT / "models").rglob("*")) if (ROOT / "models").is_dir() else []
    proc = subprocess.run(
        ["bash", "scripts/train_demo_vla.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    model = tmp_path / "train" / "model"
    assert (model / "model.safetensors").is_file() and (model / "config.json").is_file()
    assert json.loads((model / "training_metrics.json").read_text())["global_step"] == 2
    settings = yaml.safe_load((model / "rt2_ros_policy.yaml").read_text())["/**"]["ros__parameters"]
    assert settings["action"]["bins"] == 33  # config/train_sim_vla.yaml's codec travels with the model
    assert "co-fine-tuning" in (model / "README.md").read_text() and "vqa" in (model / "README.md").read_text()
    episodes = json.loads((tmp_path / "train" / "mcap" / "episodes.json").read_text())
    assert [e["seed"] for e in episodes] == [100000, 100001]  # training layouts: seeds from 100000
    assert "RT2_DEMO_MODEL=" in proc.stdout  # how to run it; models/ untouched
    assert (sorted((ROOT / "models").rglob("*")) if (ROOT / "models").is_dir() else []) == shipped

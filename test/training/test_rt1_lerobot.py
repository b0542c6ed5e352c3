"""``rt2-ros train --arch rt1`` on a LeRobotDataset v3 directory (``rt2-ros dataset build``):
actions become the codec's tokens, episodes become windows, and the output loads as a policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("mcap_ros2")

from bag_fixtures import BagWriter, synth_episode  # noqa: E402

from rt2_ros.action_tokenizer import make_codec  # noqa: E402
from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.training.dataset import build_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TASKS = ["pick up the red block", "move to the green block"]


def test_rt1_trains_on_a_lerobot_dataset_and_the_output_runs(tmp_path):
    from rt2_ros.cli import main
    from rt2_ros.policies.rt1.policy import RT1Policy
    from rt2_ros.training.rt1_train import load_episodes

    with BagWriter(tmp_path / "demo.mcap") as w:
        for k, task in enumerate(TASKS):
            synth_episode(w, 10.0 * k, 2.0, task, gripper=float(k % 2), first_frame=40 * k)
    cfg = load_config(overrides={"control.period_s": 0.2, "action.bins": 33})
    build_dataset([tmp_path / "demo.mcap"], tmp_path / "ds", cfg)
    codec = make_codec(cfg.action)
    data = load_episodes([tmp_path / "ds"], 32, codec)
    assert sorted(set(data.instructions)) == sorted(TASKS) and data.images.shape[1:] == (32, 32, 3)
    assert data.tokens.shape[1] == 8 and set(np.unique(data.tokens[:, 0])) <= {0, 1}
    assert data.tokens[:, 1:].max() < 33
    tiny = {
        "image_size": 32,
        "history": 3,
        "stem_channels": 8,
        "blocks": [[8, 2, 1]],
        "d_model": 16,
        "num_heads": 2,
        "ff_dim": 32,
        "num_layers": 1,
    }
    rc = main(
        [
            "train",
            "--arch",
            "rt1",
            "--dataset",
            str(tmp_path / "ds"),
            "--out",
            str(tmp_path / "out"),
            "--config",
            str(ROOT / "config" / "train_sim_vla.yaml"),
            "--max-steps",
            "2",
            "--batch-size",
            "2",
            "--save-steps",
            "2",
            "--rt1-config",
            json.dumps(tiny),
            "--report-to",
            "none",
            "--no-progress",
            "--threads",
            "1",
            "--val-fraction",
            "0",
        ]
    )
    assert rc == 0
    pol = RT1Policy.from_pretrained(tmp_path / "out" / "model", codec)
    res = pol.infer(np.zeros((48, 64, 3), np.uint8), "move to the green block")
    assert res.action is not None and len(res.token_ids) == 8

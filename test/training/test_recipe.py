"""``make train``'s pieces that run without torch: the episode plan (disjoint, reproducible
layout seeds) and the installation of a trained model as the shipped checkpoint."""

from __future__ import annotations

import hashlib
import json

import pytest

from rt2_ros.sim.record_inprocess import FAMILY_TEMPLATES, plan_episodes
from rt2_ros.sim.tasks import parse_instruction
from rt2_ros.training.install_model import install_model, main


def test_the_plan_has_one_new_layout_per_episode_and_parsable_instructions():
    pairs = plan_episodes({"reach": 6, "push": 4, "pick": 2}, first_seed=100000, rng_seed=1)
    assert [s for _, s in pairs] == list(range(100000, 100012))
    kinds = [parse_instruction(t).kind for t, _ in pairs]
    assert kinds == ["reach"] * 6 + ["push"] * 4 + ["pick"] * 2
    assert pairs == plan_episodes({"reach": 6, "push": 4, "pick": 2}, first_seed=100000, rng_seed=1)
    assert {parse_instruction(t).color for t, _ in pairs} <= {"red", "green", "blue"}


@pytest.mark.parametrize("counts", [{"wave": 1}, {"reach": -1}])
def test_the_plan_refuses_unknown_families_and_negative_counts(counts):
    with pytest.raises(ValueError, match="bad family"):
        plan_episodes(counts, first_seed=0)


def test_every_family_template_names_a_task_the_sim_checks():
    for family, t in FAMILY_TEMPLATES.items():
        assert parse_instruction(t.format(color="red", direction="left")).kind == family


def _train_output(d, weights=b"w" * 1000):
    d.mkdir()
    (d / "model.safetensors").write_bytes(weights)
    (d / "config.json").write_text("{}")
    (d / "rt2_ros_policy.yaml").write_text("/**: {}\n")
    (d / "training_metrics.json").write_text(json.dumps({"global_step": 42}))
    (d / "README.md").write_text(f"# card\n\nUse: {d.resolve()}\n")
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "big.bin").write_bytes(b"x" * 5000)
    return d


def test_install_copies_the_model_not_the_checkpoints_and_writes_the_card(tmp_path):
    src = _train_output(tmp_path / "model")
    dst = install_model(src, tmp_path / "shipped", "make train", "robot 100000-100479", train_seconds=12.0)
    assert not (dst / "checkpoints").exists()
    card = (dst / "README.md").read_text()
    assert "`make train`" in card and "100000-100479" in card and "optimizer steps: 42" in card
    assert str(src.resolve()) not in card
    digest = hashlib.sha256(b"w" * 1000).hexdigest()
    assert f"- `model.safetensors`: {digest}" in card


def test_install_refuses_what_is_not_a_train_output_or_too_big(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        install_model(tmp_path / "empty", tmp_path / "x", "c", "s")
    src = _train_output(tmp_path / "model")
    with pytest.raises(ValueError, match="MiB"):
        install_model(src, tmp_path / "x", "c", "s", max_bytes=500)
    assert not (tmp_path / "x").exists()
    assert main([str(tmp_path / "empty"), str(tmp_path / "y"), "--command", "c", "--data-seeds", "s"]) == 1
    assert "not an rt2-ros train output" in capsys.readouterr().err

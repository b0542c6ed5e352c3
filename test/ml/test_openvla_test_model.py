"""``rt2-ros make-test-model --format openvla``: an openvla-7b-layout checkpoint built offline,
run by the local backend and by ``rt2-ros serve`` (the node runs it in test_node_model.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from openvla_fixture import ROOT  # noqa: E402

from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.factory import make_policy  # noqa: E402
from rt2_ros.policies.base import Observation  # noqa: E402
from rt2_ros.testing.make_model import INFO_FILE, policy_overrides  # noqa: E402
from rt2_ros.testing.serve import start_server  # noqa: E402


def test_cli_builds_an_openvla_layout_checkpoint(tmp_path):
    out = tmp_path / "ov"
    p = subprocess.run(
        [sys.executable, "-m", "rt2_ros.cli", "make-test-model", str(out), "--format", "openvla"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(ROOT),
    )
    assert p.returncode == 0, p.stderr[-2000:]
    info = json.loads(p.stdout)
    assert info["format"] == "openvla" and info["model_dir"] == str(out.resolve())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "openvla" and "auto_map" not in cfg  # no remote code to run
    assert cfg["text_config"]["vocab_size"] - cfg["pad_to_multiple_of"] == info["vocab_size"]
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "vision_backbone.featurizer.blocks.0.attn.qkv.weight" in keys  # upstream names
    assert "vision_backbone.fused_featurizer.attn_pool.kv.weight" in keys
    assert "language_model.lm_head.weight" in keys and "projector.fc3.weight" in keys
    assert (out / "dataset_statistics.json").is_file() and (out / INFO_FILE).is_file()


def test_local_backend_runs_it_batched(openvla_test_model_dir):
    pol = make_policy(load_config(overrides=policy_overrides(openvla_test_model_dir, "openvla")))
    assert pol.metadata.extra["loader"] == "native-openvla" and pol.metadata.extra["batched"]
    vocab = json.loads((openvla_test_model_dir / INFO_FILE).read_text())["vocab_size"]
    rng = np.random.default_rng(1)
    obs = [
        Observation(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), t)
        for (h, w), t in zip(
            [(224, 224), (480, 640), (96, 128), (300, 200)],
            ["pick up the red block", "go", "open the top drawer", "Put the spoon in the bowl."],
        )
    ]
    batch = pol.infer_batch(obs)
    for r, o in zip(batch, obs):
        assert r.action is not None and len(r.token_ids) == 7
        assert all(vocab - 256 <= t < vocab for t in r.token_ids)
        assert np.all(np.isfinite(r.action.vector)) and r.action.terminate is False
        assert r.token_ids == pol.infer(o.image, o.instruction).token_ids
    assert len({r.token_ids for r in batch}) > 1  # the answers depend on the input


def test_rt2_ros_serve_runs_it(openvla_test_model_dir, tmp_path):
    from rt2_ros.remote.client import RemotePolicy

    o = policy_overrides(openvla_test_model_dir, "openvla")
    cfg_file = tmp_path / "rt2.yaml"
    cfg_file.write_text(
        json.dumps(
            {
                "policy": {"prompt": "openvla", "num_threads": 1},
                "action": {
                    "format": "openvla",
                    "openvla_vocab_size": o["action.openvla_vocab_size"],
                    "unnorm_key": o["action.unnorm_key"],
                },
            }
        )
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc, url = start_server(
        ["--model", str(openvla_test_model_dir), "--config", str(cfg_file)], env=env, cwd=ROOT, timeout_s=120
    )
    try:
        robot = load_config(
            overrides={"action.format": "openvla", "action.openvla_vocab_size": o["action.openvla_vocab_size"]}
        )
        client = RemotePolicy(url, robot.action, timeout_s=60)
        img = np.random.default_rng(2).integers(0, 256, (224, 224, 3), dtype=np.uint8)
        r = client.infer(img, "pick up the red block")
        assert r.action is not None and len(r.token_ids) == 7
        assert client.metadata.extra.get("loader") == "native-openvla"
        client.close()
    finally:
        proc.terminate()
        proc.wait(30)

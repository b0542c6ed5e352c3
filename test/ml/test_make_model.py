"""`rt2-ros make-test-model`: offline random-weight PaliGemma checkpoints with action tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")


from rt2_ros.action_tokenizer import RT2ActionTokenizer  # noqa: E402
from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.testing.make_model import (  # noqa: E402
    INFO_FILE,
    TEST_UNNORM_KEY,
    build_paligemma,
    make_test_model,
    policy_overrides,
)

ROOT = Path(__file__).resolve().parents[2]


def test_cli_builds_a_checkpoint_that_loads_offline(tmp_path):
    out = tmp_path / "model"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    p = subprocess.run(
        [sys.executable, "-m", "rt2_ros.cli", "make-test-model", str(out), "--size", "tiny"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(ROOT),
        env=env,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    summary = json.loads(p.stdout[p.stdout.index("{") :])
    assert summary["model_dir"] == str(out.resolve())
    assert summary["architecture"] == "PaliGemmaForConditionalGeneration"
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "processor_config.json",
        "dataset_statistics.json",
        INFO_FILE,
    ):
        assert (out / name).is_file(), name

    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(str(out), local_files_only=True)
    processor = AutoProcessor.from_pretrained(str(out), local_files_only=True)
    assert type(model).__name__ == "PaliGemmaForConditionalGeneration"
    assert type(processor).__name__ == "PaliGemmaProcessor"
    assert model.get_output_embeddings().weight.shape[0] == len(processor.tokenizer) == summary["vocab_size"]


def test_cli_rejects_unknown_size(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "rt2_ros.cli", "make-test-model", str(tmp_path / "m"), "--size", "huge"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(ROOT),
    )
    assert p.returncode == 2 and "invalid choice" in p.stderr
    with pytest.raises(ValueError, match="unknown test model size"):
        build_paligemma("huge")


def test_tokenizer_has_one_token_per_action_integer(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir), local_files_only=True)
    vocab = tok.get_vocab()
    ids = [vocab[f"▁{k}"] for k in range(256)]
    assert len(set(ids)) == 256
    text = "1 128 91 241 5 101 127 255"
    enc = tok.encode(text, add_special_tokens=False)
    assert enc == [vocab[f"▁{v}"] for v in text.split()]  # one token per field
    assert tok.decode(enc) == text
    action = RT2ActionTokenizer().decode(
        tok.decode([ids[0], ids[7], ids[200], ids[255], ids[3], ids[4], ids[5], ids[6]])
    )
    assert action.tokens == (0, 7, 200, 255, 3, 4, 5, 6) and action.terminate
    # Ordinary text still tokenises (words, punctuation, unknown characters).
    assert tok.decode(tok.encode("Plan: pick up the apple. Action:", add_special_tokens=False)) == (
        "Plan: pick up the apple. Action:"
    )


def test_same_seed_same_model_other_seed_other_model():
    import torch

    m1, p1 = build_paligemma("tiny", seed=0)
    m2, p2 = build_paligemma("tiny", seed=0)
    m3, _ = build_paligemma("tiny", seed=1)
    s1, s2, s3 = m1.state_dict(), m2.state_dict(), m3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)
    assert p1.tokenizer.get_vocab() == p2.tokenizer.get_vocab()


def test_small_model_is_about_60m_parameters():
    model, processor = build_paligemma("small")
    n = sum(p.numel() for p in model.parameters())
    assert 50e6 <= n <= 70e6, n
    assert processor.image_seq_length == 196


def test_policy_overrides_validate_and_point_at_the_model(tiny_model_dir, tmp_path):
    cfg = load_config(overrides=policy_overrides(tiny_model_dir))
    assert cfg.policy.backend == "local" and cfg.policy.model_path == str(Path(tiny_model_dir).resolve())
    assert cfg.action.format == "rt2" and cfg.policy.prompt == "rt2" and cfg.policy.num_threads == 1
    ov = load_config(overrides=policy_overrides(tiny_model_dir, "openvla"))
    info = json.loads((Path(tiny_model_dir) / INFO_FILE).read_text())
    assert ov.action.openvla_vocab_size == info["vocab_size"] and ov.action.unnorm_key == TEST_UNNORM_KEY
    assert ov.policy.prompt == "openvla"
    assert load_config(overrides=policy_overrides(tiny_model_dir, prompt="cot")).policy.prompt == "cot"
    with pytest.raises(ValueError, match="not an rt2_ros test model"):
        policy_overrides(tmp_path)
    with pytest.raises(ValueError, match="action_format"):
        policy_overrides(tiny_model_dir, "rt1")


def test_statistics_file_matches_default_bounds(tiny_model_dir):
    stats = json.loads((Path(tiny_model_dir) / "dataset_statistics.json").read_text())
    a = load_config().action
    np.testing.assert_allclose(stats[TEST_UNNORM_KEY]["action"]["q01"], a.low)
    np.testing.assert_allclose(stats[TEST_UNNORM_KEY]["action"]["q99"], a.high)


def test_builder_and_prompts_import_no_torch():
    code = (
        "import sys\n"
        "import rt2_ros.testing.make_model, rt2_ros.policies.prompts, rt2_ros.testing\n"
        "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ""


def test_make_test_model_overwrites_existing_dir(tmp_path):
    d = make_test_model(tmp_path / "m", seed=0)
    make_test_model(d, seed=1)
    assert json.loads((d / INFO_FILE).read_text())["seed"] == 1

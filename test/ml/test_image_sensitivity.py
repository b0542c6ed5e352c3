"""The warm-up refuses a model whose output does not depend on the camera image.

A robot driven by such a model makes the same motion whatever it sees, with no
error (OpenVLA's remote code on transformers >= 4.50, openvla issue #346). The
check runs at load for every local model (node, ``rt2-ros serve``, ``rt2-ros
predict``); here it fires on models built to ignore their image and passes on
normal ones.
"""

from __future__ import annotations

import json
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from openvla_fixture import ROOT  # noqa: E402

from rt2_ros.action_tokenizer import OpenVLAActionTokenizer, select_unnorm_stats  # noqa: E402
from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.factory import make_policy  # noqa: E402
from rt2_ros.policies.base import PolicyError  # noqa: E402
from rt2_ros.policies.transformers_policy import ModelLoadError, TransformersPolicy  # noqa: E402
from rt2_ros.testing.make_model import (  # noqa: E402
    TEST_UNNORM_KEY,
    build_openvla,
    build_paligemma,
    example_statistics,
    make_test_model,
    policy_overrides,
)

BLIND = "does not depend on the image"


def _openvla_policy(model, processor, **kw):
    return TransformersPolicy(
        model,
        processor,
        codec=OpenVLAActionTokenizer(
            model.config.unpadded_vocab_size, select_unnorm_stats(example_statistics(), TEST_UNNORM_KEY)[1]
        ),
        prompt="openvla",
        openvla_family=True,
        **kw,
    )


def test_normal_models_pass():
    model, processor = build_openvla(seed=0)
    pol = _openvla_policy(model, processor)
    assert pol.metadata.extra["image_sensitivity_max_logit_diff"] > 1e-3
    model, processor = build_paligemma("tiny", seed=0)
    pol = TransformersPolicy(model, processor, prompt="rt2")
    assert pol.metadata.extra["image_sensitivity_max_logit_diff"] > 1e-3


def test_openvla_with_a_zero_projector_is_refused():
    model, processor = build_openvla(seed=0)
    with torch.no_grad():
        model.projector.fc3.weight.zero_()  # every image now projects to the same embeddings
    with pytest.raises(ModelLoadError, match=f"{BLIND}.*transformers {transformers.__version__}.*projector"):
        _openvla_policy(model, processor)


def test_paligemma_whose_image_features_are_constant_is_refused():
    model, processor = build_paligemma("tiny", seed=0)
    proj = model.model.multi_modal_projector if hasattr(model, "model") else model.multi_modal_projector
    with torch.no_grad():
        proj.linear.weight.zero_()
    with pytest.raises(ModelLoadError, match=f"{BLIND}.*transformers {transformers.__version__}"):
        TransformersPolicy(model, processor, prompt="rt2")


class _DropsImageOnFirstStep(torch.nn.Module):
    """Behaves like OpenVLA's remote code on transformers >= 4.50: generate() runs batch 1 and
    its first step never sees the pixels (openvla issue #346)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def get_output_embeddings(self):
        return self.inner.get_output_embeddings()

    def generate(self, input_ids, pixel_values, **kw):
        return self.inner.generate(input_ids, torch.zeros_like(pixel_values), **kw)


def test_openvla_remote_code_image_drop_is_refused_with_its_known_cause():
    model, processor = build_openvla(seed=0)
    with pytest.raises(ModelLoadError, match=f"{BLIND}.*issue #346.*PR #348.*trust_remote_code: false"):
        _openvla_policy(_DropsImageOnFirstStep(model), processor)


def test_rt2_ros_serve_refuses_an_image_blind_checkpoint(tmp_path):
    from rt2_ros.policies.openvla.modeling import load_openvla_native, save_openvla_checkpoint

    good = make_test_model(tmp_path / "good", format="openvla")
    model, processor = load_openvla_native(good)
    with torch.no_grad():
        model.projector.fc3.weight.zero_()
    blind = save_openvla_checkpoint(model, processor, tmp_path / "blind", norm_stats=example_statistics())
    for f in ("openvla_towers.json", "rt2_ros_test_model.json"):
        (blind / f).write_text((good / f).read_text())
    # the node's loader (the model in its policy child by default): make_policy from the config;
    # the child's refusal reaches the node as a policy error quoting it
    with pytest.raises(PolicyError, match=BLIND):
        make_policy(load_config(overrides=policy_overrides(blind, "openvla")))
    cfg = tmp_path / "rt2.yaml"
    o = policy_overrides(blind, "openvla")
    cfg.write_text(
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
    import subprocess

    p = subprocess.run(
        [sys.executable, "-m", "rt2_ros.cli", "serve", "--model", str(blind), "--config", str(cfg), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(ROOT),
    )
    assert p.returncode != 0
    assert BLIND in p.stdout + p.stderr and "Traceback" not in p.stdout + p.stderr

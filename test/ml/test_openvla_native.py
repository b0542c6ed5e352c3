"""Native OpenVLA against upstream: the parity fixture's 16 rows, single and batched.

What a user would notice: an ``openvla-7b``-layout checkpoint loads without remote
code or timm, on today's transformers, and gives exactly the tokens and actions
upstream's own code gives under transformers 4.40.1 (first-step logits within
1e-4); a batch gives what single calls give; a checkpoint that cannot be loaded
says why.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from openvla_fixture import FIXTURE_TOWERS, load_reference, require_fixture, write_tower_specs  # noqa: E402
from PIL import Image  # noqa: E402

from rt2_ros.policies.base import Observation  # noqa: E402
from rt2_ros.policies.openvla.keymap import native_to_upstream, upstream_to_native  # noqa: E402
from rt2_ros.policies.openvla.modeling import OpenVLALoadError, load_openvla_native  # noqa: E402
from rt2_ros.policies.openvla.processing import OpenVLAImageProcessor  # noqa: E402
from rt2_ros.policies.openvla.towers import (  # noqa: E402
    KNOWN_TOWERS,
    TOWER_SPECS_ENV,
    TowerSpec,
    TowerSpecError,
    resolve_tower,
)
from rt2_ros.policies.transformers_policy import ModelLoadError, TransformersPolicy  # noqa: E402

ACTION_IDS = slice(31744, 32000)  # the 256 action tokens: last 256 of the un-padded 32000
LOGIT_ATOL = 1e-4


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    d = require_fixture()
    specs = write_tower_specs(tmp_path_factory.mktemp("towers") / "towers.json")
    mp = pytest.MonkeyPatch()
    mp.setenv(TOWER_SPECS_ENV, str(specs))
    torch.set_num_threads(1)
    yield d, load_reference(d)
    mp.undo()


@pytest.fixture(scope="module")
def policies(fx):
    d, ref = fx
    return {
        key: TransformersPolicy.from_pretrained(
            d / "checkpoint", action_format="openvla", prompt="openvla", unnorm_key=key
        )
        for key in ref["unnorm_keys"]
    }


def _image(d: Path, name: str) -> np.ndarray:
    with Image.open(d / name) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _check_row(result, row) -> None:
    assert list(result.token_ids) == row["generated_ids"], (row["image"], row["instruction"], row["unnorm_key"])
    assert result.action is not None and result.error is None
    np.testing.assert_allclose(result.action.vector, row["action"], rtol=0, atol=1e-12)


def _first_step_logits(policy, obs: list[Observation]) -> torch.Tensor:
    inputs, _ = policy._prepare(obs)
    with torch.inference_mode():
        return policy.model(inputs["input_ids"], inputs["pixel_values"], inputs["attention_mask"])


# -- the tables --------------------------------------------------------------------------------


def test_tower_table_knows_openvla_7b_towers_and_explains_unknown_ids():
    dino = resolve_tower("vit_large_patch14_reg4_dinov2.lvd142m")
    siglip = resolve_tower("vit_so400m_patch14_siglip_224")
    assert (dino.family, dino.embed_dim, dino.depth, dino.num_heads, dino.reg_tokens) == ("dinov2_reg", 1024, 24, 16, 4)
    assert (siglip.family, siglip.embed_dim, siglip.depth, siglip.num_heads) == ("siglip", 1152, 27, 16)
    assert siglip.mlp_hidden_size == 4304 and dino.mlp_hidden_size == 4096  # as timm sizes them
    assert set(KNOWN_TOWERS) >= {"vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"}
    with pytest.raises(TowerSpecError, match=f"unknown vision tower 'vit_mystery'.*{TOWER_SPECS_ENV}"):
        resolve_tower("vit_mystery")
    with pytest.raises(TowerSpecError, match="not divisible"):
        TowerSpec("siglip", embed_dim=48, depth=2, num_heads=5)
    with pytest.raises(TowerSpecError, match="unknown tower spec fields"):
        TowerSpec.from_dict({"family": "siglip", "embed_dim": 48, "depth": 2, "num_heads": 3, "heads": 3})


def test_key_map_round_trips_every_upstream_tensor(fx):
    from safetensors.torch import load_file

    d, _ = fx
    state = load_file(str(d / "checkpoint" / "model.safetensors"))
    specs = tuple(TowerSpec.from_dict(v) for v in FIXTURE_TOWERS.values())
    native = upstream_to_native(state, specs)
    # fused qkv split in three, the class-token position row added, LayerScale renamed
    assert native["vision.towers.0.encoder.layer.0.attention.k_proj.weight"].shape == (32, 32)
    assert torch.equal(native["vision.towers.0.embeddings.position_embeddings"][0, 0], torch.zeros(32))
    assert "vision.towers.0.encoder.layer.1.layer_scale2.lambda1" in native
    back = native_to_upstream(native, specs)
    assert set(back) == set(state)
    for k, v in state.items():
        assert torch.equal(back[k], v), k


def test_image_preprocessing_matches_upstream_pixel_statistics(fx, policies):
    d, ref = fx
    proc = policies[ref["unnorm_keys"][0]].processor
    for row in ref["rows"][:: len(ref["instructions"]) * len(ref["unnorm_keys"])]:
        px = proc.image_processor([Image.open(d / row["image"]).convert("RGB")])
        assert px.shape == (1, 6, 224, 224) and px.dtype == np.float32
        np.testing.assert_allclose(
            px[0].mean(axis=(1, 2), dtype=np.float64), row["pixel_values_channel_means"], atol=2e-6
        )


def test_letterbox_and_resize_crop_follow_upstream_geometry():
    kw = dict(
        crop_sizes=[(224, 224)] * 2,
        resamples=[3, 3],
        means=[(0.485, 0.456, 0.406), (0.5, 0.5, 0.5)],
        stds=[(0.229, 0.224, 0.225), (0.5, 0.5, 0.5)],
    )
    img = Image.fromarray(np.full((100, 300, 3), 255, np.uint8))  # wide white image
    letterbox = OpenVLAImageProcessor("letterbox", resize_sizes=[224, 224], **kw)
    assert letterbox.letterbox_fill == (127, 127, 127)  # upstream: the last tower's mean
    x = letterbox.transform(img)
    # top rows are the grey padding, the middle row the white image (SigLIP channels: (v - 0.5) / 0.5)
    assert x[3, 0, 112] == pytest.approx((127 / 255 - 0.5) / 0.5, abs=1e-6)
    assert x[3, 112, 112] == pytest.approx(1.0, abs=1e-6)
    crop = OpenVLAImageProcessor("resize-crop", resize_sizes=[224, 224], **kw)
    assert crop.transform(img).shape == (6, 224, 224)
    assert np.allclose(crop.transform(img)[3], 1.0, atol=1e-6)  # centre crop of a white image: all white


# -- parity with upstream ----------------------------------------------------------------------


def test_every_reference_row_matches_upstream_one_at_a_time(fx, policies):
    d, ref = fx
    for row in ref["rows"]:
        pol = policies[row["unnorm_key"]]
        obs = Observation(image=_image(d, row["image"]), instruction=row["instruction"])
        inputs, _ = pol._prepare([obs])
        assert inputs["input_ids"][0].tolist() == row["input_ids"]  # prompt + 29871, as predict_action
        _check_row(pol.infer(obs.image, obs.instruction), row)
        logits = _first_step_logits(pol, [obs])[0, ACTION_IDS]
        np.testing.assert_allclose(logits.numpy(), row["first_step_logits_action_ids"], rtol=0, atol=LOGIT_ATOL)
        assert int(_first_step_logits(pol, [obs])[0].argmax()) == row["first_step_argmax_all_32064"]


def test_batch_of_4_equals_4_singles_and_upstream(fx, policies):
    d, ref = fx
    rows_by_key: dict[str, list[dict]] = {}
    for row in ref["rows"]:
        rows_by_key.setdefault(row["unnorm_key"], []).append(row)
    for key, rows in rows_by_key.items():
        pol = policies[key]
        for instruction in ref["instructions"]:
            batch = [r for r in rows if r["instruction"] == instruction]
            assert len(batch) == 4
            obs = [Observation(image=_image(d, r["image"]), instruction=r["instruction"]) for r in batch]
            results = pol.infer_batch(obs)
            singles = [pol.infer(o.image, o.instruction) for o in obs]
            for res, single, row in zip(results, singles, batch):
                _check_row(res, row)
                assert res.token_ids == single.token_ids
                np.testing.assert_array_equal(res.action.vector, single.action.vector)
        # mixed instructions of different lengths: left padding must not change any row
        mixed = [rows[0], rows[3], rows[5], rows[6]]
        assert len({r["instruction"] for r in mixed}) == 2
        obs = [Observation(image=_image(d, r["image"]), instruction=r["instruction"]) for r in mixed]
        for res, row in zip(pol.infer_batch(obs), mixed):
            _check_row(res, row)
        logits = _first_step_logits(pol, obs)[:, ACTION_IDS]
        for lg, row in zip(logits, mixed):
            np.testing.assert_allclose(lg.numpy(), row["first_step_logits_action_ids"], rtol=0, atol=LOGIT_ATOL)
    assert policies[ref["unnorm_keys"][0]].metadata.extra["batched"] is True
    assert policies[ref["unnorm_keys"][0]].metadata.extra["loader"] == "native-openvla"


def test_vision_runs_once_per_batch(fx, policies):
    d, ref = fx
    pol = policies[ref["unnorm_keys"][0]]
    calls = []
    handle = pol.model.vision.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    try:
        obs = [Observation(image=_image(d, f"image_{i}.png"), instruction="pick up the red block") for i in range(4)]
        pol.infer_batch(obs)
    finally:
        handle.remove()
    assert calls == [4]  # one vision pass for 4 observations and 7 tokens (the KV cache does the rest)


def test_bf16_gives_valid_actions(fx):
    d, ref = fx
    pol = TransformersPolicy.from_pretrained(
        d / "checkpoint", action_format="openvla", prompt="openvla", unnorm_key="bridge_orig", dtype="bf16"
    )
    r = pol.infer(_image(d, "image_2.png"), "pick up the red block")
    assert r.action is not None and all(31744 <= t < 32000 for t in r.token_ids)


# -- errors ------------------------------------------------------------------------------------


def _copy_checkpoint(d: Path, tmp_path: Path) -> Path:
    out = tmp_path / "ckpt"
    shutil.copytree(d / "checkpoint", out, ignore=shutil.ignore_patterns("*.py"))
    for f in out.iterdir():
        f.chmod(0o644)
    return out


def test_load_errors_are_clear(fx, tmp_path, monkeypatch):
    d, _ = fx
    ck = _copy_checkpoint(d, tmp_path)
    # unknown towers without a description
    monkeypatch.delenv(TOWER_SPECS_ENV)
    with pytest.raises(ModelLoadError, match="natively.*unknown vision tower.*RT2_OPENVLA_TOWERS"):
        TransformersPolicy.from_pretrained(ck, action_format="openvla", unnorm_key="bridge_orig")
    # ... described in the checkpoint directory instead: loads
    write_tower_specs(ck / "openvla_towers.json")
    model, _ = load_openvla_native(ck)
    assert model.vision.specs[1].num_heads == 3
    # a spec that does not fit the weights names the tensor and both shapes
    bad = dict(FIXTURE_TOWERS)
    bad["vit_openvla_fixture_a_patch14_siglip_224"] = dict(bad["vit_openvla_fixture_a_patch14_siglip_224"], depth=3)
    (ck / "openvla_towers.json").write_text(json.dumps(bad))
    with pytest.raises(OpenVLALoadError, match="no tensor for .*parameters"):
        load_openvla_native(ck)
    bad["vit_openvla_fixture_a_patch14_siglip_224"] = dict(
        FIXTURE_TOWERS["vit_openvla_fixture_a_patch14_siglip_224"], embed_dim=24, num_heads=2
    )
    (ck / "openvla_towers.json").write_text(json.dumps(bad))
    with pytest.raises(OpenVLALoadError, match=r"qkv.bias: shape \(144,\) is not \(3 \* embed_dim 24"):
        load_openvla_native(ck)
    bad["vit_openvla_fixture_a_patch14_siglip_224"] = dict(
        FIXTURE_TOWERS["vit_openvla_fixture_a_patch14_siglip_224"], mlp_ratio=4.0
    )
    (ck / "openvla_towers.json").write_text(json.dumps(bad))
    with pytest.raises(
        OpenVLALoadError, match=r"mlp.fc1.(weight|bias): checkpoint shape \(179.*\) != native shape \(192"
    ):
        load_openvla_native(ck)
    write_tower_specs(ck / "openvla_towers.json")
    # no weights
    (ck / "model.safetensors").rename(ck / "weights.bin")
    with pytest.raises(ModelLoadError, match="cannot load the model.*no model.safetensors"):
        TransformersPolicy.from_pretrained(ck, action_format="openvla", unnorm_key="bridge_orig")
    (ck / "weights.bin").rename(ck / "model.safetensors")
    # a config that is not an OpenVLA config
    cfg = json.loads((ck / "config.json").read_text())
    cfg["timm_model_ids"] = []
    (ck / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="timm_model_ids"):
        TransformersPolicy.from_pretrained(ck, action_format="openvla", unnorm_key="bridge_orig")


def test_trust_remote_code_routes_to_the_checkpoints_own_code(fx):
    """policy.trust_remote_code: true runs modeling_prismatic.py; here it needs timm, which the
    native path never imports (not installed in the test venv, or too new)."""
    d, _ = fx
    try:
        import timm  # noqa: F401

        pytest.skip("timm is installed; this test shows the remote-code path by its missing dependency")
    except ImportError:
        pass
    with pytest.raises(ModelLoadError, match="cannot load the model.*timm"):
        TransformersPolicy.from_pretrained(
            d / "checkpoint", action_format="openvla", unnorm_key="bridge_orig", trust_remote_code=True
        )


def test_remote_code_classes_get_generate():
    from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel

    from rt2_ros.policies.checkpoints import _with_generation_mixin

    class RemoteLike(PreTrainedModel):  # like OpenVLAForActionPrediction under transformers 5
        config_class = PretrainedConfig

    cls = _with_generation_mixin(RemoteLike)
    assert issubclass(cls, GenerationMixin) and issubclass(cls, RemoteLike) and hasattr(cls, "generate")
    assert _with_generation_mixin(cls) is cls


def test_sharded_checkpoint_loads_like_one_file(fx, tmp_path):
    """openvla-7b ships model-0000N-of-00003.safetensors + model.safetensors.index.json."""
    from safetensors.torch import load_file, save_file

    d, ref = fx
    ck = _copy_checkpoint(d, tmp_path)
    state = load_file(str(ck / "model.safetensors"))
    (ck / "model.safetensors").unlink()
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    weight_map = {}
    for name, ks in shards.items():
        save_file({k: state[k] for k in ks}, str(ck / name))
        weight_map.update({k: name for k in ks})
    (ck / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    with pytest.raises(ModelLoadError, match="set policy.prompt: openvla"):
        TransformersPolicy.from_pretrained(ck, action_format="openvla", unnorm_key="bridge_orig")  # prompt rt2
    pol = TransformersPolicy.from_pretrained(ck, action_format="openvla", prompt="openvla", unnorm_key="bridge_orig")
    row = next(r for r in ref["rows"] if r["unnorm_key"] == "bridge_orig" and r["image"] == "image_3.png")
    _check_row(pol.infer(_image(d, row["image"]), row["instruction"]), row)
    (ck / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="weight shards listed in model.safetensors.index.json are missing"):
        TransformersPolicy.from_pretrained(ck, action_format="openvla", unnorm_key="bridge_orig")

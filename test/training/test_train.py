"""``rt2-ros train`` on the tiny test model (random-init PaliGemma, offline): the prompt and
answer ids are the node's, the loss falls, resume continues exactly, co-fine-tuning mixes
batches at the ratio, and the output directory loads in the local backend with
``policy.model_path`` alone and yields valid actions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("datasets")
pytest.importorskip("mcap_ros2")

from bag_fixtures import BagWriter, synth_episode  # noqa: E402

from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.policies.base import Observation  # noqa: E402
from rt2_ros.training.dataset import build_dataset  # noqa: E402
from rt2_ros.training.train import (  # noqa: E402
    ActionTargets,
    Collator,
    MixedSamples,
    RobotSamples,
    TrainOptions,
    VQASamples,
    train,
)

TASKS = ["pick up the red block", "push the blue block left", "move to the green block", "lift the blue block"]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("train_data")
    with BagWriter(tmp / "demo.mcap") as w:
        for k, task in enumerate(TASKS):
            synth_episode(w, 10.0 * k, 2.0, task, gripper=float(k % 2), first_frame=40 * k)
    cfg = load_config(overrides={"control.period_s": 0.2})
    out = tmp / "ds"
    build_dataset([tmp / "demo.mcap"], out, cfg)
    return out


@pytest.fixture(scope="module")
def vqa_dir(tmp_path_factory) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rt2_ros.training.vqa import VQA_FILE, _features, _png

    root = tmp_path_factory.mktemp("vqa")
    img = _png(np.full((24, 32, 3), 120, np.uint8))
    rows = [
        {
            "image": {"bytes": img, "path": None},
            "question": f"Q: how many blocks are there {i}? A:",
            "answer": "3",
            "kind": "count",
            "source": "test",
        }
        for i in range(6)
    ]
    (root / VQA_FILE).parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=_features().arrow_schema), str(root / VQA_FILE))
    return root


def opts(dataset_dir, base, out, **kw) -> TrainOptions:
    d = dict(
        dataset=str(dataset_dir),
        base=str(base),
        out=str(out),
        max_steps=30,
        batch_size=4,
        lr=3e-3,
        eval_episodes="1",
        eval_steps=30,
        save_steps=10,
        logging_steps=5,
        progress=False,
        report_to="tensorboard",
        seed=0,
    )
    d.update(kw)
    return TrainOptions(**d)


def _processor(path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(path), local_files_only=True)


def test_prompt_and_answer_are_the_ids_the_node_decodes(tiny_model_dir, dataset_dir):
    from rt2_ros.factory import make_policy

    cfg = load_config(overrides={"policy.model_path": str(tiny_model_dir), "policy.process": "in_process"})
    policy = make_policy(cfg, warmup=False)  # the node's codec: the config's action section
    proc = _processor(tiny_model_dir)
    targets = ActionTargets(cfg.action, proc.tokenizer)
    ds = RobotSamples(dataset_dir, targets, "rt2")
    sample = ds[3]
    batch = Collator(proc)([sample])
    obs = Observation(image=np.asarray(sample["image"]), instruction=TASKS[0])
    inputs, prompt_len = policy._prepare([obs])
    # the prompt: same ids, same prefix attention (token_type_ids 0), then the answer with labels
    assert batch["input_ids"][0, :prompt_len].tolist() == inputs["input_ids"][0].tolist()
    assert batch["token_type_ids"][0, :prompt_len].tolist() == inputs["token_type_ids"][0].tolist()
    assert (batch["labels"][0, :prompt_len] == -100).all()
    answer = batch["input_ids"][0, prompt_len : prompt_len + 9].tolist()
    assert batch["labels"][0, prompt_len : prompt_len + 9].tolist() == answer
    assert batch["token_type_ids"][0, prompt_len : prompt_len + 9].tolist() == [1] * 9
    # the node's decoder turns the 8 action ids into the codec's text for the recorded action, then EOS
    r = policy._decode_row(answer, 0, {})
    text, action, err = r.text, r.action, r.error
    assert err is None and answer[8] == proc.tokenizer.eos_token_id
    assert text == targets.codec.encode(ds.actions[3], terminate=bool(ds.terminate[3]))
    np.testing.assert_allclose(action.vector, ds.actions[3], atol=targets.codec.max_roundtrip_error.max() + 1e-9)


@pytest.fixture(scope="module")
def trained(tiny_model_dir, dataset_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "model"
    metrics = train(opts(dataset_dir, tiny_model_dir, out))
    return out, metrics


def test_the_loss_falls_and_the_output_is_complete(trained):
    out, m = trained
    assert m["global_step"] == 30
    assert m["last_logged_loss"] < 0.5 * m["first_logged_loss"], m
    assert np.isfinite(m["eval_loss"]) and 0.0 <= m["eval_action_token_accuracy"] <= 1.0
    assert m["eval_action_tokens"] == 8 * 10  # one held-out episode of 10 steps, 8 action tokens each
    for f in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "processor_config.json",
        "dataset_statistics.json",
        "rt2_ros_policy.yaml",
        "README.md",
        "training_metrics.json",
    ):
        assert (out / f).is_file(), f
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "checkpoint-10",
        "checkpoint-20",
        "checkpoint-30",
    ]
    assert list((out / "runs").glob("events.out.tfevents.*")), "no TensorBoard log"
    stats = json.loads((out / "dataset_statistics.json").read_text())
    (key,) = stats
    assert len(stats[key]["action"]["q01"]) == 7 and stats[key]["num_trajectories"] == 4
    card = (out / "README.md").read_text()
    assert "steps: 30" in card and "eval_action_token_accuracy" in card and "4 episodes" in card


def test_the_output_loads_with_model_path_alone_and_yields_valid_actions(trained):
    from rt2_ros.factory import make_policy

    out, _ = trained
    cfg = load_config(overrides={"policy.model_path": str(out)})
    policy = make_policy(cfg)
    rng = np.random.default_rng(0)
    obs = [Observation(image=rng.integers(0, 255, (224, 224, 3), dtype=np.uint8), instruction=t) for t in TASKS]
    for r in policy.infer_batch(obs):
        assert r.error is None and r.action is not None
        assert len(r.action.tokens) == 8 and r.action.tokens[0] in (0, 1)
        assert np.all(r.action.vector >= np.asarray(cfg.action.low)) and np.all(
            r.action.vector <= np.asarray(cfg.action.high)
        )
    # the policy file holds the codec used, as a ROS parameters file the config loader reads
    cfg2 = load_config(out / "rt2_ros_policy.yaml")
    assert cfg2.action.low == cfg.action.low and cfg2.action.token_pattern == "▁{k}"


def test_resume_continues_where_it_stopped(tiny_model_dir, dataset_dir, trained, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    class StopAt20(TrainerCallback):  # an interrupted run (killed after its checkpoint at step 20)
        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= 20:
                control.should_training_stop = True

    full_out, full = trained
    out = tmp_path / "model"
    first = train(opts(dataset_dir, tiny_model_dir, out), callbacks=[StopAt20()])
    assert first["global_step"] == 20
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(opts(dataset_dir, tiny_model_dir, tmp_path / "fresh", resume=True))
    resumed = train(opts(dataset_dir, tiny_model_dir, out, resume=True))
    assert resumed["global_step"] == 30
    # the same 30 steps as the uninterrupted run: same data order, optimizer and schedule state
    a = load_file(str(full_out / "model.safetensors"))
    b = load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=1e-4)


def test_cotrain_batches_hold_the_ratio(tiny_model_dir, dataset_dir, vqa_dir):
    proc = _processor(tiny_model_dir)
    targets = ActionTargets(load_config().action, proc.tokenizer)
    robot = RobotSamples(dataset_dir, targets, "rt2")
    vqa = VQASamples(vqa_dir, proc.tokenizer)
    mixed = MixedSamples(robot, vqa, 0.25, batch_size=8, seed=1)
    assert mixed.n_vqa == 2
    for block in range(len(mixed) // 8):
        kinds = [mixed[block * 8 + j]["kind"] for j in range(8)]
        assert kinds.count("vqa") == 2
    s = vqa[0]
    assert proc.tokenizer.decode(s["answer_ids"], skip_special_tokens=True).strip() == "3"
    with pytest.raises(ValueError, match="cotrain-ratio"):
        MixedSamples(robot, vqa, 1.0, batch_size=8)


def test_cotrain_lora_augment_and_added_action_tokens(tiny_model_dir, dataset_dir, vqa_dir, tmp_path):
    """A base without the configured action tokens gets 256 <act_k> tokens; LoRA adapters are
    merged into the exported model, which loads with the saved codec settings."""
    from rt2_ros.factory import make_policy

    cfg_file = tmp_path / "rt2.yaml"
    cfg_file.write_text('action:\n  token_pattern: "<act_{k}>"\n')
    out = tmp_path / "model"
    m = train(
        opts(
            dataset_dir,
            tiny_model_dir,
            out,
            config=str(cfg_file),
            max_steps=4,
            eval_episodes="0",
            save_steps=100,
            cotrain_dataset=str(vqa_dir),
            cotrain_ratio=0.5,
            lora=True,
            augment=True,
            report_to="none",
        )
    )
    assert m["global_step"] == 4 and np.isfinite(m["train_loss"])
    assert not (out / "adapter_config.json").exists()  # merged, a plain checkpoint
    cfg = load_config(out / "rt2_ros_policy.yaml", overrides={"policy.model_path": str(out)})
    assert cfg.action.token_pattern == "<act_{k}>"
    policy = make_policy(cfg)
    (r,) = policy.infer_batch([Observation(image=np.zeros((224, 224, 3), np.uint8), instruction=TASKS[1])])
    assert r.action is not None and r.error is None


def test_openvla_format_trains_and_loads_with_its_statistics(tiny_model_dir, dataset_dir, tmp_path):
    from rt2_ros.action_tokenizer import UnnormStats
    from rt2_ros.factory import make_policy
    from rt2_ros.testing.make_model import policy_overrides

    vocab = policy_overrides(tiny_model_dir, "openvla")["action.openvla_vocab_size"]
    cfg_file = tmp_path / "rt2.yaml"
    cfg_file.write_text(f"action:\n  format: openvla\n  openvla_vocab_size: {vocab}\npolicy:\n  prompt: openvla\n")
    proc = _processor(tiny_model_dir)
    cfg = load_config(cfg_file)
    from rt2_ros.training.dataset import load_dataset_meta

    targets = ActionTargets(cfg.action, proc.tokenizer, load_dataset_meta(dataset_dir).stats)
    ds = RobotSamples(dataset_dir, targets, "openvla")
    ids = ds[5]["answer_ids"]
    assert len(ids) == 8 and all(vocab - 256 <= i < vocab for i in ids[:7])
    st = UnnormStats.from_dict(targets.unnorm_stats)
    back = targets.codec.decode(np.asarray(ids[:7])).vector  # bin centres, un-normalised with q01/q99
    a = ds.actions[5]
    expected = np.where(st.mask, np.clip(a, st.q01, st.q99), np.clip(a, -1.0, 1.0))
    tol = np.where(st.mask, (st.q99 - st.q01) / 255, 2 / 255) + 1e-9  # one bin (255 centres on [-1, 1])
    assert np.all(np.abs(back - expected) <= tol)

    out = tmp_path / "model"
    train(
        opts(
            dataset_dir,
            tiny_model_dir,
            out,
            config=str(cfg_file),
            max_steps=3,
            eval_episodes="0",
            save_steps=100,
            report_to="none",
            unnorm_key="my_task",
        )
    )
    assert "my_task" in json.loads((out / "dataset_statistics.json").read_text())
    run_cfg = load_config(out / "rt2_ros_policy.yaml", overrides={"policy.model_path": str(out)})
    assert run_cfg.action.format == "openvla" and run_cfg.action.unnorm_key == "my_task"
    # The directory alone is enough: the node and rt2-ros serve apply the model's codec settings.
    from rt2_ros.config import with_model_settings

    dir_only, changed = with_model_settings(load_config(overrides={"policy.model_path": str(out)}))
    assert dir_only == run_cfg and {"action.format", "policy.prompt"} <= set(changed)
    policy = make_policy(dir_only)
    (r,) = policy.infer_batch([Observation(image=np.zeros((224, 224, 3), np.uint8), instruction=TASKS[2])])
    assert r.action is not None and r.error is None


def test_bad_options_are_refused(tiny_model_dir, dataset_dir, tmp_path, capsys):
    from rt2_ros.cli import main

    with pytest.raises(ValueError, match="leaves no training episode"):
        train(opts(dataset_dir, tiny_model_dir, tmp_path / "a", eval_episodes="4"))
    with pytest.raises(ValueError, match="not in 0..3"):
        train(opts(dataset_dir, tiny_model_dir, tmp_path / "b", eval_episodes="7,"))
    rc = main(
        [
            "train",
            "--dataset",
            str(tmp_path / "nope"),
            "--base",
            str(tiny_model_dir),
            "--out",
            str(tmp_path / "c"),
            "--no-progress",
        ]
    )
    assert rc == 1 and "not a LeRobot dataset" in capsys.readouterr().err


def test_rt2_ros_serve_serves_the_output(trained):
    """``rt2-ros serve --model OUT`` (loopback, no other model setting) answers a robot."""
    import os

    from rt2_ros.remote.client import RemotePolicy
    from rt2_ros.testing.serve import start_server

    out, _ = trained
    env = dict(os.environ, RT2_API_KEY="k")
    proc, url = start_server(["--model", str(out)], env=env, timeout_s=120.0)
    try:
        cfg = load_config()
        res = RemotePolicy(url, cfg.action, api_key="k", timeout_s=30).infer(
            np.zeros((224, 224, 3), np.uint8), TASKS[0]
        )
        assert res.error is None and res.action is not None and len(res.action.tokens) == 8
    finally:
        proc.terminate()
        proc.wait(20)

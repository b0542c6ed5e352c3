"""The transformers backend on the offline tiny test model (random weights).

What a user would notice: a checkpoint directory loads offline in a fresh
process; every answer is a valid action (the constraint works even from random
weights, which unconstrained produce garbage); chain of thought returns a plan
and an action; batching changes nothing; each bad input gets a clear error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


from rt2_ros.action_tokenizer import (  # noqa: E402
    OpenVLAActionTokenizer,
    RT2ActionTokenizer,
    make_codec,
    select_unnorm_stats,
)
from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.factory import make_policy  # noqa: E402
from rt2_ros.policies.base import Observation, PolicyError  # noqa: E402
from rt2_ros.policies.constrained import ActionLogitsProcessor, openvla_action_ids  # noqa: E402
from rt2_ros.policies.prompts import build_prompt  # noqa: E402
from rt2_ros.policies.transformers_policy import ModelLoadError, TransformersPolicy  # noqa: E402
from rt2_ros.testing.make_model import TEST_UNNORM_KEY, policy_overrides  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
#: These tests are about the transformers backend itself: in this process, not in a child.
IN_PROCESS = {"policy.process": "in_process"}
INSTRUCTIONS = [
    "pick up the red block",
    "move the sponge near the coke can",
    "open the top drawer",
    "knock over the water bottle",
    "go",
]


def _image(rng: np.random.Generator, h: int = 224, w: int = 224) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def rt2_policy(tiny_model_dir):
    cfg = load_config(overrides={**policy_overrides(tiny_model_dir), **IN_PROCESS})
    return make_policy(cfg)


@pytest.fixture(scope="module")
def cot_policy(tiny_model_dir):
    cfg = load_config(overrides={**policy_overrides(tiny_model_dir, prompt="cot"), **IN_PROCESS})
    return make_policy(cfg)


@pytest.fixture(scope="module")
def openvla_policy(tiny_model_dir):
    cfg = load_config(overrides={**policy_overrides(tiny_model_dir, action_format="openvla"), **IN_PROCESS})
    return make_policy(cfg)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir), local_files_only=True)


# -- fresh process, offline, 100 inferences ------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, socket, sys
    def _no_network(*a, **k):
        raise OSError("network access attempted in an offline test")
    socket.socket.connect = _no_network
    socket.create_connection = _no_network
    import numpy as np
    from rt2_ros.config import load_config
    from rt2_ros.factory import make_policy
    from rt2_ros.policies.base import Observation
    overrides = json.loads(sys.argv[1])
    policy = make_policy(load_config(overrides={**overrides, "policy.process": "in_process"}))
    rng = np.random.default_rng(123)
    instructions = json.loads(sys.argv[2])
    out = []
    for i in range(100):
        h, w = [(224, 224), (480, 640), (96, 128)][i % 3]
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        r = policy.infer(img, instructions[i % len(instructions)])
        a = r.action
        out.append({
            "text": r.text, "token_ids": list(r.token_ids), "error": r.error,
            "terminate": None if a is None else a.terminate,
            "vector": None if a is None else a.vector.tolist(),
            "timings": r.timings_ms,
        })
    print(json.dumps({"results": out, "metadata": policy.metadata.to_dict(),
                      "torch_threads": __import__("torch").get_num_threads()}))
    """
)


def test_fresh_offline_process_100_inferences_all_valid(tiny_model_dir, tokenizer):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            json.dumps({**policy_overrides(tiny_model_dir), **IN_PROCESS}),
            json.dumps(INSTRUCTIONS),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(ROOT),
        env=env,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    data = json.loads(p.stdout.strip().splitlines()[-1])
    results = data["results"]
    assert len(results) == 100
    codec = make_codec(load_config().action)
    for r in results:
        assert r["error"] is None, r
        assert len(r["token_ids"]) == 8
        fields = [int(f) for f in r["text"].split()]
        assert len(fields) == 8 and all(0 <= f <= 255 for f in fields)
        assert fields[0] in (0, 1)  # terminate field restricted to terminate/continue
        assert set(r["timings"]) == {"preprocess", "model", "decode"}
        # Independent path: the tokenizer's own decoding of the ids, parsed by the codec.
        expected = codec.decode(tokenizer.decode(r["token_ids"]))
        assert expected.terminate == r["terminate"]
        np.testing.assert_array_equal(expected.vector, np.array(r["vector"]))
    # Random weights still answer differently for different images.
    assert len({r["text"] for r in results}) > 50
    assert data["metadata"]["action_format"] == "rt2" and data["metadata"]["action_dim"] == 8


def test_unconstrained_random_model_does_not_give_actions(tiny_model_dir, tokenizer):
    """Without the logits processor the same model emits garbage: the constraint does the work."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir), local_files_only=True).eval()
    processor = AutoProcessor.from_pretrained(str(tiny_model_dir), local_files_only=True)
    codec = RT2ActionTokenizer()
    rng = np.random.default_rng(0)
    failures = 0
    for i in range(10):
        enc = processor(
            images=[_image(rng)], text=["<image>" + build_prompt("rt2", INSTRUCTIONS[i % 5])], return_tensors="pt"
        )
        enc.pop("labels", None)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=8, do_sample=False)
        try:
            codec.decode(tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True))
        except ValueError:
            failures += 1
    assert failures >= 8


# -- behaviour of the loaded policy ------------------------------------------------------------


def test_metadata_and_timings(rt2_policy, tiny_model_dir):
    md = rt2_policy.metadata
    assert md.action_format == "rt2" and md.action_dim == 8
    assert md.model_id == str(Path(tiny_model_dir).resolve())
    assert md.bounds == {"low": load_config().action.low, "high": load_config().action.high}
    assert md.extra["action_token_pattern"] == "▁{k}"
    r = rt2_policy.infer(_image(np.random.default_rng(1)), "pick up the red block")
    assert set(r.timings_ms) == {"preprocess", "model", "decode"}
    assert all(v >= 0 for v in r.timings_ms.values())


def test_batch_equals_single_inference(rt2_policy):
    rng = np.random.default_rng(7)
    sizes = [(224, 224), (480, 640), (100, 300), (224, 224), (64, 64)]
    obs = [Observation(_image(rng, h, w), INSTRUCTIONS[i]) for i, (h, w) in enumerate(sizes)]
    batched = rt2_policy.infer_batch(obs)
    single = [rt2_policy.infer(o.image, o.instruction) for o in obs]
    assert [b.token_ids for b in batched] == [s.token_ids for s in single]
    assert [b.text for b in batched] == [s.text for s in single]
    # The prompts differ in length, so the batch was really padded; results still differ per row.
    assert len({b.text for b in batched}) > 1
    assert rt2_policy.infer_batch([]) == []


def test_chain_of_thought_returns_plan_and_valid_action(cot_policy, tokenizer):
    rng = np.random.default_rng(3)
    codec = cot_policy.codec
    for instr in INSTRUCTIONS[:3]:
        r = cot_policy.infer(_image(rng), instr)
        assert r.error is None
        assert r.action is not None and isinstance(r.action.plan, str)
        assert r.text.startswith("Plan:") and " Action: " in r.text
        fields = r.text.rsplit("Action:", 1)[1].split()
        assert len(fields) == 8 and fields[0] in ("0", "1")
        assert len(r.token_ids) > 8  # plan tokens, then 8 action tokens
        again = codec.decode(r.text)
        np.testing.assert_array_equal(again.vector, r.action.vector)
        assert again.plan == r.action.plan
        tail = codec.decode(tokenizer.decode(r.token_ids[-8:]))
        np.testing.assert_array_equal(tail.vector, r.action.vector)


def test_chain_of_thought_batch_equals_single(cot_policy):
    rng = np.random.default_rng(9)
    obs = [Observation(_image(rng), i) for i in INSTRUCTIONS[:3]]
    batched = cot_policy.infer_batch(obs)
    assert [b.token_ids for b in batched] == [cot_policy.infer(o.image, o.instruction).token_ids for o in obs]


def test_cot_schedule_switches_to_actions_when_the_model_writes_the_marker():
    """Scripted 'model': free text, then it writes "Action:" itself; the action positions follow."""
    from rt2_ros.policies.constrained import CotSchedule

    words = {10: "Plan:", 11: " pick", 12: " up", 13: " Action:", 2: "<eos>"}
    cot = CotSchedule(
        prefix_ids=(10,),
        marker_ids=(13,),
        max_plan_tokens=5,
        decode=lambda ids: "".join(words.get(i, f" w{i}") for i in ids),
        banned_ids=(2,),
    )
    bins = list(range(100, 110))
    proc = ActionLogitsProcessor(prompt_length=3, allowed=[bins[:2]] + [bins] * 7, eos_token_id=2, cot=cot)
    seq = torch.zeros((1, 3), dtype=torch.long)
    want = {2: 11, 3: 12, 4: 13}  # what the scripted model prefers in the free phase
    emitted = []
    for step in range(1 + 4 + 8 + 1):
        scores = torch.zeros((1, 200))
        if step in want:
            scores[0, want[step]] = 30.0
        scores[0, 2] = 20.0  # the model would love to stop: EOS is banned until the action is done
        scores[0, 150] = 15.0  # a non-action favourite
        tok = int(proc(seq, scores).argmax(-1))
        emitted.append(tok)
        seq = torch.cat([seq, torch.tensor([[tok]])], dim=1)
    # forced "Plan:", free text (EOS banned, so 150), the model's words and its own marker
    assert emitted[:5] == [10, 150, 11, 12, 13]
    assert proc.action_start == [5]
    assert emitted[5] in bins[:2] and all(t in bins for t in emitted[6:13])
    assert emitted[13] == 2  # end of sequence after the 8th action token


def test_chain_of_thought_forces_action_after_plan_budget(tiny_model_dir):
    pol = TransformersPolicy.from_pretrained(tiny_model_dir, prompt="cot", max_plan_tokens=2)
    rng = np.random.default_rng(4)
    results = pol.infer_batch([Observation(_image(rng), i) for i in INSTRUCTIONS])
    for r in results:
        assert r.action is not None, r.error
        assert r.action.plan is not None
        # "Plan:" + at most 2 free tokens + the forced " Action:" + 8 action tokens
        assert len(r.token_ids) <= len(pol._cot.prefix_ids) + 2 + len(pol._cot.marker_ids) + 8


def test_bf16_on_cpu_gives_valid_actions(tiny_model_dir):
    pol = TransformersPolicy.from_pretrained(tiny_model_dir, dtype="bf16")
    assert pol.metadata.extra["dtype"] == "bfloat16"
    rng = np.random.default_rng(5)
    for r in pol.infer_batch([Observation(_image(rng), i) for i in INSTRUCTIONS]):
        assert r.action is not None and len(r.text.split()) == 8


def test_sampling_still_gives_valid_actions(tiny_model_dir):
    pol = TransformersPolicy.from_pretrained(tiny_model_dir, do_sample=True, temperature=3.0)
    assert pol.metadata.extra["greedy"] is False
    rng = np.random.default_rng(10)
    img = _image(rng)
    texts = {pol.infer(img, "pick up the red block").text for _ in range(10)}
    assert len(texts) > 1  # sampling varies the answer to one input...
    for t in texts:  # ...but every answer is an action
        fields = [int(f) for f in t.split()]
        assert len(fields) == 8 and fields[0] in (0, 1) and max(fields) <= 255


def test_openvla_format_end_to_end(openvla_policy, tiny_model_dir):
    md = openvla_policy.metadata
    assert md.action_format == "openvla" and md.action_dim == 7 and md.unnorm_key == TEST_UNNORM_KEY
    vocab = policy_overrides(tiny_model_dir, "openvla")["action.openvla_vocab_size"]
    stats_json = json.loads((Path(tiny_model_dir) / "dataset_statistics.json").read_text())
    _, stats = select_unnorm_stats(stats_json, TEST_UNNORM_KEY)
    codec = OpenVLAActionTokenizer(vocab, stats)
    rng = np.random.default_rng(6)
    obs = [Observation(_image(rng), i) for i in INSTRUCTIONS]
    batched = openvla_policy.infer_batch(obs)
    for o, r in zip(obs, batched):
        assert r.error is None and len(r.token_ids) == 7
        assert all(vocab - 256 <= t < vocab for t in r.token_ids)
        expected = codec.decode(np.array(r.token_ids))
        np.testing.assert_array_equal(expected.vector, r.action.vector)
        assert r.action.terminate is False
        assert openvla_policy.infer(o.image, o.instruction).token_ids == r.token_ids


def test_openvla_empty_token_is_appended_once(openvla_policy):
    tok = openvla_policy.tokenizer
    empty = tok.convert_tokens_to_ids("▁")
    ids = torch.tensor([[5, 6, 7]])
    out = openvla_policy._append_openvla_empty_token({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    assert out["input_ids"].tolist() == [[5, 6, 7, empty]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1]]
    again = openvla_policy._append_openvla_empty_token(dict(out))
    assert again["input_ids"].tolist() == [[5, 6, 7, empty]]


def test_openvla_logits_processor_allows_only_tail_ids():
    ids = openvla_action_ids(32000)
    assert ids[0] == 31744 and ids[-1] == 31999 and len(ids) == 256
    proc = ActionLogitsProcessor(prompt_length=4, allowed=[ids] * 7, eos_token_id=2)
    g = torch.Generator().manual_seed(0)
    seq = torch.zeros((3, 4), dtype=torch.long)
    for pos in range(8):
        scores = torch.randn((3, 32064), generator=g)
        scores[:, :100] += 50.0  # the unconstrained favourites are not actions
        masked = proc(seq, scores)
        best = masked.argmax(-1)
        if pos < 7:
            assert all(31744 <= int(b) <= 31999 for b in best)
            assert torch.isinf(masked[:, :31744]).all() and torch.isinf(masked[:, 32000:]).all()
        else:
            assert best.tolist() == [2, 2, 2]  # after the action: end of sequence
        seq = torch.cat([seq, best[:, None]], dim=1)


def test_rt2_terminate_position_restricted(rt2_policy):
    allowed0 = rt2_policy._allowed[0]
    values0 = sorted(rt2_policy._id_to_value[i] for i in allowed0)
    assert values0 == [0, 1]
    assert all(len(a) == 256 for a in rt2_policy._allowed[1:])


def test_action_token_discovery():
    from rt2_ros.policies.constrained import ActionTokensMissingError, find_rt2_action_token_ids

    class Vocab:
        def __init__(self, v):
            self.v = v

        def get_vocab(self):
            return self.v

    both = {f"Ġ{k}": 1000 + k for k in range(256)} | {str(k): k for k in range(256)}
    assert find_rt2_action_token_ids(Vocab(both), 256) == ("Ġ{k}", [1000 + k for k in range(256)])
    loc = {f"<loc{k:04d}>": 5000 + k for k in range(1024)}
    pattern, ids = find_rt2_action_token_ids(Vocab(loc), 256, "<loc{k:04d}>")
    assert ids[:2] == [5000, 5001] and len(ids) == 256
    with pytest.raises(ActionTokensMissingError, match="'<act_\\{k\\}>': 200/256"):
        find_rt2_action_token_ids(Vocab({f"<act_{k}>": k for k in range(200)}), 256)


def test_openvla_prompt_is_lowercased_upstream_form():
    assert build_prompt("openvla", "Put the Corn on the Plate.") == (
        "In: What action should the robot take to put the corn on the plate?\nOut:"
    )
    assert (
        build_prompt("rt2", "  pick up\nthe apple ") == "Q: what action should the robot take to pick up the apple? A:"
    )


# -- clear errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((224, 224, 3), dtype=np.float32), "uint8"),
        (np.zeros((224, 224), dtype=np.uint8), "shape"),
        (np.zeros((224, 224, 4), dtype=np.uint8), "shape"),
        (np.zeros((0, 224, 3), dtype=np.uint8), "shape"),
        ([[0, 0, 0]], "numpy array"),
        (None, "numpy array"),
    ],
)
def test_bad_image_is_rejected(rt2_policy, image, match):
    with pytest.raises(ValueError, match=match):
        rt2_policy.infer(image, "pick up the red block")


def test_one_bad_image_in_a_batch_rejects_the_batch_with_its_index(rt2_policy):
    good = np.zeros((224, 224, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="observation 1"):
        rt2_policy.infer_batch([Observation(good, "go"), Observation(good.astype(np.int16), "go")])


@pytest.mark.parametrize(
    "instruction, match", [("", "empty"), ("  .  ", "empty"), (None, "str"), ("x" * 2000, "too long")]
)
def test_bad_instruction_is_rejected(rt2_policy, instruction, match):
    with pytest.raises(ValueError, match=match):
        rt2_policy.infer(np.zeros((224, 224, 3), dtype=np.uint8), instruction)


def test_missing_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        TransformersPolicy.from_pretrained(tmp_path / "nope")
    cfg = load_config(overrides={"policy.model_path": "", **IN_PROCESS})
    with pytest.raises(ModelLoadError, match="policy.model_path"):
        make_policy(cfg)


def test_directory_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        TransformersPolicy.from_pretrained(tmp_path)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_checkpoint_without_action_tokens(tiny_model_dir, tmp_path):
    d = _copy(tiny_model_dir, tmp_path / "no_actions")
    spec = json.loads((d / "tokenizer.json").read_text())
    for entry in spec["model"]["vocab"]:  # respell every number piece: "▁128" -> "▁#128"
        if entry[0].startswith("▁") and entry[0][1:].isdigit():
            entry[0] = "▁#" + entry[0][1:]
    (d / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ModelLoadError, match="no action tokens") as e:
        TransformersPolicy.from_pretrained(d)
    assert "▁{k}" in str(e.value)
    # Naming a spelling the vocabulary has makes the same checkpoint usable.
    pol = TransformersPolicy.from_pretrained(d, action_token_pattern="▁#{k}")
    assert pol.infer(np.zeros((224, 224, 3), np.uint8), "go").action is not None


def test_action_token_pattern_not_in_vocabulary(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="'<act_\\{k\\}>': 0/256"):
        TransformersPolicy.from_pretrained(tiny_model_dir, action_token_pattern="<act_{k}>")


def test_mismatched_statistics_key(tiny_model_dir):
    overrides = policy_overrides(tiny_model_dir, "openvla")
    overrides["action.unnorm_key"] = "bridge_orig"
    with pytest.raises(ModelLoadError, match="bridge_orig.*rt2_ros_test"):
        make_policy(load_config(overrides={**overrides, **IN_PROCESS}))


def test_missing_statistics(tiny_model_dir, tmp_path):
    d = _copy(tiny_model_dir, tmp_path / "no_stats")
    (d / "dataset_statistics.json").unlink()
    overrides = policy_overrides(d, "openvla")
    with pytest.raises(ModelLoadError, match="needs action statistics"):
        make_policy(load_config(overrides={**overrides, **IN_PROCESS}))
    overrides["action.statistics_path"] = str(tmp_path / "missing.json")
    with pytest.raises(ModelLoadError, match="statistics_path.*does not exist"):
        make_policy(load_config(overrides={**overrides, **IN_PROCESS}))
    good = tmp_path / "stats.json"
    shutil.copy(tiny_model_dir / "dataset_statistics.json", good)
    overrides["action.statistics_path"] = str(good)
    assert make_policy(load_config(overrides={**overrides, **IN_PROCESS})).metadata.unnorm_key == TEST_UNNORM_KEY


def test_openvla_vocab_larger_than_model(tiny_model_dir):
    overrides = policy_overrides(tiny_model_dir, "openvla")
    overrides["action.openvla_vocab_size"] = 32000
    with pytest.raises(ModelLoadError, match="outside the model's output vocabulary"):
        make_policy(load_config(overrides={**overrides, **IN_PROCESS}))


def _fake_openvla_dir(tmp_path: Path, norm_stats: dict | None) -> Path:
    """config.json of openvla/openvla-7b's shape (no weights, no code): enough for the checks
    that run before the model is loaded."""
    d = tmp_path / "openvla-7b"
    d.mkdir()
    cfg = {
        "model_type": "openvla",
        "auto_map": {
            "AutoConfig": "configuration_prismatic.OpenVLAConfig",
            "AutoModelForVision2Seq": "modeling_prismatic.OpenVLAForActionPrediction",
        },
        "pad_to_multiple_of": 64,
        "text_config": {"model_type": "llama", "vocab_size": 32064},
    }
    if norm_stats is not None:
        cfg["norm_stats"] = norm_stats
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def _stats(key: str) -> dict:
    return {key: {"action": {"q01": [-1.0] * 7, "q99": [1.0] * 7, "mask": [True] * 6 + [False]}}}


def test_openvla_checkpoint_statistics_and_vocab_checks(tmp_path):
    two = {**_stats("bridge_orig"), **_stats("fractal20220817_data")}
    d = _fake_openvla_dir(tmp_path, two)
    # Several datasets in config.json norm_stats and no key: the error lists them.
    with pytest.raises(ModelLoadError, match="several datasets.*bridge_orig"):
        TransformersPolicy.from_pretrained(d, action_format="openvla", prompt="openvla")
    with pytest.raises(ModelLoadError, match="'kuka' not in the model's statistics"):
        TransformersPolicy.from_pretrained(d, action_format="openvla", unnorm_key="kuka")
    # The un-padded vocabulary is read from the config (32064 - 64) and must agree.
    with pytest.raises(ModelLoadError, match="openvla_vocab_size=32001.*32000"):
        TransformersPolicy.from_pretrained(
            d, action_format="openvla", unnorm_key="bridge_orig", openvla_vocab_size=32001
        )
    # Past those checks it needs the checkpoint's own code (modeling_prismatic.py), which is absent here.
    with pytest.raises(ModelLoadError, match="cannot load the model"):
        TransformersPolicy.from_pretrained(d, action_format="openvla", unnorm_key="bridge_orig")


def test_openvla_checkpoint_needs_trust_for_rt2_format(tmp_path):
    d = _fake_openvla_dir(tmp_path, _stats("bridge_orig"))
    with pytest.raises(ModelLoadError, match="needs its own model code"):
        TransformersPolicy.from_pretrained(d, action_format="rt2")


def test_bad_options(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="dtype"):
        TransformersPolicy.from_pretrained(tiny_model_dir, dtype="int8")
    with pytest.raises(ModelLoadError, match="cot"):
        TransformersPolicy.from_pretrained(
            tiny_model_dir, action_format="openvla", prompt="cot", openvla_vocab_size=1000
        )
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            TransformersPolicy.from_pretrained(tiny_model_dir, device="cuda")


def test_model_failure_is_a_policy_error(tiny_model_dir):
    pol = TransformersPolicy.from_pretrained(tiny_model_dir)

    def broken(*a, **k):
        raise RuntimeError("CUDA out of memory (simulated)")

    pol.model.generate = broken
    with pytest.raises(PolicyError, match="out of memory"):
        pol.infer(np.zeros((224, 224, 3), np.uint8), "go")


# -- LLaVA family (the benchmark's OpenVLA-sized stand-in, here at toy size) -----------------------


def test_llava_architecture_batches_and_constrains():
    from rt2_ros.testing.make_model import build_llava_model

    dims = {
        "vision": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=32),
        "text": dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=4096,
        ),
    }
    model, processor = build_llava_model(dims, seed=0)
    pol = TransformersPolicy(
        model,
        processor,
        model_id="llava-toy",
        codec=OpenVLAActionTokenizer(4000, select_unnorm_stats(_stats("x"), None)[1]),
        prompt="openvla",
    )
    rng = np.random.default_rng(8)
    obs = [Observation(_image(rng), i) for i in INSTRUCTIONS]
    batched = pol.infer_batch(obs)
    for o, r in zip(obs, batched):
        assert r.action is not None and all(3744 <= t < 4000 for t in r.token_ids)
        assert pol.infer(o.image, o.instruction).token_ids == r.token_ids

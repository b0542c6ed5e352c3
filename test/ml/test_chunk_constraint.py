"""The output constraint for action chunks on the tiny test model (random weights): RT-2
with a horizon, integer text, OpenVLA with a horizon, FAST; max_new_tokens from the format."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.factory import make_policy  # noqa: E402

#: These tests read the transformers backend itself: run it in this process.
IN_PROCESS = {"policy.process": "in_process"}
from rt2_ros.policies.base import Observation  # noqa: E402
from rt2_ros.policies.constrained import ActionLogitsProcessor  # noqa: E402
from rt2_ros.testing.fast_tokenizer import train_fast_tokenizer  # noqa: E402
from rt2_ros.testing.make_model import policy_overrides  # noqa: E402

INSTR = ["pick up the red block", "open the drawer", "go"]


def _obs(seed=0):
    rng = np.random.default_rng(seed)
    return [Observation(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8), i) for i in INSTR]


def test_rt2_chunk_generates_exactly_h_actions_with_every_terminate_field_restricted(tiny_model_dir):
    cfg = load_config(overrides={**policy_overrides(tiny_model_dir), "action.horizon": 4, **IN_PROCESS})
    pol = make_policy(cfg)
    assert pol.n_action_tokens == 32 and pol.metadata.action_dim == 8
    for k in range(4):
        assert sorted(pol._id_to_value[i] for i in pol._allowed[8 * k]) == [0, 1]  # terminate | continue
        assert all(len(pol._allowed[8 * k + j]) == 256 for j in range(1, 8))
    for r in pol.infer_batch(_obs()):
        assert r.error is None and len(r.actions) == 4 and len(r.token_ids) == 32
        assert len(r.text.split()) == 32


def test_integer_text_chunk_uses_one_token_per_integer_0_to_bins(tiny_model_dir):
    # The test vocabulary spells 0..255 as single tokens: 255 is the largest integer (bins).
    over = {
        **policy_overrides(tiny_model_dir),
        "action.format": "int_text",
        "action.bins": 255,
        "action.horizon": 3,
        **IN_PROCESS,
    }
    pol = make_policy(load_config(overrides=over))
    assert pol.n_action_tokens == 21 and all(len(a) == 256 for a in pol._allowed)
    for r in pol.infer_batch(_obs(1)):
        assert r.error is None and len(r.actions) == 3 and len(r.text.split()) == 21


def test_openvla_chunk_generates_h_times_7_tail_ids(tiny_model_dir):
    over = {**policy_overrides(tiny_model_dir, action_format="openvla"), "action.horizon": 2, **IN_PROCESS}
    pol = make_policy(load_config(overrides=over))
    vocab = over["action.openvla_vocab_size"]
    assert pol.n_action_tokens == 14 and pol.metadata.action_dim == 7
    o = _obs(2)[0]
    r = pol.infer(o.image, o.instruction)
    assert r.error is None and len(r.actions) == 2 and len(r.token_ids) == 14
    assert all(vocab - 256 <= t < vocab for t in r.token_ids)


def test_fast_allows_only_fast_ids_then_end_of_sequence(tiny_model_dir, tmp_path):
    info = train_fast_tokenizer(tmp_path / "fast", horizon=4, vocab_size=300, n_chunks=400)
    base = policy_overrides(tiny_model_dir)
    over = {
        **base,
        "action.format": "fast",
        "action.horizon": 4,
        "action.fast_tokenizer_path": str(tmp_path / "fast"),
        "action.fast_min_token": info["min_token"],
        "action.fast_vocab_size": info["vocab_size"],
        "action.fast_id_offset": 300,  # FAST token i is model id 300 + i
        **IN_PROCESS,
    }
    # Random weights rarely spell a whole FAST chunk, so no warm-up (it needs a valid action).
    pol = make_policy(load_config(overrides=over), warmup=False)
    assert pol.n_action_tokens == 3 * 4 * 7  # the longest encoding of 28 coefficients
    eos = pol._eos_id
    for r in pol.infer_batch(_obs(3)):
        ids = list(r.token_ids)
        body = ids[: ids.index(eos)] if eos in ids else ids
        assert body and all(300 <= i < 300 + info["vocab_size"] for i in body)
        assert len(body) <= pol.n_action_tokens
        # valid chunk or a clear rejection, never a partial chunk
        assert (r.error is None and len(r.actions) == 4) or (r.error and r.actions == ())


def test_stop_after_allows_end_of_sequence_only_from_that_position():
    allowed = [[10, 11, 12]] * 5
    proc = ActionLogitsProcessor(prompt_length=2, allowed=allowed, eos_token_id=1, stop_after=1)
    assert proc.max_new_tokens() == 5
    seq = torch.zeros((2, 2), dtype=torch.long)
    scores = torch.zeros((2, 20))
    scores[:, 1] = 100.0  # the model wants to stop at once
    first = proc(seq, scores.clone()).argmax(-1)
    assert first.tolist() == [10, 10]  # not before one action token
    seq = torch.cat([seq, first[:, None]], 1)
    assert proc(seq, scores.clone()).argmax(-1).tolist() == [1, 1]
    with pytest.raises(ValueError, match="stop_after"):
        ActionLogitsProcessor(prompt_length=2, allowed=allowed, eos_token_id=None, stop_after=1)

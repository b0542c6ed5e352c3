"""Faults and bad input, round 2 (issue 15): each defect found by black-box tests, with
the behaviour that now holds. Core defects are driven through the ROS-free controller
with an explicit clock; the node-level ones over real DDS (test/ros_helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted_policy import ScriptedTextPolicy

from rt2_ros.action_tokenizer import ActionDecodeError, make_codec
from rt2_ros.config import ConfigError, load_config
from rt2_ros.controller import Controller
from rt2_ros.episode import EndReason, EpisodeState

IMG = np.zeros((8, 8, 3), np.uint8)
# dx = bin 200: +0.0283 m per 0.2 s step -> +0.14 m/s
MOVE = "1 200 128 128 128 128 128 0"
IN_BOX = np.array([0.5, 0.0, 0.3])


def make(texts, **overrides):
    cfg = load_config(overrides={"control.period_s": 0.2, "safety.max_linear_accel_mps2": 100.0, **overrides})
    return Controller(cfg, ScriptedTextPolicy(cfg, texts)), cfg


# -- 1. the terminate field ------------------------------------------------------------------


@pytest.mark.parametrize("first", [2, 128, 255, 200])
def test_terminate_field_other_than_terminate_or_continue_is_rejected(first):
    codec = make_codec(load_config().action)
    text = f"{first} 128 128 128 128 128 128 128"
    with pytest.raises(ActionDecodeError, match="terminate"):
        codec.decode(text)
    with pytest.raises(ActionDecodeError, match="terminate"):
        codec.decode_tokens([first] + [128] * 7)
    with pytest.raises(ActionDecodeError):
        codec.decode_output(text=text)


def test_terminate_field_garbage_moves_nothing_through_the_controller():
    c, _ = make(
        ["2 200 128 128 128 128 128 255", "255 200 200 200 128 128 128 255"], **{"safety.workspace_enabled": False}
    )
    c.on_image(IMG, 0.0)
    c.on_instruction("pick up the red block", 0.0)
    for t in (0.0, 0.2):
        c.on_image(IMG, t)
        out = c.step(t)
        assert out.action is None and out.twist.is_zero and out.gripper is None
        assert "terminate" in out.rejected
        assert c.servo_command(t + 0.05).twist.is_zero
    assert c.episode.running  # garbage is counted as a step, not a terminate


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 255), st.lists(st.integers(0, 255), min_size=7, max_size=7))
def test_any_terminate_value_but_the_two_never_decodes(first, rest):
    codec = make_codec(load_config().action)
    with pytest.raises(ActionDecodeError):
        codec.decode(" ".join(map(str, [first, *rest])))


def test_output_constraint_allows_only_the_two_terminate_ids_at_position_zero():
    torch = pytest.importorskip("torch")
    from rt2_ros.policies.constrained import ActionLogitsProcessor, rt2_allowed_ids

    bin_ids = list(range(1000, 1256))  # token id of integer k = 1000 + k
    cfg = load_config().action
    allowed = rt2_allowed_ids(bin_ids, (cfg.terminate_token, cfg.continue_token))
    proc = ActionLogitsProcessor(prompt_length=3, allowed=allowed, eos_token_id=2)
    scores = torch.randn((2, 1300), generator=torch.Generator().manual_seed(1))
    scores[:, 1002:1256] += 100.0  # the model prefers every other bin
    masked = proc(torch.zeros((2, 3), dtype=torch.long), scores)
    finite = [torch.isfinite(row).nonzero().flatten().tolist() for row in masked]
    assert finite == [[1000, 1001], [1000, 1001]]
    # positions 1..7 allow every bin
    masked1 = proc(torch.zeros((2, 4), dtype=torch.long), scores)
    assert torch.isfinite(masked1).sum(-1).tolist() == [256, 256]


def test_config_still_refuses_equal_or_out_of_range_terminate_values():
    with pytest.raises(ConfigError):
        load_config(overrides={"action.terminate_token": 1, "action.continue_token": 1})
    with pytest.raises(ConfigError):
        load_config(overrides={"action.terminate_token": 256})


_ = (EndReason, EpisodeState, IN_BOX)

"""Policies for ``rt2-ros serve --policy child_policies:...`` in a policy child (tests only).

The child finds this module through ``PYTHONPATH`` (the tests put ``test/helpers`` on it).
"""

from __future__ import annotations

import threading

from rt2_ros.action_tokenizer import make_codec
from rt2_ros.config import RT2Config
from rt2_ros.policies.base import Policy, PolicyMetadata, PolicyResult, check_image


class ConstantPolicy(Policy):
    """Answers one fixed RT-2 action (1 cm along x per step, gripper open)."""

    def __init__(self, cfg: RT2Config):
        self.codec = make_codec(cfg.action)
        self.text = self.codec.encode([0.01, 0, 0, 0, 0, 0, 1.0])
        self.metadata = PolicyMetadata(
            action_format="rt2",
            model_id="constant",
            action_dim=8,
            bounds={"low": list(cfg.action.low), "high": list(cfg.action.high)},
        )

    def infer_batch(self, observations):
        for o in observations:
            check_image(o.image)
        return [
            PolicyResult(self.text, (), (self.codec.decode(self.text),), None, {"model": 0.0}) for _ in observations
        ]


class HangingPolicy(ConstantPolicy):
    """Never answers: every call blocks forever (a wedged model)."""

    def infer_batch(self, observations):
        threading.Event().wait()


def make_constant(cfg: RT2Config) -> Policy:
    return ConstantPolicy(cfg)


def make_hanging(cfg: RT2Config) -> Policy:
    return HangingPolicy(cfg)

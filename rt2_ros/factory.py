"""Build core objects from an :class:`~rt2_ros.config.RT2Config` (ROS-free, torch-free)."""

from __future__ import annotations

import numpy as np

from rt2_ros.action_tokenizer import ActionBounds, RT2ActionTokenizer
from rt2_ros.config import ActionConfig, RT2Config

__all__ = ["make_rt2_tokenizer", "make_policy"]


def make_rt2_tokenizer(cfg: ActionConfig) -> RT2ActionTokenizer:
    """The RT-2 codec described by the ``action`` section."""
    return RT2ActionTokenizer(
        ActionBounds(np.array(cfg.low), np.array(cfg.high)),
        bins=cfg.bins,
        terminate_token=cfg.terminate_token,
        continue_token=cfg.continue_token,
        decode_to=cfg.decode_to,
    )


def make_policy(cfg: RT2Config, **kwargs):
    """The policy backend named by ``policy.backend`` (imports torch only for ``local``).

    Raises:
        ValueError: unknown backend or bad backend settings.
    """
    backend = cfg.policy.backend
    if backend == "local":
        from rt2_ros.policies.transformers_policy import TransformersPolicy

        return TransformersPolicy.from_config(cfg, **kwargs)
    if backend == "remote":
        from rt2_ros.policies.remote import RemotePolicy

        return RemotePolicy.from_config(cfg, **kwargs)
    if backend == "scripted":
        from rt2_ros.sim.expert import ScriptedExpertPolicy

        return ScriptedExpertPolicy.from_config(cfg, **kwargs)
    raise ValueError(f"unknown policy backend {backend!r} (local | remote | scripted)")

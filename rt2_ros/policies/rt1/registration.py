"""Registers ``model_type: rt1`` with transformers' Auto classes (idempotent)."""

from __future__ import annotations

from transformers import AutoConfig, AutoModel

from rt2_ros.policies.rt1.configuration_rt1 import RT1_MODEL_TYPE, RT1Config
from rt2_ros.policies.rt1.modeling_rt1 import RT1Model

__all__ = ["register"]


def register() -> None:
    """``AutoConfig.from_pretrained`` / ``AutoModel.from_pretrained`` then load rt1 directories."""
    try:
        AutoConfig.register(RT1_MODEL_TYPE, RT1Config)
    except ValueError:  # already registered
        pass
    try:
        AutoModel.register(RT1Config, RT1Model)
    except ValueError:
        pass


register()

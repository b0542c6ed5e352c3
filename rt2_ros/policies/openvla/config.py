"""``config.json`` of an OpenVLA checkpoint (``model_type: openvla``), read without remote code.

Fields follow upstream ``OpenVLAConfig`` / ``PrismaticConfig`` (openvla
``prismatic/extern/hf/configuration_prismatic.py``). Torch-free.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

__all__ = ["OpenVLAConfigError", "OpenVLACheckpointConfig", "read_openvla_config", "OPENVLA_MODEL_TYPE"]

OPENVLA_MODEL_TYPE = "openvla"

#: Projector layouts of upstream ``arch_specifier`` (``PrismaticProjector``): a fused
#: (two-tower) backbone uses fc1 -> GELU -> fc2 -> GELU -> fc3, one tower fc1 -> GELU -> fc2.
_GELU_MLP_SPECIFIERS = ("gelu-mlp", "fused-gelu-mlp")


class OpenVLAConfigError(ValueError):
    """``config.json`` is not a usable OpenVLA config; the message names the field."""


@dataclasses.dataclass(frozen=True)
class OpenVLACheckpointConfig:
    """The parts of an OpenVLA ``config.json`` the native loader needs.

    Attributes:
        timm_model_ids: one or two tower ids, e.g. ``("vit_large_patch14_reg4_dinov2.lvd142m",
            "vit_so400m_patch14_siglip_224")``.
        image_sizes: input side per tower [px].
        use_fused_vision_backbone: two towers whose patch features are concatenated.
        image_resize_strategy: ``resize-naive`` | ``resize-crop`` | ``letterbox``.
        arch_specifier: projector kind, e.g. ``no-align+fused-gelu-mlp``.
        text_config: the LLM's config dict (``model_type`` ``llama`` for OpenVLA).
        pad_to_multiple_of: vocabulary padding (64): the text vocabulary is
            ``tokenizer size rounded up``, the action ids are the last 256 of the
            *un-padded* size ``text_config.vocab_size - pad_to_multiple_of``.
        n_action_bins: 256.
        norm_stats: per-dataset action statistics (may be empty).
        raw: the whole ``config.json``.
    """

    timm_model_ids: tuple[str, ...]
    image_sizes: tuple[int, ...]
    use_fused_vision_backbone: bool
    image_resize_strategy: str
    arch_specifier: str
    text_config: dict[str, Any]
    pad_to_multiple_of: int
    n_action_bins: int
    norm_stats: dict[str, Any]
    raw: dict[str, Any]

    @property
    def model_type(self) -> str:
        """``"openvla"`` (what transformers configs call ``model_type``)."""
        return OPENVLA_MODEL_TYPE

    @property
    def unpadded_vocab_size(self) -> int:
        """``text_config.vocab_size - pad_to_multiple_of`` (32000 for openvla-7b), as in
        upstream ``OpenVLAForActionPrediction.__init__``."""
        return int(self.text_config["vocab_size"]) - int(self.pad_to_multiple_of)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "OpenVLACheckpointConfig":
        """Validate a ``config.json`` dict.

        Raises:
            OpenVLAConfigError: wrong ``model_type`` or a missing/ill-typed field.
        """
        if not isinstance(raw, dict):
            raise OpenVLAConfigError("config.json must hold a JSON object")
        if raw.get("model_type") != OPENVLA_MODEL_TYPE:
            raise OpenVLAConfigError(f"model_type is {raw.get('model_type')!r}, not {OPENVLA_MODEL_TYPE!r}")
        ids = raw.get("timm_model_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 2 or not all(isinstance(i, str) for i in ids):
            raise OpenVLAConfigError(f"timm_model_ids must list one or two tower ids, got {ids!r}")
        fused = raw.get("use_fused_vision_backbone")
        if fused is None:
            fused = len(ids) == 2
        if bool(fused) != (len(ids) == 2):
            raise OpenVLAConfigError(f"use_fused_vision_backbone={fused} but timm_model_ids has {len(ids)} ids")
        sizes = raw.get("image_sizes") or [224] * len(ids)
        if not isinstance(sizes, list) or len(sizes) != len(ids) or not all(isinstance(s, int) for s in sizes):
            raise OpenVLAConfigError(f"image_sizes must give one integer per tower, got {sizes!r}")
        text = raw.get("text_config")
        if not isinstance(text, dict) or not isinstance(text.get("vocab_size"), int):
            raise OpenVLAConfigError("text_config with an integer vocab_size is required")
        arch = str(raw.get("arch_specifier", "no-align+gelu-mlp"))
        if not arch.endswith(_GELU_MLP_SPECIFIERS):
            raise OpenVLAConfigError(f"arch_specifier {arch!r} is not supported (only *gelu-mlp projectors)")
        if arch.endswith("fused-gelu-mlp") != bool(fused):
            raise OpenVLAConfigError(f"arch_specifier {arch!r} does not match use_fused_vision_backbone={fused}")
        strategy = str(raw.get("image_resize_strategy", "letterbox"))
        if strategy not in ("resize-naive", "resize-crop", "letterbox"):
            raise OpenVLAConfigError(f"image_resize_strategy {strategy!r} is not supported")
        pad = raw.get("pad_to_multiple_of", 64)
        if not isinstance(pad, int) or pad < 0:
            raise OpenVLAConfigError(f"pad_to_multiple_of must be a non-negative integer, got {pad!r}")
        bins = raw.get("n_action_bins", 256)
        if not isinstance(bins, int) or bins < 2:
            raise OpenVLAConfigError(f"n_action_bins must be an integer >= 2, got {bins!r}")
        norm_stats = raw.get("norm_stats") or {}
        if not isinstance(norm_stats, dict):
            raise OpenVLAConfigError("norm_stats must be a JSON object")
        return cls(
            timm_model_ids=tuple(ids),
            image_sizes=tuple(int(s) for s in sizes),
            use_fused_vision_backbone=bool(fused),
            image_resize_strategy=strategy,
            arch_specifier=arch,
            text_config=dict(text),
            pad_to_multiple_of=int(pad),
            n_action_bins=int(bins),
            norm_stats=norm_stats,
            raw=raw,
        )


def read_openvla_config(model_dir: str | Path) -> OpenVLACheckpointConfig:
    """Read and validate ``<model_dir>/config.json``.

    Raises:
        OpenVLAConfigError: missing/unreadable file or a bad field.
    """
    f = Path(model_dir) / "config.json"
    try:
        raw = json.loads(f.read_text())
    except (OSError, ValueError) as e:
        raise OpenVLAConfigError(f"cannot read {f}: {e}") from None
    return OpenVLACheckpointConfig.from_dict(raw)

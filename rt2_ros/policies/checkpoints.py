"""Loading a Hugging Face checkpoint directory for the local backend.

The helpers :class:`~rt2_ros.policies.transformers_policy.TransformersPolicy`
(``from_pretrained``) and :mod:`rt2_ros.training.train` (the base model to fine-tune)
use to turn a checkpoint directory into a model: check the requested device, pick the
model class (transformers' own class for a known ``model_type``; the checkpoint's own
code, through its ``auto_map``, only with ``trust_remote_code``; OpenVLA natively,
:mod:`rt2_ros.policies.openvla`), pass the dtype the way the installed transformers
names it, read the action statistics (``dataset_statistics.json``, the config's
``norm_stats`` or ``action.statistics_path``), and read the output vocabulary and the
image processor's input size. Always ``local_files_only``: nothing is downloaded.

Every failure is a :class:`ModelLoadError` whose message says what to change.
Inference itself (prompting, constrained generation, decoding) stays in
:mod:`rt2_ros.policies.transformers_policy`.

Imports torch and transformers: import this module only for the local backend.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoModelForImageTextToText

from rt2_ros.codecs import UnnormStats, select_unnorm_stats
from rt2_ros.policies.base import PolicyError

__all__ = ["ModelLoadError"]

#: ``auto_map`` entries tried, in order, for checkpoints that ship their own code.
_REMOTE_CODE_AUTO_CLASSES = ("AutoModelForVision2Seq", "AutoModelForImageTextToText", "AutoModelForCausalLM")


class ModelLoadError(PolicyError):
    """The checkpoint cannot be used: missing directory, not a checkpoint, no action
    tokens, bad or missing statistics, unavailable device, or a failed warm-up.
    The message says which and what to change."""


def _is_native(model_type: Any) -> bool:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return isinstance(model_type, str) and model_type in CONFIG_MAPPING_NAMES


def _check_device(device: str) -> torch.device:
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ModelLoadError(f"bad device {device!r}: {e}") from None
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device {device!r} requested but CUDA is not available (torch {torch.__version__})")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise ModelLoadError(f"device {device!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
    elif d.type != "cpu":
        raise ModelLoadError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    return d


def _dtype_kwargs(dtype: torch.dtype) -> dict[str, Any]:
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def _load_model(path: Path, raw_cfg: dict, dtype: torch.dtype, trust_remote_code: bool) -> Any:
    model_type = raw_cfg.get("model_type")
    auto_map = raw_cfg.get("auto_map") or {}
    kw = {"local_files_only": True, **_dtype_kwargs(dtype)}
    try:
        if _is_native(model_type) and not (trust_remote_code and auto_map):
            return AutoModelForImageTextToText.from_pretrained(str(path), **kw)
        if not auto_map:
            raise ModelLoadError(
                f"model_type {model_type!r} in {path}/config.json is not known to transformers "
                f"{transformers.__version__} and the checkpoint ships no model code (auto_map)"
            )
        if not trust_remote_code:
            raise ModelLoadError(
                f"{path} needs its own model code ({sorted(auto_map)}); loading it runs that code. "
                "Use action.format 'openvla' for OpenVLA checkpoints (loaded natively) or set "
                "policy.trust_remote_code: true"
            )
        for key in _REMOTE_CODE_AUTO_CLASSES:
            if key in auto_map:
                auto_cls = getattr(transformers, key, None)
                if auto_cls is not None:
                    return auto_cls.from_pretrained(str(path), trust_remote_code=True, **kw)
                # transformers 5 dropped AutoModelForVision2Seq: resolve the class from auto_map.
                from transformers.dynamic_module_utils import get_class_from_dynamic_module

                model_cls = get_class_from_dynamic_module(auto_map[key], str(path), local_files_only=True)
                # ...and give it generate(), as the auto classes do for remote code (transformers 5's
                # PreTrainedModel no longer inherits GenerationMixin).
                model_cls = _with_generation_mixin(model_cls)
                return model_cls.from_pretrained(str(path), **kw)
        raise ModelLoadError(f"{path}/config.json auto_map has none of {_REMOTE_CODE_AUTO_CLASSES}")
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - surface the loader's own message
        raise ModelLoadError(f"cannot load the model from {str(path)!r}: {type(e).__name__}: {e}") from None


def _with_generation_mixin(model_cls: type) -> type:
    """``model_cls`` with ``GenerationMixin`` among its bases (unchanged if already there)."""
    from transformers import GenerationMixin

    if issubclass(model_cls, GenerationMixin):
        return model_cls
    return type(model_cls.__name__, (model_cls, GenerationMixin), {"__module__": model_cls.__module__})


def _load_native_openvla(path: Path, dtype: torch.dtype, device: torch.device) -> tuple[Any, Any]:
    """OpenVLA without remote code (:func:`rt2_ros.policies.openvla.modeling.load_openvla_native`)."""
    from rt2_ros.policies.openvla.modeling import OpenVLALoadError, load_openvla_native

    try:
        return load_openvla_native(path, dtype=dtype, device=device)
    except OpenVLALoadError as e:
        raise ModelLoadError(
            f"cannot load the model from {str(path)!r} natively: {e}. (To run the checkpoint's own code instead, "
            "set policy.trust_remote_code: true; it needs timm>=0.9.10,<1.0 and transformers 4.40.1.)"
        ) from None
    except Exception as e:  # noqa: BLE001 - e.g. out of memory: a load error with its message
        raise ModelLoadError(f"cannot load the model from {str(path)!r}: {type(e).__name__}: {e}") from None


def _openvla_vocab_from_config(raw_cfg: dict) -> int | None:
    """``text_config.vocab_size - pad_to_multiple_of`` as in OpenVLA's ``__init__``, or None."""
    pad = raw_cfg.get("pad_to_multiple_of")
    text = raw_cfg.get("text_config") or {}
    vocab = text.get("vocab_size", raw_cfg.get("vocab_size"))
    if isinstance(pad, int) and isinstance(vocab, int):
        return vocab - pad
    return None


def _load_statistics(
    path: Path, raw_cfg: dict, unnorm_key: str | None, statistics_path: str | os.PathLike | None
) -> tuple[str, UnnormStats]:
    """Statistics for un-normalisation: ``statistics_path``, else ``dataset_statistics.json``
    in the checkpoint, else the config's ``norm_stats`` (OpenVLA stores both)."""
    source: str
    if statistics_path:
        f = Path(statistics_path).expanduser()
        if not f.is_file():
            raise ModelLoadError(f"action.statistics_path {str(f)!r} does not exist")
        source = str(f)
    elif (path / "dataset_statistics.json").is_file():
        f = path / "dataset_statistics.json"
        source = str(f)
    else:
        f = None
        source = f"{path}/config.json norm_stats"
    if f is not None:
        try:
            norm_stats = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"cannot read action statistics {source}: {e}") from None
    else:
        norm_stats = raw_cfg.get("norm_stats")
        if not norm_stats:
            raise ModelLoadError(
                f"action.format 'openvla' needs action statistics: no dataset_statistics.json in {str(path)!r}, "
                "no norm_stats in its config.json, and action.statistics_path is empty"
            )
    if not isinstance(norm_stats, dict):
        raise ModelLoadError(f"action statistics in {source} must be a JSON object of datasets")
    try:
        return select_unnorm_stats(norm_stats, unnorm_key)
    except ValueError as e:
        raise ModelLoadError(f"{e} (statistics from {source})") from None


def _output_vocab_size(model: Any) -> int | None:
    try:
        emb = model.get_output_embeddings()
        if emb is not None and hasattr(emb, "weight"):
            return int(emb.weight.shape[0])
    except Exception:  # noqa: BLE001 - remote-code models may not implement it
        pass
    cfg = getattr(model, "config", None)
    text = getattr(cfg, "text_config", None)
    v = getattr(text, "vocab_size", None) or getattr(cfg, "vocab_size", None)
    return int(v) if isinstance(v, int) else None


def _processor_image_size(processor: Any) -> tuple[int, int]:
    """(H, W) the image processor resizes to; 224 x 224 when unknown."""
    ip = getattr(processor, "image_processor", None)
    size = getattr(ip, "size", None)
    if isinstance(size, dict):
        h = size.get("height") or size.get("shortest_edge")
        w = size.get("width") or size.get("shortest_edge")
        if isinstance(h, int) and isinstance(w, int):
            return h, w
    if isinstance(size, int):
        return size, size
    return 224, 224

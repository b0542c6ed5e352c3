"""``rt2-ros predict``: one image + one instruction through a local checkpoint, printed as JSON.

For debugging a checkpoint from the shell before a robot is involved::

    rt2-ros predict --model ~/models/openvla-7b --image frame.png \\
        --instruction "pick up the red block" --unnorm-key bridge_orig --device cuda --dtype bf16

prints one JSON object: the checkpoint and loader, the prompt and its token ids,
the generated token ids, the model text (the tokenizer's decoding of those ids),
the decoded action (un-normalised for OpenVLA; metres, radians, gripper units)
and timings in ms. The model is loaded exactly as the node and ``rt2-ros serve``
load it (``policy.backend: local``), warm-up and image-sensitivity check included.

Exit status 0 on success; 1 with ``error: <reason>`` on stderr (no traceback) for
a checkpoint that cannot be loaded, an unreadable image, a bad instruction or
option, or model output that is not an action (the JSON is still printed then).
Imports torch only when run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]

_GRIPPER_UNITS = {
    "openvla": "dataset units: OpenVLA data uses 0 = close, 1 = open",
    "rt2": "the configured gripper units (action.low/high[6]; RT-2 default 1 = open)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rt2-ros predict``."""
    p.add_argument("--model", required=True, help="checkpoint directory (save_pretrained or openvla-7b layout)")
    p.add_argument("--image", required=True, help="RGB image file (PNG, JPEG, ...)")
    p.add_argument("--instruction", required=True, help='task, e.g. "pick up the red block"')
    p.add_argument("--unnorm-key", default=None, help="OpenVLA: dataset statistics key, e.g. bridge_orig")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="model dtype (default fp32)")
    p.add_argument(
        "--format", choices=["rt2", "openvla"], default=None, help="action format (default: openvla for OpenVLA)"
    )
    p.add_argument("--prompt", default=None, help="rt2 | openvla | cot (default: the format's own)")
    p.add_argument("--trust-remote-code", action="store_true", help="run the checkpoint's own model code")
    p.add_argument("--config", default=None, help="parameters file for RT-2 bounds (default: config/rt2.yaml)")


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 1


def _print_rt1(policy: Any, args: Any, image: Any, load_ms: float, model_dir: str) -> int:
    """``rt2-ros predict`` of an rt1 directory: one step of a fresh history (JSON)."""
    t1 = time.perf_counter()
    try:
        result = policy.infer(image, args.instruction)
    except ValueError as e:
        return _fail(str(e))
    total_ms = (time.perf_counter() - t1) * 1e3
    meta = policy.metadata
    out: dict[str, Any] = {
        "model": model_dir,
        "model_type": "rt1",
        "action_format": meta.action_format,
        "history": meta.extra.get("history"),
        "instruction": args.instruction,
        "image": {"path": str(args.image), "height": int(image.shape[0]), "width": int(image.shape[1])},
        "generated_token_ids": list(result.token_ids),
        "action_text": result.text,
        "action": None,
        "error": result.error,
        "timings_ms": {
            "load_and_warmup": load_ms,
            **{k: float(v) for k, v in result.timings_ms.items()},
            "total": total_ms,
        },
    }
    if result.action is not None:
        a = result.action
        out["action"] = {
            **a.to_dict(),
            "vector": [float(v) for v in a.vector],
            "vector_units": ["m", "m", "m", "rad", "rad", "rad", "gripper"],
        }
    print(json.dumps(out, indent=2))
    policy.close()
    return 0 if result.action is not None else _fail(f"the model output is not an action: {result.error}")


def _read_image(path: str) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def run(args: argparse.Namespace) -> int:
    """``rt2-ros predict``: print the JSON object; 0 on success, 1 on any load, input or decode error."""
    from rt2_ros.config import ConfigError, load_config

    model_dir = Path(args.model).expanduser()
    raw_cfg: dict[str, Any] = {}
    try:
        raw_cfg = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        pass  # the loader reports a missing or bad checkpoint with its own message
    is_openvla = raw_cfg.get("model_type") == "openvla"
    fmt = args.format or ("openvla" if is_openvla else "rt2")
    overrides: dict[str, Any] = {
        "policy.backend": "local",
        "policy.process": "in_process",  # this process loads and runs the model (and prints its ids)
        "policy.model_path": str(model_dir),
        "policy.prompt": args.prompt or ("openvla" if fmt == "openvla" else "rt2"),
        "policy.device": args.device,
        "policy.dtype": args.dtype,
        "policy.trust_remote_code": bool(args.trust_remote_code),
        "action.format": fmt,
        "action.unnorm_key": args.unnorm_key or "",
    }
    text_cfg = raw_cfg.get("text_config") or {}
    if fmt == "openvla" and isinstance(raw_cfg.get("pad_to_multiple_of"), int) and "vocab_size" in text_cfg:
        overrides["action.openvla_vocab_size"] = int(text_cfg["vocab_size"]) - int(raw_cfg["pad_to_multiple_of"])
    try:
        cfg = load_config(args.config, overrides=overrides)
        rt1 = raw_cfg.get("model_type") == "rt1"
        if rt1:  # RT-1 answers in RT-2 tokens with the codec of its rt2_ros_policy.yaml
            from rt2_ros.config import with_model_settings

            cfg, _ = with_model_settings(load_config(args.config, overrides={**overrides, "action.format": "rt2"}))
    except ConfigError as e:
        return _fail(str(e))
    try:
        image = _read_image(args.image)
    except Exception as e:  # noqa: BLE001 - any unreadable image is a clear input error
        return _fail(f"cannot read image {args.image!r}: {type(e).__name__}: {e}")

    from rt2_ros.factory import make_policy
    from rt2_ros.policies.base import Observation, PolicyError
    from rt2_ros.policies.prompts import build_prompt, check_instruction
    from rt2_ros.policies.transformers_policy import ModelLoadError

    try:
        check_instruction(args.instruction)
    except ValueError as e:
        return _fail(str(e))
    t0 = time.perf_counter()
    try:
        policy = make_policy(cfg)
    except (ModelLoadError, PolicyError, ValueError) as e:
        return _fail(f"{e}\n(check --model, --format, --unnorm-key, --device, --dtype)")
    load_ms = (time.perf_counter() - t0) * 1e3
    if rt1:
        return _print_rt1(policy, args, image, load_ms, str(model_dir))
    try:
        prompt = build_prompt(cfg.policy.prompt, args.instruction)
        inputs, _ = policy._prepare([Observation(image=image, instruction=args.instruction)])  # the exact ids
        t1 = time.perf_counter()
        result = policy.infer(image, args.instruction)
        total_ms = (time.perf_counter() - t1) * 1e3
    except (PolicyError, ValueError) as e:
        return _fail(str(e))
    meta = policy.metadata
    tok = policy.tokenizer
    out: dict[str, Any] = {
        "model": str(model_dir),
        "model_type": meta.extra.get("model_type"),
        "loader": meta.extra.get("loader"),
        "transformers_version": meta.extra.get("transformers_version"),
        "device": meta.extra.get("device"),
        "dtype": meta.extra.get("dtype"),
        "action_format": meta.action_format,
        "unnorm_key": meta.unnorm_key,
        "instruction": args.instruction,
        "image": {"path": str(args.image), "height": int(image.shape[0]), "width": int(image.shape[1])},
        "prompt": prompt,
        "prompt_token_ids": inputs["input_ids"][0].tolist(),
        "generated_token_ids": list(result.token_ids),
        "model_text": tok.decode(list(result.token_ids), skip_special_tokens=False),
        "action_text": result.text,
        "action": None,
        "error": result.error,
        "image_sensitivity_max_logit_diff": meta.extra.get("image_sensitivity_max_logit_diff"),
        "timings_ms": {
            "load_and_warmup": load_ms,
            **{k: float(v) for k, v in result.timings_ms.items()},
            "total": total_ms,
        },
    }
    if result.action is not None:
        a = result.action
        out["action"] = {
            **a.to_dict(),
            "vector": [float(v) for v in a.vector],
            "vector_units": ["m", "m", "m", "rad", "rad", "rad", "gripper"],
            "gripper_units": _GRIPPER_UNITS[meta.action_format],
        }
    print(json.dumps(out, indent=2))
    policy.close()
    if result.action is None:
        return _fail(f"the model output is not an action: {result.error}")
    return 0

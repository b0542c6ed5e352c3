#!/usr/bin/env python3
"""Latency of native OpenVLA through the local backend (a script, not a test).

Default: the parity fixture (``../shared/fixtures/openvla_tiny``, or
``$RT2_OPENVLA_FIXTURE``; a 2.3 M-parameter checkpoint written by upstream's code)
loaded natively with ``TransformersPolicy.from_pretrained`` (warm-up and
image-sensitivity check included), then ``infer`` (batch 1) and ``infer_batch``
(batch 4) timed on fresh random 224 x 224 images with cycling instructions.
Reports the backend's split (``preprocess``: image transform + tokenizer;
``model``: one vision pass, prefix forward, 7 cached decode steps with the action
constraint; ``decode``: ids to un-normalised actions), end-to-end median/p90 and
actions per second.

``--openvla-7b`` (GPU) builds, in memory with random weights, the native model at
openvla-7b's real size: DINOv2-L/14 with registers + SigLIP-so400m/14 at 224 px
(table in ``rt2_ros.policies.openvla.towers``), the fused 3-layer projector and a
Llama-2-7B decoder (vocab 32064), about 7.5 B parameters, in ``--dtype`` (bf16),
and times batch 1, 8 and 16. Compare with OpenVLA's 4.4-6 actions/s on an RTX
4090 (reference: upstream claims ~6 Hz, users measure ~4.4, openvla issue #66).

Examples::

    python benchmarks/bench_openvla.py                      # fixture, CPU, batch 1 and 4
    python benchmarks/bench_openvla.py --threads 1 --steps 50
    python benchmarks/bench_openvla.py --openvla-7b --device cuda --batches 1,8,16

Report numbers with their conditions (CPU/GPU, threads, load average): they
depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "benchmarks", ROOT / "test"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench_inference import _machine, bench_policy  # noqa: E402

#: openvla-7b's Llama-2-7B decoder (config.json text_config).
LLAMA2_7B = dict(
    model_type="llama",
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    vocab_size=32064,
    rms_norm_eps=1e-5,
    max_position_embeddings=2048,
    pad_token_id=32000,
)


def fixture_policy(threads: int):
    """The parity fixture, loaded natively (its toy towers described as tower specs)."""
    from openvla_fixture import fixture_dir, write_tower_specs

    from rt2_ros.policies.openvla.towers import TOWER_SPECS_ENV
    from rt2_ros.policies.transformers_policy import TransformersPolicy

    d = fixture_dir()
    if not (d / "checkpoint" / "config.json").is_file():
        raise SystemExit(f"OpenVLA fixture not found at {d} (set $RT2_OPENVLA_FIXTURE)")
    specs = write_tower_specs(Path(tempfile.mkdtemp()) / "towers.json")
    os.environ[TOWER_SPECS_ENV] = str(specs)
    return TransformersPolicy.from_pretrained(
        d / "checkpoint",
        action_format="openvla",
        prompt="openvla",
        unnorm_key="bridge_orig",
        num_threads=threads,
        max_batch_size=64,
    )


def openvla_7b_policy(device: str, dtype: str, text: dict | None = None, towers: tuple[str, ...] | None = None):
    """openvla-7b's architecture with random weights (no checkpoint needed), natively.

    ``text`` and ``towers`` override the decoder config and tower ids (for a smoke run
    at toy size on a CPU).
    """
    import torch

    from rt2_ros.codecs import OpenVLAActionTokenizer, select_unnorm_stats
    from rt2_ros.policies.openvla.config import OpenVLACheckpointConfig
    from rt2_ros.policies.openvla.modeling import OpenVLANativeModel, _default_dtype
    from rt2_ros.policies.openvla.processing import OpenVLAImageProcessor, OpenVLAProcessor
    from rt2_ros.policies.openvla.towers import resolve_tower
    from rt2_ros.policies.transformers_policy import DTYPES, TransformersPolicy
    from rt2_ros.testing.make_model import build_tokenizer, example_statistics

    towers = towers or ("vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224")
    text = dict(text or LLAMA2_7B)
    raw = {
        "model_type": "openvla",
        "arch_specifier": "no-align+fused-gelu-mlp",
        "use_fused_vision_backbone": True,
        "timm_model_ids": list(towers),
        "image_sizes": [224, 224],
        "image_resize_strategy": "resize-naive",
        "pad_to_multiple_of": 64,
        "n_action_bins": 256,
        "text_config": text,
    }
    cfg = OpenVLACheckpointConfig.from_dict(raw)
    specs = tuple(resolve_tower(t) for t in towers)
    torch.manual_seed(0)
    with _default_dtype(DTYPES[dtype]), torch.device(device):
        model = OpenVLANativeModel(cfg, specs).eval()
    tok = build_tokenizer(0)  # a stand-in tokenizer: the prompt ids differ from Llama-2's, the cost does not
    from tokenizers import processors

    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.bos_token_id)]
    )
    ip = OpenVLAImageProcessor(
        "resize-naive",
        resize_sizes=[(224, 224)] * 2,
        crop_sizes=[(224, 224)] * 2,
        resamples=[3, 3],
        means=[(0.485, 0.456, 0.406), (0.5, 0.5, 0.5)],
        stds=[(0.229, 0.224, 0.225), (0.5, 0.5, 0.5)],
    )
    stats = dict(example_statistics())
    return TransformersPolicy(
        model,
        OpenVLAProcessor(tok, ip),
        model_id="openvla-7b-architecture (random weights)",
        codec=OpenVLAActionTokenizer(cfg.unpadded_vocab_size, select_unnorm_stats(stats, None)[1]),
        prompt="openvla",
        openvla_family=True,
        max_batch_size=64,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--dtype", default=None, choices=["fp32", "bf16", "fp16"], help="default fp32 (7b: bf16)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--steps", type=int, default=30, help="timed calls per batch size")
    ap.add_argument("--batches", default=None, help="comma list of batch sizes (default 1,4; 7b: 1,8,16)")
    ap.add_argument("--openvla-7b", action="store_true", help="openvla-7b's size with random weights (GPU)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.openvla_7b:
        if not args.device.startswith("cuda"):
            raise SystemExit("--openvla-7b needs a GPU (--device cuda): about 15 GB in bf16")
        policy = openvla_7b_policy(args.device, args.dtype or "bf16")
        batches = [int(b) for b in (args.batches or "1,8,16").split(",")]
        name = "openvla-7b architecture, random weights"
    else:
        if args.device != "cpu" or (args.dtype or "fp32") != "fp32":
            raise SystemExit("the fixture case runs on CPU in fp32 (as its reference)")
        policy = fixture_policy(args.threads)
        batches = [int(b) for b in (args.batches or "1,4").split(",")]
        name = "openvla_tiny fixture (2.3 M parameters)"
    load_s = time.perf_counter() - t0
    results = {
        "model": name,
        "loader": policy.metadata.extra.get("loader"),
        "dtype": policy.metadata.extra.get("dtype"),
        "device": policy.metadata.extra.get("device"),
        "num_parameters": policy.metadata.extra.get("num_parameters"),
        "load_and_warmup_s": load_s,
        "machine": _machine(args.device),
        "batches": {},
    }
    for b in batches:
        bench_policy(policy, 3, seed=99, batch=b)  # untimed: allocator and cache warm-up per shape
        results["batches"][str(b)] = bench_policy(policy, args.steps, seed=b, batch=b)
    results["machine"]["load_avg_1min_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    print(f"{name}: {results['num_parameters']:,} parameters, {results['dtype']} on {results['device']}")
    print(f"load + warm-up {load_s:.1f} s; machine {json.dumps(results['machine'])}")
    print(
        f"{'batch':>5}  {'preproc ms':>10}  {'model ms':>9}  {'e2e med ms':>10}  {'e2e p90 ms':>10}  {'actions/s':>9}"
    )
    for b, r in results["batches"].items():
        print(
            f"{b:>5}  {r['preprocess']['median_ms']:>10.1f}  {r['model']['median_ms']:>9.1f}  "
            f"{r['end_to_end']['median_ms']:>10.1f}  {r['end_to_end']['p90_ms']:>10.1f}  {r['rate_hz']:>9.1f}"
            f"   valid {r['valid_actions']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

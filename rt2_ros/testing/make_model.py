"""Offline test models: ``rt2-ros make-test-model DIR [--size tiny|small] [--format paligemma|openvla]``.

Builds a **PaliGemma-architecture** model (SigLIP vision tower + Gemma decoder,
``PaliGemmaForConditionalGeneration``) from configs with **random weights**, and a
tokenizer **trained here** (``tokenizers`` Unigram model, the sentencepiece
algorithm) on synthetic robot instructions. The tokenizer has one vocabulary
entry per integer ``0..255`` spelled ``"▁{k}"`` (PaLI-X style number tokens, RT-2
reference "Token mapping"), so ``"1 128 91 ..."`` encodes to one token per field
and the generated ids decode back to the RT-2 action string. The directory is
written with ``save_pretrained`` (model + ``PaliGemmaProcessor``) and loads with
``AutoModelForImageTextToText`` / ``AutoProcessor`` offline: nothing downloads.

Sizes (224 x 224 input unless said):

* ``tiny``: ~0.3 M parameters, 49 image tokens; builds in about a second.
  Tests use it.
* ``mini``: ~3.4 M parameters, 96 x 96 input (patch 12: 64 image tokens), a 2-layer
  SigLIP tower and a 3-layer Gemma decoder with Gemma's 0.02 initialisation: the
  random-init base ``make train`` trains from.
* ``small``: ~60 M parameters, 196 image tokens (about RT-2-on-a-laptop scale
  for timing, not for quality).

``--format openvla`` writes instead a tiny random-weight checkpoint in the
``openvla/openvla-7b`` layout (:func:`build_openvla`): ``config.json`` with
``model_type: openvla``, upstream parameter names in ``model.safetensors``, toy
DINOv2-with-registers + SigLIP towers (described in the directory's
``openvla_towers.json``), a Llama decoder, ``norm_stats`` and
``dataset_statistics.json``. It loads through the native OpenVLA path
(:mod:`rt2_ros.policies.openvla`) in the node and in ``rt2-ros serve`` with
``policy_overrides(dir, "openvla")``.

Also here: :func:`policy_overrides` (config overrides that run a test model)
and :func:`build_llava_model` (a LLaVA-architecture model with a Llama decoder,
used by the benchmark at OpenVLA/Llama-2-7B size on a GPU).

torch/transformers are imported inside the functions, so importing this module
(e.g. for :func:`policy_overrides`) is cheap.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "SIZES",
    "ACTION_TOKEN_PATTERN",
    "TEST_UNNORM_KEY",
    "INFO_FILE",
    "make_test_model",
    "policy_overrides",
    "build_tokenizer",
    "build_paligemma",
    "build_llava_model",
    "build_openvla",
    "OPENVLA_TEST_DIMS",
    "OPENVLA_7B_LLAVA_DIMS",
    "example_statistics",
    "add_arguments",
    "run",
]

#: Spelling of the token of integer ``k`` in the test tokenizer.
ACTION_TOKEN_PATTERN = "▁{k}"
#: Dataset key of the test model's ``dataset_statistics.json``.
TEST_UNNORM_KEY = "rt2_ros_test"
#: File in the model directory describing the test model (size, vocab, parameters).
INFO_FILE = "rt2_ros_test_model.json"

#: Architecture per size: SigLIP vision tower and Gemma decoder dimensions.
SIZES: dict[str, dict[str, dict[str, int]]] = {
    "tiny": {
        "vision": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=32),
        "text": dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=16,
        ),
    },
    "mini": {
        "vision": dict(
            hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4, patch_size=12
        ),
        "text": dict(
            hidden_size=256,
            intermediate_size=768,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=64,
        ),
    },
    "small": {
        "vision": dict(
            hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=6, patch_size=16
        ),
        "text": dict(
            hidden_size=512,
            intermediate_size=3072,
            num_hidden_layers=9,
            num_attention_heads=8,
            num_key_value_heads=1,
            head_dim=64,
        ),
    },
}

#: LLaVA at OpenVLA's size: Llama-2-7B decoder (hidden 4096, 32 layers, 32 heads,
#: MLP 11008, vocab 32000 padded to 32064 as in openvla-7b's config) and a
#: SigLIP-so400m/14 tower at 224 px (27 layers, hidden 1152, MLP 4304, 16 heads;
#: 256 patch tokens, the number OpenVLA feeds its LLM). OpenVLA also fuses a
#: DINOv2-L/14 tower (~0.3 B parameters) that this stand-in lacks.
OPENVLA_7B_LLAVA_DIMS: dict[str, dict[str, int]] = {
    "vision": dict(
        hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16, patch_size=14
    ),
    "text": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32064,
    ),
}

#: The ``--format openvla`` test model: toy towers of the openvla-7b families (timm-style
#: specs, see rt2_ros.policies.openvla.towers) and a Llama decoder; ~0.2 M parameters.
OPENVLA_TEST_DIMS: dict[str, Any] = {
    "towers": {
        "vit_rt2_ros_test_patch14_reg4_dinov2": dict(
            family="dinov2_reg", embed_dim=32, depth=2, num_heads=2, mlp_ratio=4.0, reg_tokens=4
        ),
        "vit_rt2_ros_test_patch14_siglip_224": dict(
            family="siglip", embed_dim=48, depth=2, num_heads=3, mlp_ratio=3.7362, global_pool="map"
        ),
    },
    "text": dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4
    ),
}

_IMAGE_SIZE = 224
#: Per-size departures from the defaults: ``mini`` is the base ``make train`` trains from,
#: so it gets a trainable initialisation (Gemma's 0.02) and a 96 px input (the processor
#: resizes the 224 px camera image; 64 image tokens), which keeps training and inference
#: fast on a CPU.
_SIZE_OPTIONS: dict[str, dict[str, float]] = {"mini": {"image_size": 96, "initializer_range": 0.02}}
#: Text initialiser scale: larger than the usual 0.02 so that random weights give
#: answers that vary with the image and instruction (tests see many different
#: action tokens, not one repeated token).
_TEXT_INIT_RANGE = 0.5

_OBJECTS = [
    "red block",
    "blue cube",
    "green bowl",
    "sponge",
    "coke can",
    "apple",
    "top drawer",
    "white cup",
    "banana",
    "water bottle",
    "rxbar chocolate",
    "yellow corn",
    "pink plate",
    "towel",
    "orange",
    "pepsi can",
    "rice chips",
    "brown chip bag",
    "blue plastic bottle",
    "cloth",
    "pot",
    "spoon",
    "carrot",
]
_VERBS = [
    "pick up the",
    "move the",
    "place the",
    "push the",
    "open the",
    "close the",
    "put the",
    "knock over the",
    "lift the",
    "move near the",
    "slide the",
    "grasp the",
    "put down the",
]
_PREPS = ["near", "on", "into", "next to", "left of", "right of", "in front of", "behind"]
_WORDS = (
    "the a an robot arm gripper table left right top bottom front back close open hold release move "
    "rotate turn slowly quickly above below between towards away from with without first then finally "
    "object scene camera image what action should take to is it this and or not plan step reach grasp "
    "lift lower put drop place stack"
).split()


def _corpus(seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(3000):
        instr = f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
        if rng.random() < 0.5:
            instr += f" {rng.choice(_PREPS)} {rng.choice(_OBJECTS)}"
        acts = " ".join(str(rng.randrange(256)) for _ in range(8))
        lines.append(f"Q: what action should the robot take to {instr}? A: {acts}")
        lines.append(f"In: What action should the robot take to {instr}?\nOut:")
        lines.append(f"Plan: {instr}. Action: {acts}")
        lines.append(" ".join(rng.choice(_WORDS) for _ in range(12)))
    return lines


def build_tokenizer(seed: int = 0) -> Any:
    """Train the test tokenizer offline and wrap it for transformers.

    A ``tokenizers`` Unigram model (sentencepiece's algorithm, ``▁`` word
    boundaries) trained on synthetic RT-2/OpenVLA prompts and answers, then given
    the pieces ``▁0 .. ▁255`` (one per action integer, top score so they always
    win segmentation) and the corpus words as whole pieces.

    Returns:
        ``transformers.PreTrainedTokenizerFast`` with ``<pad>`` = 0, ``<eos>`` = 1,
        ``<bos>`` = 2, ``<unk>`` = 3, left padding.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    lines = _corpus(seed)
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;?!'\"-_()/+*=&%$#@")
    trainer = trainers.UnigramTrainer(
        vocab_size=1000,
        special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"],
        unk_token="<unk>",
        initial_alphabet=alphabet,
        max_piece_length=12,
    )
    tok.train_from_iterator(lines, trainer)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]  # [[piece, log-prob], ...]
    index = {piece: i for i, (piece, _) in enumerate(vocab)}

    def put(piece: str, score: float) -> None:
        if piece in index:
            vocab[index[piece]][1] = max(vocab[index[piece]][1], score)
        else:
            index[piece] = len(vocab)
            vocab.append([piece, score])

    for k in range(256):  # action integers: one piece each, always preferred
        put(ACTION_TOKEN_PATTERN.format(k=k), 0.0)
    words = sorted({w for line in lines for w in line.split()} - {str(k) for k in range(256)})
    for w in words:
        put("▁" + w, -2.0)
    # Same seed, same ids: the trainer gives alphabet characters absent from the corpus
    # scores just below the lowest one in hash order, and orders ties arbitrarily. Give
    # those one fixed score and sort the pieces (specials stay first).
    n_special = 4
    seen = set("".join(lines))
    unseen = {c for c in alphabet if c not in seen}
    floor = round(min(e[1] for e in vocab[n_special:] if e[0] not in unseen)) - 1.0
    for e in vocab[n_special:]:
        e[1] = floor if e[0] in unseen else round(e[1], 4)
    vocab[n_special:] = sorted(vocab[n_special:], key=lambda e: (-e[1], e[0]))
    tok = Tokenizer.from_str(json.dumps(spec))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
        model_max_length=4096,
    )


def _siglip_image_processor(image_seq_length: int | None = None, image_size: int = _IMAGE_SIZE) -> Any:
    try:  # transformers >= 5 without torchvision: the PIL backend (no fallback warning)
        from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil as IP
    except ImportError:  # pragma: no cover - transformers 4.x
        from transformers import SiglipImageProcessor as IP
    try:
        import torchvision  # noqa: F401
        from transformers import SiglipImageProcessor as IP  # noqa: F811 - torch backend when available
    except ImportError:
        pass
    ip = IP(size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    if image_seq_length is not None:
        ip.image_seq_length = image_seq_length
    return ip


def build_paligemma(size: str = "tiny", seed: int = 0) -> tuple[Any, Any]:
    """A random-weight PaliGemma-architecture model and its processor (in memory).

    Returns:
        ``(model, processor)``: ``PaliGemmaForConditionalGeneration`` (fp32, eval)
        and ``PaliGemmaProcessor`` with the trained test tokenizer.

    Raises:
        ValueError: unknown size.
    """
    if size not in SIZES:
        raise ValueError(f"unknown test model size {size!r}; choose from {sorted(SIZES)}")
    import torch
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipVisionConfig,
    )

    dims = SIZES[size]
    opts = _SIZE_OPTIONS.get(size, {})
    image_size = int(opts.get("image_size", _IMAGE_SIZE))
    n_img = (image_size // dims["vision"]["patch_size"]) ** 2
    tokenizer = build_tokenizer(seed)
    processor = PaliGemmaProcessor(image_processor=_siglip_image_processor(n_img, image_size), tokenizer=tokenizer)
    vocab = len(processor.tokenizer)  # after the processor's <image>, <locNNNN>, <segNNN> tokens
    text_hidden = dims["text"]["hidden_size"]
    vision = SiglipVisionConfig(image_size=image_size, projection_dim=text_hidden, **dims["vision"])
    text = GemmaConfig(
        vocab_size=vocab,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        initializer_range=float(opts.get("initializer_range", _TEXT_INIT_RANGE)),
        max_position_embeddings=1024,
        **dims["text"],
    )
    config = PaliGemmaConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_index=processor.image_token_id,
        projection_dim=text_hidden,
        vocab_size=vocab,
    )
    config.text_config.num_image_tokens = n_img
    config.vision_config.projection_dim = text_hidden
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model, processor


def build_llava_model(
    dims: dict[str, dict[str, int]] | None = None,
    *,
    seed: int = 0,
    dtype: Any = None,
    device: Any = "cpu",
) -> tuple[Any, Any]:
    """A random-weight LLaVA-architecture model (SigLIP tower + Llama decoder) and processor.

    Default ``dims`` are :data:`OPENVLA_7B_LLAVA_DIMS` (7.2 B parameters; openvla-7b has 7.5 B: build it on
    a GPU). Weights are created directly on ``device`` in ``dtype``. The vocabulary
    has ``dims["text"]["vocab_size"]`` rows (default 32064 like openvla-7b); the
    test tokenizer's ids are a subset, so ``action.format: openvla`` with
    ``openvla_vocab_size = 32000`` uses the same action ids as OpenVLA.

    Returns:
        ``(LlavaForConditionalGeneration, LlavaProcessor)``.
    """
    import torch
    from transformers import LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor, SiglipVisionConfig

    dims = dims or OPENVLA_7B_LLAVA_DIMS
    dtype = dtype or torch.float32
    tokenizer = build_tokenizer(seed)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tokenizer.image_token = "<image>"
    processor = LlavaProcessor(
        image_processor=_siglip_image_processor(),
        tokenizer=tokenizer,
        patch_size=dims["vision"]["patch_size"],
        vision_feature_select_strategy="full",
        image_token="<image>",
        num_additional_image_tokens=0,
    )
    text_dims = dict(dims["text"])
    vocab = max(int(text_dims.pop("vocab_size", len(tokenizer))), len(tokenizer))
    vision = SiglipVisionConfig(image_size=_IMAGE_SIZE, **dims["vision"])
    text = LlamaConfig(
        vocab_size=vocab,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        max_position_embeddings=2048,
        **text_dims,
    )
    config = LlavaConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_index=processor.image_token_id,
        vision_feature_select_strategy="full",
        vision_feature_layer=-2,  # OpenVLA takes the second-to-last layer's patches
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    prev = torch.get_default_dtype()
    try:
        torch.set_default_dtype(dtype)
        with torch.device(device):
            model = LlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(prev)
    model = model.to(device=device, dtype=dtype).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, processor


def build_openvla(seed: int = 0) -> tuple[Any, Any]:
    """A random-weight OpenVLA-layout model (native modules) and its processor, in memory.

    The vocabulary is the test tokenizer's ``N`` pieces (plus a BOS post-processor, as
    Llama's) padded by ``pad_to_multiple_of = 64`` rows, so the action ids are the last
    256 of ``N`` as in openvla-7b (``text_config.vocab_size - 64``).

    Returns:
        ``(OpenVLANativeModel, OpenVLAProcessor)``.
    """
    import torch
    from tokenizers import processors

    from rt2_ros.policies.openvla.config import OpenVLACheckpointConfig
    from rt2_ros.policies.openvla.modeling import OpenVLANativeModel
    from rt2_ros.policies.openvla.processing import OpenVLAImageProcessor, OpenVLAProcessor
    from rt2_ros.policies.openvla.towers import TowerSpec

    tokenizer = build_tokenizer(seed)
    bos = tokenizer.bos_token_id
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", bos)]
    )
    n = len(tokenizer)
    tower_ids = list(OPENVLA_TEST_DIMS["towers"])
    specs = tuple(TowerSpec.from_dict(OPENVLA_TEST_DIMS["towers"][t]) for t in tower_ids)
    raw = {
        "model_type": "openvla",
        "architectures": ["OpenVLAForActionPrediction"],
        "arch_specifier": "no-align+fused-gelu-mlp",
        "vision_backbone_id": "dinosiglip-vit-so-224px",
        "llm_backbone_id": "llama2-7b-pure",
        "use_fused_vision_backbone": True,
        "timm_model_ids": tower_ids,
        "timm_override_act_layers": [None, None],
        "image_sizes": [_IMAGE_SIZE, _IMAGE_SIZE],
        "image_resize_strategy": "resize-naive",
        "n_action_bins": 256,
        "pad_to_multiple_of": 64,
        "pad_token_id": tokenizer.pad_token_id,
        "text_config": {
            "model_type": "llama",
            "vocab_size": n + 64,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": bos,
            "eos_token_id": tokenizer.eos_token_id,
            "max_position_embeddings": 1024,
            "initializer_range": _TEXT_INIT_RANGE,
            **OPENVLA_TEST_DIMS["text"],
        },
        "norm_stats": example_statistics(),
    }
    cfg = OpenVLACheckpointConfig.from_dict(raw)
    torch.manual_seed(seed)
    model = OpenVLANativeModel(cfg, specs).eval()
    image_processor = OpenVLAImageProcessor(
        "resize-naive",
        resize_sizes=[(_IMAGE_SIZE, _IMAGE_SIZE)] * 2,
        crop_sizes=[(_IMAGE_SIZE, _IMAGE_SIZE)] * 2,
        resamples=[3, 3],  # bicubic
        means=[(0.485, 0.456, 0.406), (0.5, 0.5, 0.5)],
        stds=[(0.229, 0.224, 0.225), (0.5, 0.5, 0.5)],
    )
    return model, OpenVLAProcessor(tokenizer, image_processor)


def _make_openvla_test_model(out: Path, seed: int) -> Path:
    from rt2_ros.policies.openvla.modeling import save_openvla_checkpoint
    from rt2_ros.policies.openvla.towers import TOWER_SPECS_FILE

    model, processor = build_openvla(seed)
    save_openvla_checkpoint(model, processor, out, norm_stats=example_statistics())
    (out / TOWER_SPECS_FILE).write_text(json.dumps(OPENVLA_TEST_DIMS["towers"], indent=2))
    info = {
        "architecture": "OpenVLA (native modules, openvla-7b layout)",
        "format": "openvla",
        "size": "tiny",
        "seed": seed,
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "vocab_size": model.config.unpadded_vocab_size,
        "image_size": _IMAGE_SIZE,
        "unnorm_key": TEST_UNNORM_KEY,
        "weights": "random (not trained): actions are valid but meaningless",
    }
    (out / INFO_FILE).write_text(json.dumps(info, indent=2))
    return out


def example_statistics() -> dict[str, Any]:
    """OpenVLA-style statistics matching ``config/rt2.yaml``'s default RT-2 bounds."""
    return {
        TEST_UNNORM_KEY: {
            "action": {
                "q01": [-0.05, -0.05, -0.05, -0.25, -0.25, -0.25, 0.0],
                "q99": [0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0],
                "mask": [True] * 6 + [False],
            }
        }
    }


def make_test_model(out_dir: str | Path, size: str = "tiny", seed: int = 0, format: str = "paligemma") -> Path:
    """Build and save a test model directory (offline, random weights).

    Writes ``config.json``, ``model.safetensors``, ``generation_config.json``,
    processor and tokenizer files, ``dataset_statistics.json`` (key
    :data:`TEST_UNNORM_KEY`, for ``action.format: openvla``) and :data:`INFO_FILE`.

    Args:
        out_dir: directory to create (may exist; files are overwritten).
        size: ``"tiny"`` or ``"small"`` (see :data:`SIZES`; ``format="openvla"`` is tiny only).
        seed: weights and tokenizer-corpus seed (same seed, same model).
        format: ``"paligemma"`` (default) or ``"openvla"`` (:func:`build_openvla`, the
            ``openvla-7b`` layout; run it with ``policy_overrides(dir, "openvla")``).

    Returns:
        ``Path(out_dir)``.

    Raises:
        ValueError: unknown size or format.
    """
    if format not in ("paligemma", "openvla"):
        raise ValueError(f"unknown test model format {format!r}; choose paligemma or openvla")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if format == "openvla":
        if size != "tiny":
            raise ValueError("--format openvla is built in size tiny only")
        return _make_openvla_test_model(out, seed)
    model, processor = build_paligemma(size, seed)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "dataset_statistics.json").write_text(json.dumps(example_statistics(), indent=2))
    info = {
        "architecture": "PaliGemmaForConditionalGeneration",
        "size": size,
        "seed": seed,
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "vocab_size": len(processor.tokenizer),
        "image_size": int(model.config.vision_config.image_size),
        "image_tokens": int(processor.image_seq_length),
        "action_token_pattern": ACTION_TOKEN_PATTERN,
        "unnorm_key": TEST_UNNORM_KEY,
        "weights": "random (not trained): actions are valid but meaningless",
    }
    (out / INFO_FILE).write_text(json.dumps(info, indent=2))
    return out


def policy_overrides(model_dir: str | Path, action_format: str = "rt2", prompt: str | None = None) -> dict[str, Any]:
    """Dotted config overrides that run a test model with the local backend.

    Use with ``rt2_ros.config.load_config(overrides=...)`` or as node parameters.
    Includes ``policy.num_threads: 1`` (process-wide ``torch.set_num_threads``);
    drop it to keep torch's default.

    Args:
        model_dir: a directory made by :func:`make_test_model`.
        action_format: ``"rt2"`` (number tokens) or ``"openvla"`` (the last 256
            ids of the test vocabulary are the action tokens).
        prompt: ``"rt2"``, ``"openvla"`` or ``"cot"``; default ``rt2`` for the RT-2
            format and ``openvla`` for the OpenVLA format.

    Raises:
        ValueError: bad format/prompt, or ``model_dir`` is not a test model.
    """
    if action_format not in ("rt2", "openvla"):
        raise ValueError(f"action_format must be 'rt2' or 'openvla', got {action_format!r}")
    prompt = prompt or ("rt2" if action_format == "rt2" else "openvla")
    info_path = Path(model_dir) / INFO_FILE
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{model_dir} is not an rt2_ros test model ({INFO_FILE}: {e})") from None
    overrides: dict[str, Any] = {
        "policy.backend": "local",
        "policy.model_path": str(Path(model_dir).resolve()),
        "policy.prompt": prompt,
        "action.format": action_format,
        # One torch thread: the tiny model gains nothing from more, and on a shared
        # 2-core machine (sim + node + policy) extra threads only contend.
        "policy.num_threads": 1,
    }
    if action_format == "openvla":
        overrides["action.openvla_vocab_size"] = int(info["vocab_size"])
        overrides["action.unnorm_key"] = TEST_UNNORM_KEY
    return overrides


# -- CLI ----------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rt2-ros make-test-model``."""
    p.add_argument("out_dir", help="directory to write the model to")
    p.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="tiny",
        help="tiny (~0.3 M params), mini (~3.4 M, make train's random-init base) or small (~60 M)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed for weights and tokenizer corpus")
    p.add_argument(
        "--format",
        choices=["paligemma", "openvla"],
        default="paligemma",
        help="paligemma (RT-2 number tokens) or openvla (openvla-7b layout, native OpenVLA loader)",
    )


def run(args: argparse.Namespace) -> int:
    """``rt2-ros make-test-model``: build, save, print a JSON summary."""
    try:
        out = make_test_model(args.out_dir, size=args.size, seed=args.seed, format=args.format)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    info = json.loads((out / INFO_FILE).read_text())
    print(json.dumps({"model_dir": str(out.resolve()), **info}, indent=2))
    return 0

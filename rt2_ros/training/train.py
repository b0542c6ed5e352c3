"""``rt2-ros train``: fine-tune a vision-language model into an RT-2 policy on Hugging Face's Trainer.

RT-2's recipe (Brohan et al. 2023, arXiv:2307.15818, sections 3.2-3.3): the model's text
answer *is* the action. Every training sample is the question the node asks and the
answer it will decode:

* prompt: :func:`rt2_ros.policies.prompts.build_prompt` (``policy.prompt``: ``rt2`` /
  ``openvla``) behind the processor's image token, passed through the processor exactly
  as :class:`~rt2_ros.policies.transformers_policy.TransformersPolicy` does at run time
  (same text, same ids; PaliGemma's prefix is bidirectional, ``token_type_ids`` 0);
* answer: the action through the run-time codec (``action`` section): RT-2 format = the 8
  integers ``terminate dx dy dz drx dry drz gripper`` as the token ids the node's
  constrained decoder allows (number tokens ``▁k`` found by
  :func:`~rt2_ros.policies.constrained.find_rt2_action_token_ids`; where the vocabulary has
  none, 256 tokens ``<act_k>`` are added and the embeddings resized), then EOS; OpenVLA
  format = 7 tail-of-vocabulary ids of the q01/q99-normalised action
  (``OpenVLAActionTokenizer.encode_normalized``; openvla ``prismatic/vla/action_tokenizer.py``),
  after OpenVLA's empty token for OpenVLA's own model class;
* loss on the answer tokens only (labels -100 elsewhere).

Co-fine-tuning (RT-2 section 3.2): ``--cotrain-dataset`` (image, question, answer; see
:mod:`rt2_ros.training.vqa`) fills ``--cotrain-ratio`` of every batch (RT-2-PaLI-X used
about half robot data: 0.5).

Distribution is the Trainer's (accelerate): ``torchrun --nproc_per_node N -m rt2_ros.cli
train ...`` or ``accelerate launch --multi_gpu -m rt2_ros.cli train ...`` give DDP (FSDP
through accelerate's config); nothing here is home-made. Output directory::

    OUT/                 model (LoRA merged), processor + tokenizer (with any added action tokens),
                         dataset_statistics.json, rt2_ros_policy.yaml (action + policy.prompt used),
                         README.md (model card: data, steps, metrics), training_metrics.json
    OUT/checkpoints/     Trainer checkpoints (--resume continues from the newest)
    OUT/runs/            TensorBoard logs

which the local backend and ``rt2-ros serve`` load with ``policy.model_path: OUT`` (for the
default ``action`` section; other settings are in ``rt2_ros_policy.yaml``, a ROS parameters
file the node takes with ``--params-file``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import io
import json
import math
import os
import random
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rt2_ros.config import MODEL_SETTINGS_FILE

__all__ = [
    "TrainOptions",
    "ActionTargets",
    "RobotSamples",
    "VQASamples",
    "MixedSamples",
    "Collator",
    "prompt_inputs",
    "train",
    "add_arguments",
    "run",
    "POLICY_FILE",
]

#: The ``action`` section and ``policy.prompt`` used for training (ROS parameters-file
#: form); the node and ``rt2-ros serve`` apply it (:func:`rt2_ros.config.with_model_settings`).
POLICY_FILE = MODEL_SETTINGS_FILE
#: Spelling of added RT-2 action tokens when the base vocabulary has no number tokens.
ADDED_TOKEN_PATTERN = "<act_{k}>"


@dataclasses.dataclass
class TrainOptions:
    """Options of :func:`train` (the CLI flags of the same names)."""

    dataset: str
    base: str
    out: str
    config: str | None = None
    camera: str | None = None
    cotrain_dataset: str | None = None
    cotrain_ratio: float = 0.5
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    bf16: bool = False
    grad_accum: int = 1
    augment: bool = False
    eval_episodes: str = "0.1"
    resume: bool = False
    seed: int = 0
    max_steps: int = -1
    epochs: float = 3.0
    batch_size: int = 8
    eval_batch_size: int | None = None
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    save_steps: int = 500
    save_total_limit: int = 3
    eval_steps: int | None = None
    logging_steps: int = 10
    num_workers: int = 0
    gradient_checkpointing: bool = False
    unnorm_key: str | None = None
    report_to: str = "tensorboard"
    progress: bool = True
    cpu: bool = False


# -- targets ----------------------------------------------------------------------------------


class ActionTargets:
    """Action -> answer token ids, with the codec of the run time.

    Args:
        action_cfg: the ``action`` section (:class:`~rt2_ros.config.ActionConfig`).
        tokenizer: the base's tokenizer (RT-2: number tokens are looked up, else added).
        stats: dataset ``meta/stats.json`` (OpenVLA: q01/q99 of ``action``).
        openvla_family: OpenVLA's own model class (prompt ends with its empty token).

    Attributes:
        allowed: per answer position, the token ids the node's constrained decoder allows.
        added_tokens: tokens added to the tokenizer (the model's embeddings must be resized).
        token_pattern: RT-2 token spelling (for the saved ``action.token_pattern``).
    """

    def __init__(self, action_cfg: Any, tokenizer: Any, stats: dict | None = None, openvla_family: bool = False):
        from rt2_ros.codecs import (
            ActionBounds,
            OpenVLAActionTokenizer,
            RT2ActionTokenizer,
            UnnormStats,
        )
        from rt2_ros.policies.constrained import ActionTokensMissingError, find_rt2_action_token_ids

        self.format = action_cfg.format
        self.eos_id = tokenizer.eos_token_id
        self.added_tokens: list[str] = []
        self.openvla_family = openvla_family
        self.empty_ids: list[int] = []
        if self.format == "rt2":
            self.codec = RT2ActionTokenizer(
                ActionBounds(np.asarray(action_cfg.low), np.asarray(action_cfg.high)),
                bins=action_cfg.bins,
                terminate_token=action_cfg.terminate_token,
                continue_token=action_cfg.continue_token,
                decode_to=action_cfg.decode_to,
            )
            try:
                pattern, ids = find_rt2_action_token_ids(tokenizer, action_cfg.bins, action_cfg.token_pattern or None)
            except ActionTokensMissingError:
                self.added_tokens = [ADDED_TOKEN_PATTERN.format(k=k) for k in range(action_cfg.bins)]
                tokenizer.add_tokens(self.added_tokens, special_tokens=False)
                pattern, ids = find_rt2_action_token_ids(tokenizer, action_cfg.bins, ADDED_TOKEN_PATTERN)
            self.token_pattern = pattern
            self.bin_ids = ids
            first = [ids[action_cfg.terminate_token], ids[action_cfg.continue_token]]
            self.allowed = [first] + [list(ids)] * 7
            self.unnorm_stats = None
        else:
            if not stats or "action" not in stats:
                raise ValueError("action.format 'openvla' needs the dataset's action statistics (meta/stats.json)")
            a = stats["action"]
            mask = [True] * 6 + [False]  # OpenVLA leaves the gripper (0..1) un-normalised
            self.unnorm_stats = {"q01": a["q01"], "q99": a["q99"], "mask": mask}
            st = UnnormStats.from_dict(self.unnorm_stats)
            self.codec = OpenVLAActionTokenizer(int(action_cfg.openvla_vocab_size), st)
            ids = list(range(int(action_cfg.openvla_vocab_size) - 256, int(action_cfg.openvla_vocab_size)))
            self.allowed = [ids] * 7
            self.token_pattern = ""
            if openvla_family:
                empty = tokenizer.convert_tokens_to_ids("▁")
                self.empty_ids = [int(empty)] if isinstance(empty, int) and empty != tokenizer.unk_token_id else []

    def answer_ids(self, action: np.ndarray, terminate: bool) -> list[int]:
        """Token ids of the answer for one step (action tokens, then EOS)."""
        if self.format == "rt2":
            bins = self.codec.values_to_bins(action)
            first = self.codec.terminate_token if terminate else self.codec.continue_token
            ids = [self.bin_ids[first]] + [self.bin_ids[int(b)] for b in bins]
        else:
            st = self.codec.stats
            a = np.asarray(action, dtype=np.float64)
            span = np.where(st.q99 - st.q01 > 1e-12, st.q99 - st.q01, 1.0)
            norm = np.where(st.mask, 2.0 * (a - st.q01) / span - 1.0, a)
            ids = [int(i) for i in self.codec.encode_normalized(np.clip(norm, -1.0, 1.0))]
        return self.empty_ids + ids + ([self.eos_id] if self.eos_id is not None else [])

    @property
    def n_action_tokens(self) -> int:
        """Number of token ids that encode actions."""
        return len(self.allowed)


def prompt_inputs(processor: Any, images: Sequence[Any], prompts: Sequence[str], openvla_family: bool = False) -> dict:
    """Processor inputs for prompts (already built with the template) exactly as the local backend makes them.

    The text is the processor's image token (none for OpenVLA's own class) followed by
    the prompt; ``TransformersPolicy._prepare`` does the same.
    """
    prefix = "" if openvla_family else (getattr(processor, "image_token", None) or "")
    kw: dict[str, Any] = {"return_tensors": "pt"}
    if len(prompts) > 1:
        kw["padding"] = "longest"
    enc = processor(text=[prefix + p for p in prompts], images=list(images), **kw)
    return {k: v for k, v in dict(enc).items() if k != "labels"}


# -- data ------------------------------------------------------------------------------------------


def _decode_png(cell: Any) -> Any:
    from PIL import Image

    data = cell["bytes"] if isinstance(cell, dict) else cell
    return Image.open(io.BytesIO(data)).convert("RGB")


class _Augment:
    """Random resized crop (90-100 % of the area, aspect 0.95-1.05, resized back to the
    frame size) and colour jitter (brightness, contrast, saturation +-20 %, hue +-0.05),
    with Pillow. The crop is mild because the node feeds full frames (no centre crop)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def __call__(self, img: Any) -> Any:
        from PIL import ImageEnhance

        r = self.rng
        w, h = img.size
        area = r.uniform(0.9, 1.0) * w * h
        ratio = math.exp(r.uniform(math.log(0.95), math.log(1.05)))
        cw = min(w, int(round(math.sqrt(area * ratio))))
        ch = min(h, int(round(math.sqrt(area / ratio))))
        x0, y0 = r.randint(0, w - cw), r.randint(0, h - ch)
        img = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h))
        for enh in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            img = enh(img).enhance(r.uniform(0.8, 1.2))
        hue = r.uniform(-0.05, 0.05)
        if abs(hue) > 1e-3:
            hsv = np.asarray(img.convert("HSV")).copy()
            hsv[:, :, 0] = (hsv[:, :, 0].astype(np.int16) + int(round(hue * 255))) % 256
            from PIL import Image

            img = Image.fromarray(hsv, "HSV").convert("RGB")
        return img


class RobotSamples:
    """Steps of a dataset (from ``rt2-ros dataset build``) as training samples.

    Args:
        root: dataset directory; episodes: the episode indices to use (None: all).
        camera: image feature key (default: the first).
        prompt: ``policy.prompt`` template; targets: :class:`ActionTargets`.
        augment: image augmentation (training only); seed: its seed.
    """

    def __init__(
        self,
        root: str | Path,
        targets: ActionTargets,
        prompt: str,
        episodes: Sequence[int] | None = None,
        camera: str | None = None,
        augment: bool = False,
        seed: int = 0,
    ):
        import pyarrow as pa
        import pyarrow.parquet as pq

        from rt2_ros.policies.prompts import build_prompt
        from rt2_ros.training.dataset import load_dataset_meta

        self.meta = load_dataset_meta(root)
        if not self.meta.cameras:
            raise ValueError(f"{root} has no image feature (rt2-ros train reads image features, not video)")
        self.camera = camera or self.meta.cameras[0]
        if self.camera not in self.meta.cameras:
            raise ValueError(f"camera {self.camera!r} not in {self.meta.cameras}")
        cols = [self.camera, "action", "terminate", "task_index", "episode_index"]
        tables = [pq.read_table(str(f), columns=cols, memory_map=True) for f in self.meta.data_files()]
        table = pa.concat_tables(tables)
        ep = table.column("episode_index").to_numpy()
        keep = np.arange(len(ep)) if episodes is None else np.flatnonzero(np.isin(ep, list(episodes)))
        self.images = table.column(self.camera)
        self.rows = keep
        self.actions = np.asarray(table.column("action").to_pylist(), dtype=np.float64)
        self.terminate = np.asarray(table.column("terminate").to_pylist(), dtype=bool).reshape(-1)
        self.task = table.column("task_index").to_numpy()
        self.prompts = [build_prompt(prompt, t) for t in self.meta.tasks]
        self.targets = targets
        self.augment = _Augment(random.Random(seed)) if augment else None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = int(self.rows[i])
        img = _decode_png(self.images[r].as_py())
        if self.augment is not None:
            img = self.augment(img)
        return {
            "image": img,
            "prompt": self.prompts[int(self.task[r])],
            "answer_ids": self.targets.answer_ids(self.actions[r], bool(self.terminate[r])),
            "kind": "robot",
        }


class VQASamples:
    """(image, question, answer) pairs of a VQA directory (:mod:`rt2_ros.training.vqa`) as samples.

    The question is asked as it is (no action template) and the answer is free text, so
    the model keeps answering in language (RT-2 co-fine-tuning)."""

    def __init__(self, root: str | Path, tokenizer: Any, augment: bool = False, seed: int = 0):
        from rt2_ros.training.vqa import load_vqa

        self.table = load_vqa(root)
        self.tokenizer = tokenizer
        self.augment = _Augment(random.Random(seed + 1)) if augment else None

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.table.slice(i, 1).to_pylist()[0]
        img = _decode_png(row["image"])
        if self.augment is not None:
            img = self.augment(img)
        ids = list(self.tokenizer.encode(" " + row["answer"].strip(), add_special_tokens=False))
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return {"image": img, "prompt": row["question"], "answer_ids": ids, "kind": "vqa"}


class MixedSamples:
    """Robot and VQA samples mixed per batch: in every consecutive block of ``batch_size``
    indices the first ``round(ratio * batch_size)`` are VQA samples (each block drawn at
    random, seeded), so with a sequential sampler every batch has the ratio exactly (DDP
    shards whole batches, so every process's batches do too)."""

    def __init__(self, robot: RobotSamples, vqa: VQASamples, ratio: float, batch_size: int, seed: int = 0):
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"--cotrain-ratio must be in (0, 1), got {ratio}")
        self.robot, self.vqa, self.batch_size = robot, vqa, int(batch_size)
        self.n_vqa = min(self.batch_size - 1, max(1, int(round(ratio * self.batch_size))))
        n_robot_per = self.batch_size - self.n_vqa
        self.blocks = max(1, math.ceil(len(robot) / n_robot_per))
        self.seed = seed

    def __len__(self) -> int:
        return self.blocks * self.batch_size

    def __getitem__(self, i: int) -> dict[str, Any]:
        block, pos = divmod(int(i), self.batch_size)
        rng = np.random.default_rng([self.seed, block, pos])
        if pos < self.n_vqa:
            return self.vqa[int(rng.integers(len(self.vqa)))]
        return self.robot[int(rng.integers(len(self.robot)))]


class Collator:
    """Samples -> a padded batch: prompt (processor, as at run time) + answer ids; labels
    on the answer only; PaliGemma ``token_type_ids`` 0 for the prompt, 1 for the answer."""

    def __init__(self, processor: Any, openvla_family: bool = False):
        self.processor = processor
        self.openvla_family = openvla_family
        tok = processor.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows, pix, extra = [], [], {}
        for s in samples:
            enc = prompt_inputs(self.processor, [s["image"]], [s["prompt"]], self.openvla_family)
            ids = enc["input_ids"][0].tolist()
            mask = enc["attention_mask"][0].tolist() if "attention_mask" in enc else [1] * len(ids)
            ids, mask = [i for i, m in zip(ids, mask) if m] or ids, [1] * sum(mask)  # drop any padding
            ans = list(s["answer_ids"])
            rows.append((ids, ans, "token_type_ids" in enc))
            pix.append(enc["pixel_values"][0])
            for k, v in enc.items():
                if k not in ("input_ids", "attention_mask", "pixel_values", "token_type_ids") and isinstance(
                    v, torch.Tensor
                ):
                    extra.setdefault(k, []).append(v[0])
        n = max(len(p) + len(a) for p, a, _ in rows)
        input_ids = torch.full((len(rows), n), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), n), dtype=torch.long)
        labels = torch.full((len(rows), n), -100, dtype=torch.long)
        types = torch.zeros((len(rows), n), dtype=torch.long)
        for r, (p, a, _) in enumerate(rows):
            seq = p + a
            input_ids[r, : len(seq)] = torch.tensor(seq)
            attention[r, : len(seq)] = 1
            labels[r, len(p) : len(seq)] = torch.tensor(a)
            types[r, len(p) : len(seq)] = 1
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "pixel_values": torch.stack(pix),
            "labels": labels,
        }
        if rows and rows[0][2]:
            batch["token_type_ids"] = types
        for k, v in extra.items():
            batch[k] = torch.stack(v)
        return batch


# -- metrics ------------------------------------------------------------------------------------------


def _metrics_fns(targets: ActionTargets):
    """``preprocess_logits_for_metrics`` (constrained argmax per position, like the node's
    decoder) and ``compute_metrics`` (action-token accuracy, mean bin error)."""
    import torch

    allowed_all = sorted({i for a in targets.allowed for i in a})
    if targets.format == "rt2":
        value = {tid: k for k, tid in enumerate(targets.bin_ids)}
    else:
        value = {tid: tid for tid in allowed_all}

    def preprocess(logits: Any, labels: Any) -> Any:
        if isinstance(logits, tuple):
            logits = logits[0]
        idx = torch.tensor(allowed_all, device=logits.device)
        sub = logits.index_select(-1, idx)
        return idx[sub.argmax(-1)]  # predicted action-token id at every position

    def compute(pred: Any) -> dict[str, float]:
        preds, labels = pred.predictions, pred.label_ids
        if isinstance(preds, tuple):
            preds = preds[0]
        preds = np.asarray(preds)[:, :-1]
        labels = np.asarray(labels)[:, 1:]
        sel = np.isin(labels, allowed_all)
        if not sel.any():
            return {"action_token_accuracy": float("nan")}
        p, t = preds[sel], labels[sel]
        acc = float(np.mean(p == t))
        err = np.abs(np.vectorize(value.get)(p) - np.vectorize(value.get)(t)).astype(np.float64)
        return {"action_token_accuracy": acc, "action_bin_mae": float(err.mean()), "action_tokens": int(sel.sum())}

    return preprocess, compute


# -- train -------------------------------------------------------------------------------------------


def _split_episodes(n: int, spec: str, seed: int) -> tuple[list[int], list[int]]:
    """(train, eval) episode indices; ``spec`` is a fraction (``0.1``), a count (``3``)
    or a list with a comma (``0,4,7``; one episode: ``5,``)."""
    spec = (spec or "0").strip()
    if "," in spec:
        ev = sorted({int(x) for x in spec.split(",") if x.strip()})
    else:
        try:
            v = float(spec)
        except ValueError:
            raise ValueError(f"--eval-episodes must be a fraction, a count or a list, got {spec!r}") from None
        if v >= 1 and float(v).is_integer():
            k = int(v)
        else:
            k = int(round(v * n))
            if v > 0 and k == 0 and n >= 3:
                k = 1
        if k >= n:
            raise ValueError(f"--eval-episodes {spec} leaves no training episode of {n}")
        ev = sorted(random.Random(seed).sample(range(n), k)) if k > 0 else []
    bad = [e for e in ev if not 0 <= e < n]
    if bad:
        raise ValueError(f"--eval-episodes {bad} not in 0..{n - 1}")
    return [e for e in range(n) if e not in ev], ev


def _load_base(path: Path, dtype: Any) -> tuple[Any, Any, bool, dict]:
    from transformers import AutoProcessor

    from rt2_ros.policies.checkpoints import _load_model

    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path} is not a Hugging Face checkpoint (no config.json)")
    raw = json.loads(cfg_file.read_text())
    openvla_family = raw.get("model_type") == "openvla"
    trust = bool(raw.get("auto_map")) and openvla_family
    model = _load_model(path, raw, dtype, trust)
    processor = AutoProcessor.from_pretrained(str(path), local_files_only=True, trust_remote_code=trust)
    return model, processor, openvla_family, raw


def train(opts: TrainOptions, log: Any = None, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Fine-tune ``opts.base`` on ``opts.dataset`` and export ``opts.out`` (see the module doc).

    ``callbacks`` are ``transformers.TrainerCallback`` s added to the Trainer's.

    Returns:
        The final metrics (``train_loss``, ``eval_loss``, ``eval_action_token_accuracy``, steps...).

    Raises:
        FileNotFoundError: dataset or base missing; ValueError: bad options or data.
    """
    import torch
    import transformers
    from transformers import Trainer, TrainingArguments

    from rt2_ros.config import load_config
    from rt2_ros.training.dataset import load_dataset_meta

    say = log or (lambda m: print(m, file=sys.stderr))
    cfg = load_config(opts.config)
    transformers.set_seed(opts.seed)
    meta = load_dataset_meta(opts.dataset)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    base = Path(opts.base).expanduser()
    use_cuda = torch.cuda.is_available() and not opts.cpu
    load_dtype = torch.bfloat16 if (opts.bf16 and opts.lora) else torch.float32
    model, processor, openvla_family, raw_cfg = _load_base(base, load_dtype)
    tok = processor.tokenizer
    tok.padding_side = "right"
    action_cfg = cfg.action
    targets = ActionTargets(action_cfg, tok, meta.stats, openvla_family)
    if targets.added_tokens:
        model.resize_token_embeddings(len(tok))
        say(f"added {len(targets.added_tokens)} action tokens {ADDED_TOKEN_PATTERN} to the vocabulary")
    vocab = model.get_output_embeddings().weight.shape[0]
    top = max(i for a in targets.allowed for i in a)
    if top >= vocab:
        raise ValueError(
            f"action token id {top} is outside the model's vocabulary of {vocab} "
            "(action.openvla_vocab_size must be the base's un-padded tokenizer size)"
        )
    prompt = cfg.policy.prompt
    if prompt == "cot":
        raise ValueError("training with policy.prompt 'cot' needs plans in the data; use rt2 or openvla")

    n_eps = len(meta.episodes)
    train_eps, eval_eps = _split_episodes(n_eps, opts.eval_episodes, opts.seed)
    train_set: Any = RobotSamples(opts.dataset, targets, prompt, train_eps, opts.camera, opts.augment, opts.seed)
    eval_set = RobotSamples(opts.dataset, targets, prompt, eval_eps, opts.camera) if eval_eps else None
    if len(train_set) == 0:
        raise ValueError(f"no training samples in {opts.dataset}")
    if opts.cotrain_dataset:
        vqa = VQASamples(opts.cotrain_dataset, tok, opts.augment, opts.seed)
        train_set = MixedSamples(train_set, vqa, opts.cotrain_ratio, opts.batch_size, opts.seed)
        say(f"co-fine-tuning: {train_set.n_vqa} of every {opts.batch_size} samples from {opts.cotrain_dataset}")

    if opts.lora:
        from peft import LoraConfig, get_peft_model

        lcfg = LoraConfig(
            r=opts.lora_r,
            lora_alpha=opts.lora_alpha,
            lora_dropout=0.05,
            target_modules="all-linear",
            modules_to_save=["lm_head", "embed_tokens"] if targets.added_tokens else None,
        )
        model = get_peft_model(model, lcfg)
    if opts.gradient_checkpointing:
        model.gradient_checkpointing_enable()

    ckpt_dir = out / "checkpoints"
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "runs")  # the Trainer's TensorBoard callback reads it
    eval_steps = opts.eval_steps or max(1, opts.save_steps)
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=opts.eval_batch_size or opts.batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        learning_rate=opts.lr,
        weight_decay=opts.weight_decay,
        warmup_steps=float(opts.warmup_ratio),  # a float < 1 is a fraction of the steps
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps,
        logging_steps=opts.logging_steps,
        save_steps=opts.save_steps,
        save_total_limit=opts.save_total_limit,
        eval_strategy="steps" if eval_set is not None else "no",
        eval_steps=eval_steps if eval_set is not None else None,
        bf16=opts.bf16,
        seed=opts.seed,
        data_seed=opts.seed,
        dataloader_num_workers=opts.num_workers,
        remove_unused_columns=False,
        report_to=[] if opts.report_to in ("", "none") else [opts.report_to],
        disable_tqdm=not opts.progress,
        use_cpu=not use_cuda,
        label_names=["labels"],
    )
    preprocess, compute = _metrics_fns(targets)

    class _Trainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):  # noqa: D401 - keep MixedSamples' batch blocks
            ds = train_dataset if train_dataset is not None else self.train_dataset
            if isinstance(ds, MixedSamples):
                return torch.utils.data.SequentialSampler(ds)
            return super()._get_train_sampler(train_dataset)

        def _save(self, output_dir=None, state_dict=None):
            # transformers 5 writes checkpoints in the original key layout (e.g. PaliGemma's
            # language_model.model.*) but --resume loads them into the model without converting
            # back, so every weight would be missed. Checkpoints keep the in-memory layout
            # (save_original_format=False, from_pretrained reads both); the export is unchanged.
            m = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
            if "save_original_format" not in inspect.signature(m.save_pretrained).parameters:
                return super()._save(output_dir, state_dict)
            m.save_pretrained = functools.partial(m.save_pretrained, save_original_format=False)
            try:
                return super()._save(output_dir, state_dict)
            finally:
                del m.save_pretrained

    trainer = _Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=Collator(processor, openvla_family),
        compute_metrics=compute if eval_set is not None else None,
        preprocess_logits_for_metrics=preprocess if eval_set is not None else None,
        callbacks=list(callbacks) or None,
    )
    resume = None
    if opts.resume:
        have = sorted(ckpt_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
        if not have:
            raise FileNotFoundError(f"--resume: no checkpoint in {ckpt_dir}")
        resume = str(have[-1])
        say(f"resuming from {resume}")
    result = trainer.train(resume_from_checkpoint=resume)
    metrics: dict[str, Any] = {k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))}
    metrics["global_step"] = int(trainer.state.global_step)
    metrics["train_samples"] = len(train_set)
    if eval_set is not None:
        metrics.update({k: float(v) for k, v in trainer.evaluate().items() if isinstance(v, (int, float))})
    history = [h for h in trainer.state.log_history if "loss" in h]
    metrics["first_logged_loss"] = float(history[0]["loss"]) if history else None
    metrics["last_logged_loss"] = float(history[-1]["loss"]) if history else None

    if trainer.is_world_process_zero():
        export = trainer.model
        if opts.lora:
            export = export.merge_and_unload()
        export = export.to(torch.float32) if not opts.bf16 else export
        export.save_pretrained(str(out), safe_serialization=True)
        tok.padding_side = "left"
        processor.save_pretrained(str(out))
        _write_policy_files(out, opts, cfg, action_cfg, targets, meta, metrics, train_eps, eval_eps, raw_cfg)
    return metrics


def _write_policy_files(out, opts, cfg, action_cfg, targets, meta, metrics, train_eps, eval_eps, raw_cfg) -> None:
    import yaml

    unnorm_key = opts.unnorm_key or Path(opts.dataset).resolve().name
    a = meta.stats.get("action", {})
    st = meta.stats.get("observation.state", {})
    stats_entry: dict[str, Any] = {
        "action": {k: a[k] for k in ("mean", "std", "min", "max", "q01", "q99") if k in a},
        "proprio": {k: st[k] for k in ("mean", "std", "min", "max", "q01", "q99") if k in st},
        "num_transitions": int(meta.info.get("total_frames", 0)),
        "num_trajectories": int(meta.info.get("total_episodes", 0)),
    }
    stats_entry["action"]["mask"] = [True] * 6 + [False]
    if targets.unnorm_stats is not None:
        stats_entry["action"].update(targets.unnorm_stats)
    (out / "dataset_statistics.json").write_text(json.dumps({unnorm_key: stats_entry}, indent=2))
    action = action_cfg.model_dump()
    if targets.format == "rt2":
        action["token_pattern"] = targets.token_pattern
    else:
        action["unnorm_key"] = unnorm_key
    params = {"/**": {"ros__parameters": {"action": action, "policy": {"prompt": cfg.policy.prompt}}}}
    text = (
        "# The action codec and prompt this model was trained with (rt2-ros train).\n"
        "# The node and rt2-ros serve apply it when policy.model_path is this directory.\n" + yaml.safe_dump(params)
    )
    (out / POLICY_FILE).write_text(text)
    (out / "training_metrics.json").write_text(json.dumps(metrics, indent=2))
    rt2 = meta.rt2 or {}
    rep = rt2.get("report", {})
    lines = [
        f"# {out.name}: an RT-2-style policy fine-tuned with rt2_ros",
        "",
        f"- base model: `{opts.base}` ({raw_cfg.get('model_type')})",
        f"- dataset: `{opts.dataset}` ({meta.info.get('total_episodes')} episodes, "
        f"{meta.info.get('total_frames')} control steps at {meta.fps} Hz, tasks: {len(meta.tasks)}; "
        f"from {len(rt2.get('sources', []))} recordings, skipped stretches: {rep.get('skipped', {})})",
        f"- held-out episodes: {eval_eps}; training episodes: {len(train_eps)}",
        f"- co-fine-tuning: {opts.cotrain_dataset or 'none'}"
        + (f" ({opts.cotrain_ratio:.0%} of each batch)" if opts.cotrain_dataset else ""),
        f"- action format: {targets.format}, prompt: {cfg.policy.prompt}, "
        + (f"tokens {targets.token_pattern!r}" if targets.format == "rt2" else f"unnorm_key {unnorm_key!r}"),
        f"- steps: {metrics.get('global_step')}, batch {opts.batch_size} x accumulation {opts.grad_accum}, "
        f"lr {opts.lr}, LoRA: {opts.lora}, bf16: {opts.bf16}, augment: {opts.augment}, seed {opts.seed}",
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for k in sorted(metrics):
        v = metrics[k]
        lines.append(f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |")
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        f"ros2 launch rt2_ros bringup.launch.py model_path:={out.resolve()}",
        f"rt2-ros serve --model {out.resolve()}",
        "```",
        "",
        f"The codec settings used in training are in `{POLICY_FILE}`.",
    ]
    (out / "README.md").write_text("\n".join(lines) + "\n")


# -- CLI ------------------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rt2-ros train``."""
    d = TrainOptions("", "", "")
    p.add_argument(
        "--arch",
        choices=["vlm", "rt1"],
        default="vlm",
        help="vlm: fine-tune a vision-language model (--base); rt1: train RT-1 (rt2_ros.policies.rt1)",
    )
    p.add_argument(
        "--dataset",
        required=True,
        nargs="+",
        help="dataset directory (rt2-ros dataset build); rt1 also takes several, and record_frames .npz files",
    )
    p.add_argument("--base", default=None, help="vlm: base model directory (from_pretrained; offline)")
    p.add_argument("--out", required=True, help="output directory (model, checkpoints, logs)")
    p.add_argument("--config", default=None, help="rt2 parameters file: action section and policy.prompt")
    p.add_argument("--camera", default=None, help="image feature, e.g. observation.images.camera (default: first)")
    p.add_argument("--cotrain-dataset", default=None, help="VQA directory (rt2-ros dataset vqa) mixed into batches")
    p.add_argument("--cotrain-ratio", type=float, default=d.cotrain_ratio, help="fraction of each batch from VQA")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (peft), merged into the exported model")
    p.add_argument("--lora-r", type=int, default=d.lora_r, help="LoRA rank")
    p.add_argument("--lora-alpha", type=int, default=d.lora_alpha, help="LoRA alpha")
    p.add_argument("--bf16", action="store_true", help="bf16 mixed precision")
    p.add_argument("--grad-accum", type=int, default=d.grad_accum, help="gradient accumulation steps")
    p.add_argument("--augment", action="store_true", help="random resized crop + colour jitter")
    p.add_argument(
        "--eval-episodes", default=d.eval_episodes, help="held-out episodes: fraction, count or list (default 0.1)"
    )
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUT/checkpoints")
    p.add_argument("--seed", type=int, default=d.seed, help="seed (data order, augmentation, init of new tokens)")
    p.add_argument("--max-steps", type=int, default=d.max_steps, help="optimizer steps (overrides --epochs)")
    p.add_argument("--epochs", type=float, default=d.epochs, help="epochs")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="per-device batch size")
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate")
    p.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio, help="warm-up fraction")
    p.add_argument("--save-steps", type=int, default=d.save_steps, help="checkpoint every N steps")
    p.add_argument(
        "--save-total-limit", type=int, default=d.save_total_limit, help="checkpoints kept (oldest deleted first)"
    )
    p.add_argument("--eval-steps", type=int, default=None, help="evaluate every N steps (default --save-steps)")
    p.add_argument("--logging-steps", type=int, default=d.logging_steps, help="log every N steps")
    p.add_argument("--num-workers", type=int, default=d.num_workers, help="data loader workers")
    p.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for memory")
    p.add_argument("--unnorm-key", default=None, help="dataset_statistics.json key (default: dataset dir name)")
    p.add_argument("--report-to", default=d.report_to, help="tensorboard (default) | none | wandb ...")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even when CUDA is available")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from rt2_ros.training.rt1_train import add_arguments as add_rt1_arguments

    add_rt1_arguments(p.add_argument_group("--arch rt1"))


def run(args: argparse.Namespace) -> int:
    """``rt2-ros train``: print the final metrics as JSON."""
    from rt2_ros.config import ConfigError

    if args.arch == "rt1":
        from rt2_ros.training import rt1_train

        return rt1_train.run(args)
    if not args.base:
        print("error: --base is required with --arch vlm", file=sys.stderr)
        return 2
    if len(args.dataset) != 1:
        print("error: --arch vlm trains on one dataset directory", file=sys.stderr)
        return 2
    args.dataset = args.dataset[0]

    opts = TrainOptions(
        dataset=args.dataset,
        base=args.base,
        out=args.out,
        config=args.config,
        camera=args.camera,
        cotrain_dataset=args.cotrain_dataset,
        cotrain_ratio=args.cotrain_ratio,
        lora=args.lora,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        bf16=args.bf16,
        grad_accum=args.grad_accum,
        augment=args.augment,
        eval_episodes=args.eval_episodes,
        resume=args.resume,
        seed=args.seed,
        max_steps=args.max_steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_ratio=args.warmup_ratio,
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        eval_steps=args.eval_steps,
        logging_steps=args.logging_steps,
        num_workers=args.num_workers,
        gradient_checkpointing=args.gradient_checkpointing,
        unnorm_key=args.unnorm_key,
        report_to=args.report_to,
        progress=not args.no_progress,
        cpu=args.cpu,
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        metrics = train(opts)
    except (OSError, ValueError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:  # one summary under torchrun / accelerate launch
        print(json.dumps({"out": str(Path(opts.out).resolve()), **metrics}, indent=2))
    return 0

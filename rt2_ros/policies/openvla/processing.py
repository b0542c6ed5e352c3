"""OpenVLA's image preprocessing and prompt, without remote code, timm or torchvision.

Follows ``PrismaticImageProcessor`` / ``PrismaticProcessor`` (openvla
``prismatic/extern/hf/processing_prismatic.py``), which turns timm's eval
transform into torchvision functional calls on a PIL image; per tower:

1. ``letterbox`` only: pad the image to a square (``(max - w) // 2`` columns left
   and right, ``(max - h) // 2`` rows top and bottom) with the fill
   ``int(255 * mean)`` of the *last* tower (upstream's loop overwrites it), once
   for all towers;
2. resize with PIL (bicubic for both openvla-7b towers, antialiased): to
   ``(size, size)`` for ``resize-naive``, shorter side to ``size`` otherwise
   (torchvision's rule: longer side ``int(size * long / short)``);
3. centre crop to the tower's input size (torchvision: top ``round((h - ch) / 2)``);
4. ``uint8 / 255`` in float32, then ``(x - mean) / std`` in float32 with the
   tower's mean/std (DINOv2: ImageNet ``0.485, 0.456, 0.406`` / ``0.229, 0.224,
   0.225``; SigLIP: ``0.5`` / ``0.5``).

The towers' results are stacked along channels: ``pixel_values`` is
``float32 (B, 3 * n_towers, H, W)``. torchvision's PIL path calls PIL itself, so
the pixels are bit-identical to upstream's.

The prompt is ``In: What action should the robot take to {instruction.lower()}?\\nOut:``
(:data:`rt2_ros.policies.prompts.PROMPT_TEMPLATES` ``openvla``); the backend then
appends the empty token ``"▁"`` (29871 in Llama-2), as upstream ``predict_action``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageOps

from rt2_ros.policies.openvla.config import OpenVLACheckpointConfig
from rt2_ros.policies.openvla.towers import TowerSpec

__all__ = ["OpenVLAImageProcessor", "OpenVLAProcessor", "load_openvla_tokenizer", "PREPROCESSOR_FILE"]

PREPROCESSOR_FILE = "preprocessor_config.json"

#: PIL resampling codes by name (torchvision ``InterpolationMode`` -> PIL, as ``pil_modes_mapping``).
_PIL_RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5, "lanczos": 1}
#: timm data configs of the two families (DINOv2: ImageNet statistics; SigLIP: 0.5 / 0.5).
_FAMILY_MEAN_STD = {
    "dinov2_reg": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


class OpenVLAImageProcessor:
    """Upstream's image transform per tower (see the module docstring).

    Args:
        strategy: ``resize-naive`` | ``resize-crop`` | ``letterbox``.
        resize_sizes: per tower, ``(h, w)`` or an int (shorter side).
        crop_sizes: per tower, ``(h, w)``.
        resamples: per tower, a PIL resampling code (3 = bicubic).
        means, stds: per tower, 3 floats.
        letterbox_fill: RGB fill for ``letterbox`` (default from the last tower's mean).

    Raises:
        ValueError: inconsistent per-tower lists or an unknown strategy.
    """

    def __init__(
        self,
        strategy: str,
        resize_sizes: Sequence[Any],
        crop_sizes: Sequence[Sequence[int]],
        resamples: Sequence[int],
        means: Sequence[Sequence[float]],
        stds: Sequence[Sequence[float]],
        letterbox_fill: Sequence[int] | None = None,
    ) -> None:
        n = len(crop_sizes)
        if not (n and len(resize_sizes) == n and len(resamples) == n and len(means) == n and len(stds) == n):
            raise ValueError("per-tower image settings must all have one entry per tower")
        if strategy not in ("resize-naive", "resize-crop", "letterbox"):
            raise ValueError(f"image_resize_strategy {strategy!r} is not supported")
        self.strategy = strategy
        self.resize_sizes = [tuple(int(v) for v in s) if isinstance(s, (list, tuple)) else int(s) for s in resize_sizes]
        self.crop_sizes = [(int(c[0]), int(c[1])) for c in crop_sizes]
        if len({c for c in self.crop_sizes}) != 1:
            raise ValueError(f"towers need one input size to be stacked, got {self.crop_sizes}")
        self.resamples = [int(r) for r in resamples]
        self.means = [np.asarray(m, dtype=np.float32).reshape(3, 1, 1) for m in means]
        self.stds = [np.asarray(s, dtype=np.float32).reshape(3, 1, 1) for s in stds]
        if letterbox_fill is None:
            letterbox_fill = tuple(int(x * 255) for x in np.asarray(means[-1], dtype=np.float64))
        self.letterbox_fill = tuple(int(v) for v in letterbox_fill)
        h, w = self.crop_sizes[0]
        #: Input size, in the ``{"height", "width"}`` form transformers' processors use.
        self.size = {"height": h, "width": w}

    @classmethod
    def from_checkpoint(
        cls, model_dir: str | Path, cfg: OpenVLACheckpointConfig, specs: Sequence[TowerSpec]
    ) -> "OpenVLAImageProcessor":
        """From ``preprocessor_config.json`` (its resolved ``tvf_*`` parameters when
        present), else from ``config.json`` and the tower families' timm data configs.

        Raises:
            ValueError: an unreadable or inconsistent ``preprocessor_config.json``.
        """
        f = Path(model_dir) / PREPROCESSOR_FILE
        if f.is_file():
            try:
                pc = json.loads(f.read_text())
            except (OSError, ValueError) as e:
                raise ValueError(f"cannot read {f}: {e}") from None
            return cls.from_dict(pc, default_strategy=cfg.image_resize_strategy)
        strategy = cfg.image_resize_strategy
        sizes = list(cfg.image_sizes)
        return cls(
            strategy,
            resize_sizes=[(s, s) if strategy == "resize-naive" else s for s in sizes],
            crop_sizes=[(s, s) for s in sizes],
            resamples=[_PIL_RESAMPLE["bicubic"]] * len(sizes),
            means=[_FAMILY_MEAN_STD[s.family][0] for s in specs],
            stds=[_FAMILY_MEAN_STD[s.family][1] for s in specs],
        )

    @classmethod
    def from_dict(cls, pc: dict[str, Any], default_strategy: str = "letterbox") -> "OpenVLAImageProcessor":
        """From a ``PrismaticImageProcessor`` dict (``preprocessor_config.json``).

        Raises:
            ValueError: missing or inconsistent fields.
        """
        strategy = pc.get("image_resize_strategy", default_strategy)
        try:
            if pc.get("tvf_resize_params"):
                resize = pc["tvf_resize_params"]
                norm = pc["tvf_normalize_params"]
                crops = [c["output_size"] for c in pc["tvf_crop_params"]]
                return cls(
                    strategy,
                    resize_sizes=[r["size"] for r in resize],
                    crop_sizes=crops,
                    resamples=[int(r.get("interpolation", 3)) for r in resize],
                    means=[n["mean"] for n in norm],
                    stds=[n["std"] for n in norm],
                    letterbox_fill=pc.get("tvf_letterbox_fill") if pc.get("tvf_do_letterbox") else None,
                )
            sizes = [int(s[-1]) for s in pc["input_sizes"]]
            interp = pc.get("interpolations") or ["bicubic"] * len(sizes)
            return cls(
                strategy,
                resize_sizes=[(s, s) if strategy == "resize-naive" else s for s in sizes],
                crop_sizes=[(int(s[-2]), int(s[-1])) for s in pc["input_sizes"]],
                resamples=[_PIL_RESAMPLE[str(i)] for i in interp],
                means=pc["means"],
                stds=pc["stds"],
            )
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"preprocessor config is missing or has a bad field: {e!r}") from None

    def to_dict(self) -> dict[str, Any]:
        """The ``preprocessor_config.json`` content in upstream's format (``tvf_*`` keys)."""
        return {
            "image_processor_type": "PrismaticImageProcessor",
            "image_resize_strategy": self.strategy,
            "use_fused_vision_backbone": len(self.crop_sizes) == 2,
            "input_sizes": [[3, h, w] for h, w in self.crop_sizes],
            "means": [m.reshape(3).tolist() for m in self.means],
            "stds": [s.reshape(3).tolist() for s in self.stds],
            "tvf_resize_params": [
                {
                    "size": list(s) if isinstance(s, tuple) else s,
                    "interpolation": r,
                    "max_size": None,
                    "antialias": True,
                }
                for s, r in zip(self.resize_sizes, self.resamples)
            ],
            "tvf_crop_params": [{"output_size": [h, w]} for h, w in self.crop_sizes],
            "tvf_normalize_params": [
                {"mean": m.reshape(3).tolist(), "std": s.reshape(3).tolist(), "inplace": False}
                for m, s in zip(self.means, self.stds)
            ],
            "tvf_do_letterbox": self.strategy == "letterbox",
            "tvf_letterbox_fill": list(self.letterbox_fill) if self.strategy == "letterbox" else None,
        }

    # -- transform ---------------------------------------------------------------------

    @staticmethod
    def _resize(img: Image.Image, size: Any, resample: int) -> Image.Image:
        w, h = img.size
        if isinstance(size, tuple):
            new_h, new_w = size
        else:  # torchvision: shorter side to `size`, longer side scaled and truncated
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = size, int(size * long / short)
            new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        if (new_w, new_h) == (w, h):
            return img
        return img.resize((new_w, new_h), resample=resample)

    @staticmethod
    def _center_crop(img: Image.Image, ch: int, cw: int) -> Image.Image:
        w, h = img.size
        if cw > w or ch > h:
            raise ValueError(f"image {w}x{h} is smaller than the crop {cw}x{ch} after resizing")
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        if (top, left, ch, cw) == (0, 0, h, w):
            return img
        return img.crop((left, top, left + cw, top + ch))

    def transform(self, img: Image.Image) -> np.ndarray:
        """One PIL image -> ``float32 (3 * n_towers, H, W)``."""
        img = img.convert("RGB")
        if self.strategy == "letterbox":
            w, h = img.size
            m = max(w, h)
            hp, vp = int((m - w) / 2), int((m - h) / 2)
            img = ImageOps.expand(img, border=(hp, vp, hp, vp), fill=self.letterbox_fill)
        out = []
        for size, (ch, cw), resample, mean, std in zip(
            self.resize_sizes, self.crop_sizes, self.resamples, self.means, self.stds
        ):
            t = self._center_crop(self._resize(img, size, resample), ch, cw)
            x = np.asarray(t, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
            out.append((x - mean) / std)
        return np.concatenate(out, axis=0)

    def __call__(self, images: Image.Image | Sequence[Image.Image]) -> np.ndarray:
        """PIL image(s) -> ``float32 (B, 3 * n_towers, H, W)``."""
        if isinstance(images, Image.Image):
            images = [images]
        return np.stack([self.transform(i) for i in images])


def load_openvla_tokenizer(model_dir: str | Path) -> Any:
    """The checkpoint's tokenizer, without remote code and without reading ``config.json``.

    ``tokenizer.json`` is loaded with ``PreTrainedTokenizerFast`` (a plain ``AutoTokenizer``
    would look at the ``openvla`` config and ask about remote code).

    Raises:
        OSError: no usable tokenizer files.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    d = Path(model_dir)
    if (d / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(d), local_files_only=True)
    return AutoTokenizer.from_pretrained(str(d), local_files_only=True, trust_remote_code=False)


class OpenVLAProcessor:
    """Tokenizer + :class:`OpenVLAImageProcessor`, called like a transformers processor.

    ``processor(text=[...], images=[...], return_tensors="pt", padding="longest")``
    returns ``input_ids`` ``int64 (B, T)``, ``attention_mask`` ``int64 (B, T)``
    (padding on ``tokenizer.padding_side``) and ``pixel_values`` ``float32
    (B, 3 * n_towers, H, W)`` as torch tensors.
    """

    def __init__(self, tokenizer: Any, image_processor: OpenVLAImageProcessor) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor

    def __call__(
        self,
        text: str | Sequence[str],
        images: Image.Image | Sequence[Image.Image],
        return_tensors: str = "pt",
        padding: bool | str = False,
        **_: Any,
    ) -> dict[str, Any]:
        import torch

        texts = [text] if isinstance(text, str) else list(text)
        imgs = [images] if isinstance(images, Image.Image) else list(images)
        if len(texts) != len(imgs):
            raise ValueError(f"{len(texts)} prompts for {len(imgs)} images")
        enc = self.tokenizer(texts, padding=padding, return_tensors="pt")
        return {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "pixel_values": torch.from_numpy(self.image_processor(imgs)),
        }

    def save_pretrained(self, out_dir: str | Path) -> None:
        """Write the tokenizer files and ``preprocessor_config.json`` (upstream format)."""
        out = Path(out_dir)
        self.tokenizer.save_pretrained(str(out))
        (out / PREPROCESSOR_FILE).write_text(json.dumps(self.image_processor.to_dict(), indent=2))

"""The rt1 processor: camera frames to the model's input size (training and inference alike)."""

from __future__ import annotations

import numpy as np

__all__ = ["resize_uint8"]


def resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, 3) -> uint8 (N, size, size, 3): bilinear with antialiasing (the
    model's processor; the policy resizes camera frames with the same call)."""
    import torch
    import torch.nn.functional as F

    if images.shape[1] == size and images.shape[2] == size:
        return images
    out = []
    for k in range(0, len(images), 256):
        x = torch.from_numpy(np.ascontiguousarray(images[k : k + 256])).permute(0, 3, 1, 2).float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)

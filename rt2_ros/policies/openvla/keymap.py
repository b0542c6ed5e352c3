"""Upstream OpenVLA parameter names <-> the native model's (transformers') names.

Upstream names are those ``OpenVLAForActionPrediction.save_pretrained`` writes
(openvla ``prismatic/extern/hf/modeling_prismatic.py``: timm towers under
``vision_backbone.featurizer`` / ``vision_backbone.fused_featurizer``, the
``projector``, and the HF ``language_model``). Native names are those of
:class:`rt2_ros.policies.openvla.modeling.OpenVLANativeModel` on transformers
>= 5 (attention projections ``q_proj``/``k_proj``/``v_proj``):

========================================================  ==================================================
upstream (``vision_backbone.featurizer.`` = tower 0,       native (``vision.towers.0.`` / ``vision.towers.1.``)
``vision_backbone.fused_featurizer.`` = tower 1)
========================================================  ==================================================
*DINOv2 with registers* (``Dinov2WithRegistersModel``)
``cls_token`` (1, 1, D)                                    ``embeddings.cls_token``
``reg_token`` (1, R, D)                                    ``embeddings.register_tokens``
``pos_embed`` (1, N, D): patches only (timm                ``embeddings.position_embeddings`` (1, 1 + N, D):
``no_embed_class``)                                        a zero row for the class token, then ``pos_embed``
``patch_embed.proj.{weight,bias}``                         ``embeddings.patch_embeddings.projection.*``
``blocks.i.norm1`` / ``norm2``                             ``encoder.layer.i.norm1`` / ``norm2``
``blocks.i.attn.qkv.{weight,bias}`` (3D, ...): fused       ``encoder.layer.i.attention.{q,k,v}_proj.*``: split
                                                           in three along dim 0 (rows q, then k, then v)
``blocks.i.attn.proj``                                     ``encoder.layer.i.attention.o_proj``
``blocks.i.ls1.scale_factor`` / ``ls2.scale_factor``       ``encoder.layer.i.layer_scale1.lambda1`` / ``2``
(timm ``gamma``, renamed by upstream's LayerScale patch)
``blocks.i.mlp.fc1`` / ``fc2``                             ``encoder.layer.i.mlp.fc1`` / ``fc2``
``norm``                                                   ``layernorm`` (unused: features are pre-norm)
(none)                                                     ``embeddings.mask_token``: zeros, unused at inference
*SigLIP* (``SiglipVisionModel``)
``patch_embed.proj``                                       ``embeddings.patch_embedding``
``pos_embed`` (1, N, D)                                    ``embeddings.position_embedding.weight`` (N, D)
``blocks.i.norm1`` / ``norm2``                             ``encoder.layers.i.layer_norm1`` / ``layer_norm2``
``blocks.i.attn.qkv``: fused                               ``encoder.layers.i.self_attn.{q,k,v}_proj``: split
``blocks.i.attn.proj``                                     ``encoder.layers.i.self_attn.out_proj``
``blocks.i.mlp.fc1`` / ``fc2``                             ``encoder.layers.i.mlp.fc1`` / ``fc2``
``norm``                                                   ``post_layernorm`` (unused)
``attn_pool.latent``                                       ``head.probe`` (MAP head, unused)
``attn_pool.q`` + ``attn_pool.kv`` (q rows, then k, v)     ``head.attention.in_proj_{weight,bias}``: concatenated
``attn_pool.proj``, ``norm``, ``mlp.fc1``, ``mlp.fc2``     ``head.attention.out_proj`` / ``head.layernorm`` /
                                                           ``head.mlp.fc1`` / ``head.mlp.fc2``
*Projector and LLM*
``projector.fc1`` / ``fc2`` / ``fc3``                      ``projector.fc1`` / ``fc2`` / ``fc3``
``language_model.model.*``, ``language_model.lm_head.*``   ``language_model.model.*``, ``language_model.lm_head.*``
========================================================  ==================================================

The unused tensors (last block, final norms, MAP head) are still mapped, so a
checkpoint round-trips exactly and the loader can insist that every tensor has a
home. Imports torch.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

import torch

from rt2_ros.policies.openvla.towers import TowerSpec

__all__ = ["UPSTREAM_TOWER_PREFIXES", "KeyMapError", "upstream_to_native", "native_to_upstream"]

#: Upstream prefix of tower 0 and tower 1.
UPSTREAM_TOWER_PREFIXES = ("vision_backbone.featurizer.", "vision_backbone.fused_featurizer.")

#: Native keys with no upstream tensor: filled in by the loader (value, why).
NATIVE_ONLY = {"dinov2_reg": {"embeddings.mask_token": "zeros; only used for masked-image pre-training"}}


class KeyMapError(ValueError):
    """A tensor name or shape does not fit the key map; the message names the tensor."""


# (upstream regex, native template) renames without value changes, per family.
_DINO_RENAMES = [
    (r"cls_token", "embeddings.cls_token"),
    (r"reg_token", "embeddings.register_tokens"),
    (r"patch_embed\.proj\.(weight|bias)", r"embeddings.patch_embeddings.projection.\1"),
    (r"blocks\.(\d+)\.norm([12])\.(weight|bias)", r"encoder.layer.\1.norm\2.\3"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"encoder.layer.\1.attention.o_proj.\2"),
    (r"blocks\.(\d+)\.ls([12])\.(?:scale_factor|gamma)", r"encoder.layer.\1.layer_scale\2.lambda1"),
    (r"blocks\.(\d+)\.mlp\.(fc[12])\.(weight|bias)", r"encoder.layer.\1.mlp.\2.\3"),
    (r"norm\.(weight|bias)", r"layernorm.\1"),
]
_SIGLIP_RENAMES = [
    (r"patch_embed\.proj\.(weight|bias)", r"embeddings.patch_embedding.\1"),
    (r"blocks\.(\d+)\.norm([12])\.(weight|bias)", r"encoder.layers.\1.layer_norm\2.\3"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"encoder.layers.\1.self_attn.out_proj.\2"),
    (r"blocks\.(\d+)\.mlp\.(fc[12])\.(weight|bias)", r"encoder.layers.\1.mlp.\2.\3"),
    (r"norm\.(weight|bias)", r"post_layernorm.\1"),
    (r"attn_pool\.latent", "head.probe"),
    (r"attn_pool\.proj\.(weight|bias)", r"head.attention.out_proj.\1"),
    (r"attn_pool\.norm\.(weight|bias)", r"head.layernorm.\1"),
    (r"attn_pool\.mlp\.(fc[12])\.(weight|bias)", r"head.mlp.\1.\2"),
]
_QKV = {
    "dinov2_reg": (re.compile(r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)"), "encoder.layer.{i}.attention.{p}_proj.{w}"),
    "siglip": (re.compile(r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)"), "encoder.layers.{i}.self_attn.{p}_proj.{w}"),
}
_RENAMES = {"dinov2_reg": _DINO_RENAMES, "siglip": _SIGLIP_RENAMES}


def _tower_to_native(name: str, t: Any, spec: TowerSpec, out: dict[str, Any]) -> None:
    fam = spec.family
    if name == "pos_embed":
        if fam == "dinov2_reg":
            # timm adds no position embedding to the class token; transformers adds row 0 to it.
            out["embeddings.position_embeddings"] = torch.cat([t.new_zeros((1, 1, t.shape[-1])), t], dim=1)
        else:
            out["embeddings.position_embedding.weight"] = t.reshape(t.shape[-2], t.shape[-1])
        return
    m = _QKV[fam][0].fullmatch(name)
    if m:
        if t.shape[0] != 3 * spec.embed_dim:
            raise KeyMapError(
                f"{name}: shape {tuple(t.shape)} is not (3 * embed_dim {spec.embed_dim}, ...): "
                "the tower spec does not describe this checkpoint"
            )
        for p, part in zip("qkv", t.split(spec.embed_dim, dim=0)):
            out[_QKV[fam][1].format(i=m.group(1), p=p, w=m.group(2))] = part
        return
    if fam == "siglip" and (name.startswith("attn_pool.q.") or name.startswith("attn_pool.kv.")):
        return  # handled by _siglip_map_head
    for pat, repl in _RENAMES[fam]:
        if re.fullmatch(pat, name):
            out[re.sub(pat, repl, name)] = t
            return
    raise KeyMapError(f"tower tensor {name!r} ({fam}) has no place in the native model")


def _siglip_map_head(tower: Mapping[str, Any], out: dict[str, Any]) -> None:
    for w in ("weight", "bias"):
        q, kv = tower.get(f"attn_pool.q.{w}"), tower.get(f"attn_pool.kv.{w}")
        if q is None and kv is None:
            continue
        if q is None or kv is None:
            raise KeyMapError(f"MAP head has only one of attn_pool.q.{w} / attn_pool.kv.{w}")
        out[f"head.attention.in_proj_{w}"] = torch.cat([q, kv], dim=0)


def upstream_to_native(
    state: Mapping[str, Any], specs: tuple[TowerSpec, ...], transform: Callable[[Any], Any] | None = None
) -> dict[str, Any]:
    """Rename (and split/concatenate) an upstream state dict into native names.

    Args:
        state: upstream name -> tensor.
        specs: the tower specs, in ``timm_model_ids`` order.
        transform: applied to every tensor first (e.g. ``.to(dtype)``), or None.

    Returns:
        native name -> tensor.

    Raises:
        KeyMapError: a tensor that belongs nowhere, or a fused qkv of the wrong size.
    """
    tr = transform or (lambda t: t)
    out: dict[str, Any] = {}
    towers: list[dict[str, Any]] = [{} for _ in specs]
    for name, t in state.items():
        for i, prefix in enumerate(UPSTREAM_TOWER_PREFIXES[: len(specs)]):
            if name.startswith(prefix):
                towers[i][name[len(prefix) :]] = tr(t)
                break
        else:
            if name.startswith("projector.") or name.startswith("language_model."):
                out[name] = tr(t)
            else:
                raise KeyMapError(f"tensor {name!r} has no place in the native OpenVLA model")
    for i, (spec, tower) in enumerate(zip(specs, towers)):
        native: dict[str, Any] = {}
        for name, t in tower.items():
            _tower_to_native(name, t, spec, native)
        if spec.family == "siglip":
            _siglip_map_head(tower, native)
        for k, v in native.items():
            out[f"vision.towers.{i}.{k}"] = v
    return out


def native_to_upstream(state: Mapping[str, Any], specs: tuple[TowerSpec, ...]) -> dict[str, Any]:
    """The inverse of :func:`upstream_to_native` (native-only tensors are dropped).

    Used to write checkpoints in the ``openvla-7b`` layout (``rt2-ros make-test-model
    --format openvla``).

    Raises:
        KeyMapError: a native tensor with no upstream name.
    """
    out: dict[str, Any] = {}
    qkv_parts: dict[str, dict[str, Any]] = {}
    for name, t in state.items():
        if name.startswith("projector.") or name.startswith("language_model."):
            out[name] = t
            continue
        m = re.fullmatch(r"vision\.towers\.(\d+)\.(.+)", name)
        if not m or int(m.group(1)) >= len(specs):
            raise KeyMapError(f"native tensor {name!r} has no upstream name")
        i, rest = int(m.group(1)), m.group(2)
        spec, prefix = specs[i], UPSTREAM_TOWER_PREFIXES[i]
        if rest in NATIVE_ONLY.get(spec.family, {}):
            continue
        if rest == "embeddings.position_embeddings":
            out[prefix + "pos_embed"] = t[:, 1:].contiguous()
            continue
        if rest == "embeddings.position_embedding.weight":
            out[prefix + "pos_embed"] = t.unsqueeze(0).contiguous()
            continue
        mq = re.fullmatch(r"encoder\.layers?\.(\d+)\.(?:attention|self_attn)\.([qkv])_proj\.(weight|bias)", rest)
        if mq:
            key = f"{prefix}blocks.{mq.group(1)}.attn.qkv.{mq.group(3)}"
            qkv_parts.setdefault(key, {})[mq.group(2)] = t
            continue
        mh = re.fullmatch(r"head\.attention\.in_proj_(weight|bias)", rest)
        if mh:
            d = spec.embed_dim
            out[f"{prefix}attn_pool.q.{mh.group(1)}"] = t[:d].contiguous()
            out[f"{prefix}attn_pool.kv.{mh.group(1)}"] = t[d:].contiguous()
            continue
        up = _native_rename_back(rest, spec)
        if up is None:
            raise KeyMapError(f"native tensor {name!r} has no upstream name")
        out[prefix + up] = t
    for key, parts in qkv_parts.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def _native_rename_back(rest: str, spec: TowerSpec) -> str | None:
    back = {
        "dinov2_reg": [
            (r"embeddings\.cls_token", "cls_token"),
            (r"embeddings\.register_tokens", "reg_token"),
            (r"embeddings\.patch_embeddings\.projection\.(weight|bias)", r"patch_embed.proj.\1"),
            (r"encoder\.layer\.(\d+)\.norm([12])\.(weight|bias)", r"blocks.\1.norm\2.\3"),
            (r"encoder\.layer\.(\d+)\.attention\.o_proj\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
            (r"encoder\.layer\.(\d+)\.layer_scale([12])\.lambda1", r"blocks.\1.ls\2.scale_factor"),
            (r"encoder\.layer\.(\d+)\.mlp\.(fc[12])\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
            (r"layernorm\.(weight|bias)", r"norm.\1"),
        ],
        "siglip": [
            (r"embeddings\.patch_embedding\.(weight|bias)", r"patch_embed.proj.\1"),
            (r"encoder\.layers\.(\d+)\.layer_norm([12])\.(weight|bias)", r"blocks.\1.norm\2.\3"),
            (r"encoder\.layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
            (r"encoder\.layers\.(\d+)\.mlp\.(fc[12])\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
            (r"post_layernorm\.(weight|bias)", r"norm.\1"),
            (r"head\.probe", "attn_pool.latent"),
            (r"head\.attention\.out_proj\.(weight|bias)", r"attn_pool.proj.\1"),
            (r"head\.layernorm\.(weight|bias)", r"attn_pool.norm.\1"),
            (r"head\.mlp\.(fc[12])\.(weight|bias)", r"attn_pool.mlp.\1.\2"),
        ],
    }[spec.family]
    for pat, repl in back:
        if re.fullmatch(pat, rest):
            return re.sub(pat, repl, rest)
    return None

"""Vision tower architectures by timm id, without timm (torch-free).

Upstream OpenVLA builds its towers with ``timm.create_model(id, pretrained=False,
num_classes=0, img_size=..., act_layer=None)`` (openvla
``prismatic/extern/hf/modeling_prismatic.py``, ``PrismaticVisionBackbone``). The
native loader needs only the architecture behind an id, which this module gives
as a :class:`TowerSpec` in timm's own argument names (``embed_dim``, ``depth``,
``num_heads``, ``mlp_ratio``, ``reg_tokens``, ``global_pool``), taken from
timm's ``vision_transformer.py`` model definitions:

=========================================  ===========  =====  =====  =====  =========  ==========
timm id                                    family       dim    depth  heads  mlp ratio  extra
=========================================  ===========  =====  =====  =====  =========  ==========
``vit_large_patch14_reg4_dinov2.lvd142m``  dinov2_reg   1024   24     16     4          4 registers,
                                                                                        LayerScale
``vit_so400m_patch14_siglip_224``          siglip       1152   27     16     3.7362     MAP head
``vit_so400m_patch14_siglip_384``          siglip       1152   27     16     3.7362     MAP head
=========================================  ===========  =====  =====  =====  =========  ==========

The first two are ``openvla/openvla-7b``'s (``dinosiglip-vit-so-224px``). Both use
patch 14, LayerNorm eps 1e-6 and exact GELU (``act_layer=None`` keeps timm's
``nn.GELU``; HF SigLIP configs default to the tanh approximation, which would
not match).

Any other id (fine-tunes with other towers, test fixtures with toy towers) is
described in a JSON file ``{"<timm id>": {"family": ..., "embed_dim": ...,
"depth": ..., "num_heads": ..., "mlp_ratio": ..., "reg_tokens": ...,
"global_pool": ...}}``, found, in this order, from the ``tower_specs`` argument
of the loader, the file named by the environment variable
:data:`TOWER_SPECS_ENV`, or :data:`TOWER_SPECS_FILE` in the checkpoint
directory. The loader checks every spec against the checkpoint's tensor shapes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "TowerSpec",
    "TowerSpecError",
    "KNOWN_TOWERS",
    "TOWER_SPECS_ENV",
    "TOWER_SPECS_FILE",
    "FAMILIES",
    "load_tower_specs",
    "resolve_tower",
]

#: Environment variable naming a JSON file of extra tower specs.
TOWER_SPECS_ENV = "RT2_OPENVLA_TOWERS"
#: File in a checkpoint directory with that directory's extra tower specs.
TOWER_SPECS_FILE = "openvla_towers.json"

#: ``dinov2_reg``: DINOv2 ViT with class token, register tokens, LayerScale and no
#: position embedding for prefix tokens (timm ``no_embed_class=True``), mapped onto
#: transformers' ``Dinov2WithRegistersModel``. ``siglip``: SigLIP ViT without class
#: token, optional MAP attention-pool head, mapped onto ``SiglipVisionModel``.
FAMILIES = ("dinov2_reg", "siglip")


class TowerSpecError(ValueError):
    """Unknown tower id or a bad tower description; the message says what to provide."""


@dataclasses.dataclass(frozen=True)
class TowerSpec:
    """A ViT tower in timm's terms.

    Attributes:
        family: one of :data:`FAMILIES`.
        embed_dim: width (hidden size).
        depth: number of blocks (upstream takes features from block ``depth - 2``).
        num_heads: attention heads.
        mlp_ratio: MLP hidden size is ``int(embed_dim * mlp_ratio)`` (timm's rule).
        patch_size: patch side [px].
        reg_tokens: register tokens (``dinov2_reg``: 4; ``siglip``: 0).
        global_pool: ``"map"`` when the tower has a MAP attention-pool head
            (SigLIP; unused by OpenVLA but present in its weights), else ``"token"``.
        layer_norm_eps: LayerNorm epsilon (timm ViT: 1e-6).
    """

    family: str
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    patch_size: int = 14
    reg_tokens: int = 0
    global_pool: str = "token"
    layer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise TowerSpecError(f"tower family must be one of {FAMILIES}, got {self.family!r}")
        for name in ("embed_dim", "depth", "num_heads", "patch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise TowerSpecError(f"tower {name} must be a positive integer, got {v!r}")
        if self.depth < 2:
            raise TowerSpecError("tower depth must be >= 2 (features come from the second-to-last block)")
        if self.embed_dim % self.num_heads:
            raise TowerSpecError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if not (isinstance(self.mlp_ratio, (int, float)) and self.mlp_ratio > 0):
            raise TowerSpecError(f"mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        if not isinstance(self.reg_tokens, int) or self.reg_tokens < 0:
            raise TowerSpecError(f"reg_tokens must be a non-negative integer, got {self.reg_tokens!r}")
        if self.family == "dinov2_reg" and self.reg_tokens < 1:
            raise TowerSpecError("a dinov2_reg tower needs reg_tokens >= 1")
        if self.global_pool not in ("map", "token"):
            raise TowerSpecError(f"global_pool must be 'map' or 'token', got {self.global_pool!r}")

    @property
    def mlp_hidden_size(self) -> int:
        """``int(embed_dim * mlp_ratio)``, as timm's ``Mlp`` sizes its hidden layer."""
        return int(self.embed_dim * self.mlp_ratio)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TowerSpec":
        """Build from a JSON object with the attribute names above.

        Raises:
            TowerSpecError: unknown or missing fields, bad values.
        """
        if not isinstance(d, Mapping):
            raise TowerSpecError(f"a tower spec must be a JSON object, got {type(d).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise TowerSpecError(f"unknown tower spec fields {unknown}; known: {sorted(fields)}")
        try:
            return cls(**dict(d))
        except TypeError as e:
            raise TowerSpecError(f"bad tower spec {dict(d)}: {e}") from None


_DINOV2_L_REG4 = TowerSpec("dinov2_reg", embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4.0, reg_tokens=4)
_SIGLIP_SO400M = TowerSpec("siglip", embed_dim=1152, depth=27, num_heads=16, mlp_ratio=3.7362, global_pool="map")

#: Towers known without a description (ids as in ``config.json``; a pretrained tag
#: after ``.`` is optional when looking up).
KNOWN_TOWERS: dict[str, TowerSpec] = {
    "vit_large_patch14_reg4_dinov2.lvd142m": _DINOV2_L_REG4,
    "vit_so400m_patch14_siglip_224": _SIGLIP_SO400M,
    "vit_so400m_patch14_siglip_384": _SIGLIP_SO400M,
}


def load_tower_specs(path: str | os.PathLike) -> dict[str, TowerSpec]:
    """Read a JSON file ``{"<timm id>": {spec fields}}``.

    Raises:
        TowerSpecError: unreadable file or a bad spec (the message names the file and id).
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise TowerSpecError(f"cannot read tower specs {str(p)!r}: {e}") from None
    if not isinstance(data, dict):
        raise TowerSpecError(f"tower specs {str(p)!r} must be a JSON object of timm ids")
    out = {}
    for tid, d in data.items():
        try:
            out[str(tid)] = TowerSpec.from_dict(d)
        except TowerSpecError as e:
            raise TowerSpecError(f"{p}: tower {tid!r}: {e}") from None
    return out


def _lookup(table: Mapping[str, TowerSpec], timm_id: str) -> TowerSpec | None:
    if timm_id in table:
        return table[timm_id]
    arch = timm_id.split(".")[0]
    for k, v in table.items():
        if k.split(".")[0] == arch:
            return v
    return None


def resolve_tower(
    timm_id: str,
    extra: Mapping[str, TowerSpec] | None = None,
    model_dir: str | os.PathLike | None = None,
) -> TowerSpec:
    """The architecture of tower ``timm_id``.

    Looks in ``extra``, then the file named by ``$RT2_OPENVLA_TOWERS``, then
    ``<model_dir>/openvla_towers.json``, then :data:`KNOWN_TOWERS`.

    Raises:
        TowerSpecError: the id is described nowhere (the message says how to describe
            it), or a spec file is bad.
    """
    tables: list[Mapping[str, TowerSpec]] = []
    if extra:
        tables.append(extra)
    env = os.environ.get(TOWER_SPECS_ENV)
    if env:
        tables.append(load_tower_specs(env))
    if model_dir is not None and (Path(model_dir) / TOWER_SPECS_FILE).is_file():
        tables.append(load_tower_specs(Path(model_dir) / TOWER_SPECS_FILE))
    tables.append(KNOWN_TOWERS)
    for t in tables:
        spec = _lookup(t, timm_id)
        if spec is not None:
            return spec
    raise TowerSpecError(
        f"unknown vision tower {timm_id!r}: known ids are {sorted(KNOWN_TOWERS)}. Describe it in a JSON file "
        f'{{"{timm_id}": {{"family": "dinov2_reg" | "siglip", "embed_dim": ..., "depth": ..., "num_heads": ..., '
        f'"mlp_ratio": ..., "reg_tokens": ..., "global_pool": "token" | "map"}}}} (values from timm\'s model '
        f"definition) and name it with ${TOWER_SPECS_ENV} or put it in the checkpoint as {TOWER_SPECS_FILE}"
    )

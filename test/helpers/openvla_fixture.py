"""Where the OpenVLA parity fixture lives, and how its toy towers are described.

The fixture (``shared/fixtures/openvla_tiny``: a checkpoint written by upstream's
remote code under transformers 4.40.1, and ``reference.json`` with upstream's
outputs) is read in place, never copied: ``$RT2_OPENVLA_FIXTURE`` if set, else
``../shared/fixtures/openvla_tiny`` next to the repository.

Its towers have custom timm ids. Their architectures (listed in the fixture's
README and ``tiny_timm_towers.py``) are described here as native tower specs, which
is what a user does for any tower the built-in table lacks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_ENV = "RT2_OPENVLA_FIXTURE"

#: The fixture's towers in rt2_ros.policies.openvla.towers spec form.
FIXTURE_TOWERS = {
    "vit_openvla_fixture_a_patch14_reg4_dinov2.untrained": {
        "family": "dinov2_reg",
        "embed_dim": 32,
        "depth": 2,
        "num_heads": 2,
        "mlp_ratio": 4.0,
        "reg_tokens": 4,
    },
    "vit_openvla_fixture_a_patch14_siglip_224": {
        "family": "siglip",
        "embed_dim": 48,
        "depth": 2,
        "num_heads": 3,
        "mlp_ratio": 3.7362,
        "global_pool": "map",
    },
}


def fixture_dir() -> Path:
    """The fixture folder (holding ``checkpoint/`` and ``reference.json``)."""
    env = os.environ.get(FIXTURE_ENV)
    return Path(env) if env else ROOT.parent / "shared" / "fixtures" / "openvla_tiny"


def require_fixture() -> Path:
    """The fixture folder, or skip the calling test with one clear reason."""
    d = fixture_dir()
    if not (d / "reference.json").is_file() or not (d / "checkpoint" / "config.json").is_file():
        pytest.skip(f"OpenVLA parity fixture not found at {d} (set ${FIXTURE_ENV} to its folder)")
    return d


def load_reference(d: Path) -> dict:
    return json.loads((d / "reference.json").read_text())


def write_tower_specs(path: Path) -> Path:
    path.write_text(json.dumps(FIXTURE_TOWERS, indent=2))
    return path

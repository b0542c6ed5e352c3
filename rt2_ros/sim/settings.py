"""``config/sim.yaml`` for code that runs without ROS (the in-process loop, the demo). ROS-free.

The file is a ROS 2 parameters file with one section per node (``rt2_node``,
``rt2_sim``, ``servo_node``); here its sections become plain dicts, the ``rt2_node``
one flattened to dotted names that :func:`rt2_ros.config.load_config` takes as
overrides.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from rt2_ros.config import ConfigError, RT2Config, default_config_path, load_config

__all__ = ["SimSettings", "default_sim_config_path", "load_sim_settings", "flatten"]


def default_sim_config_path() -> Path:
    """``config/sim.yaml`` next to the ``config/rt2.yaml`` in use."""
    return default_config_path().parent / "sim.yaml"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@dataclasses.dataclass
class SimSettings:
    """The sections of ``config/sim.yaml``.

    Attributes:
        path: the file.
        rt2_overrides: dotted rt2 parameters (e.g. ``{"control.max_steps": 60}``).
        sim: dotted ``rt2_sim`` parameters.
        servo: dotted ``servo_node`` parameters (``moveit_servo.`` prefix removed).
    """

    path: Path
    rt2_overrides: dict[str, Any]
    sim: dict[str, Any]
    servo: dict[str, Any]

    def rt2_config(self, rt2_path: str | Path | None = None, extra: dict[str, Any] | None = None) -> RT2Config:
        """``config/rt2.yaml`` (or ``rt2_path``) with this file's overrides and ``extra`` on top.

        Raises:
            ConfigError: invalid values.
        """
        return load_config(rt2_path, {**self.rt2_overrides, **(extra or {})})


def _section(data: dict, name: str) -> dict:
    for key in (name, "/" + name):
        sec = data.get(key)
        if isinstance(sec, dict):
            return sec.get("ros__parameters") or {}
    return {}


def load_sim_settings(path: str | Path | None = None) -> SimSettings:
    """Read ``config/sim.yaml``.

    Raises:
        ConfigError: unreadable file or not a mapping.
    """
    path = Path(path) if path is not None else default_sim_config_path()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    servo = {k.removeprefix("moveit_servo."): v for k, v in flatten(_section(data, "servo_node")).items()}
    return SimSettings(path, flatten(_section(data, "rt2_node")), flatten(_section(data, "rt2_sim")), servo)

"""Wiring: build the policy backend an :class:`~rt2_ros.config.RT2Config` names.

The only module that knows every backend. Backends get their codec and settings
passed in and never import this module (import-linter keeps it so). ROS-free and
torch-free: a backend's heavy imports happen only when it is chosen.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from rt2_ros.codecs import make_codec
from rt2_ros.config import RT2Config
from rt2_ros.policies.base import Policy

__all__ = ["make_policy", "load_callable"]


def load_callable(spec: str) -> Any:
    """Import ``MODULE:CALLABLE`` (the ``rt2-ros serve --policy`` and ``policy.backend`` syntax).

    ``CALLABLE`` may be dotted (``module:Class.from_config``).

    Raises:
        ValueError: not of the form ``MODULE:CALLABLE``, the module cannot be imported,
            or it has no such attribute (the message says which).
    """
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"expected MODULE:CALLABLE, got {spec!r}")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"cannot import {module!r} for {spec!r}: {e}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{module!r} has no attribute {attr!r} ({spec!r})") from None
    if not callable(obj):
        raise ValueError(f"{spec!r} is not callable")
    return obj


def make_policy(cfg: RT2Config, **kwargs: Any) -> Policy:
    """The policy backend named by ``policy.backend``.

    * ``local``: the transformers backend on ``policy.model_path``; with ``policy.process:
      child`` (the default) in a supervised ``rt2-ros serve`` child process over a Unix
      socket (:class:`rt2_ros.remote.child.ChildPolicy`: this process imports no torch),
      with ``in_process`` in this process (imports torch).
    * ``remote``: the client of ``rt2-ros serve`` at ``policy.server_url``; the API key is
      read from the environment variable named by ``policy.api_key_env``.
    * ``MODULE:CALLABLE``: ``CALLABLE(cfg, **kwargs)`` returns the policy (the simulator's
      scripted expert is ``rt2_ros.sim.expert:make_policy``).

    Args:
        cfg: the whole configuration.
        **kwargs: backend-specific overrides (constructor keywords).

    Raises:
        ValueError: bad backend name or backend settings.
        rt2_ros.policies.base.PolicyError: the backend failed to start (e.g. a model
            that does not load: ``ModelLoadError``).
    """
    backend, a, p = cfg.policy.backend, cfg.action, cfg.policy
    if backend == "local" and p.process == "child":
        from rt2_ros.remote.child import ChildPolicy

        return ChildPolicy(cfg, **kwargs)
    if backend == "local":
        from rt2_ros.policies.transformers_policy import TransformersPolicy

        args: dict[str, Any] = {
            "action_format": a.format,
            "prompt": p.prompt,
            "dtype": p.dtype,
            "device": p.device,
            "num_threads": p.num_threads,
            "rt2_codec": make_codec(a) if a.format != "openvla" else None,
            "horizon": a.horizon,
            "action_token_pattern": a.token_pattern or None,
            "openvla_vocab_size": a.openvla_vocab_size if a.format == "openvla" else None,
            "unnorm_key": a.unnorm_key or None,
            "statistics_path": a.statistics_path or None,
            "trust_remote_code": p.trust_remote_code,
        }
        args.update(kwargs)
        return TransformersPolicy.from_pretrained(args.pop("model_path", p.model_path), **args)
    if backend == "remote":
        from rt2_ros.remote.client import RemotePolicy

        key = (os.environ.get(p.api_key_env) or "").strip() if p.api_key_env else ""
        kwargs.setdefault("api_key", key or None)
        kwargs.setdefault("timeout_s", p.timeout_s)
        return RemotePolicy(p.server_url, a, **kwargs)
    return load_callable(backend)(cfg, **kwargs)

"""Settings of ``rt2-ros serve``: one validated object for the plain server and the Ray app.

``rt2-ros serve`` builds it from its command line (:mod:`rt2_ros.serving.cli`), Ray's
``serve run rt2_ros.serving.ray_app:build key=value`` from its key/value pairs; pydantic
converts and checks both the same way. Also here: reading the API key and building the
served policy, which every replica does in its own process.
"""

from __future__ import annotations

import logging
import os
import stat
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["ServeSettings", "read_api_key", "build_policy", "build_policy_and_config"]

log = logging.getLogger("rt2_ros.server")


class ServeSettings(BaseModel):
    """Every ``rt2-ros serve`` option, by its long name with ``_`` (see ``rt2-ros serve -h``).

    Raises (on construction):
        ValueError: unknown names, wrong types, or values out of range (pydantic's
            message, naming each field).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(None, description="checkpoint directory for the local transformers backend")
    policy: str | None = Field(None, description="MODULE:CALLABLE returning the Policy to serve")
    config: str | None = Field(None, description="parameters file (default: config/rt2.yaml)")
    device: str | None = Field(None, description="override policy.device (cpu, cuda, cuda:N)")
    dtype: Literal["fp32", "bf16", "fp16"] | None = Field(None, description="override policy.dtype")
    host: str = Field("127.0.0.1", description="bind address")
    port: int = Field(8000, ge=0, le=65535, description="TCP port; 0 = any free port")
    unix_socket: str | None = Field(None, description="listen on this Unix socket path instead of host:port")
    stop_on_stdin_eof: bool = Field(False, description="stop when stdin closes (the parent process is gone)")
    api_key_env: str | None = Field("RT2_API_KEY", description="environment variable holding the API key")
    api_key_file: str | None = Field(None, description="file holding the API key (first line)")
    allow_unauthenticated: bool = Field(False, description="allow a non-loopback host without an API key")
    max_batch_size: int = Field(8, ge=1, description="most requests per model call (1 = no batching)")
    max_wait_ms: float = Field(5.0, ge=0.0, description="longest wait of the oldest request for a batch [ms]")
    max_queue: int = Field(256, ge=1, description="most queued requests; more get 'overloaded'")
    max_clients: int = Field(64, ge=1, description="most concurrent connections; more get HTTP 503")
    max_request_mb: float = Field(8.0, gt=0.0, description="largest request frame [MiB]")
    max_image_side: int = Field(2048, ge=1, description="largest image height/width [px]")
    idle_timeout_s: float = Field(
        60.0, gt=0.0, description="close a connection that sends no request for this long (frees its slot) [s]"
    )
    tls_cert: str | None = Field(None, description="TLS certificate chain (serves wss://)")
    tls_key: str | None = Field(None, description="TLS private key (default: in tls_cert)")
    no_warmup: bool = Field(False, description="skip the warm-up inference before listening")
    ray_replicas: int = Field(0, ge=0, description="replicas behind one address with Ray Serve (0 = plain server)")
    ray_gpus_per_replica: float = Field(0.0, ge=0.0, description="Ray: GPUs per replica")
    ray_cpus_per_replica: float = Field(1.0, ge=0.0, description="Ray: CPUs per replica")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")
    protocol: Literal["rt2", "openpi"] = Field(
        "rt2", description="rt2: this project's frames (policy.backend remote); openpi: openpi's WebsocketClientPolicy"
    )
    openpi_image_key: list[str] | None = Field(
        None, description="openpi: observation keys tried for the image, in order (default: LIBERO's, DROID's, ...)"
    )

    @model_validator(mode="after")
    def _check(self) -> "ServeSettings":
        if (self.model is None) == (self.policy is None):
            raise ValueError("give exactly one of model (a checkpoint directory) and policy (MODULE:CALLABLE)")
        if self.tls_key and not self.tls_cert:
            raise ValueError("tls_key needs tls_cert")
        if self.protocol == "openpi" and (self.ray_replicas > 0 or self.unix_socket):
            raise ValueError("protocol openpi is served by the plain server on host:port (not Ray, not a Unix socket)")
        if self.openpi_image_key is not None and self.protocol != "openpi":
            raise ValueError("openpi_image_key needs protocol openpi")
        return self

    @property
    def max_request_bytes(self) -> int:
        """``max_request_mb`` in bytes."""
        return int(self.max_request_mb * 2**20)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> "ServeSettings":
        """Build from option names (``-`` or ``_``) to values; argparse's extra keys are ignored.

        Raises:
            ValueError: the first line says which option is wrong and why.
        """
        known = {k.replace("-", "_"): v for k, v in values.items()}
        known = {k: v for k, v in known.items() if k in cls.model_fields}
        try:
            return cls(**known)
        except ValidationError as e:
            parts = [f"{'.'.join(map(str, err['loc'])) or 'settings'}: {err['msg']}" for err in e.errors()]
            raise ValueError("invalid rt2-ros serve settings: " + "; ".join(parts)) from None


def read_api_key(env_name: str | None, key_file: str | None) -> str | None:
    """The API key from ``key_file`` (first line, stripped) or else ``$env_name``.

    Returns:
        The key, or None when neither is set.

    Raises:
        ValueError: the file is unreadable or empty.
    """
    if key_file:
        try:
            mode = os.stat(key_file).st_mode
            with open(key_file) as f:
                key = f.readline().strip()
        except OSError as e:
            raise ValueError(f"cannot read --api-key-file: {e}") from None
        if not key:
            raise ValueError(f"--api-key-file {key_file} is empty")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("API key file %s is readable by other users (chmod 600 it)", key_file)
        return key
    key = os.environ.get(env_name) if env_name else None
    return (key.strip() or None) if key else None


def build_policy(settings: ServeSettings):
    """The served policy (:func:`build_policy_and_config` without the configuration)."""
    return build_policy_and_config(settings)[0]


def build_policy_and_config(settings: ServeSettings):
    """``(policy, RT2Config)``: the served policy: the local transformers backend on ``model``, or ``policy``'s callable
    (``CALLABLE(cfg: RT2Config)``), both through :func:`rt2_ros.factory.make_policy`.

    Raises:
        ValueError: bad config or settings (:class:`rt2_ros.config.ConfigError` is one).
        PolicyError: the model does not load.
    """
    from rt2_ros.config import MODEL_SETTINGS_FILE, load_config, with_model_settings
    from rt2_ros.factory import make_policy

    # The server runs the model in its own process, always (never a child of its own).
    overrides: dict[str, Any] = {
        "policy.backend": "local" if settings.model else settings.policy,
        "policy.process": "in_process",
    }
    if settings.model:
        overrides["policy.model_path"] = settings.model
    if settings.device:
        overrides["policy.device"] = settings.device
    if settings.dtype:
        overrides["policy.dtype"] = settings.dtype
    cfg, from_model = with_model_settings(load_config(settings.config, overrides))
    if from_model:
        log.info("from the model's %s: %s", MODEL_SETTINGS_FILE, ", ".join(from_model))
    return make_policy(cfg), cfg

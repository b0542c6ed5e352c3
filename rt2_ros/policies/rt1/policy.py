"""The RT-1 backend: a :class:`~rt2_ros.policies.base.Policy` over an ``rt1`` model directory.

``policy.model_path: DIR`` with ``config.json`` of ``model_type: rt1`` is all the node, the
policy child, ``rt2-ros serve``, ``rt2-ros predict`` and ``rt2-ros demo --model`` need
(:func:`rt2_ros.factory.make_policy` picks this backend from the config's ``model_type``;
the codec comes from the directory's ``rt2_ros_policy.yaml``).

History (RT-1 section 3.3: 6 frames): each step's frame is encoded once (FiLM-EfficientNet +
TokenLearner, cached), the last ``history`` frames' tokens go through the Transformer, and
the action tokens are read at the newest frame. The history is cleared by :meth:`RT1Policy.reset`
(in-process loops call it per episode), by a new instruction, and after ``idle_reset_s``
without an inference (the policy child and ``rt2-ros serve`` see no reset message: a new
episode starts after the previous one stopped asking). The first frames of an episode are
placed from position 0 and attend only to what was seen (RT-1's zero-filled buffer read at
``seq_idx``). In a batch, observations with different instructions are separate streams
(several robots served by one ``rt2-ros serve``); a batch of one is one robot, so a new
instruction there drops the other streams.

Output: the codec's tokens ``terminate x y z roll pitch yaw gripper`` as RT-2 text, decoded
by the project's codec (:func:`~rt2_ros.policies.base.result_from_output`), so bounds,
terminate handling, the output constraint and ``/rt2/action`` are shared with the VLM
backends.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rt2_ros.action_tokenizer import ActionCodec
from rt2_ros.policies.base import (
    Observation,
    Policy,
    PolicyError,
    PolicyMetadata,
    PolicyResult,
    check_image,
    result_from_output,
)

__all__ = ["RT1Policy", "RT1LoadError", "is_rt1_dir", "write_policy_settings", "WEIGHTS_FILE"]

WEIGHTS_FILE = "model.safetensors"


class RT1LoadError(PolicyError):
    """An rt1 model directory that cannot be used; the message names the file or field."""


def is_rt1_dir(path: str | os.PathLike) -> bool:
    """True when ``path/config.json`` says ``model_type: rt1`` (torch-free; False if unreadable)."""
    try:
        return json.loads((Path(path) / "config.json").read_text()).get("model_type") == "rt1"
    except (OSError, ValueError, AttributeError):
        return False


def write_policy_settings(path: str | os.PathLike, cfg: Any) -> None:
    """``rt2_ros_policy.yaml`` (the action section the model was trained with), as ``rt2-ros train``."""
    import yaml

    from rt2_ros.config import MODEL_SETTINGS_FILE

    action = cfg.action.model_dump()
    params = {"/**": {"ros__parameters": {"action": action, "policy": {"prompt": cfg.policy.prompt}}}}
    text = (
        "# The action codec this model was trained with (rt2-ros train --arch rt1).\n"
        "# The node and rt2-ros serve apply it when policy.model_path is this directory.\n" + yaml.safe_dump(params)
    )
    (Path(path) / MODEL_SETTINGS_FILE).write_text(text)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _Stream:
    def __init__(self, history: int):
        self.tokens: deque = deque(maxlen=history)
        self.last_s = time.monotonic()


class RT1Policy(Policy):
    """RT-1 inference with a frame history. Build with :meth:`from_pretrained`."""

    def __init__(self, model: Any, codec: ActionCodec, model_id: str, idle_reset_s: float = 1.0, device: str = "cpu"):
        import torch

        self.torch = torch
        self.model, self.codec, self.device = model, codec, device
        self.cfg = model.config
        self.idle_reset_s = float(idle_reset_s)
        self._streams: dict[str, _Stream] = {}
        self._text_cache: dict[str, Any] = {}
        self._text_encoder: Any = None
        self.metadata = PolicyMetadata(
            action_format="rt2",
            model_id=model_id,
            action_dim=8,
            bounds={"low": list(self.cfg.action_low), "high": list(self.cfg.action_high)},
            extra={
                "arch": "rt1",
                "history": self.cfg.history,
                "bins": self.cfg.bins,
                "image_size": self.cfg.image_size,
                "parameters": int(sum(p.numel() for p in model.parameters())),
            },
        )

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        model_path: str | os.PathLike,
        codec: ActionCodec,
        num_threads: int = 0,
        device: str = "cpu",
        idle_reset_s: float = 1.0,
        **_: Any,
    ) -> "RT1Policy":
        """Load and check an rt1 directory (``config.json``, ``model.safetensors``).

        Args:
            model_path: the directory.
            codec: the robot's RT-2 codec (``action.*``); its bins and bounds must be the
                model's.
            num_threads: torch CPU threads (0 = leave).
            idle_reset_s: clear the history after this long without an inference, s.

        Raises:
            RT1LoadError: missing or unreadable directory/file (named), an unknown or bad
                config field (named), weights that do not fit the config, or a codec whose
                bins/bounds/format disagree with the model's (``action.*`` named).
        """
        import torch

        from rt2_ros.policies.rt1.configuration_rt1 import RT1Config, RT1ConfigError
        from rt2_ros.policies.rt1.modeling_rt1 import RT1Model

        path = Path(model_path).expanduser()
        if not path.is_dir():
            raise RT1LoadError(f"rt1 model directory {path} does not exist")
        cfg_file, weights = path / "config.json", path / WEIGHTS_FILE
        for f in (cfg_file, weights):
            if not f.is_file():
                raise RT1LoadError(f"rt1 model directory {path}: {f.name} is missing")
        try:
            raw = json.loads(cfg_file.read_text())
        except (OSError, ValueError) as e:
            raise RT1LoadError(f"{cfg_file}: not valid JSON ({e})") from None
        if raw.get("model_type") != "rt1":
            raise RT1LoadError(f"{cfg_file}: model_type is {raw.get('model_type')!r}, not 'rt1'")
        try:
            config = RT1Config(**{k: v for k, v in raw.items() if k != "model_type"})
        except (RT1ConfigError, TypeError, ValueError) as e:
            raise RT1LoadError(f"{cfg_file}: {e}") from None
        if getattr(codec, "format", None) != "rt2" or getattr(codec, "horizon", 1) != 1:
            raise RT1LoadError(
                "rt1 models answer in RT-2 actions, one per step: set action.format rt2, action.horizon 1"
            )
        if codec.bins != config.bins:
            raise RT1LoadError(
                f"action.bins is {codec.bins} but the rt1 model in {path} was trained with {config.bins} bins "
                f"(config.json 'bins'); use its rt2_ros_policy.yaml or set action.bins: {config.bins}"
            )
        low, high = np.asarray(codec.bounds.low, float), np.asarray(codec.bounds.high, float)
        if not (np.allclose(low, config.action_low) and np.allclose(high, config.action_high)):
            raise RT1LoadError(
                f"action.low/high {low.tolist()} / {high.tolist()} differ from the bounds the rt1 model in {path} "
                f"was trained with ({config.action_low} / {config.action_high}; config.json 'action_low/high')"
            )
        if (codec.terminate_token, codec.continue_token) not in ((0, 1), (1, 0)):
            raise RT1LoadError(
                "rt1 predicts the terminate field as 0/1: action terminate/continue tokens must be 0 and 1"
            )
        if num_threads:
            torch.set_num_threads(int(num_threads))
        try:
            from safetensors.torch import load_file

            state = load_file(str(weights))
        except Exception as e:  # safetensors raises its own error types for corrupt files
            raise RT1LoadError(f"{weights}: cannot be read as safetensors ({type(e).__name__}: {e})") from None
        model = RT1Model(config)
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise RT1LoadError(f"{weights} does not fit config.json: {str(e).splitlines()[-1].strip()}") from None
        if missing or unexpected:
            raise RT1LoadError(
                f"{weights} does not fit config.json: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
            )
        model.eval().to(device)
        pol = cls(model, codec, str(path), idle_reset_s=idle_reset_s, device=device)
        try:
            pol.infer(np.zeros((config.image_size, config.image_size, 3), np.uint8), "warm up")
        except Exception as e:  # noqa: BLE001 - any failure here means the model cannot run
            raise RT1LoadError(f"rt1 model in {path} failed its warm-up inference: {e}") from None
        pol.reset()
        return pol

    # -- inference -------------------------------------------------------------------------
    def reset(self) -> None:
        """A new episode: forget every stream's history."""
        self._streams.clear()

    def _text(self, instruction: str) -> Any:
        t = self._text_cache.get(instruction)
        if t is None:
            torch = self.torch
            from rt2_ros.policies.rt1.modeling_rt1 import tokenize_words

            if self.cfg.text_encoder == "learned":
                ids = torch.tensor([tokenize_words(instruction, self.cfg.vocab)], device=self.device)
                with torch.no_grad():
                    t = self.model.embed_text(text_ids=ids)[0]
            else:
                from rt2_ros.policies.rt1.text_encoder import MiniLMEncoder

                if self._text_encoder is None:
                    self._text_encoder = MiniLMEncoder()
                t = torch.from_numpy(self._text_encoder.encode([instruction])[0]).to(self.device)
            if len(self._text_cache) > 256:
                self._text_cache.clear()
            self._text_cache[instruction] = t
        return t

    def _stream(self, instruction: str, alone: bool) -> _Stream:
        now = time.monotonic()
        for key in [k for k, s in self._streams.items() if now - s.last_s > self.idle_reset_s]:
            del self._streams[key]
        if alone:
            for key in [k for k in self._streams if k != instruction]:
                del self._streams[key]
        s = self._streams.get(instruction)
        if s is None:
            s = self._streams[instruction] = _Stream(self.cfg.history)
        s.last_s = now
        return s

    def infer_batch(self, observations: Sequence[Observation]) -> list[PolicyResult]:
        """One action per observation (see the module docstring for the history).

        Raises:
            ValueError: a bad image (:func:`check_image`) or an empty instruction.
            PolicyError: the model failed.
        """
        torch = self.torch
        from rt2_ros.policies.rt1.processing import resize_uint8

        for o in observations:
            check_image(o.image)
            if not isinstance(o.instruction, str) or not o.instruction.strip():
                raise ValueError("instruction must be a non-empty string")
        t0 = time.perf_counter()
        s = self.cfg.image_size
        frames = np.stack([resize_uint8(o.image[None], s)[0] for o in observations])
        pix = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255).to(self.device)
        t1 = time.perf_counter()
        try:
            with torch.no_grad():
                cond = torch.stack([self._text(o.instruction) for o in observations])
                tok = self.model.frame_tokens(pix, cond)
                rows = []
                for k, o in enumerate(observations):
                    st = self._stream(o.instruction, alone=len(observations) == 1)
                    st.tokens.append(tok[k])
                    logits = self.model.decode(torch.stack(list(st.tokens))[None])[0, -1]
                    term = int(logits[0, :2].argmax())
                    rest = logits[1:].argmax(-1).tolist()
                    rows.append([term, *rest])
        except Exception as e:  # noqa: BLE001
            raise PolicyError(f"rt1 inference failed: {e}") from e
        t2 = time.perf_counter()
        per = (t2 - t1) * 1e3 / len(observations)
        out = []
        for r in rows:
            text = " ".join(str(int(v)) for v in r)
            timings = {"preprocess": (t1 - t0) * 1e3 / len(observations), "model": per}
            td = time.perf_counter()
            res = result_from_output(self.codec, text, tuple(int(v) for v in r), timings)
            res.timings_ms["decode"] = (time.perf_counter() - td) * 1e3
            out.append(res)
        return out

    def close(self) -> None:
        self._streams.clear()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file."""
    return _sha256(Path(path))

"""A deterministic policy for the remote-inference tests (server, client, benchmark).

Its answer is a function of the image, so a test can tell whose action a client got:
the RT-2 text is ``"1 <image[0,0,0]> <image[0,0,1]> 128 128 128 128 <image[0,0,2]>"``,
decoded with the project's real codec. It records the size of every ``infer_batch``
call, sleeps ``delay_s`` per call (``slow_s`` when the instruction contains
"slow"), and raises for instructions containing "explode" (a model failure).
Serve it from a subprocess with ``rt2-ros serve --policy remote_fakes:make_image_policy``
(with this directory on ``PYTHONPATH``).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Sequence

import numpy as np

from rt2_ros.action_tokenizer import make_codec
from rt2_ros.config import RT2Config
from rt2_ros.policies.base import (
    Observation,
    Policy,
    PolicyError,
    PolicyMetadata,
    PolicyResult,
    check_image,
    result_from_output,
)


def image_text(image: np.ndarray) -> str:
    """The text :class:`ImagePolicy` answers for ``image``."""
    r, g, b = (int(v) for v in image[0, 0])
    return f"1 {r} {g} 128 128 128 128 {b}"


def image_with(r: int, g: int, b: int = 0, size: int = 16) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)
    img[0, 0] = (r, g, b)
    return img


class ImagePolicy(Policy):
    """See the module docstring. ``bounds`` overrides what the metadata reports."""

    def __init__(self, cfg: RT2Config, delay_s: float = 0.0, slow_s: float = 1.0, bounds=None):
        self.codec = make_codec(cfg.action)
        self.delay_s = delay_s
        self.slow_s = slow_s
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()
        b = bounds or {"low": list(cfg.action.low), "high": list(cfg.action.high)}
        self.metadata = PolicyMetadata(
            action_format="rt2", model_id="image-policy", action_dim=8, bounds=b, extra={"bins": cfg.action.bins}
        )

    def infer_batch(self, observations: Sequence[Observation]) -> list[PolicyResult]:
        with self._lock:
            self.batch_sizes.append(len(observations))
        t0 = time.perf_counter()
        for obs in observations:
            check_image(obs.image)
            if "explode" in obs.instruction:
                raise PolicyError("model exploded on purpose")
        delay = self.slow_s if any("slow" in o.instruction for o in observations) else self.delay_s
        if delay:
            time.sleep(delay)
        model_ms = (time.perf_counter() - t0) * 1e3
        out = []
        for obs in observations:
            text = image_text(obs.image)
            timings = {"preprocess": 0.0, "model": model_ms, "decode": 0.0}
            out.append(result_from_output(self.codec, text, (), timings))
        return out


def make_image_policy(cfg: RT2Config) -> ImagePolicy:
    """Factory for ``rt2-ros serve --policy remote_fakes:make_image_policy``
    (model time per call from ``$RT2_FAKE_DELAY_S``, default 0.02 s)."""
    return ImagePolicy(cfg, delay_s=float(os.environ.get("RT2_FAKE_DELAY_S", "0.02")))

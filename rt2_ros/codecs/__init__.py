"""Action codec: model output text / token ids <-> end-effector actions.

Four formats are supported, all from ``shared/docs/rt2-reference.md``; each decodes a
chunk of ``horizon`` actions per model output (1 = one action per inference, as RT-2
and OpenVLA were published):

* **RT-2** (Brohan et al. 2023, arXiv:2307.15818, section 3.2): the model answers
  8 integers joined by spaces, ``terminate dx dy dz drx dry drz gripper``; every
  continuous dimension is discretised uniformly into ``bins`` (256) bins over
  per-dimension bounds. The chain-of-thought form (section 4.4) is
  ``Plan: <text>. Action: <8 ints>``.
* **OpenVLA** (openvla/openvla, ``prismatic/vla/action_tokenizer.py`` and
  ``prismatic/extern/hf/modeling_prismatic.py::predict_action``): 7 token ids at
  the tail of the vocabulary, decoded to 255 bin centres on [-1, 1] and then
  un-normalised with per-dataset q01/q99 statistics.
* **Integer text** (:class:`IntegerTextCodec`, VLA-0, NVlabs/vla0
  ``rv_train/models/qwen/model.py``: ``get_text_action`` / ``get_action_from_text_action``):
  ``horizon x 7`` integers in ``[0, bins]`` as plain text, ``a = k / bins * (max - min) + min``.
* **FAST** (:class:`FASTActionCodec`, Pertsch et al. 2025, physical-intelligence/fast
  ``processing_action_tokenizer.py``; openpi ``models/tokenizer.py`` for the model-id
  mapping): BPE tokens -> string -> quantised DCT coefficients -> inverse DCT -> chunk.

All implement one :class:`ActionCodec` interface (``decode_output`` from text and/or
token ids, ``action_dim``, ``horizon``, bounds), built by :func:`make_codec` from the
``action`` section of the configuration. ``decode_output`` returns a tuple of actions
(an action chunk of ``horizon`` actions, in execution order).

One module per format (:mod:`rt2_ros.codecs.rt2`, :mod:`rt2_ros.codecs.openvla`,
:mod:`rt2_ros.codecs.int_text`, :mod:`rt2_ros.codecs.fast`); the shared types live in
:mod:`rt2_ros.codecs.base`. A new format is a new module plus one branch in :func:`make_codec`.

Malformed output of any kind raises :class:`ActionDecodeError` and never yields a
partial action (nor a partial chunk: a chunk with one bad step is rejected whole).
This package imports numpy and scipy (FAST's inverse DCT); FAST also needs the
``tokenizers`` library (imported when a FAST codec is built). No rclpy, no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from rt2_ros.codecs.base import (
    ACTION_FORMATS,
    DIM_NAMES,
    Action,
    ActionBounds,
    ActionCodec,
    ActionDecodeError,
    split_chain_of_thought,
)
from rt2_ros.codecs.fast import FASTActionCodec, _check_fast_processor_config, load_fast_tokenizer
from rt2_ros.codecs.int_text import IntegerTextCodec
from rt2_ros.codecs.openvla import OpenVLAActionTokenizer, UnnormStats, select_unnorm_stats
from rt2_ros.codecs.rt2 import RT2ActionTokenizer

if TYPE_CHECKING:  # the config schema imports nothing from here; no cycle at run time
    from rt2_ros.config import ActionConfig

__all__ = [
    "ActionDecodeError",
    "Action",
    "ActionBounds",
    "ActionCodec",
    "make_codec",
    "RT2ActionTokenizer",
    "OpenVLAActionTokenizer",
    "IntegerTextCodec",
    "FASTActionCodec",
    "load_fast_tokenizer",
    "ACTION_FORMATS",
    "UnnormStats",
    "select_unnorm_stats",
    "split_chain_of_thought",
    "DIM_NAMES",
]


def make_codec(
    action: "ActionConfig",
    *,
    statistics: Mapping[str, Any] | UnnormStats | None = None,
    vocab_size: int | None = None,
    fast_tokenizer: Any = None,
) -> ActionCodec:
    """The codec described by the ``action`` section of the configuration.

    Every format decodes ``action.horizon`` actions per model output.

    Args:
        action: the ``action`` section (:class:`rt2_ros.config.ActionConfig`).
        statistics: OpenVLA only: a ``dataset_statistics.json``-style dict (the entry
            is chosen by ``action.unnorm_key``) or an :class:`UnnormStats`; None
            decodes to normalised [-1, 1] values.
        vocab_size: OpenVLA only: un-padded vocabulary size; default
            ``action.openvla_vocab_size``.
        fast_tokenizer: FAST only: the BPE tokenizer; default loaded from
            ``action.fast_tokenizer_path`` (:func:`load_fast_tokenizer`).

    Raises:
        ValueError: an unknown format, statistics that do not fit, or (FAST) no
            tokenizer.
    """
    horizon = getattr(action, "horizon", 1)
    bounds = ActionBounds(np.array(action.low), np.array(action.high))
    if action.format == "rt2":
        return RT2ActionTokenizer(
            bounds,
            bins=action.bins,
            terminate_token=action.terminate_token,
            continue_token=action.continue_token,
            decode_to=action.decode_to,
            horizon=horizon,
        )
    if action.format == "openvla":
        stats = statistics
        if stats is not None and not isinstance(stats, UnnormStats):
            _, stats = select_unnorm_stats(stats, action.unnorm_key or None)
        dim = 7 if stats is None else int(stats.q01.shape[0])
        return OpenVLAActionTokenizer(
            int(vocab_size or action.openvla_vocab_size), stats, action_dim=dim, horizon=horizon
        )
    if action.format == "int_text":
        return IntegerTextCodec(bounds, bins=action.bins, horizon=horizon)
    if action.format == "fast":
        tok = fast_tokenizer
        if tok is None:
            tok = load_fast_tokenizer(action.fast_tokenizer_path)
            _check_fast_processor_config(action, horizon)
        return FASTActionCodec(
            tok,
            bounds,
            horizon=horizon,
            scale=action.fast_scale,
            min_token=action.fast_min_token,
            vocab_size=action.fast_vocab_size,
            id_offset=action.fast_id_offset,
            id_reversed=action.fast_id_reversed,
        )
    raise ValueError(f"unknown action format {action.format!r} ({' | '.join(ACTION_FORMATS)})")

"""Deprecated import path: the action codecs live in :mod:`rt2_ros.codecs`.

This module re-exports the public names of :mod:`rt2_ros.codecs` (one module per format:
:mod:`rt2_ros.codecs.rt2`, :mod:`rt2_ros.codecs.openvla`, :mod:`rt2_ros.codecs.int_text`,
:mod:`rt2_ros.codecs.fast`; shared types in :mod:`rt2_ros.codecs.base`) so that users' code
written against ``rt2_ros.action_tokenizer`` keeps working. New code imports from
``rt2_ros.codecs``. It emits no run-time warning (yet): code on branches made before the
split still imports from here, and the names are the same objects either way.
"""

from __future__ import annotations

from rt2_ros.codecs import (
    ACTION_FORMATS,
    DIM_NAMES,
    Action,
    ActionBounds,
    ActionCodec,
    ActionDecodeError,
    FASTActionCodec,
    IntegerTextCodec,
    OpenVLAActionTokenizer,
    RT2ActionTokenizer,
    UnnormStats,
    load_fast_tokenizer,
    make_codec,
    select_unnorm_stats,
    split_chain_of_thought,
)
from rt2_ros.codecs.base import MAX_HORIZON, MAX_TEXT_CHARS

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
    "MAX_HORIZON",
    "MAX_TEXT_CHARS",
]

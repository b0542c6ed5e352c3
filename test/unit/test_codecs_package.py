"""``rt2_ros.codecs`` (one module per action format) and the old ``rt2_ros.action_tokenizer``
import path, which users' code still imports from."""

import numpy as np

import rt2_ros.action_tokenizer as old
import rt2_ros.codecs as codecs
from rt2_ros.config import ActionConfig


def test_old_import_path_gives_the_same_objects():
    for name in old.__all__:
        assert getattr(old, name) is getattr(codecs, name, None) or getattr(old, name) is getattr(codecs.base, name), (
            name
        )
    assert set(codecs.__all__) <= set(old.__all__)


def test_each_format_lives_in_its_own_module():
    where = {
        "RT2ActionTokenizer": "rt2_ros.codecs.rt2",
        "OpenVLAActionTokenizer": "rt2_ros.codecs.openvla",
        "IntegerTextCodec": "rt2_ros.codecs.int_text",
        "FASTActionCodec": "rt2_ros.codecs.fast",
        "ActionCodec": "rt2_ros.codecs.base",
        "Action": "rt2_ros.codecs.base",
    }
    for name, module in where.items():
        assert getattr(codecs, name).__module__ == module


def test_a_codec_built_through_the_old_path_decodes_as_the_new():
    cfg = ActionConfig()
    a = old.make_codec(cfg).decode_output("1 128 128 128 128 128 128 255")
    b = codecs.make_codec(cfg).decode_output("1 128 128 128 128 128 128 255")
    assert np.array_equal(a[0].vector, b[0].vector) and a[0].terminate is b[0].terminate is False

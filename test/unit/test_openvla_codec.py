"""OpenVLA codec: vectors computed from the upstream formula, not from our encoder.

Upstream: openvla/openvla prismatic/vla/action_tokenizer.py and
prismatic/extern/hf/modeling_prismatic.py::predict_action.
"""

import numpy as np
import pytest

from rt2_ros.codecs import ActionDecodeError, OpenVLAActionTokenizer, UnnormStats, select_unnorm_stats

VOCAB = 32000  # Llama-2 tokenizer of openvla-7b (text vocab 32064 = 32000 + pad_to_multiple_of 64)

# A dataset_statistics.json-shaped dict (values shaped like bridge_orig's).
STATS = {
    "bridge_orig": {
        "action": {
            "q01": [-0.029, -0.041, -0.026, -0.080, -0.092, -0.126, 0.0],
            "q99": [0.029, 0.041, 0.040, 0.082, 0.079, 0.116, 1.0],
            "mask": [True, True, True, True, True, True, False],
            "mean": [0.0] * 7,
        },
        "num_trajectories": 60064,
    },
    "fractal20220817_data": {"action": {"q01": [-0.22] * 7, "q99": [0.22] * 7}},
}


def upstream_predict_action(ids, vocab_size, q01, q99, mask):
    """predict_action's post-processing, written out from the upstream file."""
    bins = np.linspace(-1, 1, 256)
    bin_centers = (bins[:-1] + bins[1:]) / 2.0
    discretized = vocab_size - np.asarray(ids)
    discretized = np.clip(discretized - 1, a_min=0, a_max=bin_centers.shape[0] - 1)
    normalized = bin_centers[discretized]
    q01, q99, mask = np.asarray(q01), np.asarray(q99), np.asarray(mask)
    return np.where(mask, 0.5 * (normalized + 1) * (q99 - q01) + q01, normalized)


def test_hand_computed_bin_centres():
    tok = OpenVLAActionTokenizer(VOCAB)
    out = tok.decode_normalized([31999, 31744, 31745, 31872, 31871, 31999, 31744])
    # id 31999 -> index 0 -> centre -1 + 1/255; 31744 -> index 255, clipped to 254 -> 1 - 1/255
    assert out[0] == pytest.approx(-0.996078431372549)
    assert out[1] == pytest.approx(0.996078431372549)
    assert out[2] == pytest.approx(0.996078431372549)  # index 254
    assert out[3] == pytest.approx(-1 + (127 + 0.5) * 2 / 255)  # index 127
    assert out[4] == pytest.approx(-1 + (128 + 0.5) * 2 / 255)  # index 128


@pytest.mark.parametrize("seed", range(5))
def test_decode_with_unnorm_matches_upstream_formula(seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(VOCAB - 256, VOCAB, size=7)
    key, stats = select_unnorm_stats(STATS, "bridge_orig")
    assert key == "bridge_orig"
    a = OpenVLAActionTokenizer(VOCAB, stats).decode(ids)
    s = STATS["bridge_orig"]["action"]
    np.testing.assert_allclose(a.vector, upstream_predict_action(ids, VOCAB, s["q01"], s["q99"], s["mask"]))
    assert a.terminate is False  # OpenVLA has no done token (openvla issue #45)
    assert a.tokens == tuple(int(i) for i in ids)


def test_mask_defaults_to_all_true_as_upstream():
    _, stats = select_unnorm_stats(STATS, "fractal20220817_data")
    assert stats.mask.all()
    ids = [VOCAB - 1] * 7
    a = OpenVLAActionTokenizer(VOCAB, stats).decode(ids)
    np.testing.assert_allclose(a.vector, upstream_predict_action(ids, VOCAB, [-0.22] * 7, [0.22] * 7, [True] * 7))


def test_encode_is_upstream_digitize():
    tok = OpenVLAActionTokenizer(VOCAB)
    a = np.array([-1.0, -0.5, 0.0, 0.3, 0.999, 1.0, 2.0])
    bins = np.linspace(-1, 1, 256)
    np.testing.assert_array_equal(tok.encode_normalized(a), VOCAB - np.digitize(np.clip(a, -1, 1), bins))


def test_unnorm_key_selection_errors():
    with pytest.raises(ValueError, match="several datasets"):
        select_unnorm_stats(STATS, None)
    with pytest.raises(ValueError, match="not in the model's statistics.*bridge_orig"):
        select_unnorm_stats(STATS, "libero_spatial")
    with pytest.raises(ValueError, match="empty"):
        select_unnorm_stats({}, None)
    key, _ = select_unnorm_stats({"only": STATS["bridge_orig"]}, "")
    assert key == "only"
    with pytest.raises(ValueError, match="7 values"):
        UnnormStats.from_dict({"q01": [0.0] * 6, "q99": [1.0] * 6})


@pytest.mark.parametrize(
    "ids, match",
    [
        ([31999] * 6, "expected 7"),
        ([31999] * 8, "expected 7"),
        ([31999] * 6 + [100], "not action tokens"),
        ([31999] * 6 + [32000], "not action tokens"),
        ([31999.0] * 7, "integers"),
    ],
)
def test_bad_ids_rejected(ids, match):
    with pytest.raises(ActionDecodeError, match=match):
        OpenVLAActionTokenizer(VOCAB).decode(ids)


def test_decode_text_for_cli():
    a = OpenVLAActionTokenizer(VOCAB).decode_text("31999 31999 31999 31999 31999 31999 31744")
    assert a.gripper == pytest.approx(0.996078431372549)
    with pytest.raises(ActionDecodeError):
        OpenVLAActionTokenizer(VOCAB).decode_text("31999 abc")

"""Message conversions and RViz builders of the rt2 node (no DDS needed)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from ros_helpers import make_image_msg
from sensor_msgs.msg import CompressedImage
from visualization_msgs.msg import Marker

from rt2_ros.action_tokenizer import make_codec
from rt2_ros.config import RT2Config
from rt2_ros.controller import StepOutcome
from rt2_ros.episode import EndReason, EpisodeState, Transition
from rt2_ros.motion import Twist
from rt2_ros.overlay import MarkerAnchor, arrow_endpoints, draw_overlay, status_lines
from rt2_ros.policies.base import PolicyResult
from rt2_ros.ros.conversions import (
    MAX_IMAGE_PIXELS,
    compressed_msg_to_rgb,
    image_msg_to_rgb,
    outcome_to_action_msg,
    quaternion_to_matrix,
    rgb_to_image_msg,
    s_to_stamp,
    stamp_to_s,
    transition_to_episode_msg,
    twist_to_msg,
)
from rt2_ros.ros.markers import make_marker_array


def _rgb(h=4, w=5, seed=1):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_rgb8_is_a_zero_copy_view():
    img = _rgb()
    msg = rgb_to_image_msg(img)
    out = image_msg_to_rgb(msg)
    assert np.array_equal(out, img) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize(
    "encoding, make",
    [
        ("bgr8", lambda rgb: rgb[:, :, ::-1]),
        ("rgba8", lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])),
        ("bgra8", lambda rgb: np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 7, np.uint8)])),
    ],
)
def test_colour_encodings_become_rgb(encoding, make):
    rgb = _rgb()
    raw = np.ascontiguousarray(make(rgb))
    msg = make_image_msg(4, 5, encoding, data=raw.tobytes())
    out = image_msg_to_rgb(msg)
    assert np.array_equal(out, rgb) and out.flags.c_contiguous and out.shape == (4, 5, 3)


def test_mono8_becomes_grey_rgb():
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5)
    out = image_msg_to_rgb(make_image_msg(4, 5, "mono8", data=grey.tobytes()))
    assert out.shape == (4, 5, 3) and np.array_equal(out[:, :, 0], grey) and np.array_equal(out[:, :, 2], grey)


def test_row_padding_is_honoured():
    rgb = _rgb(3, 5)
    padded = np.zeros((3, 20), np.uint8)  # step 20 > 15 bytes of pixels
    padded[:, :15] = rgb.reshape(3, 15)
    padded[:, 15:] = 255
    msg = make_image_msg(3, 5, "rgb8", data=padded.tobytes())
    msg.step = 20
    out = image_msg_to_rgb(msg)
    assert np.array_equal(out, rgb) and out.flags.c_contiguous


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_depth_images_are_rejected_with_a_hint(encoding):
    with pytest.raises(ValueError, match="depth"):
        image_msg_to_rgb(make_image_msg(4, 5, encoding))


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda m: setattr(m, "data", bytes(10)), "needs"),
        (lambda m: setattr(m, "step", 3), "step"),
        (lambda m: (setattr(m, "width", 0), setattr(m, "step", 0), setattr(m, "data", b"")), "no pixels"),
        (lambda m: (setattr(m, "width", MAX_IMAGE_PIXELS), setattr(m, "height", 2)), "too large"),
        (lambda m: setattr(m, "encoding", "bayer_rggb8"), "unsupported"),
    ],
)
def test_malformed_images_are_rejected(mutate, match):
    msg = make_image_msg(4, 5, "rgb8")
    mutate(msg)
    with pytest.raises(ValueError, match=match):
        image_msg_to_rgb(msg)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_compressed_images_decode_with_pillow(fmt):
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:, :16] = (200, 30, 30)
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format=fmt)
    out = compressed_msg_to_rgb(CompressedImage(format=fmt.lower(), data=buf.getvalue()))
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).max() <= (0 if fmt == "PNG" else 40)


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_garbage_compressed_images_are_rejected(data):
    with pytest.raises(ValueError):
        compressed_msg_to_rgb(CompressedImage(format="jpeg", data=data))


def test_stamps_round_trip_and_reject_bad_times():
    assert stamp_to_s(s_to_stamp(12.345678912)) == pytest.approx(12.345678912, abs=1e-9)
    t = s_to_stamp(3.9999999999)
    assert t.nanosec < 1_000_000_000
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            s_to_stamp(bad)


def test_twist_message_needs_a_frame():
    tw = Twist(np.array([0.1, -0.2, 0.3]), np.array([0.0, 0.5, -0.5]))
    m = twist_to_msg(tw, s_to_stamp(1.5), "panda_link0")
    assert (m.twist.linear.x, m.twist.linear.y, m.twist.angular.z) == (0.1, -0.2, -0.5)
    assert m.header.frame_id == "panda_link0" and m.header.stamp.sec == 1
    with pytest.raises(ValueError, match="frame_id"):
        twist_to_msg(tw, s_to_stamp(1.5), "")


def test_quaternion_to_matrix():
    from geometry_msgs.msg import Quaternion

    R = quaternion_to_matrix(Quaternion(x=0.0, y=0.0, z=np.sin(np.pi / 4), w=np.cos(np.pi / 4)))
    assert np.allclose(R @ [1, 0, 0], [0, 1, 0])
    with pytest.raises(ValueError):
        quaternion_to_matrix(Quaternion(x=0.0, y=0.0, z=0.0, w=0.0))


def test_action_and_episode_messages():
    codec = make_codec(RT2Config().action)
    text = "1 200 128 60 128 128 128 255"
    a = codec.decode(text)
    ok = StepOutcome(
        3, "pick", PolicyResult(text, (), (a,), None, {"model": 12.0}), a, Twist.zero(), 1.0, None, (), 15.0
    )
    m = outcome_to_action_msg(ok, s_to_stamp(2.0), "base")
    assert m.valid and m.error == "" and list(m.tokens) == [1, 200, 128, 60, 128, 128, 128, 255]
    assert np.allclose(m.delta_position, a.delta_position) and m.model_ms == 12.0 and m.inference_latency_ms == 15.0
    bad = StepOutcome(
        3,
        "pick",
        PolicyResult("hello", (), (), "expected 8 integers"),
        None,
        Twist.zero(),
        None,
        "expected 8 integers",
        (),
        9.0,
    )
    m = outcome_to_action_msg(bad, s_to_stamp(2.0), "base")
    assert not m.valid and m.error == "expected 8 integers" and m.raw_text == "hello" and list(m.tokens) == []
    t = Transition(EpisodeState.FINISHED, EndReason.TERMINATE, "", "pick", 7, 3.5, 2, True)
    e = transition_to_episode_msg(t, s_to_stamp(4.0))
    assert (e.state, e.reason, e.step, e.elapsed_s, e.instruction) == (2, "terminate", 7, 3.5, "pick")


def test_overlay_draws_on_a_copy():
    img = np.full((120, 160, 3), 40, np.uint8)
    lines = status_lines("pick up the red block", 3, "running", 42.0, None, [0.1, 0, 0], [0, 0, 0.5])
    out = draw_overlay(img, lines, [0.1, 0, 0], [0, 0, 0.5])
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out, img) and np.all(img == 40)
    with pytest.raises(ValueError):
        draw_overlay(np.zeros((4, 4), np.uint8), lines)


def test_markers_anchor_at_the_end_effector_and_rotate_into_the_planning_frame():
    Rz90 = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # command frame yawed 90 deg
    anchor = MarkerAnchor("base", np.array([0.5, 0.0, 0.3]), Rz90)
    start, end = arrow_endpoints(anchor, np.array([0.1, 0, 0]), 1.0)
    assert np.allclose(start, [0.5, 0, 0.3]) and np.allclose(end, [0.5, 0.1, 0.3])
    assert arrow_endpoints(anchor, np.zeros(3), 1.0) is None
    arr = make_marker_array(anchor, [0.1, 0, 0], [0, 0, 0], ["pick", "step 1"], s_to_stamp(1.0))
    arrows = {m.id: m for m in arr.markers}
    assert arrows[0].action == Marker.ADD and arrows[0].header.frame_id == "base"
    assert arrows[1].action == Marker.DELETE  # no angular velocity: no arrow
    assert arrows[2].type == Marker.TEXT_VIEW_FACING and "pick" in arrows[2].text

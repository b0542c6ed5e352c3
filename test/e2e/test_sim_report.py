"""What the demo leaves behind: table, contact sheet, trajectory plot, MCAP recordings."""

import json
import math

import numpy as np
import pytest

from rt2_ros.sim.report import EpisodeRecord, contact_sheet, format_table, summary_line, write_reports


def _rec(i, success, backend="scripted", reason="terminate", frames=3):
    rng = np.random.default_rng(i)
    return EpisodeRecord(
        instruction=f"pick up the red block {i}",
        seed=i,
        backend=backend,
        steps=20 + i,
        reason=reason,
        success=success,
        detail="block bottom 0.08 m above table",
        wall_s=4.2,
        latencies_ms=[1.0, 3.0],
        frames=[np.full((224, 224, 3), 40 * k, np.uint8) for k in range(frames)],
        tcp_path=(np.linspace([0.3, 0, 0.48], [0.5, 0.1, 0.02], 30) + rng.normal(0, 1e-3, (30, 3))).tolist(),
        targets={"red": [0.5, 0.1, 0.02], "blue": [0.6, -0.1, 0.02]},
        final_blocks={"red": [0.5, 0.1, 0.1], "blue": [0.6, -0.1, 0.02]},
        target_color="red",
    )


def test_table_has_one_row_per_episode_with_the_reported_fields():
    recs = [_rec(1, True), _rec(2, False, "local", "step_limit")]
    t = format_table(recs)
    lines = t.splitlines()
    assert len(lines) == 2 + 2
    assert "instruction" in lines[0] and "latency ms" in lines[0] and "end" in lines[0]
    assert "terminate" in lines[2] and "yes" in lines[2] and "2.0" in lines[2]  # mean latency
    assert "step_limit" in lines[3] and " no " in lines[3]
    md = format_table(recs, markdown=True)
    assert md.splitlines()[1].startswith("|---") and md.count("\n") == 3
    s = summary_line(recs)
    assert "scripted: 1/1 succeeded (terminate 1)" in s and "local: 0/1 succeeded (step_limit 1)" in s


def test_an_episode_without_steps_reports_no_latency():
    r = _rec(1, False)
    r.latencies_ms = []
    assert math.isnan(r.mean_latency_ms)
    assert r.summary()["mean_latency_ms"] is None
    assert format_table([r]).splitlines()[2].rstrip().endswith("-")


def test_contact_sheet_has_a_row_per_episode_with_three_frames():
    recs = [_rec(i, i % 2 == 0) for i in range(4)]
    img = contact_sheet(recs, label_width=300)
    w, h = img.size
    assert w == 300 + 3 * (224 + 6) + 6
    assert h == 28 + 4 * (224 + 6) + 6
    a = np.asarray(img)
    # first / middle / last frames are placed in order: values 0, 40, 80 of the synthetic frames
    y = 28 + 100
    xs = [300 + 6 + k * (224 + 6) + 100 for k in range(3)]
    assert [int(a[y, x, 0]) for x in xs] == [0, 40, 80]


def test_contact_sheet_survives_an_episode_without_frames():
    r = _rec(1, False, frames=0)
    img = contact_sheet([r])
    assert img.size[1] == 28 + 230 + 6


def test_write_reports_makes_every_file(tmp_path):
    recs = [_rec(i, True) for i in range(3)] + [_rec(9, False, "local", "step_limit")]
    paths = write_reports(recs, tmp_path, {"domain_id": 42})
    for p in paths.values():
        assert p.is_file() and p.stat().st_size > 0
    from PIL import Image

    assert Image.open(paths["trajectories"]).size[0] > 600
    data = json.loads(paths["report_json"].read_text())
    assert data["meta"]["domain_id"] == 42 and len(data["episodes"]) == 4
    assert data["episodes"][3]["reason"] == "step_limit"
    assert "| 4 | local |" in paths["report_md"].read_text()


def test_mcap_recording_round_trips_through_a_ros2_decoder(tmp_path):
    pytest.importorskip("mcap_ros2")
    from geometry_msgs.msg import TwistStamped
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from rt2_ros.ros.conversions import import_rt2_msgs
    from rt2_ros.sim.recording import McapRecorder, message_definition

    msgs = import_rt2_msgs()
    text = message_definition("sensor_msgs/msg/Image")
    assert text.startswith("# This message contains an uncompressed image") or "uint32 height" in text
    assert "MSG: std_msgs/Header" in text and "MSG: builtin_interfaces/Time" in text
    path = tmp_path / "ep.mcap"
    with McapRecorder(path) as rec:
        rec.add_channel("/tw", "geometry_msgs/msg/TwistStamped")
        rec.add_channel("/img", "sensor_msgs/msg/Image")
        rec.add_channel("/ep", "rt2_ros/msg/EpisodeStatus")
        t = TwistStamped()
        t.header.frame_id = "panda_link0"
        t.twist.linear.x = 0.25
        rec.write("/tw", serialize_message(t))
        im = Image()
        im.height, im.width, im.encoding, im.step = 2, 3, "rgb8", 9
        im.data = bytes(range(18))
        rec.write("/img", serialize_message(im))
        e = msgs.EpisodeStatus()
        e.state, e.reason, e.step = 2, "terminate", 21
        rec.write("/ep", serialize_message(e))
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        got = {ch.topic: msg for _, ch, _, msg in reader.iter_decoded_messages()}
    assert got["/tw"].twist.linear.x == 0.25 and got["/tw"].header.frame_id == "panda_link0"
    assert bytes(got["/img"].data) == bytes(range(18)) and got["/img"].encoding == "rgb8"
    assert got["/ep"].reason == "terminate" and got["/ep"].step == 21


def test_unknown_message_types_are_reported():
    from rt2_ros.sim.recording import message_definition

    with pytest.raises(LookupError):
        message_definition("no_such_msgs/msg/Thing")
    with pytest.raises(ValueError):
        message_definition("Thing")

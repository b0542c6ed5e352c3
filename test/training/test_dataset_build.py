"""``rt2-ros dataset build``: MCAP recordings -> LeRobotDataset v3.0, values, statistics,
episode boundaries, and every bad-input case (each skipped, reported with bag and time)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.spatial.transform import Rotation

pytest.importorskip("mcap_ros2")
pytest.importorskip("datasets")

from bag_fixtures import (  # noqa: E402
    VELOCITY_MPS,
    YAW_RATE_RADPS,
    BagWriter,
    frame_image,
    pose_at,
    synth_episode,
)

from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.training.dataset import build_dataset, load_dataset_meta, vector_stats  # noqa: E402

PERIOD = 0.2


@pytest.fixture(scope="module")
def cfg():
    return load_config(overrides={"control.period_s": PERIOD})


def read_data(root) -> dict:
    meta = load_dataset_meta(root)
    tables = [pq.read_table(str(f)) for f in meta.data_files()]
    import pyarrow as pa

    return pa.concat_tables(tables).to_pydict()


def image_of(cell) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(cell["bytes"])))


def build(tmp_path, cfg, bags, **kw):
    out = tmp_path / "ds"
    report = build_dataset(bags, out, cfg, overwrite=True, **kw)
    return out, report


# -- round trip ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_episode_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "two.mcap"
    with BagWriter(path) as w:
        synth_episode(w, 0.0, 2.0, "pick up the red block", reason="terminate", gripper=1.0)
        synth_episode(w, 3.0, 1.6, "push the blue block left", reason="step_limit", gripper=0.0, first_frame=100)
    return path


def test_round_trip_values_and_episode_boundaries(tmp_path, cfg, two_episode_bag):
    out, report = build(tmp_path, cfg, [two_episode_bag])
    assert report.problems == []
    meta = load_dataset_meta(out)
    info = meta.info
    assert info["codebase_version"] == "v3.0" and info["fps"] == 5
    assert meta.tasks == ["pick up the red block", "push the blue block left"]
    eps = meta.episodes
    # episode 1: steps every 0.2 s from 0.01 s (first frame) to the end at 2.0 s: 10 steps, the last one terminal
    # episode 2: 1.6 s, ended by the step limit: its last step has no next pose and is dropped
    assert [e["length"] for e in eps] == [10, 7]
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in eps] == [(0, 10), (10, 17)]
    assert [e["tasks"] for e in eps] == [["pick up the red block"], ["push the blue block left"]]
    assert [e["rt2/reason"] for e in eps] == ["terminate", "step_limit"]
    assert info["total_frames"] == 17 and info["total_episodes"] == 2

    d = read_data(out)
    assert d["index"] == list(range(17))
    assert d["episode_index"] == [0] * 10 + [1] * 7
    assert d["frame_index"] == list(range(10)) + list(range(7))
    assert d["task_index"] == [0] * 10 + [1] * 7
    np.testing.assert_allclose(d["timestamp"], [k / 5 for k in range(10)] + [k / 5 for k in range(7)], atol=1e-6)
    assert d["next.done"] == [False] * 9 + [True] + [False] * 6 + [True]
    assert d["terminate"] == [False] * 9 + [True] + [False] * 7

    state = np.asarray(d["observation.state"])
    action = np.asarray(d["action"])
    for i in range(10):
        t = 0.01 + PERIOD * i
        p, q = pose_at(t)
        np.testing.assert_allclose(state[i, :3], p, atol=1e-5)
        assert abs(abs(float(np.dot(state[i, 3:7], q))) - 1.0) < 1e-5  # same rotation (sign fixed: qw >= 0)
        assert state[i, 6] >= 0
        assert state[i, 7] == pytest.approx(1.0)
        # the frame the step used: the latest at or before the step (frames every 0.1 s from 0.01 s)
        assert image_of(d["observation.images.camera"][i])[0, 0, 0] == 2 * i
    # displacement per step in the command (planning) frame; the rotation delta R_next R^T is a yaw of rate * period
    for i in range(9):
        np.testing.assert_allclose(action[i, :3], VELOCITY_MPS * PERIOD, atol=1e-6)
        np.testing.assert_allclose(action[i, 3:6], [0.0, 0.0, YAW_RATE_RADPS * PERIOD], atol=1e-6)
        assert action[i, 6] == pytest.approx(1.0)
    np.testing.assert_allclose(action[9], [0, 0, 0, 0, 0, 0, 1.0], atol=1e-7)  # terminal step: stay, terminate
    assert np.all(action[10:, 6] == 0.0)  # episode 2 closed the gripper
    assert image_of(d["observation.images.camera"][10])[0, 0, 0] == 100


def test_statistics_match_the_data(tmp_path, cfg, two_episode_bag):
    out, _ = build(tmp_path, cfg, [two_episode_bag])
    stats = json.loads((out / "meta" / "stats.json").read_text())
    d = read_data(out)
    for key in ("action", "observation.state"):
        x = np.asarray(d[key], dtype=np.float64)
        s = stats[key]
        np.testing.assert_allclose(s["mean"], x.mean(0), atol=1e-6)
        np.testing.assert_allclose(s["std"], x.std(0), atol=1e-6)
        np.testing.assert_allclose(s["min"], x.min(0), atol=1e-6)
        np.testing.assert_allclose(s["max"], x.max(0), atol=1e-6)
        np.testing.assert_allclose(s["q01"], np.quantile(x, 0.01, axis=0), atol=1e-6)
        np.testing.assert_allclose(s["q99"], np.quantile(x, 0.99, axis=0), atol=1e-6)
        assert s["count"] == [17]
    img = stats["observation.images.camera"]
    pixels = np.stack([image_of(c) for c in d["observation.images.camera"]]).astype(np.float64) / 255.0
    np.testing.assert_allclose(np.asarray(img["mean"]).reshape(3), pixels.mean((0, 1, 2)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(img["max"]).reshape(3), pixels.max((0, 1, 2)), atol=1e-6)
    assert np.asarray(img["q50"]).shape == (3, 1, 1)
    # per-episode statistics in meta/episodes, as LeRobot writes them
    tab = pq.read_table(str(out / "meta/episodes/chunk-000/file-000.parquet")).to_pydict()
    np.testing.assert_allclose(tab["stats/action/mean"][1], np.asarray(d["action"][10:]).mean(0), atol=1e-6)


def test_vector_stats_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no values"):
        vector_stats(np.zeros((0, 3)))


def test_recorded_actions_are_used_where_present(tmp_path, cfg):
    path = tmp_path / "rec.mcap"
    acts = [np.array([0.01 * k, 0, 0, 0, 0, 0.05, 1.0]) for k in range(5)]
    with BagWriter(path) as w:
        synth_episode(w, 0.0, 1.2, "move to the green block")
        for k, a in enumerate(acts):  # published 0.03 s after each step (the latency)
            w.action(0.21 + 0.2 * k + 0.03, a, terminate=(k == 4), latency_s=0.03)
        w.action(0.25, acts[0], valid=False)  # a rejected step: not a sample
    out, report = build(tmp_path, cfg, [path])
    d = read_data(out)
    np.testing.assert_allclose(np.asarray(d["action"]), np.stack(acts), atol=1e-7)
    assert d["terminate"] == [False] * 4 + [True]
    # each step's image is the frame at its observation time (log time minus latency)
    assert [int(image_of(c)[0, 0, 0]) for c in d["observation.images.camera"]] == [2, 4, 6, 8, 10]
    assert load_dataset_meta(out).episodes[0]["rt2/action_source"] == "recorded"
    out2, _ = build(tmp_path / "p", cfg, [path], action_source="poses")
    assert load_dataset_meta(out2).episodes[0]["rt2/action_source"] == "poses"


def test_episodes_from_instruction_and_stop_without_an_episode_topic(tmp_path, cfg):
    path = tmp_path / "teleop.mcap"
    with BagWriter(path) as w:
        synth_episode(w, 0.0, 1.0, "lift the blue block", episode_topic=False, reason="stop")
        synth_episode(w, 2.0, 1.0, "push the red block forward", episode_topic=False, reason="stop")
    out, report = build(tmp_path, cfg, [path])
    meta = load_dataset_meta(out)
    assert meta.tasks == ["lift the blue block", "push the red block forward"]
    assert [e["rt2/reason"] for e in meta.episodes] == ["stop", "stop"]
    d = read_data(out)
    assert d["terminate"][meta.episodes[0]["length"] - 1] is True


def test_compressed_camera_and_tf_pose(tmp_path, cfg):
    path = tmp_path / "real_arm.mcap"
    with BagWriter(path) as w:
        w.instruction(0.0, "pick up the red block")
        w.episode(0.0, 1, "pick up the red block")
        w.tf(0.0, "panda_link0", "panda_link7", [0.0, 0.0, 0.1], [0, 0, 0, 1], static=True)
        for k in range(51):
            t = 0.02 * k
            p, q = pose_at(t)
            w.tf(t, "panda_link7", "panda_hand", p - [0.0, 0.0, 0.1], q)
        for k in range(10):
            w.compressed(0.01 + 0.1 * k, frame_image(k))
        w.episode(1.0, 2, "pick up the red block", reason="terminate")
    out, report = build(tmp_path, cfg, [path])
    assert report.problems == []
    d = read_data(out)
    assert len(d["index"]) == 5
    np.testing.assert_allclose(np.asarray(d["observation.state"])[2, :3], pose_at(0.41)[0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(d["action"])[0, :3], VELOCITY_MPS * PERIOD, atol=1e-6)
    assert [int(image_of(c)[0, 0, 0]) for c in d["observation.images.camera"]] == [0, 2, 4, 6, 8]


def test_body_frame_commands_rotate_the_displacement(tmp_path, two_episode_bag):
    cfg = load_config(overrides={"control.period_s": PERIOD, "frames.command_frame": "panda_hand"})
    out, _ = build(tmp_path, cfg, [two_episode_bag])
    a = np.asarray(read_data(out)["action"])[0]
    p, q = pose_at(0.01)
    np.testing.assert_allclose(a[:3], Rotation.from_quat(q).inv().apply(VELOCITY_MPS * PERIOD), atol=1e-6)
    # the body-frame yaw rate about the world z, seen from a hand pointing down: about its own -z
    np.testing.assert_allclose(a[3:6], [0, 0, -YAW_RATE_RADPS * PERIOD], atol=1e-6)


def test_the_real_sim_recording_path(tmp_path):
    pytest.importorskip("pybullet")
    pytest.importorskip("rclpy")
    from rt2_ros.action_tokenizer import ActionBounds, RT2ActionTokenizer
    from rt2_ros.sim.record_inprocess import record_expert_episodes
    from rt2_ros.sim.settings import load_sim_settings

    cfg = load_sim_settings().rt2_config()
    bags = record_expert_episodes(tmp_path / "mcap", ["pick up the red block", "move to the green block"], [3, 4])
    out, report = build(tmp_path, cfg, bags)
    assert report.problems == []
    meta = load_dataset_meta(out)
    assert meta.info["total_episodes"] == 2 and meta.tasks == ["pick up the red block", "move to the green block"]
    d = read_data(out)
    ends = [e["dataset_to_index"] - 1 for e in meta.episodes]
    # the expert's own actions, with its terminate token on the last step only
    assert [i for i, t in enumerate(d["terminate"]) if t] == ends
    codec = RT2ActionTokenizer(ActionBounds(np.asarray(cfg.action.low), np.asarray(cfg.action.high)))
    for a in d["action"]:  # decoded bin centres: re-encoding gives the same bins back
        v = codec.bins_to_values(codec.values_to_bins(a))
        np.testing.assert_allclose(v, a, atol=1e-6)
    assert image_of(d["observation.images.camera"][0]).shape == (224, 224, 3)


# -- bad input: each case reported with the bag and the time, skipped, counted ----------------------


def problems_of(report, kind):
    return [p for p in report.problems if p.kind == kind]


def test_a_bag_without_the_image_topic_is_skipped_and_named(tmp_path, cfg, two_episode_bag):
    bad = tmp_path / "no_camera.mcap"
    with BagWriter(bad) as w:
        synth_episode(w, 0.0, 1.0, "pick up the red block", camera=False)
    out, report = build(tmp_path, cfg, [bad, two_episode_bag])
    (p,) = problems_of(report, "no_image_topic")
    assert p.bag == "no_camera.mcap" and "/camera/image_raw" in str(p)
    assert report.bags_used == 1 and report.frames == 17
    with pytest.raises(ValueError, match="no_camera.mcap.*no messages on image topic"):
        build_dataset([bad], tmp_path / "none", cfg)
    assert not (tmp_path / "none").exists()


def test_a_camera_gap_longer_than_a_period_is_skipped_not_bridged(tmp_path, cfg):
    path = tmp_path / "gap.mcap"
    with BagWriter(path) as w:
        synth_episode(w, 0.0, 3.0, "pick up the red block", image_gap=(1.0, 1.6))
    out, report = build(tmp_path, cfg, [path])
    (p,) = problems_of(report, "image_gap")
    assert p.bag == "gap.mcap" and 1.0 < p.time_s < 1.4 and p.steps == 2
    assert "/camera/image_raw" in p.message and "at 1.21 s" in str(p)
    meta = load_dataset_meta(out)
    # two dataset episodes: before and after the gap; only the second ends the recorded episode
    assert [e["length"] for e in meta.episodes] == [6, 7]
    assert [e["rt2/segment"] for e in meta.episodes] == [0, 1]
    d = read_data(out)
    assert d["next.done"][5] is False and d["next.done"][-1] is True
    frames = [int(image_of(c)[0, 0, 0]) for c in d["observation.images.camera"]]
    # the step at 1.01 s still has the frame of 0.91 s (within one period); none before the gap is used after it
    assert frames == [0, 2, 4, 6, 8, 9, 16, 18, 20, 22, 24, 26, 28]


def test_a_pose_gap_is_not_interpolated_across(tmp_path, cfg):
    path = tmp_path / "pose_gap.mcap"
    with BagWriter(path) as w:
        synth_episode(w, 0.0, 3.0, "pick up the red block", pose_gap=(1.1, 1.5))
    out, report = build(tmp_path, cfg, [path])
    (p,) = problems_of(report, "pose_gap")
    assert p.steps >= 2 and 0.9 < p.time_s < 1.3 and "pose_gap.mcap at" in str(p)
    d = read_data(out)
    state = np.asarray(d["observation.state"])
    # every kept pose is the true pose at its step time (none is a blend across the gap)
    for row in state:
        t = (row[0] - 0.4) / VELOCITY_MPS[0]
        assert not (1.1 < t < 1.5)
        np.testing.assert_allclose(row[:3], pose_at(t)[0], atol=1e-6)
    moving = np.asarray(d["action"])[~np.asarray(d["terminate"])]
    np.testing.assert_allclose(moving[:, :3], np.tile(VELOCITY_MPS * PERIOD, (len(moving), 1)), atol=1e-6)


def test_nan_poses_are_skipped_and_counted(tmp_path, cfg):
    path = tmp_path / "nan.mcap"
    with BagWriter(path) as w:
        synth_episode(w, 0.0, 3.0, "pick up the red block", nan_pose_at=(1.0, 1.3))
    out, report = build(tmp_path, cfg, [path])
    (p,) = problems_of(report, "nan_pose")
    assert p.steps >= 1 and "NaN" in p.message and p.bag == "nan.mcap"
    d = read_data(out)
    assert np.all(np.isfinite(np.asarray(d["observation.state"])))
    assert np.all(np.isfinite(np.asarray(d["action"])))
    assert report.frames == 15 - p.steps


def test_a_clock_jump_cuts_the_episode(tmp_path, cfg):
    path = tmp_path / "jump.mcap"
    with BagWriter(path, sort=False) as w:
        w.instruction(0.0, "pick up the red block")
        w.episode(0.0, 1, "pick up the red block")
        w.gripper(0.0, 1.0)
        # 1.5 s of data, then the clock steps back by 10 s (NTP) and the recording goes on
        for base, span, first in ((0.0, 1.5, 0), (-8.5, 1.5, 50)):
            for k in range(int(span / 0.02) + 1):
                t = 0.02 * k
                p, q = pose_at(t)
                w.pose(base + t, p, q)
                if k % 5 == 0:
                    w.image(base + t + 0.001, frame_image(first + k // 5))
        w.episode(-8.5 + 1.5, 2, "pick up the red block", reason="terminate")
    out, report = build(tmp_path, cfg, [path])
    (p,) = problems_of(report, "clock_jump")
    assert "jumped back 10.0" in p.message and p.bag == "jump.mcap" and p.time_s == pytest.approx(1.5, abs=0.01)
    meta = load_dataset_meta(out)
    assert len(meta.episodes) == 2  # before and after the jump, never mixed
    d = read_data(out)
    frames = [int(image_of(c)[0, 0, 0]) for c in d["observation.images.camera"]]
    n0 = meta.episodes[0]["length"]
    assert max(frames[:n0]) < 50 <= min(frames[n0:])
    assert d["next.done"][n0 - 1] is False and d["terminate"][-1] is True


def test_an_episode_without_instruction_is_skipped(tmp_path, cfg):
    path = tmp_path / "no_instruction.mcap"
    with BagWriter(path) as w:
        synth_episode(w, 0.0, 1.0, "", reason="terminate")
        synth_episode(w, 2.0, 1.0, "pick up the red block", reason="terminate")
    out, report = build(tmp_path, cfg, [path])
    (p,) = problems_of(report, "no_instruction")
    assert p.bag == "no_instruction.mcap" and p.time_s == pytest.approx(0.0) and "instruction" in p.message
    assert p.steps > 0
    assert load_dataset_meta(out).tasks == ["pick up the red block"]


def test_cli_builds_and_reports(tmp_path, two_episode_bag, capsys):
    from rt2_ros.cli import main

    cfg_file = tmp_path / "rt2.yaml"
    cfg_file.write_text("control:\n  period_s: 0.2\n")
    rc = main(
        [
            "dataset",
            "build",
            str(two_episode_bag),
            "--out",
            str(tmp_path / "cli_ds"),
            "--config",
            str(cfg_file),
            "--no-progress",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 17 and out["episodes"] == 2
    rc = main(["dataset", "build", str(two_episode_bag), "--out", str(tmp_path / "cli_ds"), "--no-progress"])
    assert rc == 1 and "exists" in capsys.readouterr().err
    rc = main(["dataset", "build", str(tmp_path / "missing"), "--out", str(tmp_path / "x"), "--no-progress"])
    assert rc == 1 and "no such file" in capsys.readouterr().err


def test_period_must_give_an_integer_fps(tmp_path, two_episode_bag):
    cfg = load_config(overrides={"control.period_s": 0.3})
    with pytest.raises(ValueError, match="integer fps"):
        build_dataset([two_episode_bag], tmp_path / "x", cfg)


def test_dagger_records_the_experts_labels_for_the_states_the_learner_visits(tmp_path, tiny_model_dir):
    """DAgger (record_inprocess with a learner): the random tiny model drives the arm, the
    expert's answer for each of its images is what /rt2/action carries, so the dataset's
    actions are the expert's (no roll/pitch wobble) while the path is the learner's."""
    pytest.importorskip("pybullet")
    pytest.importorskip("rclpy")
    pytest.importorskip("torch")
    from rt2_ros.action_tokenizer import make_codec
    from rt2_ros.policies.transformers_policy import TransformersPolicy
    from rt2_ros.sim.record_inprocess import record_expert_episodes
    from rt2_ros.sim.settings import load_sim_settings

    cfg = load_sim_settings().rt2_config(extra={"control.max_steps": 8, "control.terminate_debounce": 9})
    learner = TransformersPolicy.from_pretrained(tiny_model_dir, rt2_codec=make_codec(cfg.action), num_threads=1)
    ins = ["move to the green block"]
    dagger = record_expert_episodes(tmp_path / "dagger", ins, [4], cfg=cfg, learner=learner, beta=0.0)
    expert = record_expert_episodes(tmp_path / "expert", ins, [4], cfg=cfg)
    out_d, _ = build(tmp_path / "d", cfg, dagger)
    out_e, _ = build(tmp_path / "e", cfg, expert)
    d, e = read_data(out_d), read_data(out_e)
    learner_says = [learner.infer(image_of(img), ins[0]) for img in d["observation.images.camera"][:3]]
    labels = np.asarray(d["action"])
    assert len(labels) >= 5
    # the learner's own answers wobble in roll and pitch; the recorded labels are the expert's
    assert any(abs(r.action.delta_rotation[0]) > 0.02 for r in learner_says if r.action is not None)
    assert np.abs(labels[:, 3:5]).max() < 0.02
    # and the states are the learner's: its path leaves the expert's
    assert not np.allclose(
        np.asarray(d["observation.state"])[-1][:3], np.asarray(e["observation.state"])[-1][:3], atol=0.01
    )

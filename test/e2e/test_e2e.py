"""End to end: the README's demo command through real processes and real DDS.

``rt2-ros demo`` starts the simulation (PyBullet Panda, camera, MoveIt Servo stand-in)
and the real rt2 node as separate processes, and drives episodes over DDS: reset via
``/rt2/reset``, instruction on ``/rt2/instruction``, episode followed on ``/rt2/episode``.
Every episode is recorded to MCAP, which these tests read back to check what went over
the wire (terminate tokens, twists after the end, the arm at rest).

Done when (issue 6): the scripted expert succeeds on at least 9 of 10 randomised layouts
and ends by its terminate token; the tiny VLA's episodes run to the step limit and stop
cleanly (random weights: no success expected).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pybullet")

from ros_helpers import DOMAIN_ID, ros_env  # noqa: E402

SCRIPTED_EPISODES = 10
VLA_EPISODES = 3
VLA_MAX_STEPS = 15


@pytest.fixture(scope="module")
def demo(tiny_model_dir, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("demo")
    cmd = [
        sys.executable,
        "-m",
        "rt2_ros.cli",
        "demo",
        "--episodes",
        str(SCRIPTED_EPISODES),
        "--vla-episodes",
        str(VLA_EPISODES),
        "--vla-max-steps",
        str(VLA_MAX_STEPS),
        "--model",
        str(tiny_model_dir),
        "--seed",
        "100",
        "--out",
        str(out),
        "--record",
        "--no-progress",
        "--domain-id",
        str(DOMAIN_ID),
    ]
    proc = subprocess.run(cmd, env=ros_env(), capture_output=True, text=True, timeout=900)
    report = out / "report.json"
    assert report.is_file(), f"no report; exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc, out, json.loads(report.read_text())["episodes"]


def _rows(episodes, backend):
    return [e for e in episodes if e["backend"] == backend]


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _read(path, topics):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with open(path, "rb") as f:
        r = make_reader(f, decoder_factories=[DecoderFactory()])
        return [(ch.topic, m.log_time * 1e-9, msg) for _, ch, m, msg in r.iter_decoded_messages(topics=topics)]


def test_the_demo_runs_every_episode_and_prints_the_table(demo):
    proc, out, episodes = demo
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(episodes) == SCRIPTED_EPISODES + VLA_EPISODES
    table = [line for line in proc.stdout.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    assert len(table) == SCRIPTED_EPISODES + VLA_EPISODES
    assert "instruction" in proc.stdout and "latency ms" in proc.stdout
    assert "scripted:" in proc.stdout and "vla:" in proc.stdout


def test_scripted_expert_succeeds_on_9_of_10_layouts_by_its_terminate_token(demo):
    proc, out, episodes = demo
    rows = _rows(episodes, "scripted")
    assert len(rows) == SCRIPTED_EPISODES
    assert len({r["seed"] for r in rows}) == SCRIPTED_EPISODES  # a new randomised layout each time
    ok = [r for r in rows if r["success"]]
    assert len(ok) >= 9, "\n".join(f"{r['instruction']}: {r['reason']} {r['detail']}" for r in rows)
    assert all(r["reason"] == "terminate" for r in ok)
    # On the wire: the last RT2Action of a successful episode carries the terminate token.
    for k, r in enumerate(rows):
        if not r["success"]:
            continue
        msgs = _read(out / "mcap" / f"scripted_ep{k + 1:02d}.mcap", ["/rt2/action"])
        # The expert's output always decodes. The one rejection a loaded machine causes is the
        # safety reaction to a camera frame that came late (the sim renders slower at load 10+).
        errors = [m.error for _, _, m in msgs if not m.valid]
        assert all(e.startswith("no fresh image") for e in errors), errors
        valid = [m for _, _, m in msgs if m.valid]
        assert valid[-1].terminate and valid[-1].raw_text.split()[0] == "0"
        assert not any(m.terminate for m in valid[:-1])


def test_vla_episodes_run_to_the_step_limit_and_stop_cleanly(demo):
    proc, out, episodes = demo
    rows = _rows(episodes, "vla")
    assert len(rows) == VLA_EPISODES
    for k, r in enumerate(rows):
        assert r["reason"] == "step_limit" and r["steps"] == VLA_MAX_STEPS, r
        assert r["mean_latency_ms"] and r["mean_latency_ms"] > 0  # the model ran every step
        msgs = _read(
            out / "mcap" / f"vla_ep{k + 1:02d}.mcap",
            ["/rt2/episode", "/servo_node/delta_twist_cmds", "/rt2/ee_pose", "/rt2/action"],
        )
        actions = [m for t, _, m in msgs if t == "/rt2/action" and m.valid]
        assert len(actions) >= VLA_MAX_STEPS - 1 and all(len(m.tokens) == 8 for m in actions)
        end = next(t for topic, t, m in msgs if topic == "/rt2/episode" and m.state == 2)
        # Commanded after the end, by the node's own stamps: the recorder's receive times of two
        # topics can differ by 0.1-0.2 s (a twist stamped before the end arriving after it).
        end_stamp = next(_stamp(m) for topic, _, m in msgs if topic == "/rt2/episode" and m.state == 2)
        twists_after = [
            m.twist for topic, _, m in msgs if topic == "/servo_node/delta_twist_cmds" and _stamp(m) > end_stamp + 0.05
        ]
        assert twists_after, "no zero twists after the end"
        assert all(
            not any((tw.linear.x, tw.linear.y, tw.linear.z, tw.angular.x, tw.angular.y, tw.angular.z))
            for tw in twists_after
        )
        poses = np.array(
            [
                [m.pose.position.x, m.pose.position.y, m.pose.position.z]
                for topic, t, m in msgs
                if topic == "/rt2/ee_pose" and t > end + 0.2
            ]
        )
        # At least two poses to compare (the sim publishes them at 30 Hz, 2 over the recorder's
        # settle time at load 16): the arm is at rest.
        assert len(poses) >= 2 and np.ptp(poses, axis=0).max() < 0.003


def test_the_demo_leaves_pictures_and_a_report(demo):
    from PIL import Image

    proc, out, episodes = demo
    sheet = Image.open(out / "contact_sheet.png")
    n = SCRIPTED_EPISODES + VLA_EPISODES
    assert sheet.size[1] == 28 + n * (224 + 6) + 6  # one row of frames per episode
    traj = Image.open(out / "trajectories.png")
    assert traj.size[0] > 600 and traj.size[1] > 600
    md = (out / "report.md").read_text()
    assert md.count("\n| ") >= n
    assert len(list((out / "mcap").glob("*.mcap"))) == n

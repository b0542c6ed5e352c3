"""End to end over DDS with action chunks: ``rt2-ros demo --chunk 8`` (real sim process, real
rt2 node, the scripted expert answering 8 actions per inference as RT-2 text, the next chunk
inferred ahead). The expert still succeeds by its terminate token, /rt2/action carries the
chunks, and the node infers far less often than it executes actions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("pybullet")

from ros_helpers import DOMAIN_ID, ros_env  # noqa: E402

EPISODES = 4
H = 8


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_chunks")
    cmd = [sys.executable, "-m", "rt2_ros.cli", "demo", "--chunk", str(H), "--policies", "scripted"]
    cmd += ["--episodes", str(EPISODES), "--seed", "200", "--out", str(out), "--record", "--no-progress"]
    cmd += ["--domain-id", str(DOMAIN_ID)]
    proc = subprocess.run(cmd, env=ros_env(), capture_output=True, text=True, timeout=600)
    report = out / "report.json"
    assert report.is_file(), f"no report; exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc, out, json.loads(report.read_text())["episodes"]


def _read(path, topics):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with open(path, "rb") as f:
        r = make_reader(f, decoder_factories=[DecoderFactory()])
        return [(ch.topic, m.log_time * 1e-9, msg) for _, ch, m, msg in r.iter_decoded_messages(topics=topics)]


def test_the_chunked_expert_succeeds_over_dds_by_its_terminate_token(demo):
    proc, out, rows = demo
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len(rows) == EPISODES
    ok = [r for r in rows if r["success"]]
    assert len(ok) >= EPISODES - 1, "\n".join(f"{r['instruction']}: {r['reason']} {r['detail']}" for r in rows)
    assert all(r["reason"] == "terminate" and r["rejected_steps"] == 0 for r in ok)
    for k, r in enumerate(rows):
        if not r["success"]:
            continue
        msgs = [m for _, _, m in _read(out / "mcap" / f"scripted_ep{k + 1:02d}.mcap", ["/rt2/action"]) if m.valid]
        # Every answer is a whole chunk on the wire: 8 actions x 7 values, a terminate flag each.
        assert msgs and all(m.horizon == H and len(m.chunk) == 7 * H and len(m.chunk_terminate) == H for m in msgs)
        assert len(msgs[-1].raw_text.split()) == 8 * H
        assert msgs[-1].chunk_terminate[0] and msgs[-1].terminate  # the episode ended on a terminate in a chunk
        # Steps count executed actions; far fewer inferences than steps.
        assert len(msgs) < r["steps"] / 2, (len(msgs), r["steps"])

"""VQA pairs from the simulator's ground truth (co-fine-tuning offline): answers that follow
from the ground truth, and ``rt2-ros dataset vqa`` on real sim recordings."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from rt2_ros.training.vqa import load_vqa, questions_from_ground_truth


def gt(blocks: dict, opening: float = 0.08) -> dict:
    return {
        "table_z_m": 0.0,
        "gripper": {"opening_m": opening},
        "blocks": {c: {"position": p, "size_m": 0.04} for c, p in blocks.items()},
    }


SCENE = gt({"red": [0.45, 0.15, 0.02], "green": [0.60, -0.10, 0.02], "blue": [0.50, 0.02, 0.12]}, opening=0.01)


def answers(g: dict, n: int = 400) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    rng = random.Random(0)
    for _ in range(n):
        for q, a, _ in questions_from_ground_truth(g, rng, k=20):
            out.setdefault(q, set()).add(a)
    return out


def test_answers_follow_from_the_ground_truth():
    qa = answers(SCENE)
    assert all(len(a) == 1 for a in qa.values()), "one question, one answer"
    one = {q: next(iter(a)) for q, a in qa.items()}
    assert one["Q: what colour is the block nearest to the robot? A:"] == "red"  # |xy| 0.474 < 0.500 < 0.608
    assert one["Q: what colour is the block furthest from the robot? A:"] == "green"
    assert one["Q: which block is furthest to the left? A:"] == "red"  # the robot's left is +y
    assert one["Q: which block is furthest to the right? A:"] == "green"
    assert one["Q: is the red block left or right of the green block? A:"] == "left"
    assert one["Q: is the green block left or right of the blue block? A:"] == "right"
    assert one["Q: which is nearer to the robot, the blue block or the green block? A:"] == "blue"
    assert one["Q: how many blocks are on the table? A:"] == "2"  # blue is lifted
    assert one["Q: is the blue block lifted? A:"] == "yes" and one["Q: is the red block lifted? A:"] == "no"
    assert one["Q: is the gripper open or closed? A:"] == "closed"
    assert one["Q: how many yellow blocks are there? A:"] == "0"
    assert one["Q: how many red blocks are there? A:"] == "1"
    # localisation in whole cm of panda_link0, y + 50 cm (one number token each)
    assert one["Q: where is the red block? A:"] == "45 65"
    assert one["Q: where is the green block? A:"] == "60 40"


def test_every_question_set_starts_with_a_localisation_question():
    rng = random.Random(3)
    for _ in range(20):
        qa = questions_from_ground_truth(SCENE, rng, k=2)
        assert len(qa) == 2 and qa[0][2] == "where" and qa[1][2] != "where"


def test_ground_truth_without_blocks_is_refused():
    with pytest.raises(ValueError, match="without blocks"):
        questions_from_ground_truth({"blocks": {}}, random.Random(0))


def test_vqa_dataset_from_sim_recordings(tmp_path):
    pytest.importorskip("pybullet")
    pytest.importorskip("rclpy")
    from rt2_ros.cli import main
    from rt2_ros.sim.record_inprocess import record_expert_episodes

    bags = record_expert_episodes(tmp_path / "mcap", ["pick up the red block"], [7])
    rc = main(["dataset", "vqa", str(tmp_path / "mcap"), "--out", str(tmp_path / "vqa"), "--every", "4"])
    assert rc == 0
    table = load_vqa(tmp_path / "vqa")
    rows = table.to_pylist()
    assert len(rows) >= 10 and {r["source"] for r in rows} == {bags[0].name}
    assert all(r["question"].startswith("Q: ") and r["question"].endswith("? A:") and r["answer"] for r in rows)
    import io

    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(rows[0]["image"]["bytes"])))
    assert img.shape == (224, 224, 3)
    meta = json.loads((tmp_path / "vqa" / "meta.json").read_text())
    assert meta["pairs"] == len(rows) and set(meta["kinds"]) <= {
        "colour",
        "left_right",
        "nearer",
        "count",
        "state",
        "where",
    }
    assert "where" in meta["kinds"]
    # a recording without ground truth gives no pairs: a clear error
    assert main(["dataset", "vqa", str(tmp_path / "mcap"), "--out", str(tmp_path / "v2"), "--camera", "/nope"]) == 1

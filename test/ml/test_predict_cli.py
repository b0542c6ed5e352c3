"""``rt2-ros predict``: a checkpoint debugged from the shell, before any robot.

Through the command the parity fixture gives upstream's tokens and actions (every
row in-process through ``rt2_ros.cli.main``, one row per image in a real
subprocess); bad input is one clear line on stderr and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from openvla_fixture import ROOT, load_reference, require_fixture, write_tower_specs  # noqa: E402

from rt2_ros.cli import main  # noqa: E402
from rt2_ros.policies.openvla.towers import TOWER_SPECS_ENV  # noqa: E402


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    d = require_fixture()
    specs = write_tower_specs(tmp_path_factory.mktemp("towers") / "towers.json")
    mp = pytest.MonkeyPatch()
    mp.setenv(TOWER_SPECS_ENV, str(specs))
    yield d, load_reference(d), specs
    mp.undo()


def _args(d: Path, row: dict) -> list[str]:
    return [
        "predict",
        "--model",
        str(d / "checkpoint"),
        "--image",
        str(d / row["image"]),
        "--instruction",
        row["instruction"],
        "--unnorm-key",
        row["unnorm_key"],
    ]


def _check(out: dict, row: dict) -> None:
    assert out["generated_token_ids"] == row["generated_ids"]
    assert out["prompt_token_ids"] == row["input_ids"]
    np.testing.assert_allclose(out["action"]["vector"], row["action"], rtol=0, atol=1e-12)
    assert out["action"]["vector_units"] == ["m", "m", "m", "rad", "rad", "rad", "gripper"]
    assert out["action"]["delta_position_m"]["x"] == out["action"]["vector"][0]
    assert out["loader"] == "native-openvla" and out["unnorm_key"] == row["unnorm_key"]
    assert out["image_sensitivity_max_logit_diff"] > 0
    assert {"load_and_warmup", "preprocess", "model", "decode", "total"} <= set(out["timings_ms"])
    assert out["model_text"]  # the tokenizer's spelling of the 7 action tokens


def test_predict_in_process_matches_upstream_for_every_row(fx, capsys):
    d, ref, _ = fx
    for row in ref["rows"]:
        assert main(_args(d, row)) == 0
        _check(json.loads(capsys.readouterr().out), row)


def test_predict_subprocess_matches_upstream(fx):
    d, ref, specs = fx
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **{TOWER_SPECS_ENV: str(specs)})
    # two rows (a fresh process costs seconds): different images, keys and instructions
    rows = [ref["rows"][i] for i in (0, 15)]
    assert len({(r["image"], r["unnorm_key"], r["instruction"]) for r in rows}) == 2
    assert rows[0]["image"] != rows[1]["image"] and rows[0]["unnorm_key"] != rows[1]["unnorm_key"]
    assert rows[0]["instruction"] != rows[1]["instruction"]
    for row in rows:
        p = subprocess.run(
            [sys.executable, "-m", "rt2_ros.cli", *_args(d, row)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=str(ROOT),
            env=env,
        )
        assert p.returncode == 0, p.stderr[-2000:]
        _check(json.loads(p.stdout), row)


def test_predict_on_the_paligemma_test_model(tiny_model_dir, tmp_path, capsys):
    from PIL import Image

    png = tmp_path / "frame.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(png)
    args = ["predict", "--model", str(tiny_model_dir), "--image", str(png), "--instruction", "pick up the red block"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["action_format"] == "rt2" and len(out["action_text"].split()) == 8
    assert out["image"] == {"path": str(png), "height": 120, "width": 160}


@pytest.mark.parametrize(
    "change, match",
    [
        ({"--model": "/nonexistent/model"}, "does not exist"),
        ({"--image": "/nonexistent.png"}, "cannot read image"),
        ({"--image": "NOT_AN_IMAGE"}, "cannot read image"),
        ({"--instruction": "   "}, "instruction is empty"),
        ({"--unnorm-key": "kuka"}, "'kuka' not in the model's statistics"),
        ({"--device": "tpu"}, "device"),
    ],
)
def test_predict_errors_are_one_clear_line(fx, tmp_path, capsys, change, match):
    d, ref, _ = fx
    args = _args(d, ref["rows"][0])
    for k, v in change.items():
        if v == "NOT_AN_IMAGE":
            v = str(tmp_path / "notes.png")
            Path(v).write_text("not a picture")
        if k in args:
            args[args.index(k) + 1] = v
        else:
            args += [k, v]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err and "Traceback" not in err


def test_predict_error_in_a_subprocess_has_no_traceback(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "rt2_ros.cli", "predict", "--model", str(tmp_path), "--image", "x.png"]
        + ["--instruction", "go"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(ROOT),
    )
    assert p.returncode == 1 and p.stdout == ""
    assert "cannot read image" in p.stderr and "Traceback" not in p.stderr

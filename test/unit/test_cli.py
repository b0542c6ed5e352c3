"""`rt2-ros decode`: the README's first command for this package."""

import json
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "rt2_ros.cli", *args], capture_output=True, text=True, timeout=60)


def test_decode_prints_json_with_units():
    p = run("decode", "1 128 124 136 121 158 111 255")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["terminate"] is False and out["tokens"] == [1, 128, 124, 136, 121, 158, 111, 255]
    assert set(out["delta_position_m"]) == {"x", "y", "z"} and "delta_rotation_rad" in out
    assert out["delta_position_m"]["x"] == pytest.approx(0.05 / 256)


def test_decode_chain_of_thought():
    out = json.loads(run("decode", "Plan: pick rxbar chocolate. Action: 0 128 124 136 121 158 111 255").stdout)
    assert out["plan"] == "pick rxbar chocolate" and out["terminate"] is True


@pytest.mark.parametrize("bad", ["1 128 124", "", "1 128 124 136 121 158 111 999", "nan nan nan nan nan nan nan nan"])
def test_bad_input_exits_nonzero_with_the_reason(bad):
    p = run("decode", bad)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.startswith("error: ")


def test_openvla_format_with_statistics(tmp_path):
    stats = tmp_path / "dataset_statistics.json"
    stats.write_text(json.dumps({"bridge_orig": {"action": {"q01": [-1.0] * 7, "q99": [3.0] * 7}}}))
    p = run("decode", "--format", "openvla", "--statistics", str(stats), "31999 31999 31999 31999 31999 31999 31744")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    # centre -1 + 1/255 -> 0.5 * (a + 1) * (3 - -1) + -1
    assert out["delta_position_m"]["x"] == pytest.approx(0.5 * (1 / 255) * 4 - 1)
    assert run("decode", "--format", "openvla", "1 2 3").returncode == 1

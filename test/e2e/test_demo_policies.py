"""What ``rt2-ros demo --policies vla`` runs: a trained model (an ``rt2-ros train`` output)
with its own codec and terminate token, a random test model with the random model's guards,
and a clear refusal for a directory that is not there."""

from __future__ import annotations

import argparse

import pytest

from rt2_ros.sim import demo


def _args(*argv):
    p = argparse.ArgumentParser()
    demo.add_arguments(p)
    return p.parse_args(list(argv))


def test_a_trained_model_runs_with_its_own_terminate_token(tmp_path):
    trained = tmp_path / "model"
    trained.mkdir()
    (trained / "rt2_ros_policy.yaml").write_text("/**: {ros__parameters: {action: {bins: 33}}}\n")
    o = demo._policy_overrides("vla", _args("--model", str(trained)))
    assert o["policy.backend"] == "local" and o["policy.model_path"] == str(trained.resolve())
    assert o["control.max_steps"] == 40
    assert "control.terminate_debounce" not in o  # the model's own terminate token ends episodes
    assert "safety.max_angular_speed_radps" not in o  # config/sim.yaml's envelope, as for the expert


def test_a_random_test_model_runs_to_the_step_limit_under_a_tight_envelope(tiny_model_dir):
    o = demo._policy_overrides("vla", _args("--model", str(tiny_model_dir), "--vla-max-steps", "7"))
    assert o["control.max_steps"] == 7 and o["control.terminate_debounce"] == 8
    assert o["safety.max_angular_speed_radps"] == 0.1


def test_a_missing_model_directory_is_refused_with_the_way_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="make train"):
        demo._policy_overrides("vla", _args("--model", str(tmp_path / "nope")))
    assert demo.run(_args("--policies", "vla", "--model", str(tmp_path / "nope"))) == 2

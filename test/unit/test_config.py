"""config/rt2.yaml: one file for the core and the node; bad values are clear errors."""

import pytest
import yaml

from rt2_ros.config import (
    ConfigError,
    RT2Config,
    config_from_flat,
    config_to_flat,
    default_config_path,
    flat_fields,
    load_config,
)


def test_shipped_file_loads_and_matches_the_schema_defaults():
    cfg = load_config(default_config_path())
    assert cfg == RT2Config()  # the file documents the defaults; keep both in sync
    assert cfg.action.bins == 256 and cfg.control.servo_rate_hz == 50.0
    assert cfg.topics.twist == "/servo_node/delta_twist_cmds"
    assert cfg.frames.command_frame  # never empty


def test_every_parameter_is_in_the_yaml_with_a_comment():
    text = default_config_path().read_text()
    data = yaml.safe_load(text)["/**"]["ros__parameters"]
    names = {f"{s}.{k}" for s, sub in data.items() for k in sub}
    assert names == {name for name, _, _ in flat_fields()}
    for name, _, _ in flat_fields():
        key = name.split(".")[1] + ":"
        lines = [l for l in text.splitlines() if l.startswith(" " * 6 + key)]  # leaf level only
        assert lines and all("#" in l for l in lines), f"{name} has no unit/meaning comment"


def test_every_field_has_a_description():
    for name, info, _ in flat_fields():
        assert info.description, name


def test_flat_round_trip_like_ros_parameters():
    cfg = load_config()
    assert config_from_flat(config_to_flat(cfg)) == cfg


@pytest.mark.parametrize(
    "override, match",
    [
        ({"control.period_s": 0.0}, "control.period_s"),
        ({"control.servo_rate_hz": -5.0}, "control.servo_rate_hz"),
        ({"action.low": [0.0] * 6}, "7 values"),
        ({"action.format": "rt3"}, "action.format"),
        ({"safety.workspace_min": [1.0, 1.0, 1.0]}, "workspace_max must exceed"),
        ({"frames.command_frame": ""}, "frames.command_frame"),
        ({"policy.device": "tpu"}, "device"),
        ({"control.bogus": 1}, "bogus"),
        ({"nosection": 1}, "unknown parameter"),
    ],
)
def test_bad_values_are_clear_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=override)


def test_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rt2_node:\n  ros__parameters:\n    control: {period_s: fast}\n")
    with pytest.raises(ConfigError, match="control.period_s"):
        load_config(bad)


def test_a_trained_model_directory_brings_its_codec_settings(tmp_path):
    from rt2_ros.config import MODEL_SETTINGS_FILE, with_model_settings

    (tmp_path / MODEL_SETTINGS_FILE).write_text(
        "/**:\n  ros__parameters:\n    action: {bins: 128, token_pattern: '<act_{k}>'}\n    policy: {prompt: cot}\n"
    )
    cfg = load_config(overrides={"policy.model_path": str(tmp_path)})
    out, changed = with_model_settings(cfg)
    assert (out.action.bins, out.action.token_pattern, out.policy.prompt) == (128, "<act_{k}>", "cot")
    assert changed == ["action.bins", "action.token_pattern", "policy.prompt"]
    assert out.safety == cfg.safety and out.policy.model_path == str(tmp_path)  # nothing else changes
    # other backends, and directories without the file, are left alone
    remote = load_config(overrides={"policy.backend": "remote", "policy.model_path": str(tmp_path)})
    assert with_model_settings(remote) == (remote, [])
    assert with_model_settings(load_config(overrides={"policy.model_path": str(tmp_path / "x")}))[1] == []


def test_model_settings_with_other_keys_or_bad_values_are_refused(tmp_path):
    from rt2_ros.config import MODEL_SETTINGS_FILE, with_model_settings

    cfg = load_config(overrides={"policy.model_path": str(tmp_path)})
    for text, match in (
        ("safety: {max_linear_speed_mps: 4.0}\n", "only the action section"),
        ("policy: {backend: remote}\n", "only the action section"),
        ("action: {bins: 1}\n", "action.bins"),
        ("action: [1, 2\n", "cannot read"),
    ):
        (tmp_path / MODEL_SETTINGS_FILE).write_text(text)
        with pytest.raises(ConfigError, match=match):
            with_model_settings(cfg)

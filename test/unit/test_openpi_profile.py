"""openpi profiles: presets as openpi's runtimes define them, resize_with_pad equal to
openpi's own, chunk checks (every rejection), unit / rotation / gripper mapping, state."""

from __future__ import annotations

import dataclasses

import numpy as np
import openpi_fixture
import pytest
from scipy.spatial.transform import Rotation

from rt2_ros.config import ConfigError, load_config
from rt2_ros.remote.openpi_profile import (
    EE_STATE,
    JOINT_STATE,
    PRESETS,
    profile_from_config,
    quat_xyzw_to_axisangle,
    resize_with_pad,
    state_arrays,
)

LIBERO = PRESETS["libero"]()
DROID = PRESETS["droid"]()


def test_presets_carry_the_keys_and_layouts_of_openpis_runtimes():
    d = openpi_fixture.require()
    libero_src = (d / "examples" / "examples_libero_main.py").read_text()
    droid_src = (d / "examples" / "examples_droid_main.py").read_text()
    for key in (LIBERO.image_key, LIBERO.wrist_image_key, LIBERO.state_key):
        assert f'"{key}"' in libero_src
    assert "replan_steps: int = 5" in libero_src and LIBERO.replan_steps == 5
    for key in (DROID.image_key, DROID.wrist_image_key, DROID.joint_position_key, DROID.gripper_position_key):
        assert f'"{key}"' in droid_src
    assert "open_loop_horizon: int = 8" in droid_src and DROID.replan_steps == 8
    assert "DROID_CONTROL_FREQUENCY = 15" in droid_src and DROID.control_hz == 15
    assert "resize_with_pad(" in droid_src and (DROID.image_height, DROID.image_width) == (224, 224)
    assert "LIBERO_DUMMY_ACTION = [0.0] * 6 + [-1.0]" in libero_src and LIBERO.gripper_open_value == -1.0
    assert LIBERO.action_dim == 7 and DROID.action_dim == 8 and DROID.action_space == "joint_velocity"


@pytest.mark.parametrize("shape", [(480, 640, 3), (640, 480, 3), (100, 100, 3), (224, 224, 3), (37, 301, 3)])
def test_resize_with_pad_equals_openpis(shape):
    pytest.importorskip("PIL", reason="resize_with_pad needs Pillow")
    openpi_fixture.require()
    from openpi_client import image_tools

    img = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(resize_with_pad(img, 224, 224), image_tools.resize_with_pad(img, 224, 224))


@pytest.mark.parametrize(
    "chunk,needle",
    [
        (np.zeros((10, 6), np.float32), "shape"),  # too few columns
        (np.zeros((10,), np.float32), "shape"),  # 1-D
        (np.zeros((0, 7), np.float32), "shape"),  # empty
        (np.zeros((2000, 7), np.float32), "shape"),  # absurd horizon
        (np.full((10, 7), np.nan, np.float32), "NaN"),
        (np.array([[0, 0, 0, 0, 0, 0, np.inf]] * 3, np.float64), "NaN or infinite"),
        (np.full((10, 7), 1e6, np.float32), "reject_above"),
        (np.zeros((10, 7), bool), "numeric"),
        ([[0.0] * 7], "numeric"),
    ],
)
def test_check_chunk_refuses_garbage_as_a_whole(chunk, needle):
    with pytest.raises(ValueError, match=needle):
        LIBERO.check_chunk(chunk)


def test_check_chunk_clips_and_ignores_padded_columns():
    raw = np.zeros((3, 32), np.float32)  # pi0's padded action dims before the output transform
    raw[0, 0] = 5.0
    raw[1, 10] = 1e30  # beyond the used columns: ignored
    out = LIBERO.check_chunk(raw)
    assert out.shape == (3, 7) and out[0, 0] == 1.0


def test_ee_delta_scales_units_and_converts_rotation_convention():
    row = np.array([1.0, -0.5, 0.2, 0.1, -0.2, 0.3, -1.0])
    dp, dr = LIBERO.ee_delta(row, "rotvec")
    np.testing.assert_allclose(dp, [0.05, -0.025, 0.01])
    np.testing.assert_allclose(dr, [0.05, -0.1, 0.15])
    dp2, dr_rpy = LIBERO.ee_delta(row, "rpy")
    np.testing.assert_allclose(Rotation.from_euler("xyz", dr_rpy).as_rotvec(), dr, atol=1e-12)
    assert LIBERO.gripper_open_fraction(-1.0) == 1.0 and LIBERO.gripper_open_fraction(1.0) == 0.0
    assert DROID.gripper_open_fraction(0.0) == 1.0 and DROID.gripper_open_fraction(0.75) == 0.25


def test_libero_state_is_position_axis_angle_and_finger_qpos():
    rot = Rotation.from_rotvec([0.0, np.pi / 2, 0.0])
    arr = state_arrays(
        LIBERO, {"ee_position": np.array([0.4, 0.1, 0.3]), "ee_rotation": rot.as_matrix(), "gripper_open": 1.0}
    )
    s = arr["observation/state"]
    assert s.dtype == np.float32 and s.shape == (8,)
    np.testing.assert_allclose(s[:3], [0.4, 0.1, 0.3], atol=1e-6)
    np.testing.assert_allclose(s[3:6], [0.0, np.pi / 2, 0.0], atol=1e-6)
    np.testing.assert_allclose(s[6:], [0.04, -0.04], atol=1e-7)
    assert np.allclose(quat_xyzw_to_axisangle([0, 0, 0, 1]), 0)
    with pytest.raises(ValueError, match="pose"):
        state_arrays(LIBERO, {"gripper_open": 1.0})


def test_droid_state_is_joint_positions_and_gripper_position():
    arr = state_arrays(DROID, {"joint_positions": np.arange(7) * 0.1, "gripper_open": 0.25})
    assert arr["observation/joint_position"].shape == (7,)
    np.testing.assert_allclose(arr["observation/gripper_position"], [0.75])
    with pytest.raises(ValueError, match="joint"):
        state_arrays(DROID, {"gripper_open": 1.0})


def test_profiles_from_config_presets_custom_and_bad_values():
    cfg = load_config(overrides={"openpi.profile": "droid", "openpi.replan_steps": 4})
    p = profile_from_config(cfg.openpi)
    assert p.name == "droid" and p.replan_steps == 4 and p.state_layout == JOINT_STATE
    custom = profile_from_config(
        load_config(
            overrides={"openpi.profile": "custom", "openpi.replan_steps": 3, "openpi.position_scale_m": 0.01}
        ).openpi
    )
    assert custom.position_scale_m == 0.01 and custom.state_layout == EE_STATE
    with pytest.raises(ValueError, match="replan_steps"):
        profile_from_config(load_config(overrides={"openpi.profile": "custom"}).openpi)
    with pytest.raises(ConfigError):
        load_config(overrides={"openpi.profile": "aloha"})
    with pytest.raises(ValueError, match="7 action columns"):
        dataclasses.replace(LIBERO, action_dim=8)
    with pytest.raises(ValueError, match="differ"):
        dataclasses.replace(LIBERO, gripper_open_value=1.0)
    with pytest.raises(ValueError, match="reject_above"):
        dataclasses.replace(LIBERO, reject_above=0.5)

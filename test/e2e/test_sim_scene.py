"""The PyBullet scene: layouts, camera, gripper, ground truth (rt2_ros.sim.scene)."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("pybullet")

from rt2_ros.config import RT2Config  # noqa: E402
from rt2_ros.sim.scene import READY_JOINTS_RAD, Scene, SceneConfig, sample_layout  # noqa: E402
from rt2_ros.sim.tasks import COLORS  # noqa: E402


@pytest.fixture(scope="module")
def scene():
    s = Scene(seed=5)
    yield s
    s.close()


def test_layouts_are_random_per_seed_and_reproducible():
    cfg = SceneConfig()
    a, b, a2 = sample_layout(cfg, 1), sample_layout(cfg, 2), sample_layout(cfg, 1)
    assert a.positions == a2.positions and a.yaws == a2.yaws
    assert a.positions != b.positions


def test_layouts_keep_blocks_apart_and_inside_the_workspace():
    from rt2_ros.sim.settings import load_sim_settings

    cfg = SceneConfig()
    box = load_sim_settings().rt2_config().safety  # the sim's box (config/sim.yaml), inside rt2.yaml's
    default = RT2Config().safety
    assert all(a >= b for a, b in zip(box.workspace_min, default.workspace_min))
    assert all(a <= b for a, b in zip(box.workspace_max, default.workspace_max))
    for seed in range(40):
        lay = sample_layout(cfg, seed)
        pts = np.array(list(lay.positions.values()))
        d = np.linalg.norm(pts[:, None, :2] - pts[None, :, :2], axis=-1) + np.eye(len(pts)) * 9
        assert d.min() >= cfg.min_separation_m
        # Every block (and a TCP 0.15 m above it) lies inside the default workspace box.
        assert np.all(pts[:, :2] >= np.array(box.workspace_min[:2]) + 0.05)
        assert np.all(pts[:, :2] <= np.array(box.workspace_max[:2]) - 0.05)
        assert all(abs(y) <= cfg.max_yaw_rad for y in lay.yaws.values())


def test_impossible_separation_is_reported():
    with pytest.raises(RuntimeError, match="separation"):
        sample_layout(SceneConfig(min_separation_m=0.5), 0)


def test_bad_scene_config_is_rejected():
    with pytest.raises(ValueError, match="colors"):
        SceneConfig(colors=("red", "magenta"))
    with pytest.raises(ValueError, match="block_size_m"):
        SceneConfig(block_size_m=0.1)


def test_reset_puts_the_arm_home_and_the_blocks_on_the_table(scene):
    lay = scene.reset(seed=11)
    q, _ = scene.joint_state()
    np.testing.assert_allclose(q, READY_JOINTS_RAD, atol=0.01)
    assert scene.finger_positions().sum() == pytest.approx(0.08, abs=0.002)
    for c, p in lay.positions.items():
        pos, _ = scene.block_pose(c)
        np.testing.assert_allclose(pos[:2], p[:2], atol=0.005)
        assert pos[2] == pytest.approx(scene.cfg.block_size_m / 2, abs=0.003)  # resting on z = 0


def test_the_camera_sees_every_block_in_its_colour(scene):
    scene.reset(seed=12)
    img = scene.render()
    assert img.dtype == np.uint8 and img.shape == (224, 224, 3) and img.flags["C_CONTIGUOUS"]
    uv = scene.project([scene.block_pose(c)[0] for c in scene.blocks])
    for (u, v), c in zip(uv, scene.blocks):
        assert 0 <= u < 224 and 0 <= v < 224, f"{c} block outside the image"
        patch = img[int(v) - 2 : int(v) + 3, int(u) - 2 : int(u) + 3].reshape(-1, 3).astype(float)
        want = np.array(COLORS[c][:3]) * 255
        # the dominant channel of the block's colour dominates the patch around its projection
        k = int(np.argmax(want))
        assert patch[:, k].mean() > patch[:, [i for i in range(3) if i != k]].mean() + 20, c


def test_camera_matrix_matches_the_projection(scene):
    K = scene.camera_matrix()
    assert K[0, 0] == K[1, 1] and K[0, 2] == pytest.approx(111.5)
    eye, R = scene.camera_pose()
    target = np.asarray(scene.cfg.camera_target_m)
    u, v = scene.project([target])[0]
    assert u == pytest.approx(111.5, abs=0.5) and v == pytest.approx(111.5, abs=0.5)


def test_gripper_closes_and_opens(scene):
    scene.reset(seed=13)
    scene.set_gripper(0.0)
    scene.step(120)
    assert scene.finger_positions().sum() < 0.005
    scene.set_gripper(1.0)
    scene.step(120)
    assert scene.finger_positions().sum() > 0.075


@pytest.mark.parametrize("bad", [math.nan, math.inf, "open", None])
def test_bad_gripper_commands_are_rejected_and_the_gripper_holds(scene, bad):
    scene.reset(seed=14)
    scene.set_gripper(0.5)
    scene.step(120)
    before = scene.finger_positions().sum()
    with pytest.raises(ValueError):
        scene.set_gripper(bad)
    scene.step(60)
    assert scene.finger_positions().sum() == pytest.approx(before, abs=0.002)
    assert scene.gripper_command == 0.5


def test_the_arm_holds_its_pose_under_gravity(scene):
    scene.reset(seed=15)
    p0 = scene.ee_pose()[0]
    scene.step(480)  # 2 s
    assert np.linalg.norm(scene.ee_pose()[0] - p0) < 1e-3


def test_ground_truth_is_json_and_in_the_planning_frame(scene):
    scene.reset(seed=16)
    gt = json.loads(json.dumps(scene.ground_truth()))
    assert set(gt["blocks"]) == set(scene.cfg.colors)
    hand = np.array(gt["ee"]["position"])
    tcp = np.array(gt["tcp"]["position"])
    assert gt["ee"]["frame"] == "panda_hand"
    # At home the hand points down: the TCP is 0.105 m straight below it.
    np.testing.assert_allclose(tcp, hand - [0, 0, 0.105], atol=0.002)
    assert gt["layout_seed"] == 16


def test_teleport_rejects_positions_beyond_the_limits(scene):
    with pytest.raises(ValueError):
        scene.teleport_arm([0, 0, 0, 0.5, 0, 0, 0])  # joint 4 upper limit is 0
    with pytest.raises(ValueError):
        scene.teleport_arm([0] * 6)


def test_jacobian_predicts_the_hand_motion(scene):
    scene.reset(seed=17)
    q, _ = scene.joint_state()
    J = scene.jacobian(q)
    dq = np.array([0.01, -0.02, 0.015, 0.02, -0.01, 0.02, 0.03]) * 0.1  # small: first order holds
    p0 = scene.ee_pose()[0]
    scene.teleport_arm(q + dq)
    dp = scene.ee_pose()[0] - p0
    np.testing.assert_allclose(dp, J[:3] @ dq, atol=2e-5)  # a 4 cm wrong reference point errs by 2e-4
    scene.teleport_arm(q)

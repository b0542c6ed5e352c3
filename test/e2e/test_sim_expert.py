"""The scripted expert through the ROS-free loop: Controller (codec, twist, safety
envelope, episode) + the MoveIt Servo stand-in + PyBullet, in simulated time.

The DDS path (real rt2 node, sim node, demo) is covered by test_e2e.py.
"""

import numpy as np
import pytest

pytest.importorskip("pybullet")

from rt2_ros.action_tokenizer import make_codec  # noqa: E402
from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.controller import Controller  # noqa: E402
from rt2_ros.factory import make_policy  # noqa: E402
from rt2_ros.policies.base import PolicyError  # noqa: E402
from rt2_ros.sim import SCRIPTED_EXPERT  # noqa: E402
from rt2_ros.sim.expert import ScriptedExpertPolicy  # noqa: E402
from rt2_ros.sim.inprocess import run_episode  # noqa: E402
from rt2_ros.sim.settings import load_sim_settings  # noqa: E402
from rt2_ros.sim.world import SimWorld  # noqa: E402


@pytest.fixture(scope="module")
def cfg():
    return load_sim_settings().rt2_config()


@pytest.fixture(scope="module")
def world():
    w = SimWorld(seed=0)
    yield w
    w.close()


@pytest.fixture
def loop(cfg, world):
    policy = make_policy(cfg, ground_truth=world.ground_truth)  # the factory's "scripted" backend
    assert isinstance(policy, ScriptedExpertPolicy)
    return Controller(cfg, policy), policy


IMG = np.zeros((8, 8, 3), np.uint8)


@pytest.mark.parametrize(
    "instruction, seed",
    [
        ("pick up the red block", 21),
        ("lift the blue block", 22),
        ("push the green block left", 23),
        ("push the red block forward", 24),
        ("push the blue block backward", 25),
        ("move to the green block", 26),
    ],
)
def test_the_expert_succeeds_and_ends_with_its_terminate_token(loop, world, instruction, seed):
    controller, policy = loop
    texts = []
    rec = run_episode(
        world,
        controller,
        instruction,
        seed=seed,
        keep_frames=False,
        camera_period_s=0.2,
        on_step=lambda o: texts.append(o.result.text if o.result else None),
    )
    assert rec.success, rec.detail
    assert rec.reason == "terminate"
    assert rec.steps < controller.cfg.control.max_steps
    # The last answer is the RT-2 string with the terminate token first; all the others continue.
    codec = make_codec(controller.cfg.action)
    assert texts[-1].split()[0] == str(codec.terminate_token)
    assert all(t.split()[0] == str(codec.continue_token) for t in texts[:-1])
    assert rec.rejected == 0


def test_the_expert_answers_valid_rt2_text_within_the_bounds(cfg, world):
    world.reset(seed=30)
    world.set_instruction("pick up the green block")
    policy = ScriptedExpertPolicy.from_config(cfg, ground_truth=world.ground_truth)
    codec = make_codec(cfg.action)
    res = policy.infer(IMG, "pick up the green block")
    assert res.error is None and res.action is not None
    toks = [int(x) for x in res.text.split()]
    assert len(toks) == 8 and all(0 <= t < cfg.action.bins for t in toks)
    again = codec.decode(res.text)  # the node decodes the same text the same way
    np.testing.assert_allclose(again.vector, res.action.vector)
    assert np.all(res.action.vector >= codec.bounds.low) and np.all(res.action.vector <= codec.bounds.high)
    # First move: towards the green block and down, gripper open.
    green = np.array(world.ground_truth()["blocks"]["green"]["position"])
    tcp = np.array(world.ground_truth()["tcp"]["position"])
    assert np.dot(res.action.delta_position, green - tcp) > 0
    assert res.action.gripper > 0.9


def test_an_instruction_the_expert_cannot_do_moves_nothing(cfg, world):
    short = load_sim_settings().rt2_config(extra={"control.max_steps": 10})
    controller = Controller(short, make_policy(short, ground_truth=world.ground_truth))
    rec = run_episode(world, controller, "juggle the red block", seed=31, keep_frames=False, camera_period_s=0.2)
    assert rec.reason == "step_limit" and not rec.success
    assert rec.rejected == rec.steps == 10
    path = np.array(rec.tcp_path)
    assert np.linalg.norm(path.max(0) - path.min(0)) < 0.005  # the arm never moved


def test_a_block_that_is_not_there_is_a_rejected_step(cfg, world):
    world.reset(seed=32)
    policy = ScriptedExpertPolicy.from_config(cfg, ground_truth=world.ground_truth)
    res = policy.infer(IMG, "pick up the yellow block")  # the scene has red, green, blue
    assert res.action is None and "no yellow block" in res.error


def test_without_ground_truth_the_expert_fails_like_a_dead_backend(cfg):
    from rt2_ros.sim.expert import ExpertParams

    policy = ScriptedExpertPolicy.from_config(
        cfg, ground_truth=lambda: None, params=ExpertParams(first_gt_timeout_s=0.1)
    )
    with pytest.raises(PolicyError, match="no ground truth"):
        policy.infer(IMG, "pick up the red block")


def test_stale_ground_truth_is_refused(cfg, world):
    import time

    world.reset(seed=33)
    gt = world.ground_truth()
    gt["received_monotonic_s"] = time.monotonic() - 5.0
    policy = ScriptedExpertPolicy.from_config(cfg, ground_truth=lambda: gt)
    with pytest.raises(PolicyError, match="old"):
        policy.infer(IMG, "pick up the red block")


def test_bad_images_are_rejected_as_by_every_backend(cfg, world):
    policy = ScriptedExpertPolicy.from_config(cfg, ground_truth=world.ground_truth)
    with pytest.raises(ValueError):
        policy.infer(np.zeros((8, 8), np.uint8), "pick up the red block")


def test_the_expert_needs_the_rt2_action_format(cfg, world):
    bad = cfg.model_copy(update={"action": cfg.action.model_copy(update={"format": "openvla"})})
    with pytest.raises(ValueError, match="rt2"):
        ScriptedExpertPolicy.from_config(bad, ground_truth=world.ground_truth)


def test_sim_yaml_overrides_apply_on_top_of_rt2_yaml(cfg):
    base = load_config()
    s = load_sim_settings()
    assert cfg.policy.backend == SCRIPTED_EXPERT != base.policy.backend
    assert cfg.control.max_steps == s.rt2_overrides["control.max_steps"]
    assert cfg.action == base.action  # the codec is the shipped one
    assert s.servo["incoming_command_timeout"] == 0.1

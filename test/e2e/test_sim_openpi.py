"""The closed loop in simulated time through openpi's protocol on loopback: the scripted
expert served by ``rt2-ros serve --protocol openpi`` drives the arm with the ``rt2_ros``
profile (end-effector deltas, twists) and succeeds as it does in-process; the joint-velocity
expert (the expert's plan through the Panda's Jacobian, DROID's layout) reaches the named
block with the ``droid`` profile through JointJog and the Servo stand-in."""

import numpy as np
import pytest

pytest.importorskip("pybullet")

from rt2_ros.controller import Controller  # noqa: E402
from rt2_ros.factory import make_policy  # noqa: E402
from rt2_ros.serving.ws_server import BackgroundServer  # noqa: E402
from rt2_ros.sim.expert import ScriptedExpertPolicy  # noqa: E402
from rt2_ros.sim.inprocess import run_episode  # noqa: E402
from rt2_ros.sim.joint_expert import JointExpertPolicy  # noqa: E402
from rt2_ros.sim.settings import load_sim_settings  # noqa: E402
from rt2_ros.sim.world import SimWorld  # noqa: E402


@pytest.fixture(scope="module")
def world():
    w = SimWorld(seed=0)
    yield w
    w.close()


def robot_cfg(url, **over):
    return load_sim_settings().rt2_config(
        extra={"policy.backend": "openpi", "policy.server_url": url, "policy.timeout_s": 10.0, **over}
    )


@pytest.mark.parametrize("instruction, seed", [("pick up the red block", 21), ("push the green block left", 23)])
def test_expert_behind_rt2_ros_serve_protocol_openpi_succeeds_with_the_rt2_ros_profile(world, instruction, seed):
    server_cfg = load_sim_settings().rt2_config()
    expert = ScriptedExpertPolicy.from_config(server_cfg, ground_truth=world.ground_truth)
    with BackgroundServer(expert, protocol="openpi") as srv:
        cfg = robot_cfg(srv.url, **{"openpi.profile": "rt2_ros"})
        policy = make_policy(cfg)
        rec = run_episode(
            world, Controller(cfg, policy), instruction, seed=seed, keep_frames=False, camera_period_s=0.2
        )
        policy.close()
    assert rec.success, rec.detail
    assert rec.reason == "terminate"  # rt2-ros serve's answers carry the expert's terminate
    assert rec.rejected == 0


def test_joint_velocity_expert_reaches_the_named_block_through_joint_jog(world):
    server_cfg = load_sim_settings().rt2_config()
    expert = JointExpertPolicy(
        server_cfg, ScriptedExpertPolicy.from_config(server_cfg, ground_truth=world.ground_truth)
    )
    with BackgroundServer(expert, protocol="openpi") as srv:
        period = server_cfg.control.period_s
        cfg = robot_cfg(srv.url, **{"openpi.profile": "droid", "openpi.replan_steps": 1})
        assert cfg.control.period_s == period
        policy = make_policy(cfg)
        controller = Controller(cfg, policy)
        assert controller.joint_mode
        jogs = []
        orig = world.servo.on_joint_jog

        def spy(names, vel, disp, stamp):
            jogs.append(np.asarray(vel, dtype=float).copy())
            return orig(names, vel, disp, stamp)

        world.servo.on_joint_jog = spy
        try:
            rec = run_episode(
                world, controller, "move to the green block", seed=26, keep_frames=False, camera_period_s=0.2
            )
        finally:
            del world.servo.on_joint_jog
            policy.close()
            expert.close()
    assert rec.success, rec.detail
    assert rec.reason == "terminate"
    moving = [v for v in jogs if np.any(np.abs(v) > 1e-3)]
    assert len(moving) > 10  # it got there by joint velocities
    assert max(np.max(np.abs(v)) for v in moving) <= 1.2 + 1e-9  # within safety.max_joint_velocity_radps

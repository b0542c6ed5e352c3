"""``policy.backend: openpi`` against openpi's own ``WebsocketPolicyServer`` (from
shared/fixtures/openpi, read in place) wrapping scripted policies: the observation openpi's
LIBERO runtime sends, the chunk read through the profile into the controller's queue, and
every malformed answer (wrong shape, NaN, text frame, oversized, late, contradicting
metadata) is no motion."""

from __future__ import annotations

import threading
import time

import numpy as np
import openpi_fixture
import pytest

from rt2_ros.config import load_config
from rt2_ros.controller import Controller
from rt2_ros.factory import make_policy
from rt2_ros.joint_space import JointAction
from rt2_ros.policies.base import Observation, PolicyError
from rt2_ros.remote.openpi_client import OpenPIPolicy
from rt2_ros.remote.openpi_profile import resize_with_pad
from rt2_ros.serving.ws_server import BackgroundServer

P = 0.05  # LIBERO's 20 Hz
IMG = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
POSE = np.array([0.5, 0.0, 0.3])
STATE = {"ee_position": POSE, "ee_rotation": np.eye(3), "gripper_open": 1.0}


@pytest.fixture(autouse=True)
def _openpi():
    openpi_fixture.require()


def libero_chunk(h=10, dx=0.4):
    a = np.zeros((h, 7), np.float32)
    a[:, 0] = dx
    a[:, 6] = -1.0  # open
    a[3:, 6] = 1.0  # close from the 4th action on
    return a


class Scripted:
    """An openpi ``BasePolicy`` answering ``answer(obs)``; records what it saw."""

    def __init__(self, answer):
        self.answer = answer
        self.seen: list[dict] = []
        self.lock = threading.Lock()

    def infer(self, obs):
        with self.lock:
            self.seen.append(obs)
        out = self.answer(obs)
        return out if isinstance(out, dict) else {"actions": out}

    def reset(self):
        pass


def cfg_for(url, **overrides):
    return load_config(
        overrides={
            "policy.backend": "openpi",
            "policy.server_url": url,
            "policy.timeout_s": 5.0,
            "control.period_s": P,
            "safety.max_linear_accel_mps2": 100.0,
            **overrides,
        }
    )


def client(url, **overrides):
    return make_policy(cfg_for(url, **overrides), backoff_initial_s=0.05, backoff_max_s=0.1)


def infer(pol):
    return pol.infer_batch([Observation(IMG, "put the bowl on the plate", STATE)])[0]


def test_sends_libero_observation_and_reads_the_chunk_through_the_profile():
    pol = Scripted(lambda obs: libero_chunk())
    with openpi_fixture.OpenPIServer(pol, metadata={"note": "scripted"}) as srv:
        c = client(srv.url)
        r = infer(c)
        assert c.server_metadata == {"note": "scripted"}
        (obs,) = pol.seen
        assert set(obs) == {"observation/image", "observation/wrist_image", "observation/state", "prompt"}
        np.testing.assert_array_equal(obs["observation/image"], resize_with_pad(IMG, 224, 224))
        assert obs["observation/wrist_image"].shape == (224, 224, 3) and not obs["observation/wrist_image"].any()
        assert obs["observation/state"].shape == (8,) and obs["prompt"] == "put the bowl on the plate"
        assert r.error is None and len(r.actions) == 5  # replan_steps
        for k, a in enumerate(r.actions):
            np.testing.assert_allclose(a.delta_position, [0.02, 0, 0], atol=1e-7)  # 0.4 x 0.05 m
            assert a.gripper == (1.0 if k < 3 else 0.0) and not a.terminate
        assert set(r.timings_ms) >= {"preprocess", "server", "network", "decode"}


@pytest.mark.parametrize(
    "answer,needle",
    [
        (lambda obs: np.zeros((10, 6), np.float32), "shape"),
        (lambda obs: np.full((10, 7), np.nan, np.float32), "NaN"),
        (lambda obs: np.full((10, 7), 1e9, np.float32), "reject_above"),
        (lambda obs: {"not_actions": np.zeros((10, 7))}, "no 'actions'"),
    ],
)
def test_malformed_answers_are_no_action_and_never_move_the_arm(answer, needle):
    with openpi_fixture.OpenPIServer(Scripted(answer)) as srv:
        pol = client(srv.url)
        r = infer(pol)
        assert r.actions == () and needle in r.error
        c = Controller(cfg_for(srv.url), pol)
        drive_and_assert_still(c)


def drive_and_assert_still(c, t0=0.0):
    c.on_image(IMG, t0)
    c.on_ee_pose(POSE, t0, now_s=t0, orientation=np.eye(3))
    c.on_instruction("put the bowl on the plate", t0)
    out = c.step(t0)
    assert out.action is None and out.rejected
    for k in range(5):
        assert c.servo_command(t0 + 0.01 * k).twist.is_zero


def test_a_text_frame_is_a_policy_error_then_the_client_reconnects():
    calls = []

    def answer(obs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("model exploded")  # openpi's server: traceback text frame, close 1011
        return libero_chunk()

    with openpi_fixture.OpenPIServer(Scripted(answer)) as srv:
        pol = client(srv.url)
        with pytest.raises(PolicyError, match="model exploded"):
            infer(pol)
        assert not pol.connected
        r = wait_for(lambda: _try(pol))
        assert len(r.actions) == 5


def _try(pol):
    try:
        return infer(pol)
    except PolicyError:
        return None


def wait_for(fn, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = fn()
        if out is not None:
            return out
        time.sleep(0.02)
    raise AssertionError("condition not met")


def test_an_oversized_answer_closes_the_connection_and_is_a_policy_error():
    with openpi_fixture.OpenPIServer(Scripted(lambda obs: np.zeros((1024, 300), np.float32))) as srv:
        pol = client(srv.url)
        with pytest.raises(PolicyError, match="lost|1009|too big"):
            infer(pol)
        assert not pol.connected


def test_a_late_answer_is_a_policy_error_and_never_taken_for_the_next_request():
    def answer(obs):
        if "slow" in obs["prompt"]:
            time.sleep(1.0)
            return libero_chunk(dx=-0.9)
        return libero_chunk(dx=0.4)

    with openpi_fixture.OpenPIServer(Scripted(answer)) as srv:
        pol = client(srv.url, **{"policy.timeout_s": 0.3})
        t0 = time.monotonic()
        with pytest.raises(PolicyError, match="no answer"):
            pol.infer_batch([Observation(IMG, "slow please", STATE)])
        assert time.monotonic() - t0 < 1.0 and not pol.connected  # dropped: no request ids in openpi's wire
        r = wait_for(lambda: _try(pol))
        assert r.actions[0].delta_position[0] == pytest.approx(0.02)  # this request's answer


def test_metadata_that_contradicts_the_profile_is_refused():
    with openpi_fixture.OpenPIServer(Scripted(lambda obs: libero_chunk()), {"action_space": "joint_velocity"}) as srv:
        with pytest.raises(PolicyError, match="joint_velocity"):
            infer(client(srv.url))


def test_unknown_state_is_refused_before_sending():
    pol_s = Scripted(lambda obs: libero_chunk())
    with openpi_fixture.OpenPIServer(pol_s) as srv:
        with pytest.raises(ValueError, match="pose"):
            client(srv.url).infer_batch([Observation(IMG, "go", {"gripper_open": 1.0})])
        assert pol_s.seen == []


def test_the_controller_executes_the_chunk_at_the_profiles_scale_then_asks_again():
    pol_s = Scripted(lambda obs: libero_chunk(dx=0.1))
    with openpi_fixture.OpenPIServer(pol_s) as srv:
        cfg = cfg_for(srv.url)
        pol = make_policy(cfg)
        c = Controller(cfg, pol)
        assert c.chunked  # openpi answers chunks with action.horizon 1
        c.on_image(IMG, 0.0)
        c.on_ee_pose(POSE, 0.0, now_s=0.0, orientation=np.eye(3))
        c.on_instruction("put the bowl on the plate", 0.0)
        assert c.inference_due(0.0)
        out = c.step(0.0)
        assert out.rejected is None and len(out.result.actions) == 5
        seen_state = pol_s.seen[0]["observation/state"]
        np.testing.assert_allclose(seen_state[:3], POSE, atol=1e-6)
        for k in range(5):
            t = k * P + 0.01
            c.on_image(IMG, t)
            c.on_ee_pose(POSE, t, now_s=t, orientation=np.eye(3))
            v = c.servo_command(t).twist.linear
            np.testing.assert_allclose(v, [0.1 * 0.05 / P, 0, 0], atol=1e-9)  # 0.005 m per 0.05 s
        t = 5 * P + 0.01
        c.on_image(IMG, t)
        assert c.servo_command(t).twist.is_zero and c.inference_due(t)  # replan after 5


def test_round_trip_with_rt2_ros_serve_protocol_openpi_and_api_key(monkeypatch):
    from remote_fakes import ImagePolicy, image_text

    from rt2_ros.action_tokenizer import make_codec

    monkeypatch.setenv("RT2_API_KEY", "k3y")
    base = load_config()
    with BackgroundServer(ImagePolicy(base), protocol="openpi", api_key="k3y") as srv:
        # our server answers metres / radians (rpy) and gripper 0..1 (1 = open): a custom profile
        over = {
            "openpi.profile": "custom",
            "openpi.replan_steps": 1,
            "openpi.position_scale_m": 1.0,
            "openpi.rotation_scale_rad": 1.0,
            "openpi.rotation_convention": "rpy",
            "openpi.gripper_open_value": 1.0,
            "openpi.gripper_closed_value": 0.0,
            "openpi.image_key": "observation/image",
            "openpi.state_layout": "none",
        }
        pol = client(srv.url, **over)
        img = np.zeros((224, 224, 3), np.uint8)  # already the profile's size: sent as it is
        img[0, 0] = (200, 128, 255)
        r = pol.infer_batch([Observation(img, "go")])[0]
        assert r.error is None and len(r.actions) == 1
        (want,) = make_codec(base.action).decode_output(image_text(img))
        np.testing.assert_allclose(r.actions[0].delta_position, want.delta_position, atol=1e-7)  # float32 on the wire
        np.testing.assert_allclose(r.actions[0].delta_rotation, want.delta_rotation, atol=1e-7)
        assert r.actions[0].gripper == pytest.approx(want.gripper, abs=1e-7)
        assert pol.server_metadata["protocol"] == "openpi"
        monkeypatch.setenv("RT2_API_KEY", "wrong")
        with pytest.raises(PolicyError, match="401"):
            client(srv.url, **over).infer_batch([Observation(img, "go")])


def test_droid_profile_sends_droids_observation_and_reads_joint_velocities():
    def answer(obs):
        a = np.zeros((10, 8), np.float32)
        a[:, 0] = 0.5  # joint 1 at half the unit
        a[:, 7] = 1.0  # gripper closed
        return a

    pol_s = Scripted(answer)
    with openpi_fixture.OpenPIServer(pol_s) as srv:
        pol = client(srv.url, **{"openpi.profile": "droid", "control.period_s": 1 / 15})
        assert isinstance(pol, OpenPIPolicy) and pol.action_space == "joint_velocity"
        state = {"joint_positions": np.arange(7) * 0.1, "gripper_open": 1.0}
        r = pol.infer_batch([Observation(IMG, "put the marker in the cup", state)])[0]
        (obs,) = pol_s.seen
        assert set(obs) == {
            "observation/exterior_image_1_left",
            "observation/wrist_image_left",
            "observation/joint_position",
            "observation/gripper_position",
            "prompt",
        }
        np.testing.assert_allclose(obs["observation/joint_position"], np.arange(7) * 0.1, atol=1e-6)
        assert obs["observation/gripper_position"].tolist() == [0.0]  # open
        assert len(r.actions) == 8  # open_loop_horizon
        a = r.actions[0]
        assert isinstance(a, JointAction) and a.gripper == 0.0
        np.testing.assert_allclose(a.joint_velocities, [1.5, 0, 0, 0, 0, 0, 0])  # 0.5 x 3 rad/s
        with pytest.raises(ValueError, match="joint positions"):
            pol.infer_batch([Observation(IMG, "go", {"gripper_open": 1.0})])  # no /joint_states: not sent

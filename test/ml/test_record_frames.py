"""``python -m rt2_ros.sim.record_frames``: the frames the controller handed to the policy and
the scripted expert's tokens for them, on the real simulator in simulated time; with
``--noise-bins`` (DART) the arm leaves the expert's path while the labels stay the expert's."""

from __future__ import annotations

import random

import numpy as np
import pytest

pytest.importorskip("pybullet")

from rt2_ros.action_tokenizer import make_codec  # noqa: E402
from rt2_ros.config import load_config  # noqa: E402
from rt2_ros.policies.base import Policy, result_from_output  # noqa: E402
from rt2_ros.sim import record_frames as rf  # noqa: E402

SEED = 100000
INSTRUCTION = "move to the red block"


def _record(path, noise: float) -> dict:
    stats = rf.record_frames(path, [(INSTRUCTION, SEED)], bins=33, max_steps=12, keep_failures=True, noise_bins=noise)
    return {**stats, **dict(np.load(path))}


def test_expert_frames_and_tokens_line_up(tmp_path):
    d = _record(tmp_path / "clean.npz", 0.0)
    n = len(d["images"])
    assert n >= 5 and d["tokens"].shape == (n, 8) and d["images"].dtype == np.uint8
    assert d["episode"].tolist() == [0] * n and d["frame_index"].tolist() == list(range(n))
    assert d["instructions"].tolist() == [INSTRUCTION] and d["seeds"].tolist() == [SEED]
    assert int(d["bins"]) == 33 and d["tokens"].min() >= 0 and d["tokens"].max() < 33
    assert (d["tokens"][:, 1:4] != 16).any()  # the expert moves the arm
    # the same layout recorded twice is the same data (deterministic simulated time)
    again = _record(tmp_path / "again.npz", 0.0)
    assert np.array_equal(again["images"], d["images"]) and np.array_equal(again["tokens"], d["tokens"])


def test_dart_noise_moves_the_arm_off_the_experts_path(tmp_path):
    clean = _record(tmp_path / "clean.npz", 0.0)
    noisy = _record(tmp_path / "noisy.npz", 12.0)
    # the first frame (before any action) is the same layout; afterwards the arm went elsewhere
    assert np.array_equal(clean["images"][0], noisy["images"][0])
    k = min(len(clean["images"]), len(noisy["images"]))
    assert any(not np.array_equal(clean["images"][i], noisy["images"][i]) for i in range(2, k))
    assert noisy["tokens"].min() >= 0 and noisy["tokens"].max() < 33


class _Constant(Policy):
    """A labelling policy with one fixed answer (the unit under test is the capture)."""

    def __init__(self, codec, tokens):
        self.codec, self.tokens = codec, tokens
        self.metadata = None

    def infer_batch(self, observations):
        text = " ".join(map(str, self.tokens))
        return [result_from_output(self.codec, text, tuple(self.tokens)) for _ in observations]


def test_dart_executes_noisy_tokens_but_records_the_labels():
    codec = make_codec(load_config(None, {"action.bins": 33}).action)
    label = [1, 22, 12, 3, 16, 16, 16, 0]
    cap = rf._Capture(_Constant(codec, label), None, 0.0, random.Random(0), noise_bins=4.0, codec=codec)
    img = np.zeros((8, 8, 3), np.uint8)
    executed = [cap.infer(img, INSTRUCTION) for _ in range(50)]
    assert all(t == tuple(label) for t in cap.tokens) and len(cap.frames) == 50
    moved = [list(r.action.tokens) for r in executed]
    assert any(m[1:4] != label[1:4] for m in moved)  # x, y, z perturbed
    assert all(m[0] == 1 and m[4:] == label[4:] for m in moved)  # terminate, rotation, gripper kept
    assert all(0 <= v < 33 for m in moved for v in m)
    # a terminate answer is executed as it is
    stop = rf._Capture(
        _Constant(codec, [0, 16, 16, 16, 16, 16, 16, 0]), None, 0.0, random.Random(0), noise_bins=4.0, codec=codec
    )
    assert all(list(stop.infer(img, INSTRUCTION).action.tokens) == [0, 16, 16, 16, 16, 16, 16, 0] for _ in range(10))


def test_camera_delay_and_phase_reach_the_controller_as_over_dds():
    """run_episode(camera_phase_s, camera_delay_s): a frame rendered at t reaches the controller
    at t + delay, stamped t; the defaults hand every frame over at once (the recorded data's
    timing); camera_timing draws both within the documented ranges."""
    from rt2_ros.controller import Controller
    from rt2_ros.sim.expert import ScriptedExpertPolicy
    from rt2_ros.sim.inprocess import run_episode
    from rt2_ros.sim.settings import load_sim_settings
    from rt2_ros.sim.world import SimWorld

    cfg = load_sim_settings().rt2_config(extra={"action.bins": 33, "control.max_steps": 6})
    world = SimWorld(seed=SEED)
    seen: dict[float, list] = {}
    try:
        for delay in (0.0, 0.05):
            ctl = Controller(cfg, ScriptedExpertPolicy.from_config(cfg, ground_truth=world.ground_truth))
            calls = seen.setdefault(delay, [])
            inner = ctl.on_image

            def spy(image, stamp, _inner=inner, _calls=calls):
                _calls.append((stamp, world.scene.time_s))
                return _inner(image, stamp)

            ctl.on_image = spy
            run_episode(world, ctl, INSTRUCTION, seed=SEED, camera_phase_s=0.03 if delay else 0.0, camera_delay_s=delay)
    finally:
        world.close()
    tick = world.tick_s
    assert len(seen[0.0]) > 3 and all(abs(now - stamp) < 1e-9 for stamp, now in seen[0.0])
    late = seen[0.05][1:]  # the first frame (before the instruction) is always handed over at once
    assert len(late) > 3 and all(0.05 - 1e-5 <= now - stamp <= 0.05 + tick + 1e-5 for stamp, now in late), late
    t0 = seen[0.05][0][0]
    assert abs((late[0][0] - t0) - (0.1 + 0.03)) <= tick + 1e-5  # the first camera tick after the phase
    rng = random.Random(0)
    draws = [rf.camera_timing(rng) for _ in range(200)]
    assert all(0 <= d["camera_phase_s"] < rf.CAMERA_PERIOD_S for d in draws)
    assert all(rf.CAMERA_DELAY_S[0] <= d["camera_delay_s"] <= rf.CAMERA_DELAY_S[1] for d in draws)

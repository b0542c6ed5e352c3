"""openpi's own ``WebsocketClientPolicy`` against a real (tiny) model served with the
openpi protocol: the actions it receives are exactly this project's decoding of the
model's output, float32 [H, 7]."""

from __future__ import annotations

import numpy as np
import openpi_fixture
import pytest

from rt2_ros.config import load_config
from rt2_ros.serving.ws_server import BackgroundServer


@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")
def test_openpi_client_gets_the_tiny_models_actions_as_our_own_decoding(tiny_model_dir):
    openpi_fixture.require()
    from openpi_client import image_tools, websocket_client_policy

    from rt2_ros.factory import make_policy
    from rt2_ros.testing.make_model import policy_overrides

    cfg = load_config(overrides={**policy_overrides(tiny_model_dir), "policy.process": "in_process"})
    policy = make_policy(cfg)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(3)]
    prompts = ["pick up the red block", "push the blue block left", "open the drawer"]
    with BackgroundServer(policy, protocol="openpi") as srv:
        client = websocket_client_policy.WebsocketClientPolicy(srv.url)
        assert client.get_server_metadata()["model_id"] == policy.metadata.model_id
        for frame, prompt in zip(frames, prompts):
            # as openpi's LIBERO runtime sends it: resize_with_pad to 224 on the robot side
            img = image_tools.convert_to_uint8(image_tools.resize_with_pad(frame, 224, 224))
            ref = policy.infer(img, prompt)
            assert ref.action is not None  # the test model's output is always a (meaningless) valid action
            out = client.infer({"observation/image": img, "observation/state": np.zeros(8), "prompt": prompt})
            want = np.stack([a.vector for a in ref.actions]).astype(np.float32)
            assert out["actions"].dtype == np.float32 and out["actions"].shape == (len(ref.actions), 7)
            np.testing.assert_array_equal(out["actions"], want)
            assert out["terminate"].tolist() == [a.terminate for a in ref.actions]

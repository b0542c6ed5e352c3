"""``rt2-ros serve --protocol openpi`` answered to openpi's own ``WebsocketClientPolicy``
(from shared/fixtures/openpi, read in place): metadata first, ``actions`` float32
[H, 7] equal to this project's decoding, Api-Key auth, /healthz, openpi's error
behaviour (text frame, close 1011) for every rejected request, size limit, idle
timeout, batching across openpi clients."""

from __future__ import annotations

import threading
import urllib.request

import msgpack
import numpy as np
import openpi_fixture
import pytest
from remote_fakes import ImagePolicy, image_text, image_with
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from rt2_ros.action_tokenizer import make_codec
from rt2_ros.config import load_config
from rt2_ros.remote import openpi_wire
from rt2_ros.remote.protocol import Limits
from rt2_ros.serving.ws_server import BackgroundServer

CFG = load_config()
# openpi's client calls websockets' connect() the pre-15 way; not this project's concern.
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")


@pytest.fixture(scope="module")
def openpi_client():
    openpi_fixture.require()
    from openpi_client import websocket_client_policy

    return websocket_client_policy


def serve(policy=None, **kw):
    return BackgroundServer(policy or ImagePolicy(CFG), protocol="openpi", **kw)


def expected_actions(image):
    return np.stack([a.vector for a in make_codec(CFG.action).decode_output(image_text(image))]).astype(np.float32)


def obs(image, prompt="pick up the red block", **extra):
    return {"observation/image": image, "observation/state": np.zeros(8), "prompt": prompt, **extra}


def raw(url, key=None):
    headers = {"Authorization": f"Api-Key {key}"} if key else None
    ws = connect(url, additional_headers=headers, open_timeout=5, compression=None, legacy=True)
    meta = openpi_wire.unpack(ws.recv(timeout=5), 2**20)
    return ws, meta


def expect_error_then_1011(ws, frame: bytes, needle: str):
    ws.send(frame)
    text = ws.recv(timeout=10)
    assert isinstance(text, str) and needle in text, text
    with pytest.raises(ConnectionClosed) as e:
        ws.recv(timeout=10)
    assert e.value.rcvd is not None and e.value.rcvd.code == 1011


def test_openpi_client_gets_metadata_first_and_actions_equal_to_our_decoding(openpi_client):
    with serve() as srv:
        client = openpi_client.WebsocketClientPolicy(srv.url)
        md = client.get_server_metadata()
        assert md["protocol"] == "openpi" and md["action_dim"] == 7 and md["action_space"] == "ee_delta"
        assert md["action_units"] == ["m", "m", "m", "rad", "rad", "rad", "gripper"]
        for rgb in [(10, 200, 3), (255, 0, 128)]:
            img = image_with(*rgb, size=32)
            out = client.infer(obs(img))
            assert out["actions"].dtype == np.float32 and out["actions"].shape == (1, 7)
            np.testing.assert_array_equal(out["actions"], expected_actions(img))
            assert out["terminate"].tolist() == [False]
            assert out["server_timing"]["infer_ms"] >= 0
        assert "prev_total_ms" in out["server_timing"]  # the second request reports the first's total


def test_float_chw_images_and_droid_keys_are_read_as_openpi_transforms_read_them(openpi_client):
    with serve() as srv:
        client = openpi_client.WebsocketClientPolicy(srv.url)
        img = image_with(51, 102, 204, size=16)
        chw_float = np.moveaxis(img, -1, 0).astype(np.float32) / 255.0
        out = client.infer(obs(chw_float))
        np.testing.assert_allclose(out["actions"], expected_actions((255 * (img / 255.0)).astype(np.uint8)), atol=0)
        droid = {
            "observation/exterior_image_1_left": img,
            "observation/wrist_image_left": img,
            "observation/joint_position": np.zeros(7),
            "observation/gripper_position": np.zeros(1),
            "prompt": "pick up the red block",
        }
        np.testing.assert_array_equal(client.infer(droid)["actions"], expected_actions(img))


def test_api_key_in_openpis_header_is_required_and_checked(openpi_client, monkeypatch):
    with serve(api_key="s3cret") as srv:
        with pytest.raises(InvalidStatus) as e:
            openpi_client.WebsocketClientPolicy(srv.url)
        assert e.value.response.status_code == 401
        with pytest.raises(InvalidStatus):
            openpi_client.WebsocketClientPolicy(srv.url, api_key="wrong")
        client = openpi_client.WebsocketClientPolicy(srv.url, api_key="s3cret")
        assert client.infer(obs(image_with(1, 2, 3)))["actions"].shape == (1, 7)
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/healthz", timeout=5) as r:
            assert r.status == 200  # no key needed, as openpi's


@pytest.mark.parametrize(
    "frame,needle",
    [
        (openpi_wire.pack({"prompt": "pick"}), "no image"),
        (openpi_wire.pack({"observation/image": image_with(1, 2, 3)}), "prompt"),
        (openpi_wire.pack(obs(np.zeros((8, 8), np.uint8))), "bad_image"),
        (openpi_wire.pack(obs(np.full((8, 8, 3), 2.0, np.float32))), "[0, 1]"),
        (openpi_wire.pack(obs(np.zeros((8, 8, 3), np.int64))), "uint8"),
        (b"\xc1 not msgpack", "bad_frame"),
        (openpi_wire.pack(["not", "a", "map"]), "map"),
        # an object array smuggled in openpi's own encoding: refused, never unpickled
        (
            msgpack.packb(
                {
                    "prompt": "x",
                    "observation/image": {b"__ndarray__": True, b"data": b"\x80", b"dtype": "|O", b"shape": (1,)},
                }
            ),
            "not allowed",
        ),
        (
            msgpack.packb(
                {
                    "prompt": "x",
                    "observation/image": {b"__ndarray__": True, b"data": b"123", b"dtype": "|u1", b"shape": (2, 2)},
                }
            ),
            "bytes",
        ),
        (openpi_wire.pack({f"k{i}": i for i in range(100)}), "bad_frame"),
    ],
)
def test_every_rejected_request_gets_a_text_frame_and_close_1011(frame, needle):
    with serve() as srv:
        ws, _ = raw(srv.url)
        expect_error_then_1011(ws, frame, needle)


def test_model_failure_reaches_openpis_client_as_runtime_error_and_the_server_keeps_serving(openpi_client):
    with serve() as srv:
        client = openpi_client.WebsocketClientPolicy(srv.url)
        with pytest.raises(RuntimeError, match="policy_failed"):
            client.infer(obs(image_with(1, 2, 3), "explode now"))
        again = openpi_client.WebsocketClientPolicy(srv.url)
        assert again.infer(obs(image_with(1, 2, 3)))["actions"].shape == (1, 7)


def test_a_frame_over_the_size_limit_closes_the_connection_with_1009():
    with serve(limits=Limits(max_request_bytes=64 * 1024)) as srv:
        ws, _ = raw(srv.url)
        ws.send(openpi_wire.pack(obs(np.zeros((256, 256, 3), np.uint8))))
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
        assert 1009 in (e.value.rcvd and e.value.rcvd.code, e.value.sent and e.value.sent.code)


def test_rt2_ros_serve_protocol_openpi_from_the_command_line(openpi_client, monkeypatch):
    import os
    from pathlib import Path

    from rt2_ros.testing.serve import start_server

    helpers = Path(__file__).resolve().parents[1] / "helpers"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(helpers), os.environ.get("PYTHONPATH", "")]), K="abc")
    proc, url = start_server(
        ["--policy", "remote_fakes:make_image_policy", "--protocol", "openpi", "--api-key-env", "K", "--no-warmup"],
        env=env,
    )
    try:
        client = openpi_client.WebsocketClientPolicy(url, api_key="abc")
        img = image_with(7, 8, 9)
        np.testing.assert_array_equal(client.infer(obs(img))["actions"], expected_actions(img))
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_idle_openpi_connection_is_closed():
    with serve(idle_timeout_s=0.5) as srv:
        ws, _ = raw(srv.url)
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
        assert e.value.rcvd is not None and e.value.rcvd.reason == "idle timeout"


def test_openpi_clients_share_one_model_call(openpi_client):
    pol = ImagePolicy(CFG, delay_s=0.05)
    n = 3
    with serve(pol, max_batch_size=n, max_wait_ms=5000) as srv:
        clients = [openpi_client.WebsocketClientPolicy(srv.url) for _ in range(n)]
        barrier = threading.Barrier(n)
        out = [None] * n

        def robot(i):
            barrier.wait()
            out[i] = clients[i].infer(obs(image_with(10 + i, 20, 30)))

        threads = [threading.Thread(target=robot, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert pol.batch_sizes == [n]
        for i in range(n):
            np.testing.assert_array_equal(out[i]["actions"], expected_actions(image_with(10 + i, 20, 30)))

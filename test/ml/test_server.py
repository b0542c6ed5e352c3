"""The inference server on loopback with real websocket clients: batching, auth, limits,
malformed requests, TLS, the ``rt2-ros serve`` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import msgpack
import numpy as np
import pytest
from remote_fakes import ImagePolicy, image_text, image_with
from serve_cli import serve_subprocess
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from rt2_ros.config import load_config
from rt2_ros.policies.base import PolicyError
from rt2_ros.remote.client import RemotePolicy
from rt2_ros.remote.protocol import Limits, packb, unpackb
from rt2_ros.serving.ws_server import BackgroundServer

ROOT = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).resolve().parents[1] / "helpers"
CFG = load_config()


def raw_client(url, key=None, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else None
    ws = connect(url, additional_headers=headers, proxy=None, open_timeout=5, legacy=True, **kw)
    meta = unpackb(ws.recv(timeout=5))
    assert meta["type"] == "metadata"
    return ws, meta


def request(ws, rid, image, instruction="pick up the block"):
    ws.send(packb({"type": "infer", "id": rid, "image": image, "instruction": instruction}))
    return unpackb(ws.recv(timeout=5))


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# -- batching -------------------------------------------------------------------------------


def test_concurrent_clients_share_one_model_call_and_each_gets_its_own_action():
    pol = ImagePolicy(CFG, delay_s=0.05)
    n = 4
    # A long wait: the batch closes because all 4 clients are in (not on the timer).
    with BackgroundServer(pol, max_batch_size=n, max_wait_ms=5000) as srv:
        clients = [RemotePolicy(srv.url, CFG.action, timeout_s=10) for _ in range(n)]
        for c in clients:
            c.connect()
        barrier = threading.Barrier(n)
        results = [None] * n

        def robot(i):
            barrier.wait()
            results[i] = clients[i].infer(image_with(10 + i, 200 - i, 3 * i), "pick up the block")

        threads = [threading.Thread(target=robot, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert pol.batch_sizes == [n]  # one model call served all four robots
        for i, r in enumerate(results):
            expected = pol.codec.decode(image_text(image_with(10 + i, 200 - i, 3 * i)))
            assert r.text == expected.text and r.action.tokens == expected.tokens
            np.testing.assert_array_equal(r.action.vector, expected.vector)
        for c in clients:
            c.close()


def test_batching_off_runs_one_request_per_model_call():
    pol = ImagePolicy(CFG, delay_s=0.02)
    with BackgroundServer(pol, max_batch_size=1) as srv:
        clients = [RemotePolicy(srv.url, CFG.action, timeout_s=10) for _ in range(3)]
        threads = [
            threading.Thread(target=lambda c=c: [c.infer(image_with(5, 5), "go") for _ in range(3)]) for c in clients
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert pol.batch_sizes == [1] * 9


def test_lone_client_does_not_wait_for_a_batch():
    pol = ImagePolicy(CFG)
    with BackgroundServer(pol, max_batch_size=8, max_wait_ms=3000) as srv:
        c = RemotePolicy(srv.url, CFG.action, timeout_s=2.0)
        r = c.infer(image_with(3, 4), "go")  # would time out if it waited the 3 s max_wait
        assert r.action.tokens[1:3] == (3, 4)


def test_model_failure_fails_only_that_request_in_a_batch():
    pol = ImagePolicy(CFG)
    with BackgroundServer(pol, max_batch_size=2, max_wait_ms=5000) as srv:
        good, bad = RemotePolicy(srv.url, CFG.action, timeout_s=10), RemotePolicy(srv.url, CFG.action, timeout_s=10)
        good.connect(), bad.connect()
        out = {}
        barrier = threading.Barrier(2)

        def run(name, c, instr):
            barrier.wait()
            try:
                out[name] = c.infer(image_with(42, 43), instr)
            except PolicyError as e:
                out[name] = e

        ts = [
            threading.Thread(target=run, args=("good", good, "pick")),
            threading.Thread(target=run, args=("bad", bad, "explode")),
        ]
        for t in ts:
            t.start()
        for t in ts:
            t.join(15)
        assert isinstance(out["bad"], PolicyError) and "exploded" in str(out["bad"])
        assert out["good"].action.tokens[1:3] == (42, 43)
        assert pol.batch_sizes == [2, 1, 1]  # the batched call failed, then each ran alone
        good.close()
        # the failing client keeps its connection and gets answers again
        assert bad.infer(image_with(7, 8), "pick").action.tokens[1:3] == (7, 8)


def test_full_queue_answers_overloaded_and_keeps_serving():
    pol = ImagePolicy(CFG, slow_s=0.8)
    with BackgroundServer(pol, max_batch_size=1, max_queue=1) as srv:
        a, b, c = (RemotePolicy(srv.url, CFG.action, timeout_s=5) for _ in range(3))
        for r in (a, b, c):
            r.connect()
        out = {}
        ta = threading.Thread(target=lambda: out.setdefault("a", a.infer(image_with(1, 1), "slow")))
        ta.start()
        time.sleep(0.2)  # a is in the model
        tb = threading.Thread(target=lambda: out.setdefault("b", b.infer(image_with(2, 2), "go")))
        tb.start()
        time.sleep(0.2)  # b waits in the queue, which is now full
        with pytest.raises(PolicyError, match="overloaded"):
            c.infer(image_with(3, 3), "go")
        ta.join(5), tb.join(5)
        assert out["a"].action.tokens[1] == 1 and out["b"].action.tokens[1] == 2
        assert c.infer(image_with(3, 3), "go").action.tokens[1] == 3  # room again


def test_health_turns_degraded_after_repeated_model_failures_and_recovers():
    with BackgroundServer(ImagePolicy(CFG)) as srv:
        c = RemotePolicy(srv.url, CFG.action, timeout_s=5)
        health = srv.url.replace("ws://", "http://") + "/healthz"
        for _ in range(3):
            with pytest.raises(PolicyError, match="exploded"):
                c.infer(image_with(1, 1), "explode")
        status, body = http_get(health)
        assert status == 503 and json.loads(body)["status"] == "degraded"
        c.infer(image_with(1, 1), "go")
        assert http_get(health)[0] == 200


def test_cli_serve_exits_with_a_message_when_the_model_cannot_be_loaded(tmp_path, capsys):
    from rt2_ros.cli import main

    rc = main(["serve", "--model", str(tmp_path / "no_such_model"), "--port", "0"])
    assert rc == 1 and "no_such_model" in capsys.readouterr().err


# -- authentication ------------------------------------------------------------------------------


def test_wrong_or_missing_api_key_is_refused_with_401_and_right_key_works():
    with BackgroundServer(ImagePolicy(CFG), api_key="s3cret-key") as srv:
        for key in (None, "wrong", "s3cret-key-but-longer", "s3cret-ke"):
            with pytest.raises(InvalidStatus) as e:
                raw_client(srv.url, key)
            assert e.value.response.status_code == 401
        with pytest.raises(PolicyError, match="401"):
            RemotePolicy(srv.url, CFG.action, api_key="wrong", timeout_s=2).infer(image_with(1, 2), "go")
        ws, meta = raw_client(srv.url, "s3cret-key")
        assert request(ws, 1, image_with(1, 2))["type"] == "result"
        ws.close()
        # health check needs no key and reveals no model details
        status, body = http_get(srv.url.replace("ws://", "http://") + "/healthz")
        assert status == 200 and body["status"] == "ok" and "model_id" not in json.dumps(body)


def test_metadata_on_connect_describes_model_and_server():
    with BackgroundServer(ImagePolicy(CFG), max_batch_size=4, max_wait_ms=7) as srv:
        ws, meta = raw_client(srv.url)
        ws.close()
    assert meta["protocol"] == 1 and meta["server_version"]
    md = meta["metadata"]
    assert md["action_format"] == "rt2" and md["model_id"] == "image-policy" and md["action_dim"] == 8
    assert md["bounds"]["low"] == list(CFG.action.low) and "unnorm_key" in md
    assert meta["batching"] == {"max_batch_size": 4, "max_wait_ms": 7.0}
    assert meta["limits"]["max_request_bytes"] == Limits().max_request_bytes


def test_server_refuses_clients_beyond_max_clients():
    with BackgroundServer(ImagePolicy(CFG), max_clients=1) as srv:
        ws, _ = raw_client(srv.url)
        with pytest.raises(InvalidStatus) as e:
            raw_client(srv.url)
        assert e.value.response.status_code == 503
        ws.close()


# -- malformed and oversized requests -----------------------------------------------------------------


def _nd(data, dtype, shape):
    return {"__ndarray__": True, "data": data, "dtype": dtype, "shape": shape}


MALFORMED = [
    ("text frame", "hello", "bad_frame"),
    ("not msgpack", b"\xc1\xc1\xc1garbage", "bad_frame"),
    ("truncated msgpack", packb({"type": "infer", "id": 5})[:-3], "bad_frame"),
    ("not a map", msgpack.packb([1, 2, 3]), "bad_request"),
    ("unknown type", msgpack.packb({"type": "rm -rf", "id": 3}), "bad_request"),
    ("missing id", packb({"type": "infer", "image": image_with(1, 1), "instruction": "go"}), "bad_request"),
    (
        "empty instruction",
        packb({"type": "infer", "id": 4, "image": image_with(1, 1), "instruction": " "}),
        "bad_request",
    ),
    (
        "long instruction",
        packb({"type": "infer", "id": 4, "image": image_with(1, 1), "instruction": "x" * 5000}),
        "bad_request",
    ),
    ("missing image", packb({"type": "infer", "id": 4, "instruction": "go"}), "bad_image"),
    (
        "float image",
        packb({"type": "infer", "id": 4, "image": np.zeros((4, 4, 3), np.float32), "instruction": "go"}),
        "bad_image",
    ),
    (
        "grey image",
        packb({"type": "infer", "id": 4, "image": np.zeros((4, 4), np.uint8), "instruction": "go"}),
        "bad_image",
    ),
    (
        "image too tall",
        packb({"type": "infer", "id": 4, "image": np.zeros((3000, 1, 3), np.uint8), "instruction": "go"}),
        "bad_image",
    ),
    (
        "size mismatch",
        msgpack.packb({"type": "infer", "id": 4, "image": _nd(b"\0" * 10, "|u1", [4, 4, 3]), "instruction": "go"}),
        "bad_frame",
    ),
    (
        "object dtype",
        msgpack.packb({"type": "infer", "id": 4, "image": _nd(b"\0" * 8, "|O", [1]), "instruction": "go"}),
        "bad_frame",
    ),
    (
        "negative shape",
        msgpack.packb({"type": "infer", "id": 4, "image": _nd(b"", "|u1", [-1, 4, 3]), "instruction": "go"}),
        "bad_frame",
    ),
    (
        "bogus dtype",
        msgpack.packb({"type": "infer", "id": 4, "image": _nd(b"", "nonsense", [0]), "instruction": "go"}),
        "bad_frame",
    ),
]


def test_malformed_requests_get_error_replies_and_the_connection_keeps_serving():
    pol = ImagePolicy(CFG)
    with BackgroundServer(pol) as srv:
        ws, _ = raw_client(srv.url)
        for name, frame, code in MALFORMED:
            ws.send(frame)
            reply = unpackb(ws.recv(timeout=5))
            assert reply["type"] == "error" and reply["code"] == code, name
        assert pol.batch_sizes == []  # nothing malformed reached the model
        ok = request(ws, 99, image_with(9, 8))
        assert ok["type"] == "result" and ok["id"] == 99 and ok["text"] == image_text(image_with(9, 8))
        ws.close()


def test_oversized_request_closes_only_its_connection_and_others_keep_being_served():
    limits = Limits(max_request_bytes=64 * 1024)
    with BackgroundServer(ImagePolicy(CFG), limits=limits) as srv:
        other, _ = raw_client(srv.url)
        big, _ = raw_client(srv.url)
        big.send(packb({"type": "infer", "id": 1, "image": np.zeros((200, 200, 3), np.uint8), "instruction": "go"}))
        with pytest.raises(ConnectionClosed) as e:
            big.recv(timeout=5)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1009  # message too big
        assert request(other, 2, image_with(6, 6))["type"] == "result"
        fresh, _ = raw_client(srv.url)
        assert request(fresh, 3, image_with(6, 7))["text"] == image_text(image_with(6, 7))
        # the client library checks the server's limits before sending: a ValueError, connection kept
        c = RemotePolicy(srv.url, CFG.action, timeout_s=5)
        c.infer(image_with(1, 1), "go")
        with pytest.raises(ValueError, match="request limit"):
            c.infer(np.zeros((200, 200, 3), np.uint8), "go")
        assert c.connected and c.infer(image_with(2, 2), "go").action is not None
        for ws in (other, fresh):
            ws.close()


# -- TLS --------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not available")
def test_tls_with_a_self_signed_certificate(tmp_path):
    from rt2_ros.serving.ws_server import make_ssl_context

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    with BackgroundServer(ImagePolicy(CFG), ssl=make_ssl_context(str(cert), str(key)), api_key="k") as srv:
        assert srv.url.startswith("wss://")
        r = RemotePolicy(srv.url, CFG.action, api_key="k", ca_file=str(cert), timeout_s=5).infer(image_with(4, 5), "go")
        assert r.action.tokens[1:3] == (4, 5)
        # without the CA the client refuses the server's certificate
        with pytest.raises(PolicyError, match="(?i)certificate"):
            RemotePolicy(srv.url, CFG.action, api_key="k", timeout_s=5).infer(image_with(4, 5), "go")


# -- the command line ------------------------------------------------------------------------------


def test_cli_serve_reads_the_key_from_the_environment_and_serves(tmp_path):
    p, url = serve_subprocess(
        "--policy", "remote_fakes:make_image_policy", "--api-key-env", "MY_KEY", env={"MY_KEY": "from-env"}
    )
    try:
        assert "from-env" not in " ".join(p.args)  # the key never appears on the command line
        assert RemotePolicy(url, CFG.action, api_key="from-env", timeout_s=5).infer(
            image_with(3, 9), "go"
        ).action.tokens[1:3] == (3, 9)
        with pytest.raises(PolicyError, match="401"):
            RemotePolicy(url, CFG.action, timeout_s=5).infer(image_with(3, 9), "go")
        status, body = http_get(url.replace("ws://", "http://") + "/healthz")
        assert status == 200 and body["requests"] >= 1
    finally:
        p.terminate()
        assert p.wait(10) == 0  # SIGTERM stops it cleanly


def test_cli_refuses_a_public_address_without_a_key(tmp_path, capsys):
    from rt2_ros.cli import main

    env_backup = os.environ.pop("RT2_API_KEY", None)
    try:
        rc = main(["serve", "--policy", "remote_fakes:make_image_policy", "--host", "0.0.0.0", "--port", "0"])
    finally:
        if env_backup is not None:
            os.environ["RT2_API_KEY"] = env_backup
    assert rc == 1 and "without an API key" in capsys.readouterr().err


def test_api_key_file(tmp_path):
    from rt2_ros.serving.settings import read_api_key

    f = tmp_path / "key"
    f.write_text("file-key\n")
    f.chmod(0o600)
    assert read_api_key("NO_SUCH_VAR_RT2", str(f)) == "file-key"
    f.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_api_key(None, str(f))
    with pytest.raises(ValueError, match="cannot read"):
        read_api_key(None, str(tmp_path / "missing"))
    assert read_api_key("NO_SUCH_VAR_RT2", None) is None


# -- the real backend: batched inference through the server equals unbatched in-process -----------


INSTRUCTIONS = ["pick up the red block", "open the drawer", "push the blue cube to the left of the bowl", "stack"]


def _images(n, size=224):
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def _concurrently(clients, images, instructions):
    barrier, out = threading.Barrier(len(clients)), [None] * len(clients)

    def robot(i):
        barrier.wait()
        out[i] = clients[i].infer(images[i], instructions[i])

    ts = [threading.Thread(target=robot, args=(i,)) for i in range(len(clients))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out


@pytest.mark.parametrize("action_format", ["rt2", "openvla"])
def test_batched_server_inference_equals_unbatched_in_process_inference(tiny_model_dir, action_format):
    from rt2_ros.factory import make_policy
    from rt2_ros.testing.make_model import policy_overrides

    cfg = load_config(overrides={**policy_overrides(tiny_model_dir, action_format), "policy.process": "in_process"})
    policy = make_policy(cfg)
    n = 4
    images = _images(n)
    reference = [policy.infer(images[i], INSTRUCTIONS[i]) for i in range(n)]  # one at a time, no server
    assert all(r.action is not None for r in reference)
    assert len({r.text for r in reference}) == n  # distinct answers: a mix-up between robots would show
    with BackgroundServer(policy, max_batch_size=n, max_wait_ms=10_000) as srv:
        # the robots' config has no statistics file: OpenVLA statistics come from the server's metadata
        robot_cfg = load_config(
            overrides={"action.format": action_format, "action.openvla_vocab_size": cfg.action.openvla_vocab_size}
        )
        clients = [RemotePolicy(srv.url, robot_cfg.action, timeout_s=60) for _ in range(n)]
        for c in clients:
            c.connect(timeout_s=10)
        before = srv.server.batcher.stats.batches
        results = _concurrently(clients, images, INSTRUCTIONS)
        assert srv.server.batcher.stats.batches == before + 1  # all four in one generate() call
        for c in clients:
            c.close()
    for ref, got in zip(reference, results):
        assert got.text == ref.text and got.token_ids == ref.token_ids
        assert got.action.tokens == ref.action.tokens and got.action.terminate == ref.action.terminate
        np.testing.assert_allclose(got.action.vector, ref.action.vector, rtol=0, atol=1e-12)


# -- scale-out: replicas behind one address on Ray Serve (skipped when ray[serve] is absent) -------


def test_ray_serve_runs_replicas_behind_one_address_with_the_same_protocol(monkeypatch):
    pytest.importorskip("ray.serve", reason='Ray Serve is not installed (pip install "ray[serve]")')
    import socket

    import ray
    from ray import serve

    from rt2_ros.serving.ray_app import build

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        "PYTHONPATH": os.pathsep.join([str(HELPERS), str(ROOT)]),
        "RT2_RAY_TEST_KEY": "ray-key",
        "RT2_FAKE_DELAY_S": "0.01",
        # Serve's controller kills an HTTP proxy not ready within 5 s (its default ready
        # check) and serve.start() then fails with ActorDiedError: a loaded 2-core machine
        # (load 4 beside CPU burners, fresh-clone CI) needs longer to import and start it;
        # at load 7 (four burners) 60 s were not enough either.
        "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "240",
        # The proxy asks each replica for its queue length before routing, within 0.1 s by
        # default; at load 6 those answers came late ("Failed to get queue length ... within
        # 0.1s" in the proxy's log) and the test failed (the run's summary was not seen).
        "RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S": "5",
    }
    # The local raylet and the controller inherit the driver's environment too.
    monkeypatch.setenv("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "240")
    monkeypatch.setenv("RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S", "5")
    # serve.start() itself waits HTTP_PROXY_TIMEOUT (60 s, a plain constant in Ray 2.x) for
    # the proxy: at load 7 it raised "HTTP proxies not available after 60s".
    monkeypatch.setattr("ray.serve._private.api.HTTP_PROXY_TIMEOUT", 240, raising=False)
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(
            build(
                {
                    "policy": "remote_fakes:make_image_policy",
                    "num_replicas": 2,
                    "num_cpus": 0.5,
                    "api_key_env": "RT2_RAY_TEST_KEY",
                    "max_batch_size": 4,
                }
            ),
            name="rt2",
            route_prefix="/",
        )
        url = f"ws://127.0.0.1:{port}"
        robots = [RemotePolicy(url, CFG.action, api_key="ray-key", timeout_s=30) for _ in range(4)]
        for r in robots:
            r.connect(timeout_s=30)
        # robots are spread over the replicas (Serve routes a new connection to the least-loaded one)
        assert len({r.metadata.extra["replica"] for r in robots}) == 2
        images = [image_with(20 + i, 100 + i, i) for i in range(4)]
        results = _concurrently(robots, images, ["pick"] * 4)
        for img, res in zip(images, results):
            assert res.text == image_text(img) and res.action.tokens[1:3] == tuple(int(v) for v in img[0, 0, :2])
        with pytest.raises(PolicyError, match="HTTP 403"):  # Starlette refuses an unaccepted websocket with 403
            RemotePolicy(url, CFG.action, api_key="wrong", timeout_s=30).infer(images[0], "pick")
        ws, _ = raw_client(url, "ray-key")
        ws.send(b"\xc1 not msgpack")
        assert unpackb(ws.recv(timeout=10))["code"] == "bad_frame"  # same protocol, connection survives
        assert request(ws, 7, images[1])["text"] == image_text(images[1])
        ws.close()
        status, body = http_get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and body["status"] == "ok"
        for r in robots:
            r.close()
    finally:
        serve.shutdown()
        ray.shutdown()

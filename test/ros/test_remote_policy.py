"""The remote backend (RemotePolicy) against a real server on loopback: timeouts, late
replies, reconnects with backoff, independent decoding, latency split, and the
control loop stopping the robot when the server dies mid-episode."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import numpy as np
import pytest
from remote_fakes import ImagePolicy, image_text, image_with
from serve_cli import serve_subprocess

from rt2_ros.config import load_config
from rt2_ros.controller import Controller
from rt2_ros.factory import make_policy
from rt2_ros.policies.base import PolicyError
from rt2_ros.remote.client import RemotePolicy
from rt2_ros.serving.ws_server import BackgroundServer

CFG = load_config()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_late_reply_is_no_action_and_is_never_replayed_later():
    pol = ImagePolicy(CFG, slow_s=1.5)
    with BackgroundServer(pol) as srv:
        c = RemotePolicy(srv.url, CFG.action, timeout_s=0.3)
        c.connect()
        t0 = time.monotonic()
        with pytest.raises(PolicyError, match="no reply"):
            c.infer(image_with(11, 11), "slow down")
        assert time.monotonic() - t0 < 1.2  # gave up at its deadline, before the model answered
        time.sleep(1.5)  # the late reply for (11, 11) arrives now and sits in the socket
        r = c.infer(image_with(22, 33), "go")
        assert r.action.tokens[1:3] == (22, 33)  # this request's answer, not the stale one
        assert c.connected


def test_unreachable_server_fails_within_the_timeout_and_backs_off():
    url = f"ws://127.0.0.1:{free_port()}"
    c = RemotePolicy(url, CFG.action, timeout_s=0.5, backoff_initial_s=0.5, backoff_max_s=4.0)
    with pytest.raises(PolicyError, match="cannot connect"):
        c.infer(image_with(1, 1), "go")
    with pytest.raises(PolicyError, match="next attempt"):  # inside the backoff: fails without trying
        c.infer(image_with(1, 1), "go")


def test_silent_server_times_out_within_the_deadline():
    """A server that accepts TCP but never answers the handshake: the step still ends on time."""
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4)
        c = RemotePolicy(f"ws://127.0.0.1:{lsock.getsockname()[1]}", CFG.action, timeout_s=0.5)
        t0 = time.monotonic()
        with pytest.raises(PolicyError, match="timed out"):
            c.infer(image_with(1, 1), "go")
        assert time.monotonic() - t0 < 3.0  # bounded by the step deadline, not websockets' 10 s default


def test_server_that_sends_no_metadata_is_no_action_within_the_deadline():
    from websockets.sync.server import serve

    stop = threading.Event()
    with serve(lambda ws: stop.wait(5), "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        c = RemotePolicy(f"ws://127.0.0.1:{server.socket.getsockname()[1]}", CFG.action, timeout_s=0.5)
        with pytest.raises(PolicyError, match="no metadata"):
            c.infer(image_with(1, 1), "go")
        assert not c.connected
        stop.set()
        server.shutdown()


def test_bad_image_is_refused_before_anything_is_sent():
    c = RemotePolicy(f"ws://127.0.0.1:{free_port()}", CFG.action, timeout_s=0.5)  # nothing listens there
    for bad in (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), "not an image"):
        with pytest.raises(ValueError):
            c.infer(bad, "go")
    with pytest.raises(ValueError, match="instruction"):
        c.infer(image_with(1, 1), "  ")
    # no connection was attempted: the first real attempt is not held back by a backoff
    with pytest.raises(PolicyError, match="cannot connect"):
        c.infer(image_with(1, 1), "go")


def test_reconnects_when_the_server_comes_back_on_the_same_port():
    port = free_port()
    pol = ImagePolicy(CFG)
    srv = BackgroundServer(pol, port=port).start()
    c = RemotePolicy(srv.url, CFG.action, timeout_s=0.5, backoff_initial_s=0.05, backoff_max_s=0.4)
    assert c.infer(image_with(1, 2), "go").action is not None
    srv.stop()
    with pytest.raises(PolicyError):
        c.infer(image_with(1, 2), "go")
    assert not c.connected
    srv = BackgroundServer(pol, port=port).start()
    try:
        deadline, result = time.monotonic() + 5.0, None
        while result is None and time.monotonic() < deadline:
            try:
                result = c.infer(image_with(5, 6), "go")
            except PolicyError:
                time.sleep(0.05)
        assert result is not None and result.action.tokens[1:3] == (5, 6)
    finally:
        srv.stop()


def test_timings_split_network_and_server_time():
    pol = ImagePolicy(CFG, delay_s=0.05)
    with BackgroundServer(pol) as srv:
        c = RemotePolicy(srv.url, CFG.action, timeout_s=5)
        c.connect()
        t0 = time.perf_counter()
        r = c.infer(image_with(1, 2, size=224), "go")
        wall_ms = (time.perf_counter() - t0) * 1e3
    assert {"preprocess", "model", "decode", "server", "network"} <= set(r.timings_ms)
    assert all(v >= 0 for v in r.timings_ms.values())
    assert r.timings_ms["model"] >= 50.0  # the server's model time, passed through
    assert r.total_ms <= wall_ms + 1.0  # the parts add up to (at most) the call's wall time


def test_client_decodes_with_its_own_codec_not_the_servers():
    class LyingPolicy(ImagePolicy):
        """Reports a huge decoded action next to the raw text."""

        def infer_batch(self, observations):
            out = super().infer_batch(observations)
            import dataclasses

            return [
                dataclasses.replace(r, actions=(dataclasses.replace(r.action, delta_position=np.array([9.0, 9, 9])),))
                for r in out
            ]

    with BackgroundServer(LyingPolicy(CFG)) as srv:
        r = RemotePolicy(srv.url, CFG.action, timeout_s=5).infer(image_with(255, 0), "go")
    expected = ImagePolicy(CFG).codec.decode(image_text(image_with(255, 0)))
    np.testing.assert_array_equal(r.action.delta_position, expected.delta_position)
    assert abs(r.action.delta_position).max() <= 0.05  # within this robot's bounds


def test_server_with_other_action_bounds_is_refused():
    wide = {"low": [-1.0] * 6 + [0.0], "high": [1.0] * 6 + [1.0]}
    with BackgroundServer(ImagePolicy(CFG, bounds=wide)) as srv:
        c = RemotePolicy(srv.url, CFG.action, timeout_s=2)
        with pytest.raises(PolicyError, match="bounds"):
            c.infer(image_with(1, 1), "go")
        assert not c.connected


def test_garbage_model_output_is_no_action_with_the_reason():
    class Garbage(ImagePolicy):
        def infer_batch(self, observations):
            import dataclasses

            return [dataclasses.replace(r, text="1 2 3 banana", actions=()) for r in super().infer_batch(observations)]

    with BackgroundServer(Garbage(CFG)) as srv:
        r = RemotePolicy(srv.url, CFG.action, timeout_s=5).infer(image_with(1, 1), "go")
    assert r.action is None and "expected 8 integers" in r.error


def test_from_config_reads_the_key_from_the_named_environment_variable(monkeypatch):
    with BackgroundServer(ImagePolicy(CFG), api_key="abc") as srv:
        cfg = load_config(
            overrides={
                "policy.backend": "remote",
                "policy.server_url": srv.url,
                "policy.api_key_env": "RT2_TEST_KEY",
                "policy.timeout_s": 3.0,
            }
        )
        monkeypatch.setenv("RT2_TEST_KEY", "abc")
        pol = make_policy(cfg)
        assert isinstance(pol, RemotePolicy) and pol.timeout_s == 3.0
        assert pol.infer(image_with(8, 9), "go").action.tokens[1:3] == (8, 9)
        assert pol.metadata.model_id == "image-policy" and pol.metadata.extra["connected"]
        monkeypatch.setenv("RT2_TEST_KEY", "")
        with pytest.raises(PolicyError, match="401"):
            make_policy(cfg).infer(image_with(8, 9), "go")


def test_bad_urls_are_rejected():
    for url in ("http://x:1", "127.0.0.1:8000", "ws://"):
        with pytest.raises(ValueError):
            RemotePolicy(url, CFG.action)


def test_controller_stops_the_robot_when_the_server_is_killed_mid_episode_and_recovers():
    """Real time: a server subprocess, the controller's step/servo loop; SIGKILL the server,
    the twist must be zero within period + timeout; restart it, motion resumes."""
    period, timeout = 0.2, 0.3
    cfg = load_config(
        overrides={
            "control.period_s": period,
            "policy.timeout_s": timeout,
            "safety.max_linear_accel_mps2": 100.0,
            "safety.max_image_age_s": 5.0,
            "safety.require_ee_pose": False,
            "control.max_duration_s": 60.0,
            "control.max_steps": 1000,
            "policy.max_failed_steps": 0,  # the episode waits for the restarted server, however long
        }
    )
    proc, url = serve_subprocess("--policy", "remote_fakes:make_image_policy", "--no-warmup")
    port = int(url.rsplit(":", 1)[1])
    pol = RemotePolicy(url, cfg.action, timeout_s=timeout, backoff_initial_s=0.05, backoff_max_s=0.5)
    ctl = Controller(cfg, pol)
    img = image_with(200, 128)  # dx bin 200: +x motion
    t_origin = time.monotonic()
    now = lambda: time.monotonic() - t_origin  # noqa: E731
    ctl.on_image(img, now())
    ctl.on_instruction("push the block", now())

    stop = threading.Event()
    outcomes: list[tuple[float, object]] = []

    def worker():
        while not stop.is_set():
            t = now()
            ctl.on_image(img, t)  # a live camera
            outcomes.append((t, ctl.step(t)))
            time.sleep(max(0.0, period - (now() - t)))

    th = threading.Thread(target=worker, daemon=True)
    th.start()
    twists: list[tuple[float, np.ndarray]] = []

    def servo_for(seconds):
        end = now() + seconds
        while now() < end:
            t = now()
            twists.append((t, ctl.servo_command(t).twist.linear.copy()))
            time.sleep(0.02)

    try:
        servo_for(1.5)
        assert any(v[0] > 0 for _, v in twists), "no motion while the server was up"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        t_kill = now()
        servo_for(2.0)
        after = [(t, v) for t, v in twists if t > t_kill + period + timeout + 0.05]
        assert after and all(not v.any() for _, v in after), "robot still commanded to move after the server died"
        failed = [o for t, o in outcomes if t > t_kill + 0.01 and o is not None]
        assert failed and all(o.action is None and "policy failed" in (o.rejected or "") for o in failed)

        proc, url2 = serve_subprocess("--policy", "remote_fakes:make_image_policy", "--no-warmup", "--port", str(port))
        assert url2 == url
        t_back = now()
        servo_for(3.0)
        resumed = [t for t, v in twists if t > t_back and v[0] > 0]
        assert resumed, "motion did not resume after the server came back"
        assert ctl.episode.running
    finally:
        stop.set()
        th.join(5)
        proc.kill()
        proc.wait(5)
        pol.close()


def test_node_publishes_zero_twists_when_the_server_dies_and_moves_again_when_it_returns():
    """The rt2 node with ``policy.backend: remote`` over real DDS; SIGKILL the server mid-episode."""
    pytest.importorskip("rclpy")
    from geometry_msgs.msg import TwistStamped
    from ros_helpers import (
        Collector,
        ImageStreamer,
        RosHarness,
        is_zero_twist,
        stamp_s,
        wait_for_publishers,
        wait_for_subscribers,
        wait_until,
    )
    from std_msgs.msg import String

    from rt2_ros.ros.node import Rt2Node

    period, timeout = 0.1, 0.3
    proc, url = serve_subprocess("--policy", "remote_fakes:make_image_policy", "--no-warmup")
    port = url.rsplit(":", 1)[1]
    h = RosHarness()
    try:
        node = h.add_node(
            Rt2Node(
                None,
                context=h.context,
                overrides={
                    "policy.backend": "remote",
                    "policy.server_url": url,
                    "policy.timeout_s": timeout,
                    "control.period_s": period,
                    "control.servo_rate_hz": 50.0,
                    "control.max_duration_s": 120.0,
                    "control.max_steps": 100000,
                    "policy.max_failed_steps": 0,  # the episode waits for the restarted server
                    "safety.max_linear_accel_mps2": 100.0,
                    "safety.require_ee_pose": False,
                },
            )
        )
        assert isinstance(node.policy, RemotePolicy)  # built from the parameters by the factory
        probe = h.make_node("rt2_remote_probe")
        twists = Collector(probe, TwistStamped, "/servo_node/delta_twist_cmds", 5000)
        cam = ImageStreamer(probe, "/camera/image_raw", rate_hz=20.0)  # first pixel -> a non-zero action
        instr = probe.create_publisher(String, "/rt2/instruction", 10)
        assert wait_for_subscribers(instr) and wait_for_subscribers(cam.pub) and wait_for_publishers(twists.sub)
        instr.publish(String(data="push the block"))
        assert twists.wait_for(lambda m: not is_zero_twist(m), 15.0) is not None, "never moved with the server up"

        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        t_kill = node.now_s()
        time.sleep(period + timeout)

        def late():
            return [m for m in twists.messages if stamp_s(m.header.stamp) > t_kill + period + timeout + 0.05]

        # Collect 20+ twists after the deadline (about 0.4 s at 50 Hz; longer on a loaded machine).
        wait_until(lambda: len(late()) > 20, 15.0)
        late = late()
        assert len(late) > 20 and all(is_zero_twist(m) for m in late), "moving after the server died"
        assert node.controller.episode.running  # the episode waits for the server, the robot holds still

        proc, url2 = serve_subprocess("--policy", "remote_fakes:make_image_policy", "--no-warmup", "--port", port)
        t_back = node.now_s()
        moving = twists.wait_for(lambda m: stamp_s(m.header.stamp) > t_back and not is_zero_twist(m), 10.0)
        assert moving is not None, "did not move again after the server came back"
        cam.stop()
    finally:
        h.close()
        proc.kill()
        proc.wait(5)


def test_remote_backend_and_server_import_no_torch_no_rclpy_no_ray():
    """A robot using the remote backend needs neither torch nor a GPU stack."""
    import subprocess
    import sys

    mods = ["rt2_ros.remote.client", "rt2_ros.serving.cli", "rt2_ros.serving.ws_server", "rt2_ros.serving.ray_app"]
    code = "".join(f"import {m}\n" for m in mods) + (
        "import sys\nprint(','.join(m for m in ('torch', 'transformers', 'rclpy', 'ray') if m in sys.modules))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ""

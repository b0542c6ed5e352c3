"""The policy child on its own (rt2_ros.remote.child.ChildPolicy, no ROS): a real
``rt2-ros serve`` child over a Unix socket serving small test policies
(``test/helpers/child_policies.py``). Start, restart after a kill, hang detection,
bounded close, start failures, its output in the log."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from rt2_ros.config import load_config
from rt2_ros.policies.base import PolicyError
from rt2_ros.remote.child import ChildPolicy

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
IMAGE = np.zeros((32, 32, 3), np.uint8)


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(HELPERS), os.environ.get("PYTHONPATH", "")]))


def _gone(pid: int, timeout_s: float = 10.0) -> bool:
    """The process has ended (and is reaped, or a zombie of a parent that is gone)."""
    end = time.monotonic() + timeout_s
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)


def _child(policy: str, **kwargs) -> ChildPolicy:
    cfg = load_config(overrides={"policy.timeout_s": 0.5})
    return ChildPolicy(cfg, serve_args=["--policy", f"child_policies:{policy}"], env=_env(), **kwargs)


def test_child_answers_restarts_after_a_kill_and_stops_with_close(caplog):
    caplog.set_level(logging.INFO, logger="rt2_ros")
    pol = _child("make_constant")
    try:
        pid = pol.pid
        assert pid is not None and pol.running
        assert os.getsid(pid) == pid  # its own session: a terminal's Ctrl-C goes to the node only
        r = pol.infer(IMAGE, "go")
        assert r.action is not None and r.action.vector[0] == pytest.approx(0.01, abs=1e-3)
        assert pol.metadata.model_id == "constant" and pol.metadata.extra["pid"] == pid
        assert any(f"policy child {pid}" in m and "listening" in m for m in caplog.messages)  # its output is logged

        os.kill(pid, signal.SIGKILL)
        with pytest.raises(PolicyError):  # at once: a lost connection or "not running"
            t0 = time.monotonic()
            pol.infer(IMAGE, "go")
        assert time.monotonic() - t0 < 0.5
        assert _gone(pid)
        end = time.monotonic() + 60
        while time.monotonic() < end:  # restarted with backoff; answers again
            try:
                assert pol.infer(IMAGE, "go").action is not None
                break
            except PolicyError:
                time.sleep(0.1)
        else:
            pytest.fail("the child was not restarted")
        assert pol.restarts == 1 and pol.pid not in (None, pid)
        assert any("exited with code -9 (SIGKILL)" in m and "restarting" in m for m in caplog.messages)
        new_pid = pol.pid
    finally:
        t0 = time.monotonic()
        pol.close()
    assert time.monotonic() - t0 < 6.0
    assert _gone(new_pid) and not Path(pol.socket_path).parent.exists()
    with pytest.raises(PolicyError):
        pol.infer(IMAGE, "go")


def test_a_child_that_never_answers_is_killed_as_hung_and_cannot_block_close(caplog):
    caplog.set_level(logging.INFO, logger="rt2_ros")
    pol = _child("make_hanging", hang_timeout_s=1.5)
    try:
        pid = pol.pid
        t0 = time.monotonic()
        with pytest.raises(PolicyError, match="no reply"):
            pol.infer(IMAGE, "go")
        assert 0.4 < time.monotonic() - t0 < 2.0  # the step's deadline (0.5 s), not forever
        end = time.monotonic() + 10
        while time.monotonic() < end and not _gone(pid, 0.0):
            try:
                pol.infer(IMAGE, "go")
            except PolicyError:
                pass
        assert _gone(pid, 0.0), "a hung child was not killed"
        assert any("killing it (hung)" in m for m in caplog.messages)
        end = time.monotonic() + 60
        while time.monotonic() < end and pol.pid in (None, pid):
            time.sleep(0.05)
        assert pol.restarts >= 1 and pol.pid not in (None, pid)  # restarted (and hangs again)
    finally:
        t0 = time.monotonic()
        pol.close()
    assert time.monotonic() - t0 < 6.0  # SIGTERM is ignored by a wedged model: SIGKILL after 3 s


def test_a_stopped_child_cannot_block_close():
    pol = _child("make_constant")
    pid = pol.pid
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    pol.close()
    assert time.monotonic() - t0 < 6.0 and _gone(pid)


def test_a_child_that_fails_to_start_raises_with_its_own_message(caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="rt2_ros")
    with pytest.raises(PolicyError, match="exited with code 1 before listening") as e:
        _child("no_such_factory")
    assert "has no attribute 'no_such_factory'" in str(e.value)  # the child's stderr, quoted
    assert any("no_such_factory" in m for m in caplog.messages)
    cfg = load_config(overrides={"policy.model_path": ""})
    with pytest.raises(ValueError, match="model_path is empty"):
        ChildPolicy(cfg)


def test_a_child_that_does_not_listen_in_time_is_killed():
    with pytest.raises(PolicyError, match="did not listen within"):
        _child("make_constant", start_timeout_s=0.05)

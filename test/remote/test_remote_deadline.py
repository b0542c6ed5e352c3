"""Issue 15 #2: the robot's remote client against a server that stops reading mid-request.

A real TCP server on loopback completes the websocket handshake (websockets' sans-I/O
``ServerProtocol``), sends a valid metadata frame, then never reads again, with a tiny
receive buffer: the client's large request frames fill the socket buffers and a plain
``send`` blocks. Every step must still end within ``policy.timeout_s`` (as "no action"),
and ``close()`` (the node's shutdown) within a bound, whatever the server does.
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
from remote_fakes import ImagePolicy
from websockets.server import ServerProtocol

from rt2_ros.config import load_config
from rt2_ros.policies.base import PolicyError
from rt2_ros.remote.client import RemotePolicy
from rt2_ros.serving.service import InferenceService

CFG = load_config()
#: Scheduling slack for a bound on a thread's return [s]: at load 5-10 on 2 cores a woken
#: thread can wait hundreds of ms for a core; the bounds below stay far under what a
#: blocked send would take (forever) or the step's own deadline (30 s).
SCHED_SLACK_S = 2.0
#: close() must return within this, whatever the server does (the client's CLOSE_TIMEOUT_S is 1 s) [s].
CLOSE_BOUND_S = 1.0 + SCHED_SLACK_S
BIG = np.full((1400, 1400, 3), 7, np.uint8)  # 5.9 MB: far more than the socket buffers hold


class StallingServer:
    """Accepts websocket clients, sends the metadata frame, then stops reading."""

    def __init__(self):
        self.metadata = InferenceService(ImagePolicy(CFG)).metadata_bytes
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accepted sockets
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.url = f"ws://127.0.0.1:{self.lsock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.handshakes = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            self.conns.append(conn)
            proto = ServerProtocol()
            request = None
            while request is None:
                data = conn.recv(65536)
                if not data:
                    break
                proto.receive_data(data)
                events = proto.events_received()
                request = events[0] if events else None
            if request is None:
                continue
            # Counted before the reply leaves: the client's connect() returns as soon as the
            # metadata arrives, possibly before this thread runs again (issue 21: got 0 at load 5).
            self.handshakes += 1
            proto.send_response(proto.accept(request))
            proto.send_binary(self.metadata)
            for chunk in proto.data_to_send():
                conn.sendall(chunk)
            # ... and never read from this connection again.

    def close(self) -> None:
        self.lsock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def stalling():
    srv = StallingServer()
    yield srv
    srv.close()


def _in_thread(fn, *args):
    box: dict = {}

    def run():
        t0 = time.monotonic()
        try:
            box["result"] = fn(*args)
        except BaseException as e:  # noqa: BLE001
            box["error"] = e
        box["elapsed_s"] = time.monotonic() - t0

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def test_a_server_that_stops_reading_cannot_block_a_step_beyond_the_timeout(stalling):
    timeout = 0.5
    pol = RemotePolicy(stalling.url, CFG.action, timeout_s=timeout)
    pol.connect()
    assert stalling.handshakes == 1
    t, box = _in_thread(pol.infer, BIG, "pick up the block")
    t.join(timeout + 5.0)
    assert not t.is_alive(), "the step blocked in send past policy.timeout_s"
    assert isinstance(box.get("error"), PolicyError) and "did not finish" in str(box["error"])
    assert box["elapsed_s"] < timeout + SCHED_SLACK_S
    assert not pol.connected  # aborted: the next step reconnects (with backoff), never reuses it
    t, box = _in_thread(pol.close)
    t.join(CLOSE_BOUND_S + 2.0)
    assert not t.is_alive()


def test_close_during_a_blocked_send_returns_within_its_bound_and_ends_the_step(stalling):
    # A long step deadline: the shutdown (SIGTERM -> close()) must not wait for it.
    pol = RemotePolicy(stalling.url, CFG.action, timeout_s=30.0)
    pol.connect()
    step, step_box = _in_thread(pol.infer, BIG, "pick up the block")
    time.sleep(0.5)
    assert step.is_alive()  # blocked on the server that does not read
    closing, close_box = _in_thread(pol.close)
    closing.join(CLOSE_BOUND_S + 2.0)
    assert not closing.is_alive(), "close() waited on the blocked send"
    assert close_box["elapsed_s"] < CLOSE_BOUND_S
    step.join(3.0)
    assert not step.is_alive(), "the blocked step did not end when the connection was closed"
    assert isinstance(step_box.get("error"), PolicyError)

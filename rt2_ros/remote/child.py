"""The local model in a supervised child process (``policy.backend: local``, ``policy.process: child``).

Why a child process: a model's Python-side generate loop holds the GIL in short
bursts for the whole inference; in the node's own process that delays the servo
timer thread now and then past MoveIt Servo's 0.1 s staleness limit (README,
"Servo stream under load"). In its own process the model competes for a CPU core
at most, never for the node's interpreter.

Why ``rt2-ros serve`` over a Unix domain socket: the child is exactly the service
a GPU box runs (:mod:`rt2_ros.serving`), so it has one implementation and one
protocol (:mod:`rt2_ros.remote.protocol`: msgpack frames, images as raw bytes),
and the node talks to it with :class:`~rt2_ros.remote.client.RemotePolicy`, whose
safety rules a local child then gets for free: one deadline per step
(``policy.timeout_s``), late replies dropped by request id, reconnect with backoff,
the model output decoded with the robot's own codec and the server's metadata
checked against the robot's configuration. A Unix socket (websockets
``unix_serve`` / ``unix_connect``) needs no port, is reachable only through the
file system (a private 0700 directory: no API key needed) and skips TCP. Shared
memory would save one 150 kB copy per step (~0.1 ms) but needs its own framing,
lifetime and failure handling; msgpack already packs the image from its buffer
without an intermediate copy.

Supervision (:class:`ChildPolicy`):

* **start**: ``python -m rt2_ros.cli serve --unix-socket ... --config ...`` with the
  node's whole configuration (``policy.process: in_process`` inside the child), in
  its own session (a terminal's Ctrl-C reaches the node, which then stops the
  child), stdin a pipe (``--stop-on-stdin-eof``: the child stops when the node is
  gone, even after a SIGKILL). The constructor waits up to
  ``policy.child_start_timeout_s`` for it to listen; a child that exits or does
  not listen in time raises :class:`~rt2_ros.policies.base.PolicyError` (the node
  exits with code 1, as for a model that does not load in process).
* **dies** (any exit the node did not ask for): calls fail at once with
  :class:`PolicyError` ("no action": zero twist); it is restarted after
  :class:`~rt2_ros.backoff.Backoff` (0.5 s doubling to 10 s, reset after 30 s up).
* **hangs**: asked, but no frame at all (not even a late reply) for
  ``policy.child_hang_timeout_s``, or a call stuck that long (checked by the
  supervisor thread, so a call blocked on the socket is caught too): killed
  (SIGKILL) and restarted as above; the stuck call then fails.
* **output**: every line of the child's stdout/stderr goes to the logger
  ``rt2_ros.child`` at the child's own level (the node forwards ``rt2_ros.*`` to its
  ROS log); the last lines are quoted when a start fails.
* **stop** (:meth:`ChildPolicy.close`): SIGTERM, then SIGKILL after 3 s; never
  blocks longer, also when the child is stopped or wedged.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Sequence

import yaml

from rt2_ros.backoff import Backoff
from rt2_ros.config import RT2Config
from rt2_ros.policies.base import Observation, Policy, PolicyError, PolicyMetadata, PolicyResult, check_image
from rt2_ros.remote.client import RemotePolicy

__all__ = ["ChildPolicy", "LISTENING"]

log = logging.getLogger("rt2_ros.child")

#: The line ``rt2-ros serve`` prints once it listens.
LISTENING = "rt2-ros serve: listening on"
#: ``rt2-ros serve``'s log line format: "2026-01-01 12:00:00,123 LEVEL name: message".
_LOG_LINE = re.compile(r"^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): (.*)$")
#: Seconds a stopping child gets between SIGTERM and SIGKILL.
TERM_GRACE_S = 3.0
#: How often the supervisor checks for a hung child, s.
WATCH_PERIOD_S = 0.25


class _Child:
    """One child process: its output reader and readiness."""

    def __init__(self, cmd: list[str], env: dict[str, str], tail: collections.deque):
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.ready = threading.Event()
        self.started_s = time.monotonic()
        self.kill_reason: str | None = None
        self._tail = tail
        self._reader = threading.Thread(target=self._read, name=f"rt2-child-{self.pid}-out", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self._tail.append(line)
            if line.startswith(LISTENING):
                self.ready.set()
                log.info("policy child %d: %s", self.pid, line)
                continue
            m = _LOG_LINE.match(line)
            if m:
                log.log(logging.getLevelName(m.group(1)), "policy child %d: %s: %s", self.pid, m.group(2), m.group(3))
            else:  # print()s, tracebacks, "error: ..." lines of a failed start
                log.warning("policy child %d: %s", self.pid, line)

    def wait_ready(self, timeout_s: float) -> str | None:
        """None once listening; else why not (exited, or not in time)."""
        deadline = time.monotonic() + timeout_s
        while not self.ready.wait(0.05):
            if self.proc.poll() is not None:
                self._reader.join(1.0)  # its last words
                return f"exited with code {self.proc.returncode} before listening"
            if time.monotonic() > deadline:
                return f"did not listen within {timeout_s:.0f} s"
        return None

    def stop(self, grace_s: float = TERM_GRACE_S) -> None:
        """SIGTERM, SIGKILL after ``grace_s``; closes stdin (the child's EOF signal). Bounded."""
        p = self.proc
        try:
            p.stdin.close()
        except OSError:
            pass
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.send_signal(signal.SIGCONT)  # a stopped child handles its SIGTERM too
                p.wait(grace_s)
            except subprocess.TimeoutExpired:
                p.kill()
            except OSError:
                pass
        try:
            p.wait(2.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL always ends it
            log.error("policy child %d did not end after SIGKILL", self.pid)
        self._reader.join(1.0)

    def kill(self, reason: str) -> None:
        self.kill_reason = reason
        try:
            self.proc.kill()
        except OSError:
            pass


class ChildPolicy(Policy):
    """The local transformers backend in a supervised ``rt2-ros serve`` child process.

    Args:
        cfg: the node's whole configuration (``policy.model_path`` etc.); the child
            runs it with ``policy.process: in_process``.
        serve_args: ``rt2-ros serve`` arguments naming what to serve; default
            ``["--model", cfg.policy.model_path]`` (tests serve other policies with
            ``["--policy", "MODULE:CALLABLE"]``).
        start_timeout_s: longest wait for the child to listen, s (default
            ``policy.child_start_timeout_s``).
        hang_timeout_s: asked but no frame for this long = hung, s (default
            ``policy.child_hang_timeout_s``).
        timeout_s: deadline of one step, s (default ``policy.timeout_s``).
        backoff: restart backoff (default 0.5 s doubling to 10 s, reset after 30 s up).
        env: the child's environment (default this process's).

    Raises:
        PolicyError: the child exited or did not listen within ``start_timeout_s``
            (the message quotes its last output), or its metadata does not match
            ``cfg.action``.
        ValueError: ``policy.model_path`` is empty and no ``serve_args`` were given.
    """

    def __init__(
        self,
        cfg: RT2Config,
        *,
        serve_args: Sequence[str] | None = None,
        start_timeout_s: float | None = None,
        hang_timeout_s: float | None = None,
        timeout_s: float | None = None,
        backoff: Backoff | None = None,
        env: dict[str, str] | None = None,
    ):
        p = cfg.policy
        if serve_args is None:
            if not p.model_path:
                raise ValueError("policy.model_path is empty: the local backend needs a checkpoint directory")
            serve_args = ["--model", os.path.abspath(p.model_path)]
        self.cfg = cfg
        self.start_timeout_s = float(start_timeout_s if start_timeout_s is not None else p.child_start_timeout_s)
        self.hang_timeout_s = float(hang_timeout_s if hang_timeout_s is not None else p.child_hang_timeout_s)
        self.timeout_s = float(timeout_s if timeout_s is not None else p.timeout_s)
        self.backoff = backoff or Backoff(0.5, 10.0, healthy_after_s=30.0)
        self._dir = tempfile.mkdtemp(prefix="rt2_child_")  # mode 0700: only this user reaches the socket
        self.socket_path = os.path.join(self._dir, "policy.sock")
        config_path = os.path.join(self._dir, "rt2.yaml")
        inner = cfg.model_dump(mode="json")
        inner["policy"]["process"] = "in_process"
        with open(config_path, "w") as f:
            yaml.safe_dump({"/**": {"ros__parameters": inner}}, f)
        self._cmd = [
            sys.executable,
            "-m",
            "rt2_ros.cli",
            "serve",
            *serve_args,
            "--config",
            config_path,
            "--unix-socket",
            self.socket_path,
            "--stop-on-stdin-eof",
            "--api-key-env",
            "",  # the socket's directory is the access control
            "--max-batch-size",
            "1",
            "--max-wait-ms",
            "0",
            "--max-request-mb",
            "64",
            "--max-image-side",
            "8192",
            "--no-warmup",  # loading already ends with a warm-up inference
            "--idle-timeout-s",
            "86400",  # the node is the only client and idles between episodes: never cut it off
        ]
        self._env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
        self._env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no progress bars in the node's log
        self._env.setdefault("TQDM_DISABLE", "1")
        self._tail: collections.deque[str] = collections.deque(maxlen=40)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._child: _Child | None = None
        self._client: RemotePolicy | None = None
        self._up = threading.Event()
        #: Start of the oldest call not answered yet, and of the call in progress (monotonic s).
        self._pending_since: float | None = None
        self._in_call_since: float | None = None
        self.restarts = 0
        self.metadata = PolicyMetadata(
            action_format=cfg.action.format,
            model_id=p.model_path,
            action_dim=8 if cfg.action.format == "rt2" else 7,
            extra={"process": "child", "running": False},
        )
        try:
            why = self._start()
            if why is not None:
                tail = "\n".join(self._tail)
                raise PolicyError(f"policy child {why}; its last output:\n{tail}")
        except BaseException:
            self._closing.set()
            self._stop_child()
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self._monitor = threading.Thread(target=self._supervise, name="rt2-child-supervisor", daemon=True)
        self._monitor.start()

    # -- process lifecycle ---------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The running child's process id (None while it is down)."""
        c = self._child
        return c.pid if c is not None and self._up.is_set() else None

    @property
    def running(self) -> bool:
        """The child is up and listening."""
        return self._up.is_set()

    def _start(self) -> str | None:
        """Start a child, wait until it listens and connect; None on success, else why not."""
        with self._lock:  # serialised with close(): no child is started after it
            if self._closing.is_set():
                return "stopped"
            self._tail.clear()
            child = self._child = _Child(self._cmd, self._env, self._tail)
        why = child.wait_ready(self.start_timeout_s)
        if why is None:
            client = RemotePolicy(
                "ws://localhost",
                self.cfg.action,
                timeout_s=self.timeout_s,
                backoff_initial_s=0.05,
                backoff_max_s=0.5,
                unix_socket=self.socket_path,
            )
            try:
                client.connect(timeout_s=max(5.0, self.timeout_s))
            except PolicyError as e:
                client.close()
                why = f"refused the connection: {e}"
            else:
                with self._lock:
                    old, self._client, self._pending_since = self._client, client, None
                    md = client.metadata
                    self.metadata = PolicyMetadata(
                        **{**md.to_dict(), "extra": {**md.extra, "process": "child", "pid": child.pid, "running": True}}
                    )
                if old is not None:
                    old.close()
                self.backoff.started(time.monotonic())
                self._up.set()
                return None
        if self._closing.is_set():
            return "stopped"
        child.kill(why)
        return why

    def _supervise(self) -> None:
        """Wait for the child to end; unless closing, restart it with backoff."""
        while not self._closing.is_set():
            child = self._child
            if child is not None:
                try:
                    rc = child.proc.wait(WATCH_PERIOD_S)
                except subprocess.TimeoutExpired:
                    self._watch_hang(child)
                    continue
                self._up.clear()
                if self._closing.is_set():
                    return
                why = child.kill_reason or f"exited with code {rc}" + (
                    f" ({signal.Signals(-rc).name})" if rc < 0 and -rc in signal.valid_signals() else ""
                )
                delay = self.backoff.failed(time.monotonic())
                log.error(
                    "policy child %d %s: no actions until it is back (zero twist); restarting in %.1f s",
                    child.pid,
                    why,
                    delay,
                )
                child.stop(0.5)
            else:  # pragma: no cover - the constructor always leaves a child
                delay = self.backoff.failed(time.monotonic())
            if self._closing.wait(delay):
                return
            self.restarts += 1
            self._start()  # a failed start kills that child; the loop above reports it

    # -- inference -------------------------------------------------------------------------
    def infer_batch(self, observations: Sequence[Observation]) -> list[PolicyResult]:
        """Ask the child (one deadline of ``timeout_s``).

        Raises:
            ValueError: a bad image or instruction (checked here first).
            PolicyError: the child is down or restarting, hung, late, or failed.
        """
        for obs in observations:
            check_image(obs.image)
        client = self._client
        if not self._up.is_set() or client is None:
            raise PolicyError("policy child is not running (restarting)")
        t_call = time.monotonic()
        with self._lock:
            self._in_call_since = t_call
            if self._pending_since is None:
                self._pending_since = t_call
        try:
            results = client.infer_batch(observations)
        finally:
            with self._lock:
                self._in_call_since = None
        with self._lock:
            self._pending_since = None
        return results

    def _watch_hang(self, child: _Child) -> None:
        """Kill the child when it was asked but sent nothing at all (not even a late reply)
        for ``hang_timeout_s``; also when a call is stuck (e.g. sending to a stopped child).
        Runs on the supervisor thread every :data:`WATCH_PERIOD_S`."""
        now = time.monotonic()
        with self._lock:
            client, since = self._client, self._pending_since
            if since is None or client is None or not self._up.is_set():
                return
            if client.last_frame_s is not None and client.last_frame_s > since:
                # It answers, if late: only a call in progress is still waiting.
                self._pending_since = self._in_call_since
                return
        silent_s = now - since
        if silent_s >= self.hang_timeout_s:
            self._up.clear()
            log.error("policy child %d sent nothing for %.1f s while asked: killing it (hung)", child.pid, silent_s)
            child.kill(f"hung (no reply for {silent_s:.1f} s)")

    def reset(self) -> None:
        """Per episode: nothing to do (the served policy is stateless per request)."""

    # -- shutdown --------------------------------------------------------------------------
    def _stop_child(self) -> None:
        """The child first (that unblocks a call stuck on its socket), then the client,
        whose close waits for such a call: on a helper thread, at most 2 s."""
        with self._lock:
            child, client = self._child, self._client
            self._client = None
        self._up.clear()
        if child is not None:
            child.stop()
        if client is not None:
            t = threading.Thread(target=client.close, name="rt2-child-client-close", daemon=True)
            t.start()
            t.join(2.0)

    def close(self) -> None:
        """Stop the child (SIGTERM, SIGKILL after 3 s) and the supervisor; bounded, idempotent."""
        if self._closing.is_set() and self._child is None:
            return
        with self._lock:
            self._closing.set()
        self._stop_child()
        monitor = getattr(self, "_monitor", None)
        if monitor is not None and monitor is not threading.current_thread():
            monitor.join(5.0)
        self._child = None
        shutil.rmtree(self._dir, ignore_errors=True)

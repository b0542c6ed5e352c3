"""``policy.backend: openpi``: drive the arm with any openpi-served policy (π0, π0-FAST, π0.5).

The client of openpi's policy server (``scripts/serve_policy.py``; the wire is in
:mod:`rt2_ros.remote.openpi_wire`), built on :class:`~rt2_ros.remote.client.RemotePolicy`'s
connection handling (one deadline per call covering connect, send and reply;
reconnect with exponential backoff and jitter; bounded close). A
:class:`~rt2_ros.remote.openpi_profile.Profile` says what to send and how to read
the answer:

* request: the camera image brought to the profile's size with openpi's
  ``resize_with_pad`` under ``image_key``, a black image under ``wrist_image_key``
  (no wrist camera), the robot state in the profile's layout (end-effector pose or
  joint positions, and the gripper), ``prompt`` = the instruction;
* answer: ``actions`` ``[H, >= action_dim]``; the used columns must be finite and
  within ``reject_above`` (else the whole chunk is refused: no motion), are clipped
  to ``action_clip``, scaled to metres / radians (ee_delta) and the gripper mapped to
  this robot's gripper units; the first ``replan_steps`` go to the node's chunk
  queue (:class:`~rt2_ros.chunking.ActionQueue`, open loop), where the safety
  envelope, watchdogs and episode limits apply as to every backend.

Timings (``PolicyResult.timings_ms``, ms): ``preprocess`` (resize, state, packing
here), ``model`` (the server's ``policy_timing`` sum, 0 when it sends none), ``server``
(``server_timing.infer_ms`` minus ``model``), ``network`` (round trip minus
``infer_ms``), ``decode`` (reading the chunk here).

Safety rules on top of :class:`RemotePolicy`'s:

* openpi's protocol has no request ids, so a late answer could be taken for the next
  request's: a request that misses its deadline drops the connection (reconnect with
  backoff) instead of waiting on;
* a text frame (openpi's error), a frame that is not msgpack, over
  ``max_reply_bytes`` (closed with 1009), without ``actions``, with the wrong shape,
  NaN / inf or implausible values is "no action" (zero twist, gripper held);
* the server's metadata is logged on connect and checked against the profile where it
  says anything (``action_space``, ``action_dim``, ``rotation_convention``): a server
  that disagrees is refused.

openpi has no terminate action: episodes end by the node's step and time limits, a
stop, or (``terminate`` in an rt2_ros server's answer) the model's own terminate.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence
from urllib.parse import urlparse

import numpy as np

from rt2_ros.action_tokenizer import Action
from rt2_ros.config import ActionConfig
from rt2_ros.joint_space import JointAction
from rt2_ros.policies.base import Observation, PolicyError, PolicyMetadata, PolicyResult, check_image
from rt2_ros.remote.client import RemotePolicy
from rt2_ros.remote.openpi_profile import Profile, resize_with_pad, state_arrays
from rt2_ros.remote.openpi_wire import pack, plain, unpack
from rt2_ros.remote.protocol import ProtocolError, is_loopback
from rt2_ros.remote.send_failures import send_failures

__all__ = ["OpenPIPolicy", "MAX_REPLY_BYTES"]

log = logging.getLogger("rt2_ros.openpi")

#: Largest answer accepted: a [64, 32] float64 chunk is 16 KiB; 1 MiB leaves room for
#: extra keys and metadata. Larger frames close the connection (1009).
MAX_REPLY_BYTES = 2**20


class OpenPIPolicy(RemotePolicy):
    """Client of an openpi policy server.

    Args:
        server_url: ``ws://host:port`` or ``wss://host:port``.
        profile: the embodiment's :class:`~rt2_ros.remote.openpi_profile.Profile`.
        action_cfg: this robot's ``action`` section (``rotation_convention`` the
            actions are expressed in, ``low/high[6]`` the gripper units).
        gripper_invert: ``gripper.invert``: this robot's gripper value means closedness.
        api_key: sent as ``Authorization: Api-Key <key>`` (openpi's header); None: none.
        timeout_s: deadline of one request (connect + send + reply), s.
        **kwargs: :class:`RemotePolicy`'s ``ca_file``, ``backoff_initial_s``,
            ``backoff_max_s``, ``ping_interval_s``, ``proxy``.

    Raises:
        ValueError: bad URL or settings.
    """

    #: The controller passes the robot state (pose, joints, gripper) with each observation.
    uses_state = True
    #: Answers are chunks (the controller executes them through its action queue).
    emits_chunks = True

    def __init__(
        self,
        server_url: str,
        profile: Profile,
        action_cfg: ActionConfig | None = None,
        *,
        gripper_invert: bool = False,
        api_key: str | None = None,
        timeout_s: float = 1.0,
        **kwargs: Any,
    ):
        super().__init__(server_url, action_cfg, api_key=None, timeout_s=timeout_s, **kwargs)
        self.profile = profile
        #: ``ee_delta`` (twists) or ``joint_velocity`` (:class:`~rt2_ros.joint_space.JointAction`, JointJog).
        self.action_space = profile.action_space
        self.gripper_invert = bool(gripper_invert)
        self._grip_lo, self._grip_hi = self._codec.gripper_range
        self.max_reply_bytes = MAX_REPLY_BYTES
        self._headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
        host = urlparse(server_url).hostname
        if api_key and server_url.startswith("ws://") and not is_loopback(host):
            log.warning("the API key goes to %s unencrypted (ws://); use wss:// off this host", host)
        self._black = np.zeros((profile.image_height, profile.image_width, 3), np.uint8)
        #: The server's metadata map (after connecting).
        self.server_metadata: dict[str, Any] = {}
        self.metadata = PolicyMetadata(
            action_format="openpi",
            model_id=f"openpi:{server_url}",
            action_dim=profile.action_dim,
            extra={"server_url": server_url, "connected": False, "profile": profile.to_dict()},
        )

    # -- frames ----------------------------------------------------------------------------
    def _decode_frame(self, msg: Any) -> Any:
        if isinstance(msg, str):  # openpi's server error: the traceback, then close 1011
            raise self._fail(f"server error: {msg.strip()[-500:]}", reconnect=True)
        try:
            return unpack(msg, self.max_reply_bytes)
        except ProtocolError as e:
            raise self._fail(f"server sent a malformed frame: {e}", reconnect=True) from None

    def _accept_metadata(self, frame: Any) -> None:
        """Log the server's metadata and refuse a server whose action layout contradicts the profile."""
        if not isinstance(frame, dict):
            raise PolicyError("server did not send its metadata map first")
        md = plain(frame)
        p = self.profile
        log.info("openpi server %s metadata: %s", self.server_url, repr(md)[:1000])
        space = md.get("action_space")
        if space is not None and space != p.action_space:
            raise PolicyError(f"server answers {space!r} actions, profile {p.name!r} expects {p.action_space!r}")
        dim = md.get("action_dim")
        if dim is not None and (not isinstance(dim, int) or dim < p.action_dim):
            raise PolicyError(f"server answers {dim} action columns, profile {p.name!r} uses {p.action_dim}")
        rot = md.get("rotation_convention")
        if p.action_space == "ee_delta" and rot is not None and rot != p.rotation_convention:
            raise PolicyError(
                f"server's rotations are {rot!r}, profile {p.name!r} reads {p.rotation_convention!r} "
                "(openpi.rotation_convention with profile custom)"
            )
        self.server_metadata = md
        self.server_info = {"server_version": md.get("server_version"), "metadata": md}
        self.metadata = PolicyMetadata(
            action_format="openpi",
            model_id=str(md.get("model_id") or f"openpi:{self.server_url}"),
            action_dim=p.action_dim,
            extra={**self.metadata.extra, "connected": True, "server_metadata": md},
        )

    # -- requests ---------------------------------------------------------------------------
    def build_request(self, obs: Observation) -> dict[str, Any]:
        """The openpi observation map for ``obs`` (image resized with pad, black wrist image,
        state in the profile's layout, prompt).

        Raises:
            ValueError: a bad image or instruction, or the state the profile needs is unknown.
        """
        check_image(obs.image)
        if not isinstance(obs.instruction, str) or not obs.instruction.strip():
            raise ValueError("instruction must be a non-empty string")
        p = self.profile
        req: dict[str, Any] = {p.image_key: resize_with_pad(obs.image, p.image_height, p.image_width)}
        if p.wrist_image_key:
            req[p.wrist_image_key] = self._black
        req.update(state_arrays(p, getattr(obs, "state", None)))
        req["prompt"] = obs.instruction
        return req

    def infer_batch(self, observations: Sequence[Observation]) -> list[PolicyResult]:
        """One request per observation, in order (openpi answers one at a time).

        Raises:
            ValueError: a bad image or instruction, or unknown state (before sending).
            PolicyError: not connected (backing off), connection lost, late answer
                (the connection is dropped), an error frame.
        """
        observations = list(observations)
        requests = []
        for obs in observations:  # garbage is refused before any network traffic
            t0 = time.perf_counter()
            requests.append((pack(self.build_request(obs)), (time.perf_counter() - t0) * 1e3))
        return [self._infer_one(data, prep_ms) for data, prep_ms in requests]

    def _infer_one(self, data: bytes, prep_ms: float) -> PolicyResult:
        with self._lock:
            deadline = time.monotonic() + self.timeout_s
            if self._ws is not None and not self._is_open(self._ws):
                log.info("openpi policy: %s closed the connection; reconnecting", self.server_url)
                self._drop_connection()
            if self._ws is None:
                self._connect(deadline)
            t_send = time.perf_counter()
            with send_failures(self._fail, self.server_url, self.timeout_s):
                self._send(data, deadline)
            try:
                reply = self._recv(deadline)
            except TimeoutError:
                # No request ids in openpi's protocol: never wait for a late answer on this connection.
                raise self._fail(
                    f"no answer from {self.server_url} within {self.timeout_s:.3f} s; reconnecting", reconnect=True
                ) from None
            rtt_ms = (time.perf_counter() - t_send) * 1e3
            self._last_error = ""
            return self._to_openpi_result(reply, prep_ms, rtt_ms)

    # -- answers ---------------------------------------------------------------------------
    def _to_openpi_result(self, reply: Any, prep_ms: float, rtt_ms: float) -> PolicyResult:
        """The answer as a chunk of :class:`Action` (or no action, with the reason)."""
        t0 = time.perf_counter()
        timings = {"preprocess": prep_ms}
        st = reply.get("server_timing") if isinstance(reply, dict) else None
        server_ms = float(st.get("infer_ms", 0.0)) if isinstance(st, dict) and _is_num(st.get("infer_ms")) else 0.0
        pt = reply.get("policy_timing") if isinstance(reply, dict) else None
        model_ms = sum(float(v) for v in pt.values() if _is_num(v)) if isinstance(pt, dict) else 0.0
        model_ms = min(model_ms, server_ms) if server_ms else model_ms
        timings["model"] = model_ms  # the server's policy call, when it reports policy_timing
        timings["server"] = max(0.0, server_ms - model_ms)
        timings["network"] = max(0.0, rtt_ms - server_ms)
        try:
            actions = self.actions_from_reply(reply)
            error = None
        except ValueError as e:
            actions, error = (), f"openpi answer refused: {e}"
            log.warning("%s", error)
        timings["decode"] = (time.perf_counter() - t0) * 1e3
        return PolicyResult(text="", token_ids=(), actions=actions, error=error, timings_ms=timings)

    def actions_from_reply(self, reply: Any) -> tuple[Action, ...]:
        """``reply["actions"]`` through the profile: the first ``replan_steps`` actions.

        ee_delta rows become :class:`Action` (metres, radians per step); joint_velocity rows
        :class:`~rt2_ros.joint_space.JointAction` (the first ``joints`` columns times
        ``joint_velocity_scale_radps``, rad/s). The last used column is the gripper.

        Raises:
            ValueError: no ``actions``, wrong shape, NaN / inf or implausible values.
        """
        p = self.profile
        if not isinstance(reply, dict) or "actions" not in reply:
            raise ValueError("the answer has no 'actions'")
        rows = p.check_chunk(reply["actions"])[: p.replan_steps]
        term = reply.get("terminate")
        terminate = (
            [bool(t) for t in term[: len(rows)]]
            if isinstance(term, np.ndarray) and term.dtype == bool and term.shape == (len(reply["actions"]),)
            else [False] * len(rows)
        )
        out = []
        for row, t in zip(rows, terminate):
            frac = p.gripper_open_fraction(float(row[p.action_dim - 1]))
            if self.gripper_invert:
                frac = 1.0 - frac
            g = float(self._grip_lo + frac * (self._grip_hi - self._grip_lo))
            if p.action_space == "joint_velocity":
                qd = row[: p.joints] * p.joint_velocity_scale_radps
                out.append(JointAction(t, np.zeros(3), np.zeros(3), g, joint_velocities=qd))
                continue
            dp, dr = p.ee_delta(row, self.action_cfg.rotation_convention)
            out.append(Action(terminate=t, delta_position=dp, delta_rotation=dr, gripper=g))
        return tuple(out)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)

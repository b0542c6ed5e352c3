"""``rt2-ros serve --protocol openpi``: answer openpi's ``WebsocketClientPolicy``.

The frames are openpi's (:mod:`rt2_ros.remote.openpi_wire`; openpi's
``src/openpi/serving/websocket_policy_server.py`` is the reference server): metadata
first, then per request one ``actions`` answer, a server error as a text frame and
close 1011. The model, the dynamic batching across clients, the API key, ``/healthz``,
the size limit and the idle timeout are the ones of :class:`InferenceService`
(:mod:`rt2_ros.serving.ws_server` runs both protocols the same way).

Request (an openpi observation map): the image under the first of ``image_keys``
present (default :data:`DEFAULT_IMAGE_KEYS`: LIBERO's ``observation/image``, DROID's
``observation/exterior_image_1_left``, ...; uint8 or float in [0, 1], HWC or CHW, as
openpi's policy transforms accept), the instruction under ``prompt``. Other keys
(state, wrist images) must be well-formed but are not used: the served models read
one image and the instruction; a served policy with ``uses_state`` (the simulator's
joint-space expert) gets them as :attr:`Observation.state` (request key -> value).

Answer: ``{"actions": float32 [H, 7], "terminate": bool [H], "server_timing":
{"infer_ms", "prev_total_ms"}, "policy_timing": {...}}``. ``actions`` rows are this
server's decoding of the model output, un-normalised: dx dy dz [m], drx dry drz
[rad], gripper (the served configuration's units, ``action.low/high[6]``), the
rotation convention of the served ``action.rotation_convention``. openpi has no
terminate field; ``terminate`` is extra (openpi's runtimes ignore unknown keys). A
policy whose ``action_space`` is ``joint_velocity`` answers
:class:`~rt2_ros.joint_space.JointAction` rows: its joint velocities then its gripper
value, in the policy's own units (DROID's layout).

Errors (openpi's behaviour: the client raises ``RuntimeError`` with the text): a
malformed request, an image over the limits, a model failure or model output that
is not an action -> text frame ``"error <code>: <message>"`` (no traceback: a
remote client learns nothing about this server's internals), then close 1011.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Sequence

import numpy as np

import rt2_ros
from rt2_ros.policies.base import Observation
from rt2_ros.remote.openpi_wire import pack, to_uint8_hwc, unpack
from rt2_ros.remote.protocol import ProtocolError
from rt2_ros.serving.batching import Overloaded
from rt2_ros.serving.service import InferenceService

__all__ = ["OpenPIService", "DEFAULT_IMAGE_KEYS", "ACTION_UNITS"]

#: Where an openpi client puts its main camera image, in the order they are looked for:
#: LIBERO (``examples/libero/main.py``), DROID (``examples/droid/main.py``), ALOHA, plain.
DEFAULT_IMAGE_KEYS = (
    "observation/image",
    "observation/exterior_image_1_left",
    "observation/images/cam_high",
    "image",
)
#: The unit of each column of ``actions``.
ACTION_UNITS = ("m", "m", "m", "rad", "rad", "rad", "gripper")


class OpenPIService:
    """openpi request handling on top of an :class:`InferenceService` (its batcher, key,
    limits and health).

    Args:
        service: the shared service (policy, batcher, limits).
        image_keys: observation keys tried, in order, for the image.
        rotation_convention: the served configuration's ``action.rotation_convention``
            (reported in the metadata).

    Raises:
        ValueError: empty ``image_keys``.
    """

    def __init__(
        self,
        service: InferenceService,
        image_keys: Sequence[str] = DEFAULT_IMAGE_KEYS,
        rotation_convention: str = "rpy",
    ):
        if not image_keys:
            raise ValueError("image_keys must name at least one observation key")
        self.service = service
        self.image_keys = tuple(image_keys)
        md = service.policy.metadata
        lim = service.limits
        self.action_space = getattr(service.policy, "action_space", "ee_delta")
        self.uses_state = bool(getattr(service.policy, "uses_state", False))
        self.metadata: dict[str, Any] = {
            "server": "rt2_ros",
            "server_version": rt2_ros.__version__,
            "protocol": "openpi",
            "model_id": md.model_id,
            "action_format": md.action_format,
            "action_space": self.action_space,
            "action_dim": len(ACTION_UNITS) if self.action_space == "ee_delta" else int(md.action_dim),
            "action_units": list(ACTION_UNITS) if self.action_space == "ee_delta" else ["policy units"],
            "rotation_convention": rotation_convention,
            "image_keys": list(self.image_keys),
            "limits": lim.to_dict(),
            "batching": {
                "max_batch_size": service.batcher.max_batch_size,
                "max_wait_ms": service.batcher.max_wait_s * 1e3,
            },
        }
        if md.bounds:
            self.metadata["bounds"] = {k: [float(x) for x in v] for k, v in md.bounds.items()}
        self.metadata_bytes = pack(self.metadata)

    def parse_request(self, message: Any) -> Observation:
        """One openpi observation frame -> :class:`Observation`. Thread-safe.

        Raises:
            ProtocolError: ``bad_frame``, ``bad_request`` (not a map, non-string keys,
                no or bad ``prompt``, no image key), ``bad_image``.
        """
        lim = self.service.limits
        frame = unpack(message, lim.max_request_bytes)
        if not isinstance(frame, dict) or not all(isinstance(k, str) for k in frame):
            raise ProtocolError("bad_request", "an observation must be a map with string keys")
        prompt = frame.get("prompt")
        if isinstance(prompt, bytes):  # openpi's DroidInputs accepts bytes prompts too
            try:
                prompt = prompt.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError("bad_request", "'prompt' is not UTF-8") from None
        if not isinstance(prompt, str) or not prompt.strip():
            raise ProtocolError("bad_request", "'prompt' must be a non-empty string")
        if len(prompt) > lim.max_instruction_chars:
            raise ProtocolError("bad_request", f"prompt longer than {lim.max_instruction_chars} characters")
        key = next((k for k in self.image_keys if k in frame), None)
        if key is None:
            raise ProtocolError("bad_request", f"no image: the observation needs one of {list(self.image_keys)}")
        image = to_uint8_hwc(frame[key], repr(key))
        if max(image.shape[:2]) > lim.max_image_side:
            raise ProtocolError(
                "bad_image", f"image {image.shape[1]}x{image.shape[0]} exceeds {lim.max_image_side} px per side"
            )
        state = None
        if self.uses_state:
            state = {k: v for k, v in frame.items() if k not in ("prompt", key)}
        return Observation(image=image, instruction=prompt, state=state)

    async def answer(self, message: Any, prev_total_ms: float | None) -> tuple[bytes | None, str | None]:
        """Answer one request.

        Args:
            message: the received frame.
            prev_total_ms: this connection's previous request, receipt to reply sent
                (openpi's ``server_timing.prev_total_ms``), ms; None for the first.

        Returns:
            ``(reply, None)``, or ``(None, error text)``: send the text, then close 1011.
            Never raises for bad input or model failures.
        """
        svc = self.service
        if not svc.batcher.running:
            svc.batcher.start()
        try:
            obs = await asyncio.to_thread(self.parse_request, message)
        except ProtocolError as e:
            return None, f"error {e.code}: {e}"
        t0 = time.perf_counter()
        try:
            result, _ = await svc.batcher.submit(obs)
        except Overloaded as e:
            return None, f"error overloaded: {e}"
        except ValueError as e:
            return None, f"error bad_request: {e}"
        except Exception as e:  # noqa: BLE001 - PolicyError or a backend bug: reply, keep serving others
            return None, f"error policy_failed: {type(e).__name__}: {e}"
        infer_ms = (time.perf_counter() - t0) * 1e3
        if not result.actions:
            return None, f"error no_action: the model output is not an action: {result.error}"
        try:
            if self.action_space == "joint_velocity":
                rows = [
                    np.concatenate([np.asarray(a.joint_velocities, dtype=np.float64), [a.gripper]])
                    for a in result.actions
                ]
            else:
                rows = [a.vector for a in result.actions]
            actions = np.stack(rows).astype(np.float32)
        except (AttributeError, ValueError) as e:
            return None, f"error no_action: the policy's actions do not form a chunk: {e}"
        if not np.all(np.isfinite(actions)):
            return None, "error no_action: the decoded actions are not finite"
        timing: dict[str, float] = {"infer_ms": infer_ms}
        if prev_total_ms is not None:
            timing["prev_total_ms"] = float(prev_total_ms)
        reply = {
            "actions": actions,
            "terminate": np.array([a.terminate for a in result.actions], dtype=bool),
            "server_timing": timing,
            "policy_timing": {str(k): float(v) for k, v in result.timings_ms.items()},
        }
        return pack(reply), None

"""The policy interface every backend implements (local transformers, remote, scripted).

Kept as small as openpi's ``openpi_client.base_policy.BasePolicy``: ``infer`` on one
observation, ``infer_batch`` on several, ``reset`` per episode, ``metadata``.
ROS-free: imports numpy only.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Sequence

import numpy as np

from rt2_ros.codecs import Action, ActionCodec, ActionDecodeError

__all__ = [
    "Observation",
    "PolicyMetadata",
    "PolicyResult",
    "Policy",
    "PolicyError",
    "check_image",
    "result_from_output",
]


class PolicyError(RuntimeError):
    """The backend could not produce an answer (server down, timeout, model failure).

    The caller must treat it as "no action": stop the robot, never replay an old action.
    """


def check_image(image: Any) -> np.ndarray:
    """Validate an RGB image: ``uint8`` array of shape ``(H, W, 3)`` with H, W >= 1.

    Returns:
        The image (unchanged, not copied).

    Raises:
        ValueError: not a numpy array, wrong dtype, or wrong shape.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    return image


@dataclasses.dataclass(frozen=True)
class Observation:
    """One observation: ``image`` uint8 (H, W, 3) RGB and the task ``instruction``."""

    image: np.ndarray
    instruction: str


@dataclasses.dataclass(frozen=True)
class PolicyMetadata:
    """What a policy tells its user (and a remote server tells its clients on connect).

    Attributes:
        action_format: ``"rt2"`` or ``"openvla"``.
        model_id: checkpoint path or name.
        action_dim: number of action tokens the model emits (8 for RT-2, 7 for OpenVLA).
        bounds: RT-2 bounds ``{"low": [7 floats], "high": [7 floats]}``, or None.
        unnorm_key: OpenVLA statistics key, or None.
        statistics: OpenVLA action statistics ``{"q01", "q99", "mask"}``, or None.
        extra: backend-specific facts (dtype, device, server version, ...).
    """

    action_format: str
    model_id: str
    action_dim: int
    bounds: dict[str, list[float]] | None = None
    unnorm_key: str | None = None
    statistics: dict[str, list] | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PolicyResult:
    """The answer to one observation.

    Attributes:
        text: raw generated text (may be empty for id-only backends).
        token_ids: generated token ids.
        actions: the decoded action chunk (``codec.horizon`` actions, in execution
            order; one for RT-2 and OpenVLA), or ``()`` when the output was not valid.
        error: why ``actions`` is empty (the :class:`ActionDecodeError` message), else None.
        timings_ms: ``{"preprocess", "model", "decode"}`` in milliseconds; remote
            backends add ``"network"`` and ``"server"``.
    """

    text: str
    token_ids: tuple[int, ...]
    actions: tuple[Action, ...] = ()
    error: str | None = None
    timings_ms: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def action(self) -> Action | None:
        """The first action of the chunk (the one due now), or None when there is none."""
        return self.actions[0] if self.actions else None

    @property
    def total_ms(self) -> float:
        return float(sum(self.timings_ms.values()))


def result_from_output(
    codec: ActionCodec,
    text: str = "",
    token_ids: Sequence[int] = (),
    timings_ms: dict[str, float] | None = None,
    *,
    action_ids: Sequence[int] | None = None,
) -> PolicyResult:
    """Decode a model's output with ``codec`` into a :class:`PolicyResult`: the one place
    where every backend (local, remote, scripted, test doubles) turns output into actions.

    Args:
        codec: the robot's :class:`~rt2_ros.codecs.ActionCodec`.
        text: the generated text the codec reads (RT-2: ``"t x y z rx ry rz g"``).
        token_ids: the generated token ids, reported as they are.
        timings_ms: per-stage timings (ms), copied into the result.
        action_ids: the ids the codec decodes where it decodes ids (OpenVLA's tail
            tokens); None: the codec reads ``text``.

    Returns:
        A result with the decoded chunk, or with ``actions=()`` and ``error`` set to the
        :class:`~rt2_ros.codecs.ActionDecodeError` message: malformed output is
        "no action", never an exception and never a partial chunk.
    """
    timings = dict(timings_ms or {})
    try:
        actions = codec.decode_output(text, None if action_ids is None else list(action_ids))
    except ActionDecodeError as e:
        return PolicyResult(text, tuple(token_ids), (), str(e), timings)
    return PolicyResult(text, tuple(token_ids), tuple(actions), None, timings)


class Policy(abc.ABC):
    """A vision-language-action policy."""

    metadata: PolicyMetadata

    @abc.abstractmethod
    def infer_batch(self, observations: Sequence[Observation]) -> list[PolicyResult]:
        """Run the policy on several observations; one result each, in order.

        Raises:
            ValueError: an image that fails :func:`check_image`, or an empty instruction.
            PolicyError: the backend failed.
        """

    def infer(self, image: np.ndarray, instruction: str) -> PolicyResult:
        """Run the policy on one image (uint8 (H, W, 3) RGB) and instruction."""
        return self.infer_batch([Observation(image=image, instruction=instruction)])[0]

    def reset(self) -> None:
        """Called at the start of every episode. Stateless policies do nothing."""

    def close(self) -> None:
        """Release resources (connections, GPU memory)."""

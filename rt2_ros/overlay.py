"""What the rt2 node shows: velocity arrow geometry, a status text, an annotated image. ROS-free.

The geometry (:func:`arrow_endpoints`), the status text (:func:`status_lines`) and the
image overlay (:func:`draw_overlay`, drawn with Pillow, a well-kept imaging library)
live here; :func:`rt2_ros.ros.markers.make_marker_array` turns them into a
``visualization_msgs/MarkerArray``.

Arrow scale: the linear arrow is the commanded linear velocity times
:data:`LINEAR_ARROW_S` (so 0.1 m/s draws 0.1 m); the angular arrow is the angular
velocity (rotation-vector rate, rad/s) times :data:`ANGULAR_ARROW_M_PER_RADPS`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = [
    "LINEAR_ARROW_S",
    "ANGULAR_ARROW_M_PER_RADPS",
    "MarkerAnchor",
    "arrow_endpoints",
    "status_lines",
    "draw_overlay",
]

#: Linear arrow length per m/s of commanded velocity: metres of arrow per (m/s), i.e. seconds.
LINEAR_ARROW_S = 1.0
#: Angular arrow length per rad/s of commanded angular velocity, m/(rad/s).
ANGULAR_ARROW_M_PER_RADPS = 0.1


@dataclasses.dataclass(frozen=True)
class MarkerAnchor:
    """Where the arrows start.

    Attributes:
        frame_id: frame of the markers (the planning frame when the end-effector
            pose is known, else the command frame).
        origin: ``float64 (3,)`` arrow start in ``frame_id``, m (the end effector, or 0).
        rotation: ``float64 (3, 3)`` taking command-frame vectors into ``frame_id``.
    """

    frame_id: str
    origin: np.ndarray
    rotation: np.ndarray

    @staticmethod
    def at_command_frame(frame_id: str) -> "MarkerAnchor":
        """An anchor at the origin of ``frame_id`` with the identity rotation (no end-effector pose known)."""
        return MarkerAnchor(frame_id, np.zeros(3), np.eye(3))


def arrow_endpoints(anchor: MarkerAnchor, vector: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Start and end (``float64 (3,)``, m, in ``anchor.frame_id``) of the arrow for a
    command-frame ``vector`` drawn ``scale`` long per unit; None for a zero vector."""
    v = np.asarray(vector, dtype=np.float64)
    if not np.all(np.isfinite(v)) or not np.any(v):
        return None
    start = np.asarray(anchor.origin, dtype=np.float64)
    return start, start + anchor.rotation @ v * scale


def status_lines(
    instruction: str,
    step: int,
    state: str,
    latency_ms: float | None,
    rejected: str | None = None,
    linear=None,
    angular=None,
) -> list[str]:
    """The overlay/marker text: instruction, step, state, latency (ms), last rejection,
    and the commanded velocity (m/s, rad/s)."""
    lines = [f"{instruction[:60] or '(no instruction)'}"]
    lat = "-" if latency_ms is None else f"{latency_ms:.0f} ms"
    lines.append(f"step {step}  {state}  latency {lat}")
    if linear is not None and angular is not None:
        lin, ang = np.asarray(linear, float), np.asarray(angular, float)
        lines.append(
            "v [m/s] " + " ".join(f"{x:+.3f}" for x in lin) + "  w [rad/s] " + " ".join(f"{x:+.2f}" for x in ang)
        )
    if rejected:
        lines.append(f"rejected: {rejected[:70]}")
    return lines


def _bar_panel(draw, x0: int, y0: int, width: int, values: np.ndarray, limits: np.ndarray, labels) -> None:
    """Six signed horizontal bars (value / limit), centred at the panel's middle."""
    bar_h, gap = 8, 3
    mid = x0 + width // 2
    for i, (v, lim, lab) in enumerate(zip(values, limits, labels)):
        y = y0 + i * (bar_h + gap)
        draw.rectangle([x0, y, x0 + width, y + bar_h], outline=(160, 160, 160))
        frac = float(np.clip(v / lim, -1.0, 1.0)) if lim > 0 and np.isfinite(v) else 0.0
        end = mid + int(frac * (width // 2))
        colour = (40, 200, 60) if i < 3 else (60, 140, 255)
        if end != mid:
            draw.rectangle([min(mid, end), y + 1, max(mid, end), y + bar_h - 1], fill=colour)
        draw.text((x0 + width + 4, y - 2), lab, fill=(255, 255, 255))


def draw_overlay(
    image: np.ndarray,
    lines: list[str],
    linear=None,
    angular=None,
    linear_limit_mps: float = 0.3,
    angular_limit_radps: float = 1.2,
    stopped: bool = False,
) -> np.ndarray:
    """Draw the status text and velocity bars onto a copy of ``image``.

    Args:
        image: ``uint8 (H, W, 3)`` RGB.
        lines: text lines (see :func:`status_lines`).
        linear, angular: ``(3,)`` commanded velocity, m/s and rad/s (bars scaled by the limits).
        stopped: draw a red frame (the robot is commanded to stand still).

    Returns:
        A new ``uint8 (H, W, 3)`` RGB array.

    Raises:
        ValueError: not a uint8 (H, W, 3) image.
    """
    from PIL import Image as PILImage
    from PIL import ImageDraw

    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("draw_overlay needs a uint8 (H, W, 3) image")
    out = np.array(image, dtype=np.uint8, order="C")  # the copy we draw on
    h, w = out.shape[:2]
    line_h = 12
    box_h = min(4 + line_h * len(lines), h)
    out[:box_h] >>= 1  # darken the text band (cheaper than alpha compositing the whole frame)
    im = PILImage.fromarray(out, "RGB")
    draw = ImageDraw.Draw(im)
    for i, text in enumerate(lines):
        draw.text((4, 2 + i * line_h), text, fill=(255, 255, 255))
    if linear is not None and angular is not None and h > box_h + 70 and w > 120:
        vals = np.concatenate([np.asarray(linear, float), np.asarray(angular, float)])
        lims = np.array([linear_limit_mps] * 3 + [angular_limit_radps] * 3)
        _bar_panel(draw, 6, h - 6 * 11 - 6, min(100, w // 3), vals, lims, ("vx", "vy", "vz", "wx", "wy", "wz"))
    if stopped:
        draw.rectangle([0, 0, w - 1, h - 1], outline=(255, 40, 40), width=3)
    return np.asarray(im, dtype=np.uint8)

"""Record scripted-expert (or DAgger) episodes as the exact (image, action tokens) pairs the
policy saw and answered, in-process and in simulated time, into one ``.npz`` per worker.

Why beside :mod:`rt2_ros.sim.record_inprocess` (MCAP -> ``rt2-ros dataset build``): this
path needs neither rclpy nor the package's built messages, keeps the very frame the
controller handed to the policy at each control step (no re-alignment of camera and action
stamps), and is what DAgger needs (the learner acts, the expert labels the same frame).
``rt2-ros train --arch rt1`` reads these files as well as LeRobotDataset v3 directories.

File layout (numpy ``savez_compressed``): ``images`` uint8 (N, H, W, 3) RGB, ``tokens``
int16 (N, 8) the RT-2 codec's tokens (terminate, 6 motion bins, gripper bin), ``episode``
int32 (N,), ``frame_index`` int32 (N,), ``seeds`` int64 (E,), ``success`` bool (E,),
``instructions`` str (E,), ``bins`` int (the codec's bin count).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rt2_ros.policies.base import Policy

__all__ = ["record_frames", "main", "camera_timing", "CAMERA_PERIOD_S", "CAMERA_DELAY_S"]

#: The sim camera's period (config/sim.yaml ``camera.rate_hz`` 10) and the range of the delay
#: from rendering to the controller over DDS (TinyRenderer 30-50 ms plus transport), s.
CAMERA_PERIOD_S = 0.1
CAMERA_DELAY_S = (0.03, 0.08)


def camera_timing(rng: Any) -> dict[str, float]:
    """``run_episode`` keyword arguments for one episode's camera phase and delay, s, drawn
    from ``rng`` (a :class:`random.Random`): the phase uniform in [0, CAMERA_PERIOD_S), the
    delay uniform in CAMERA_DELAY_S."""
    return {
        "camera_phase_s": rng.uniform(0.0, CAMERA_PERIOD_S),
        "camera_delay_s": rng.uniform(*CAMERA_DELAY_S),
    }


class _Capture(Policy):
    """Runs ``acting`` (the executed action) and ``label`` (the recorded answer) on each frame.

    With ``noise_bins`` > 0 (and no ``acting`` policy) the executed action is the label with
    Gaussian noise of ``noise_bins`` bins (the episode's draw) added to its x, y, z tokens (DART, Laskey et al. 2017,
    "DART: Noise Injection for Robust Imitation Learning"): the arm leaves the expert's path
    and the recorded labels are the expert's corrections from there, which a policy trained
    only on the expert's own path never sees. It also breaks the copycat shortcut of a policy
    with a frame history (Wen et al. 2020, "Fighting Copycat Agents in Behavioral Cloning
    from Observation Histories"): the executed motion is no longer the label. A terminate
    answer is executed as it is.
    """

    def __init__(
        self,
        label: Policy,
        acting: Policy | None,
        beta: float,
        rng: Any,
        noise_bins: float = 0.0,
        codec: Any = None,
    ):
        self.label, self.acting, self.beta, self.rng = label, acting, float(beta), rng
        self.noise_bins, self.codec = float(noise_bins), codec
        self.metadata = label.metadata
        self.frames: list[np.ndarray] = []
        self.tokens: list[tuple[int, ...]] = []

    def _noisy(self, lab: Any) -> Any:
        from rt2_ros.policies.base import result_from_output

        tokens = [int(v) for v in lab.action.tokens]
        if tokens[0] == self.codec.terminate_token:
            return lab
        for k in (1, 2, 3):  # x, y, z motion bins
            tokens[k] = min(self.codec.bins - 1, max(0, round(tokens[k] + self.rng.gauss(0.0, self.noise_bins))))
        return result_from_output(self.codec, " ".join(map(str, tokens)), tuple(tokens))

    def infer_batch(self, observations):
        out = []
        for o in observations:
            lab = self.label.infer(o.image, o.instruction)
            if lab.action is not None:
                self.frames.append(np.asarray(o.image).copy())
                self.tokens.append(tuple(int(v) for v in lab.action.tokens))
            if self.acting is not None and self.rng.random() >= self.beta:
                out.append(self.acting.infer(o.image, o.instruction))
            elif self.noise_bins > 0 and lab.action is not None:
                out.append(self._noisy(lab))
            else:
                out.append(lab)
        return out

    def reset(self) -> None:
        self.label.reset()
        if self.acting is not None:
            self.acting.reset()


def record_frames(
    out_file: str | Path,
    pairs: Sequence[tuple[str, int]],
    bins: int = 33,
    learner_dir: str | None = None,
    beta: float = 0.0,
    max_steps: int = 60,
    colors: Sequence[str] | None = None,
    keep_failures: bool = False,
    noise_bins: float = 0.0,
    camera_jitter: bool = False,
) -> dict[str, Any]:
    """Run one episode per (instruction, layout seed) and write the ``.npz`` described above.

    Args:
        out_file: the ``.npz`` to write.
        pairs: (instruction, layout seed) per episode.
        bins: bins of the RT-2 codec (``config/train_sim_vla.yaml``: 33).
        learner_dir: DAgger: an rt1 model directory whose actions are executed (``beta``: the
            probability of executing the expert's instead); the expert labels every frame.
        max_steps: step limit per episode.
        colors: scene block colours (default red, green, blue).
        keep_failures: keep the frames of episodes the task check calls failed (DAgger keeps
            them: the expert's labels on the learner's mistakes are the point).
        noise_bins: DART noise: the executed x, y, z tokens are the expert's plus Gaussian
            noise whose standard deviation each episode draws uniformly from
            [0, ``noise_bins``] bins (0 = the expert's own path; a mixture, because a large
            noise keeps the expert hovering at the block for the whole step limit); the
            recorded tokens stay the expert's.
        camera_jitter: each episode draws the camera's phase against the control steps
            (uniform in one camera period) and its delay (``CAMERA_DELAY_S``), as over DDS,
            where the newest frame at a control step is 30-150 ms old; without it every step
            sees a frame rendered at that instant (:func:`rt2_ros.sim.inprocess.run_episode`).

    Returns:
        ``{"episodes", "kept", "frames", "successes"}``.
    """
    import random

    from rt2_ros.action_tokenizer import make_codec
    from rt2_ros.controller import Controller
    from rt2_ros.sim.expert import ScriptedExpertPolicy
    from rt2_ros.sim.inprocess import run_episode
    from rt2_ros.sim.scene import SceneConfig
    from rt2_ros.sim.settings import load_sim_settings
    from rt2_ros.sim.world import SimWorld

    extra = {"action.bins": int(bins), "control.max_steps": int(max_steps)}
    learner = None
    if learner_dir:
        extra.update({"policy.backend": "local", "policy.model_path": str(learner_dir), "policy.process": "in_process"})
    cfg = load_sim_settings().rt2_config(extra=extra)
    if learner_dir:
        from rt2_ros.config import with_model_settings
        from rt2_ros.policies.rt1.policy import RT1Policy

        cfg, _ = with_model_settings(cfg)
        learner = RT1Policy.from_pretrained(learner_dir, make_codec(cfg.action), num_threads=1)
    codec = make_codec(cfg.action)
    rng = random.Random(int(pairs[0][1]) if pairs else 0)
    world = SimWorld(SceneConfig(colors=tuple(colors)) if colors else None, seed=int(pairs[0][1]) if pairs else 0)
    images, tokens, episode, frame_index = [], [], [], []
    seeds, success, instructions = [], [], []
    try:
        for instruction, seed in pairs:
            expert = ScriptedExpertPolicy.from_config(cfg, ground_truth=world.ground_truth)
            cap = _Capture(expert, learner, beta, rng, rng.uniform(0.0, noise_bins) if noise_bins else 0.0, codec)
            timing = camera_timing(rng) if camera_jitter else {}
            rec = run_episode(world, Controller(cfg, cap), instruction, seed=int(seed), keep_frames=False, **timing)
            if not (rec.success or keep_failures) or not cap.frames:
                continue
            e = len(seeds)
            seeds.append(int(seed))
            success.append(bool(rec.success))
            instructions.append(instruction)
            images.extend(cap.frames)
            tokens.extend(cap.tokens)
            episode.extend([e] * len(cap.frames))
            frame_index.extend(range(len(cap.frames)))
    finally:
        world.close()
        if learner is not None:
            learner.close()
    h, w = (images[0].shape[:2]) if images else (0, 0)
    np.savez_compressed(
        out_file,
        images=np.stack(images) if images else np.zeros((0, h, w, 3), np.uint8),
        tokens=np.asarray(tokens, np.int16).reshape(-1, 8),
        episode=np.asarray(episode, np.int32),
        frame_index=np.asarray(frame_index, np.int32),
        seeds=np.asarray(seeds, np.int64),
        success=np.asarray(success, bool),
        instructions=np.asarray(instructions, dtype=str),
        bins=np.asarray(int(bins)),
    )
    return {"episodes": len(pairs), "kept": len(seeds), "frames": len(images), "successes": int(sum(success))}


def _part(args: tuple) -> dict:
    out_file, pairs, bins, learner_dir, beta, max_steps, colors, keep, noise, jitter = args
    return record_frames(out_file, pairs, bins, learner_dir, beta, max_steps, colors, keep, noise, jitter)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rt2_ros.sim.record_frames OUT_DIR --reach N --push N --pick N --first-seed S``:
    expert (or DAgger) episodes as ``part<k>.npz`` files, on ``--workers`` processes."""
    import argparse
    from concurrent.futures import ProcessPoolExecutor

    from rt2_ros.sim.record_inprocess import FAMILY_TEMPLATES, plan_episodes

    p = argparse.ArgumentParser(prog="python -m rt2_ros.sim.record_frames", description=main.__doc__)
    p.add_argument("out", help="directory for part<k>.npz and episodes.json")
    for family in FAMILY_TEMPLATES:
        p.add_argument(f"--{family}", type=int, default=0, help=f"episodes of '{FAMILY_TEMPLATES[family]}'")
    p.add_argument("--first-seed", type=int, required=True, help="layout seed of the first episode")
    p.add_argument("--task-seed", type=int, default=0, help="seed of the block and direction choice")
    p.add_argument("--bins", type=int, default=33, help="bins of the RT-2 codec")
    p.add_argument("--workers", type=int, default=1, help="processes")
    p.add_argument("--learner", default=None, help="DAgger: model directory whose actions are executed")
    p.add_argument("--beta", type=float, default=0.0, help="DAgger: probability of executing the expert's action")
    p.add_argument("--max-steps", type=int, default=60, help="step limit per episode")
    p.add_argument(
        "--noise-bins",
        type=float,
        default=0.0,
        help="DART: Gaussian noise on the executed x/y/z tokens, at most this many bins (per-episode draw)",
    )
    p.add_argument("--prefix", default="part", help="file name prefix")
    p.add_argument(
        "--camera-jitter", action="store_true", help="per-episode camera phase and delay, as over DDS (camera_timing)"
    )
    a = p.parse_args(argv)
    try:
        pairs = plan_episodes({f: getattr(a, f) for f in FAMILY_TEMPLATES}, a.first_seed, rng_seed=a.task_seed)
    except ValueError as e:
        print(f"error: {e}")
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    w = max(1, a.workers)
    keep = a.learner is not None or a.noise_bins > 0
    parts = [
        (
            out / f"{a.prefix}{i}.npz",
            pairs[i::w],
            a.bins,
            a.learner,
            a.beta,
            a.max_steps,
            None,
            keep,
            a.noise_bins,
            a.camera_jitter,
        )
        for i in range(w)
    ]
    with ProcessPoolExecutor(w) as ex:
        stats = list(ex.map(_part, parts))
    (out / f"{a.prefix}_episodes.json").write_text(
        json.dumps({"pairs": [{"instruction": t, "seed": s} for t, s in pairs], "parts": stats}, indent=1)
    )
    print(f"recorded into {out}: {stats}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

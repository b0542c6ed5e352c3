"""Record expert episodes to MCAP without DDS: the in-process loop, in simulated time.

What ``rt2-ros demo --record`` writes (the same topics, types and message definitions,
through :class:`~rt2_ros.sim.recording.McapRecorder`), produced by
:func:`rt2_ros.sim.inprocess.run_episode` instead of separate processes: a few seconds
per episode, deterministic, for tests and benchmarks of ``rt2-ros dataset build``.
Log times are simulated time plus ``t0_ns``; an action is logged when the real node
would publish it (its step time plus the measured inference latency).

With a ``learner`` (DAgger, Ross et al. 2011, "A Reduction of Imitation Learning and
Structured Prediction to No-Regret Online Learning", algorithm 3.1): the learner's action is
executed (the expert's with probability ``beta``), and the expert labels every visited
state: ``/rt2/action`` carries the expert's answer for the image the learner acted on, so
``rt2-ros dataset build`` turns the learner's own mistakes into training data.

Needs rclpy (message classes and their CDR serialisation) and PyBullet.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

from rt2_ros.codecs import make_codec
from rt2_ros.controller import Controller

__all__ = ["record_expert_episodes", "RECORDED_TOPICS", "FAMILY_TEMPLATES", "PUSH_DIRECTIONS", "plan_episodes", "main"]

#: (topic, type) written per episode: the demo's recording minus Servo internals.
RECORDED_TOPICS = [
    ("/camera/image_raw", "sensor_msgs/msg/Image"),
    ("/rt2/ee_pose", "geometry_msgs/msg/PoseStamped"),
    ("/rt2/gripper_command", "std_msgs/msg/Float64"),
    ("/rt2/instruction", "std_msgs/msg/String"),
    ("/rt2/action", "rt2_ros/msg/RT2Action"),
    ("/rt2/episode", "rt2_ros/msg/EpisodeStatus"),
    ("/sim/ground_truth", "std_msgs/msg/String"),
]


class _DaggerPolicy:
    """Asks the expert (the label) and the learner (the action executed, unless the beta
    coin picks the expert) on every observation; keeps the expert's answer for the recorder."""

    def __init__(self, expert, learner, beta: float, rng):
        self.expert, self.learner, self.beta, self.rng = expert, learner, float(beta), rng
        self.metadata = learner.metadata
        self.last_label = None

    def infer(self, image, instruction):
        self.last_label = self.expert.infer(image, instruction)
        if self.rng.random() < self.beta:
            return self.last_label
        return self.learner.infer(image, instruction)

    def infer_batch(self, observations):
        return [self.infer(o.image, o.instruction) for o in observations]

    def reset(self) -> None:
        self.expert.reset()
        self.learner.reset()

    def close(self) -> None:
        self.expert.close()


class _RecordingController(Controller):
    """A :class:`Controller` that also writes what the node and sim would publish."""

    def __init__(self, cfg, policy, world, recorder, t0_ns: int):
        super().__init__(cfg, policy)
        self.world, self.rec, self.t0_ns = world, recorder, int(t0_ns)

    def _ns(self, t: float) -> int:
        return self.t0_ns + int(round(t * 1e9))

    def _write(self, topic: str, msg: Any, t: float) -> None:
        from rclpy.serialization import serialize_message

        self.rec.write(topic, serialize_message(msg), log_time_ns=self._ns(t))

    def _stamp(self, t: float):
        from rt2_ros.ros.conversions import s_to_stamp

        return s_to_stamp(self.t0_ns * 1e-9 + t)

    def _flush_transitions(self, t: float) -> None:
        from rt2_ros.ros.conversions import transition_to_episode_msg

        for tr in self.drain_transitions():
            self._write("/rt2/episode", transition_to_episode_msg(tr, self._stamp(t)), t)

    def on_image(self, image, stamp_s, now_s=None):
        from std_msgs.msg import String

        from rt2_ros.ros.conversions import rgb_to_image_msg

        super().on_image(image, stamp_s, now_s)
        self._write("/camera/image_raw", rgb_to_image_msg(image, self._stamp(stamp_s), "camera"), stamp_s)
        self._write("/sim/ground_truth", String(data=json.dumps(self.world.ground_truth())), stamp_s)

    def on_ee_pose(self, position, stamp_s, rotation_planning_from_command=None, now_s=None):
        from geometry_msgs.msg import PoseStamped

        super().on_ee_pose(position, stamp_s, rotation_planning_from_command, now_s)
        pos, quat = self.world.scene.ee_pose()
        m = PoseStamped()
        m.header.stamp = self._stamp(stamp_s)
        m.header.frame_id = self.cfg.frames.planning_frame
        m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in pos)
        m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w = (
            float(v) for v in quat
        )
        self._write("/rt2/ee_pose", m, stamp_s)

    def on_instruction(self, text, now_s):
        from std_msgs.msg import String

        self._write("/rt2/instruction", String(data=text), now_s)
        out = super().on_instruction(text, now_s)
        self._flush_transitions(now_s)
        return out

    def step(self, now_s):
        from std_msgs.msg import Float64

        from rt2_ros.ros.conversions import outcome_to_action_msg

        out = super().step(now_s)
        if out is not None:
            t_pub = now_s + out.latency_ms * 1e-3
            label = out
            dagger_label = getattr(self.policy, "last_label", None)
            if dagger_label is not None and out.result is not None:  # DAgger: the expert's answer is the label
                self.policy.last_label = None
                label = dataclasses.replace(out, result=dagger_label, action=dagger_label.action, rejected=None)
            self._write(
                "/rt2/action", outcome_to_action_msg(label, self._stamp(t_pub), self.cfg.frames.command_frame), t_pub
            )
            if out.gripper is not None:
                self._write("/rt2/gripper_command", Float64(data=float(out.gripper)), t_pub)
            self._flush_transitions(t_pub)  # the node publishes the step's transitions after its action
        self._flush_transitions(now_s)
        return out


#: Instruction template per task family, as the demo's VLA is trained on them ({color}, {direction}).
FAMILY_TEMPLATES: dict[str, str] = {
    "reach": "move to the {color} block",
    "push": "push the {color} block {direction}",
    "pick": "pick up the {color} block",
}
#: Push directions the recorded episodes draw from (keys of rt2_ros.sim.tasks.DIRECTIONS).
PUSH_DIRECTIONS = ("left", "right", "forward", "backward")


def plan_episodes(
    counts: dict[str, int], first_seed: int, colors: Sequence[str] = ("red", "green", "blue"), rng_seed: int = 0
) -> list[tuple[str, int]]:
    """(instruction, layout seed) pairs: ``counts[family]`` episodes of each family of
    :data:`FAMILY_TEMPLATES`, the named block and push direction drawn from ``rng_seed``,
    layout seeds ``first_seed, first_seed + 1, ...`` (one layout per episode).

    Raises:
        ValueError: an unknown family or a negative count.
    """
    import random

    rng = random.Random(rng_seed)
    pairs: list[tuple[str, int]] = []
    seed = int(first_seed)
    for family, n in counts.items():
        if family not in FAMILY_TEMPLATES or n < 0:
            raise ValueError(f"bad family/count {family}:{n} (families: {', '.join(FAMILY_TEMPLATES)})")
        for _ in range(n):
            text = FAMILY_TEMPLATES[family].format(
                color=rng.choice(list(colors)), direction=rng.choice(PUSH_DIRECTIONS)
            )
            pairs.append((text, seed))
            seed += 1
    return pairs


def record_expert_episodes(
    out_dir: str | Path,
    instructions: Sequence[str],
    seeds: Sequence[int],
    cfg: Any = None,
    camera_period_s: float = 0.1,
    t0_ns: int = 1_700_000_000_000_000_000,
    prefix: str = "expert_ep",
    colors: Sequence[str] | None = None,
    learner: Any = None,
    beta: float = 0.0,
) -> list[Path]:
    """Run the scripted expert on each (instruction, seed) and write one MCAP file each.

    Args:
        out_dir: directory for ``<prefix>NN.mcap``.
        instructions, seeds: one episode per pair.
        cfg: :class:`~rt2_ros.config.RT2Config` (default: the simulator's settings).
        camera_period_s: camera frame period, s.
        t0_ns: log time of simulated time 0 (ns since the epoch).
        prefix: file name prefix.
        colors: block colours of the scene (default the scene's: red, green, blue).
        learner: a :class:`~rt2_ros.policies.base.Policy` to run DAgger with (the expert labels).
        beta: DAgger's probability of executing the expert's action instead of the learner's.

    Returns:
        The files written.

    Raises:
        ImportError: rclpy or PyBullet missing.
    """
    from rt2_ros.sim.expert import ScriptedExpertPolicy
    from rt2_ros.sim.inprocess import run_episode
    from rt2_ros.sim.recording import McapRecorder
    from rt2_ros.sim.scene import SceneConfig
    from rt2_ros.sim.settings import load_sim_settings
    from rt2_ros.sim.world import SimWorld

    cfg = cfg or load_sim_settings().rt2_config()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scene_cfg = SceneConfig(colors=tuple(colors)) if colors else None
    import random

    rng = random.Random(int(seeds[0]) if len(seeds) else 0)
    world = SimWorld(scene_cfg, seed=int(seeds[0]) if len(seeds) else 0)
    paths: list[Path] = []
    try:
        for k, (instruction, seed) in enumerate(zip(instructions, seeds)):
            path = out / f"{prefix}{k + 1:04d}.mcap"
            with McapRecorder(path) as rec:
                for topic, datatype in RECORDED_TOPICS:
                    rec.add_channel(topic, datatype)
                policy = ScriptedExpertPolicy.from_config(cfg, ground_truth=world.ground_truth)
                if learner is not None:
                    policy = _DaggerPolicy(policy, learner, beta, rng)
                ctl = _RecordingController(cfg, policy, world, rec, t0_ns + k * 1_000_000_000_000)
                run_episode(world, ctl, instruction, seed=int(seed), camera_period_s=camera_period_s, keep_frames=False)
            paths.append(path)
    finally:
        world.close()
    return paths


def _record_part(args: tuple) -> int:
    out_dir, pairs, prefix, colors, learner_dir, beta, max_steps = args
    if not pairs:
        return 0
    instructions, seeds = zip(*pairs)
    learner, cfg = None, None
    if learner_dir:  # an RT-2-format model trained by rt2-ros train (its codec from rt2_ros_policy.yaml)
        from rt2_ros.config import with_model_settings
        from rt2_ros.policies.transformers_policy import TransformersPolicy
        from rt2_ros.sim.settings import load_sim_settings

        cfg = load_sim_settings().rt2_config(
            extra={"policy.backend": "local", "policy.model_path": str(learner_dir), "control.max_steps": max_steps}
        )
        cfg, _ = with_model_settings(cfg)
        learner = TransformersPolicy.from_pretrained(
            learner_dir,
            prompt=cfg.policy.prompt,
            num_threads=1,
            rt2_codec=make_codec(cfg.action),
            action_token_pattern=cfg.action.token_pattern or None,
        )
    try:
        paths = record_expert_episodes(
            out_dir, instructions, seeds, cfg=cfg, prefix=prefix, colors=colors, learner=learner, beta=beta
        )
    finally:
        if learner is not None:
            learner.close()
    return len(paths)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rt2_ros.sim.record_inprocess OUT --reach N --push N --pick N --first-seed S``:
    record scripted-expert episodes (one MCAP each) for ``rt2-ros dataset build``, on
    ``--workers`` processes. Episode k uses layout seed ``first_seed + k``."""
    import argparse
    from concurrent.futures import ProcessPoolExecutor

    p = argparse.ArgumentParser(prog="python -m rt2_ros.sim.record_inprocess", description=main.__doc__)
    p.add_argument("out", help="directory for the MCAP files")
    for family in FAMILY_TEMPLATES:
        p.add_argument(f"--{family}", type=int, default=0, help=f"episodes of '{FAMILY_TEMPLATES[family]}'")
    p.add_argument("--first-seed", type=int, required=True, help="layout seed of the first episode")
    p.add_argument("--colors", nargs="+", default=["red", "green", "blue"], help="block colours of the scene")
    p.add_argument("--task-seed", type=int, default=0, help="seed of the block and direction choice")
    p.add_argument("--workers", type=int, default=1, help="processes")
    p.add_argument("--prefix", default="expert_ep", help="file name prefix")
    p.add_argument("--learner", default=None, help="DAgger: trained model directory whose actions are executed")
    p.add_argument("--beta", type=float, default=0.0, help="DAgger: probability of executing the expert's action")
    p.add_argument("--max-steps", type=int, default=40, help="DAgger: step limit of the learner's episodes")
    a = p.parse_args(argv)
    try:
        pairs = plan_episodes(
            {f: getattr(a, f) for f in FAMILY_TEMPLATES}, a.first_seed, colors=a.colors, rng_seed=a.task_seed
        )
    except ValueError as e:
        print(f"error: {e}")
        return 2
    w = max(1, a.workers)
    parts = [(a.out, pairs[i::w], f"{a.prefix}{i}_", tuple(a.colors), a.learner, a.beta, a.max_steps) for i in range(w)]
    with ProcessPoolExecutor(w) as ex:
        n = sum(ex.map(_record_part, parts))
    (Path(a.out) / "episodes.json").write_text(json.dumps([{"instruction": t, "seed": s} for t, s in pairs], indent=1))
    print(f"recorded {n} episodes into {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

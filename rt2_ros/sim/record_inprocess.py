"""Record expert episodes to MCAP without DDS: the in-process loop, in simulated time.

What ``rt2-ros demo --record`` writes (the same topics, types and message definitions,
through :class:`~rt2_ros.sim.recording.McapRecorder`), produced by
:func:`rt2_ros.sim.inprocess.run_episode` instead of separate processes: a few seconds
per episode, deterministic, for tests and benchmarks of ``rt2-ros dataset build``.
Log times are simulated time plus ``t0_ns``; an action is logged when the real node
would publish it (its step time plus the measured inference latency).

Needs rclpy (message classes and their CDR serialisation) and PyBullet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from rt2_ros.controller import Controller

__all__ = ["record_expert_episodes", "RECORDED_TOPICS"]

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
            self._write(
                "/rt2/action", outcome_to_action_msg(out, self._stamp(t_pub), self.cfg.frames.command_frame), t_pub
            )
            if out.gripper is not None:
                self._write("/rt2/gripper_command", Float64(data=float(out.gripper)), t_pub)
            self._flush_transitions(t_pub)  # the node publishes the step's transitions after its action
        self._flush_transitions(now_s)
        return out


def record_expert_episodes(
    out_dir: str | Path,
    instructions: Sequence[str],
    seeds: Sequence[int],
    cfg: Any = None,
    camera_period_s: float = 0.1,
    t0_ns: int = 1_700_000_000_000_000_000,
    prefix: str = "expert_ep",
) -> list[Path]:
    """Run the scripted expert on each (instruction, seed) and write one MCAP file each.

    Args:
        out_dir: directory for ``<prefix>NN.mcap``.
        instructions, seeds: one episode per pair.
        cfg: :class:`~rt2_ros.config.RT2Config` (default: the simulator's settings).
        camera_period_s: camera frame period, s.
        t0_ns: log time of simulated time 0 (ns since the epoch).

    Returns:
        The files written.

    Raises:
        ImportError: rclpy or PyBullet missing.
    """
    from rt2_ros.sim.expert import ScriptedExpertPolicy
    from rt2_ros.sim.inprocess import run_episode
    from rt2_ros.sim.recording import McapRecorder
    from rt2_ros.sim.settings import load_sim_settings
    from rt2_ros.sim.world import SimWorld

    cfg = cfg or load_sim_settings().rt2_config()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = SimWorld(seed=int(seeds[0]) if len(seeds) else 0)
    paths: list[Path] = []
    try:
        for k, (instruction, seed) in enumerate(zip(instructions, seeds)):
            path = out / f"{prefix}{k + 1:02d}.mcap"
            with McapRecorder(path) as rec:
                for topic, datatype in RECORDED_TOPICS:
                    rec.add_channel(topic, datatype)
                policy = ScriptedExpertPolicy.from_config(cfg, ground_truth=world.ground_truth)
                ctl = _RecordingController(cfg, policy, world, rec, t0_ns + k * 1_000_000_000_000)
                run_episode(world, ctl, instruction, seed=int(seed), camera_period_s=camera_period_s, keep_frames=False)
            paths.append(path)
    finally:
        world.close()
    return paths

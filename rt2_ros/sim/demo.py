"""``rt2-ros demo``: the closed loop without a robot, over real ROS 2 DDS.

Starts the simulation (``python -m rt2_ros.sim.sim_node``) and, per policy, the rt2
node (``python -m rt2_ros.ros.node``) as separate processes on a private DDS domain,
then runs episodes through them from its own node (:mod:`rt2_ros.sim.driver_node`):
reset (``/rt2/reset`` -> ``/sim/reset``, a new randomised layout), instruction on
``/rt2/instruction``, episode followed on ``/rt2/episode`` until it ends. Policies:

* ``scripted`` - the sim's expert (ground truth in, RT-2 action text out,
  :mod:`rt2_ros.sim.expert`): shows the whole stack succeeding;
* ``vla`` - a VLA through the local backend: a model trained by ``rt2-ros train`` (``make
  train`` installs one in ``models/rt2_sim_mini``, which is then the default) with its own
  codec, ending its episodes with its own terminate token; or a random-weight test model
  (``rt2-ros make-test-model``, the default while no trained model is installed), run to
  the step limit under a tight envelope: the model path end to end, no success expected.

* ``openpi`` - the expert behind ``rt2-ros serve --protocol openpi`` (a child process on
  loopback), the node on ``policy.backend: openpi`` with the ``rt2_ros`` profile: the same
  task through openpi's protocol (docs/openpi.md);
* ``openpi_joint`` - a joint-velocity policy in DROID's layout behind the same server
  (:mod:`rt2_ros.sim.joint_expert`: the expert's plan through the Panda's Jacobian), the
  node on the ``droid`` profile: JointJog on ``/servo_node/delta_joint_cmds``, executed by
  the Servo stand-in (needs control_msgs, from the ROS 2 tools kit).

``--chunk 8`` runs both with action chunks: 8 actions per inference (RT-2 text of 8 x 8
integers), one executed per control period, the next chunk inferred while 2 remain.

Prints the per-episode table and writes into ``--out`` (default ``out/demo``):
``report.md``, ``report.json``, ``contact_sheet.png`` (first/middle/last camera frame
per episode), ``trajectories.png`` (TCP paths and blocks, top view), ``logs/`` (the
nodes' output) and, with ``--record``, one MCAP file per episode in ``mcap/``.
A tqdm progress bar shows the episodes and the steps of the running one.

Safety: the processes use a random ``ROS_DOMAIN_ID`` (40-100) unless ``--domain-id``
is given, and ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, so the demo's twists can
never reach a real robot's Servo on the network.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rt2_ros.sim import SCRIPTED_EXPERT

__all__ = ["add_arguments", "run", "DEFAULT_INSTRUCTIONS", "default_vla_model", "NodeProcess"]


def default_vla_model() -> Path:
    """The demo's learned policy: ``models/rt1_sim`` (RT-1, shipped; ``make train`` reproduces
    it), else ``models/rt2_sim_mini`` (``make train-vlm`` with ``RT2_TRAIN_INSTALL=1``), of the
    source tree or of the installed share directory. The directory may not exist."""
    from rt2_ros.config import default_config_path

    roots = [Path(__file__).resolve().parents[2] / "models", default_config_path().parents[1] / "models"]
    for name in ("rt1_sim", "rt2_sim_mini"):
        for root in roots:
            if (root / name).is_dir():
                return root / name
    return roots[0] / "rt2_sim_mini"


#: Instructions the demo cycles through (the blocks are red, green and blue).
DEFAULT_INSTRUCTIONS = [
    "pick up the red block",
    "push the blue block left",
    "move to the green block",
    "pick up the green block",
    "push the red block forward",
    "lift the blue block",
    "push the green block right",
    "move to the red block",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rt2-ros demo``."""
    p.add_argument("--episodes", type=int, default=5, help="episodes per policy (default 5)")
    p.add_argument(
        "--policies",
        default="scripted,vla",
        help="comma-separated: scripted (the sim's expert), vla (a model on the local backend), openpi (the expert "
        "through openpi's protocol), openpi_joint (a joint-velocity expert, DROID layout, JointJog) "
        "(default scripted,vla)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="model directory of the vla policy: an rt2-ros train output or a random-weight test model "
        "(rt2-ros make-test-model) (default: models/rt2_sim_mini when installed, else out/models/tiny)",
    )
    p.add_argument("--vla-episodes", type=int, default=None, help="episodes of the vla policy (default --episodes)")
    p.add_argument(
        "--vla-max-steps",
        type=int,
        default=None,
        help="step limit of vla episodes (default 40 for a trained model, 20 for a random test model)",
    )
    p.add_argument(
        "--chunk",
        type=int,
        default=1,
        help="actions per inference (action.horizon; RT-2 text of H x 8 integers), executed one per "
        "control period with the next chunk inferred ahead (default 1: one action per inference)",
    )
    p.add_argument(
        "--chunk-threshold",
        type=int,
        default=2,
        help="with --chunk: infer the next chunk when this many actions remain (0: the arm waits; default 2)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="layout seed: every episode resets to the next seed, so episode k uses seed + k (default 0)",
    )
    p.add_argument("--instructions", nargs="+", default=None, help="instructions to cycle through")
    p.add_argument(
        "--vla-instructions",
        nargs="+",
        default=None,
        help="instructions of the vla policy's episodes (default: --instructions); e.g. the task families "
        "the model was trained on",
    )
    p.add_argument("--out", default="out/demo", help="output directory (default out/demo)")
    p.add_argument("--record", action="store_true", help="record every episode to MCAP (out/demo/mcap/)")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: random in 40-100)")
    p.add_argument("--config", default=None, help="rt2 parameters file (default config/rt2.yaml)")
    p.add_argument("--sim-config", default=None, help="simulation parameters file (default config/sim.yaml)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--attach",
        action="store_true",
        help="drive an rt2_sim and rt2_node that are already running on this ROS_DOMAIN_ID "
        "(launch/sim.launch.py) instead of starting them; --policies names the one running",
    )


class NodeProcess:
    """A node started as a child process; stopped with SIGTERM (then SIGKILL).

    Args:
        name: for messages and the log file name.
        cmd: the command line.
        env: its environment.
        log_path: stdout and stderr go there.
    """

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_path: Path):
        self.name, self.cmd, self.log_path = name, cmd, log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def tail(self, n: int = 15) -> str:
        """The last ``n`` lines of the process's log ('' when unreadable)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 8.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s`` (s); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


def _repo_config(name: str, given: str | None) -> Path:
    from rt2_ros.config import default_config_path

    return Path(given) if given else default_config_path().parent / name


def _ros_args(node: str, params_files: list[Path], overrides: dict[str, Any]) -> list[str]:
    """``--ros-args`` with parameter files and ``-p node:name:=value`` overrides (node-specific,
    because rclpy lets a file's node-specific section win over wildcard ``-p`` values)."""
    args = ["--ros-args"]
    for f in params_files:
        args += ["--params-file", str(f)]
    for k, v in overrides.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        args += ["-p", f"{node}:{k}:={v}"]
    return args


def _child_env(domain_id: int) -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _policy_overrides(policy: str, args: argparse.Namespace) -> dict[str, Any]:
    chunk = int(getattr(args, "chunk", 1) or 1)
    out = _policy_overrides_one(policy, args)
    if chunk > 1:  # action chunks: H actions per inference, the next one inferred ahead
        out.update(
            {
                "action.horizon": chunk,
                "control.chunk_threshold": max(0, min(int(args.chunk_threshold), chunk - 1)),
            }
        )
    return out


#: Demo policies served by an ``rt2-ros serve --protocol openpi`` child: the served policy
#: and the node's ``openpi`` profile.
OPENPI_POLICIES = {
    "openpi": ("rt2_ros.sim.served:make_expert", {"openpi.profile": "rt2_ros"}),
    "openpi_joint": ("rt2_ros.sim.served:make_joint_expert", {"openpi.profile": "droid", "openpi.replan_steps": 1}),
}


def _policy_overrides_one(policy: str, args: argparse.Namespace) -> dict[str, Any]:
    if policy == "scripted":
        return {"policy.backend": SCRIPTED_EXPERT}
    if policy in OPENPI_POLICIES:  # policy.server_url is filled in once the server listens
        return {"policy.backend": "openpi", "policy.timeout_s": 5.0, **OPENPI_POLICIES[policy][1]}
    if policy == "vla":
        from rt2_ros.testing.make_model import INFO_FILE, policy_overrides

        model = Path(args.model) if args.model else default_vla_model()
        if not args.model and not model.is_dir():
            model = Path("out/models/tiny")
        if not model.is_dir():
            raise FileNotFoundError(
                f"no model at {model}: `make train` trains one, `rt2-ros make-test-model {model}` makes a test one"
            )
        if not (model / INFO_FILE).is_file():
            # A trained model: its own codec (rt2_ros_policy.yaml in the directory) and its own
            # terminate token; the envelope of config/sim.yaml as for the expert.
            return {
                "policy.backend": "local",
                "policy.model_path": str(model.resolve()),
                "control.max_steps": int(args.vla_max_steps or 40),
                "policy.num_threads": 1,
            }
        steps = int(args.vla_max_steps or 20)
        # Random weights: the terminate token means nothing, and greedy decoding repeats
        # it. Requiring more consecutive terminate tokens than the step limit lets every
        # episode run to its step limit (the model path end to end, then a clean stop).
        # Its random rotations would also twist the wrist into a singularity within a few
        # seconds, where Servo halts and the node ends the episode as a fault (the right
        # reaction on a robot). An untrusted policy gets a tight envelope: 0.1 rad/s.
        return {
            **policy_overrides(model),
            "control.max_steps": steps,
            "control.terminate_debounce": steps + 1,
            "safety.max_angular_speed_axis_radps": 0.1,
            "safety.max_angular_speed_radps": 0.1,
            "policy.num_threads": 1,
        }
    raise ValueError(f"unknown policy {policy!r} (scripted | vla | openpi | openpi_joint)")


def _start_openpi_server(policy: str, rt2_yaml: Path, sim_yaml: Path, env: dict[str, str], logs: Path):
    """``rt2-ros serve --protocol openpi`` with the demo policy's served policy and the node's
    configuration (rt2.yaml + sim.yaml's overrides); returns ``(process, url)``.

    Raises:
        RuntimeError: it did not start (its output is in the message).
    """
    import yaml

    from rt2_ros.config import config_to_flat
    from rt2_ros.sim.settings import load_sim_settings
    from rt2_ros.testing.serve import start_server

    cfg = load_sim_settings(sim_yaml).rt2_config(rt2_yaml)
    nested: dict[str, dict[str, Any]] = {}
    for k, v in config_to_flat(cfg).items():
        sec, _, name = k.partition(".")
        nested.setdefault(sec, {})[name] = v
    logs.mkdir(parents=True, exist_ok=True)
    served_cfg = logs / f"{policy}_server_rt2.yaml"
    served_cfg.write_text(yaml.safe_dump(nested))
    served = OPENPI_POLICIES[policy][0]
    args = ["--policy", served, "--protocol", "openpi", "--config", str(served_cfg), "--no-warmup"]
    return start_server(args, env=env, timeout_s=120.0)


def _episodes(driver, policy: str, n: int, instructions: list[str], max_steps, args, node=None) -> tuple[list, bool]:
    """Run ``n`` episodes of ``policy`` with a progress bar; returns (records, all clean?)."""
    from tqdm import tqdm

    from rt2_ros.sim.driver_node import EpisodeTimeout

    records, clean = [], True
    bar = tqdm(total=n, desc=f"{policy:8s}", unit="ep", disable=args.no_progress, dynamic_ncols=True, leave=True)
    try:
        for k in range(n):
            ins = instructions[k % len(instructions)]
            bar.set_postfix_str(f"{ins} | step 0")
            limit = f"/{max_steps}" if max_steps else ""
            try:
                rec = driver.run_episode(
                    ins,
                    policy,
                    timeout_s=120.0,
                    record_name=f"{policy}_ep{k + 1:02d}",
                    on_progress=lambda s, ins=ins: bar.set_postfix_str(f"{ins} | step {s}{limit}", refresh=True),
                )
            except (EpisodeTimeout, TimeoutError, RuntimeError) as e:
                clean = False
                tqdm.write(f"episode {k + 1} ({policy}) failed: {e}")
                if node is not None and not node.alive():
                    tqdm.write(f"rt2 node exited:\n{node.tail()}")
                    break
                continue
            records.append(rec)
            bar.update(1)
            ok = "success" if rec.success else "no success"
            tqdm.write(f"  {policy} #{k + 1}: {ins!r}: {rec.reason} after {rec.steps} steps, {ok} ({rec.detail})")
            if rec.reason == "fault":  # the demo provokes none: a dead server, a Servo halt, ...
                clean = False
                tqdm.write(f"  {policy} #{k + 1} ended in a fault the demo did not ask for: the exit code will be 1")
    finally:
        bar.close()
    return records, clean


def _finish(records, out: Path, meta: dict, driver, clean: bool) -> int:
    from rt2_ros.sim.report import format_table, summary_line, write_reports

    if not records:
        if meta.get("attached"):
            where = "the rt2_sim and rt2_node messages above (ros2 launch prints them; ROS_LOG_DIR or ~/.ros/log keeps them)"
        else:
            where = f"the logs in {out / 'logs'}"
        print(f"no episode completed; see {where}", file=sys.stderr)
        return 1
    paths = write_reports(records, out, meta)
    print()
    print(format_table(records))
    print()
    print(summary_line(records))
    print()
    for key in ("report_md", "contact_sheet", "trajectories"):
        print(f"{key.replace('_', ' ')}: {paths[key]}")
    if driver is not None and driver.recorded:
        print(f"MCAP recordings: {len(driver.recorded)} files in {out / 'mcap'} (open them in Foxglove)")
    return 0 if clean else 1


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit code 0 when every episode ran to a clean end, 1 otherwise, 2 bad arguments."""
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if not policies or args.episodes < 1:
        print("error: need at least one policy and one episode", file=sys.stderr)
        return 2
    instructions = args.instructions or DEFAULT_INSTRUCTIONS
    out = Path(args.out)
    record_dir = (out / "mcap") if args.record else None
    n_of = lambda p: args.vla_episodes if (p == "vla" and args.vla_episodes is not None) else args.episodes  # noqa: E731
    if args.attach:
        return _run_attached(args, policies, instructions, out, record_dir, n_of)
    try:
        overrides = {p: _policy_overrides(p, args) for p in policies}
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rt2_yaml, sim_yaml = _repo_config("rt2.yaml", args.config), _repo_config("sim.yaml", args.sim_config)
    for f in (rt2_yaml, sim_yaml):
        if not f.is_file():
            print(f"error: no parameters file {f}", file=sys.stderr)
            return 2
    domain = args.domain_id if args.domain_id is not None else random.randint(40, 100)
    logs = out / "logs"
    env = _child_env(domain)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    print(
        f"rt2_ros demo: {', '.join(f'{n_of(p)} x {p}' for p in policies)} episodes on ROS_DOMAIN_ID={domain}; "
        f"output in {out}/",
        flush=True,
    )

    from rt2_ros.sim.driver_node import DemoDriver

    sim = NodeProcess(
        "rt2_sim",
        [sys.executable, "-m", "rt2_ros.sim.sim_node", *_ros_args("rt2_sim", [sim_yaml], {"seed": args.seed})],
        env,
        logs / "sim.log",
    )
    driver = None
    records: list = []
    clean = True
    t_start = time.monotonic()
    try:
        driver = DemoDriver(domain, record_dir=record_dir)
        driver.wait_ready(60.0, need_rt2_node=False)
        for policy in policies:
            server = None
            if policy in OPENPI_POLICIES:
                if policy == "openpi_joint":
                    from rt2_ros.ros.joint_jog import HAVE_JOINT_JOG

                    if not HAVE_JOINT_JOG:
                        print(
                            "error: openpi_joint needs control_msgs (JointJog): build the ROS 2 tools kit",
                            file=sys.stderr,
                        )
                        clean = False
                        continue
                try:
                    server, url = _start_openpi_server(policy, rt2_yaml, sim_yaml, env, logs)
                except RuntimeError as e:
                    print(f"error: {e}", file=sys.stderr)
                    clean = False
                    continue
                overrides[policy]["policy.server_url"] = url
            node = NodeProcess(
                f"rt2_node ({policy})",
                [
                    sys.executable,
                    "-m",
                    "rt2_ros.ros.node",
                    *_ros_args("rt2_node", [rt2_yaml, sim_yaml], overrides[policy]),
                ],
                env,
                logs / f"rt2_node_{policy}.log",
            )
            try:
                try:
                    driver.wait_ready(120.0)
                except TimeoutError as e:
                    print(f"error: {e}\n--- {node.log_path} ---\n{node.tail()}", file=sys.stderr)
                    clean = False
                    continue
                max_steps = overrides[policy].get("control.max_steps")
                todo = (args.vla_instructions or instructions) if policy == "vla" else instructions
                recs, ok = _episodes(driver, policy, n_of(policy), todo, max_steps, args, node)
                records += recs
                clean = clean and ok
            finally:
                node.stop()
                if server is not None:
                    server.terminate()
                    try:
                        server.wait(10)
                    except subprocess.TimeoutExpired:
                        server.kill()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        clean = False
    except TimeoutError as e:
        print(f"error: {e}\n--- {sim.log_path} ---\n{sim.tail()}", file=sys.stderr)
        clean = False
    finally:
        if driver is not None:
            driver.close()
        sim.stop()
    meta = {
        "domain_id": domain,
        "policies": policies,
        "episodes": {p: n_of(p) for p in policies},
        "seed": args.seed,
        "total_wall_s": round(time.monotonic() - t_start, 1),
    }
    return _finish(records, out, meta, driver, clean)


def _run_attached(args, policies, instructions, out, record_dir, n_of) -> int:
    """``--attach``: drive already running nodes (launch/sim.launch.py) on this ROS_DOMAIN_ID."""
    from rt2_ros.sim.driver_node import DemoDriver

    if len(policies) != 1:
        print("error: with --attach, --policies names the one policy the running rt2 node uses", file=sys.stderr)
        return 2
    policy = policies[0]
    domain = args.domain_id if args.domain_id is not None else int(os.environ.get("ROS_DOMAIN_ID") or 0)
    print(
        f"rt2_ros demo (attached): {n_of(policy)} x {policy} episodes on ROS_DOMAIN_ID={domain}; output in {out}/",
        flush=True,
    )
    driver = None
    records: list = []
    clean = True
    t_start = time.monotonic()
    try:
        driver = DemoDriver(domain, record_dir=record_dir)
        driver.wait_ready(120.0)
        todo = (args.vla_instructions or instructions) if policy == "vla" else instructions
        records, clean = _episodes(driver, policy, n_of(policy), todo, None, args)
    except KeyboardInterrupt:
        clean = False
    except TimeoutError as e:
        print(f"error: {e}", file=sys.stderr)
        clean = False
    finally:
        if driver is not None:
            driver.close()
    meta = {
        "domain_id": domain,
        "policies": policies,
        "episodes": {policy: n_of(policy)},
        "attached": True,
        "total_wall_s": round(time.monotonic() - t_start, 1),
    }
    return _finish(records, out, meta, driver, clean)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rt2-ros demo", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

"""launch/sim.launch.py, config/sim.yaml and scripts/demo.sh against the code they drive.

These checks parse the launch file with ``ast`` (they run without ROS 2 launch; the
real ``ros2 launch`` runs it in test_ros2_launch.py); the parameters file is checked
against the parameters the nodes declare and against the rt2 config schema, so a typo there fails here, not in a demo.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from rt2_ros.config import ConfigError
from rt2_ros.sim import SCRIPTED_EXPERT
from rt2_ros.sim.settings import flatten, load_sim_settings

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "sim.launch.py"


@pytest.fixture(scope="module")
def tree():
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _calls(tree, name):
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and (
            (isinstance(n.func, ast.Name) and n.func.id == name)
            or (isinstance(n.func, ast.Attribute) and n.func.attr == name)
        )
    ]


def _kw(call, key):
    return next((k.value for k in call.keywords if k.arg == key), None)


def test_every_executable_the_launch_starts_is_installed(tree):
    cmake = (ROOT / "CMakeLists.txt").read_text()
    installed = set(re.findall(r"scripts/(\w+)", " ".join(re.findall(r"install\(PROGRAMS[^)]*\)", cmake))))
    exes = {
        ast.literal_eval(_kw(c, "executable"))
        for c in _calls(tree, "Node")
        if _kw(c, "package") is not None and ast.literal_eval(_kw(c, "package")) == "rt2_ros"
    }
    assert exes == {"rt2_sim", "rt2_node", "rt2_demo"}
    assert exes <= installed
    for e in exes:
        assert (ROOT / "scripts" / e).stat().st_mode & 0o111, f"scripts/{e} is not executable"


def test_launch_arguments_are_declared_and_used(tree):
    arguments = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ARGUMENTS")
    declared = {ast.literal_eval(e.elts[0]) for e in arguments.elts}
    used = {ast.literal_eval(c.args[0]) for c in _calls(tree, "get") if c.args and isinstance(c.args[0], ast.Constant)}
    used |= {
        ast.literal_eval(c.args[0]) for c in _calls(tree, "LaunchConfiguration") if isinstance(c.args[0], ast.Constant)
    }
    # integer arguments are read (and checked) by _int_arg(get, NAME, minimum)
    used |= {c.args[1].value for c in _calls(tree, "_int_arg") if isinstance(c.args[1], ast.Constant)}
    # model_path / server_url / max_steps / terminate_debounce are read through loops over (arg, param) pairs
    loop_args = {
        ast.literal_eval(t.elts[0])
        for t in ast.walk(tree)
        if isinstance(t, ast.Tuple)
        and len(t.elts) == 2
        and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in t.elts)
        and ast.literal_eval(t.elts[1]).startswith(("control.", "policy."))
    }
    assert declared - {"rviz"} <= used | loop_args
    assert {"backend", "model_path", "server_url", "episodes", "seed", "out", "record"} <= declared


def test_the_launch_overrides_name_real_parameters(tree):
    from rt2_ros.config import flat_fields

    names = {n for n, _, _ in flat_fields()}
    consts = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    for c in consts:
        if re.fullmatch(r"(policy|control|action|safety)\.\w+", c):
            assert c in names, c


def test_the_episode_runner_options_exist():
    from rt2_ros.cli import build_parser

    p = build_parser("demo")
    args = p.parse_args(["demo", "--attach", "--policies", "scripted", "--episodes", "2", "--out", "x", "--record"])
    assert args.attach and args.record and args.episodes == 2


def test_sim_yaml_sections_match_what_the_nodes_declare():
    from rt2_ros.sim.sim_node import ServoNode, SimNode

    data = yaml.safe_load((ROOT / "config" / "sim.yaml").read_text())
    assert set(data) == {"rt2_node", "rt2_sim", "servo_node"}
    sim = flatten(data["rt2_sim"]["ros__parameters"])
    servo = flatten(data["servo_node"]["ros__parameters"])
    assert set(sim) <= set(SimNode.PARAMS), set(sim) - set(SimNode.PARAMS)
    assert set(servo) <= set(ServoNode.PARAMS), set(servo) - set(ServoNode.PARAMS)
    for k, v in sim.items():  # same types as the declared defaults (ROS refuses a type change)
        assert type(v) is type(SimNode.PARAMS[k]), k
    for k, v in servo.items():
        assert type(v) is type(ServoNode.PARAMS[k]), k


def test_sim_yaml_rt2_section_is_a_valid_rt2_config():
    cfg = load_sim_settings().rt2_config()
    assert cfg.policy.backend == SCRIPTED_EXPERT == "rt2_ros.sim.expert:make_policy"
    # The expert's largest step (m) fits the action bounds and the safety caps at this period.
    from rt2_ros.sim.expert import ExpertParams

    step = ExpertParams().max_step_m
    assert step <= cfg.action.high[0]
    assert step / cfg.control.period_s <= cfg.safety.max_linear_speed_axis_mps
    assert step / cfg.control.period_s <= cfg.safety.max_linear_speed_mps


def test_a_bad_sim_yaml_is_reported(tmp_path):
    bad = tmp_path / "sim.yaml"
    bad.write_text("rt2_node:\n  ros__parameters:\n    control:\n      period_s: -1.0\n")
    with pytest.raises(ConfigError, match="period_s"):
        load_sim_settings(bad).rt2_config()
    (tmp_path / "broken.yaml").write_text("rt2_node: [1, 2")
    with pytest.raises(ConfigError):
        load_sim_settings(tmp_path / "broken.yaml")


def test_demo_script_is_valid_bash_and_bootstraps_first():
    script = ROOT / "scripts" / "demo.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert code.index("scripts/bootstrap.sh") < code.index("make-test-model") < code.index("rt2_ros.cli demo")
    assert "demo:" in (ROOT / "Makefile").read_text() and "scripts/demo.sh" in (ROOT / "Makefile").read_text()


@pytest.mark.parametrize("reasons, clean", [(["terminate", "step_limit"], True), (["terminate", "fault"], False)])
def test_an_episode_that_ends_in_a_fault_makes_the_runner_exit_non_zero(reasons, clean):
    """The launch ends with the episode runner's status (sim.launch.py): a fault the demo did
    not provoke (a dead server, a Servo halt) must not end in exit code 0 (issue 21)."""
    import argparse

    from rt2_ros.sim.demo import _episodes
    from rt2_ros.sim.report import EpisodeRecord

    class Driver:  # the episode runner's driver, answering recorded endings
        def __init__(self):
            self.ends = iter(reasons)

        def run_episode(self, ins, backend, **kw):
            return EpisodeRecord(instruction=ins, seed=0, backend=backend, steps=3, reason=next(self.ends))

    records, ok = _episodes(Driver(), "vla", len(reasons), ["go"], 20, argparse.Namespace(no_progress=True))
    assert [r.reason for r in records] == reasons and ok is clean

"""launch/bringup.launch.py and rviz/rt2.rviz against what the package installs.

``launch`` and ``launch_ros`` do not exist on these machines, so the launch file is
parsed with ``ast`` (never imported): every executable it starts must be installed
by CMakeLists.txt, every package file it points at must exist and be installed,
every parameter it overrides must exist in the schema, and every launch argument
must be declared and used.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
import yaml

from rt2_ros.config import RT2Config, config_to_flat, flat_fields
from rt2_ros.sim import SCRIPTED_EXPERT

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "bringup.launch.py"
REQUIRED_ARGS = {
    "backend",
    "model_path",
    "server_url",
    "camera_topic",
    "servo_namespace",
    "planning_frame",
    "command_frame",
    "ee_frame",
    "rviz",
    "use_sim_time",
    "params_file",
}


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            f = n.func
            if (isinstance(f, ast.Name) and f.id == name) or (isinstance(f, ast.Attribute) and f.attr == name):
                out.append(n)
    return out


def _kw(call: ast.Call, key: str):
    for k in call.keywords:
        if k.arg == key:
            return k.value
    return None


def _module_constant(tree: ast.Module, name: str):
    for n in tree.body:
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in n.targets):
            return n.value
    raise AssertionError(f"{name} not defined at module level in {LAUNCH.name}")


def _cmake() -> str:
    return (ROOT / "CMakeLists.txt").read_text()


def _installed_programs() -> set[str]:
    names = set()
    for block in re.findall(r"install\(\s*PROGRAMS(.*?)DESTINATION\s+lib/\$\{PROJECT_NAME\}", _cmake(), re.S):
        names |= {Path(p).name for p in block.split()}
    return names


def _installed_share_dirs() -> set[str]:
    dirs = set()
    for block in re.findall(r"install\(\s*DIRECTORY(.*?)DESTINATION\s+share/\$\{PROJECT_NAME\}", _cmake(), re.S):
        dirs |= set(block.split())
    return dirs


def test_launch_file_uses_only_launch_and_launch_ros(tree):
    mods = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            mods.add(n.module.split(".")[0])
        elif isinstance(n, ast.Import):
            mods |= {a.name.split(".")[0] for a in n.names}
    assert mods <= {"launch", "launch_ros"}, mods
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


def test_started_executables_are_installed(tree):
    nodes = _calls(tree, "Node")
    ours = [n for n in nodes if isinstance(_kw(n, "package"), ast.Constant) and _kw(n, "package").value == "rt2_ros"]
    assert ours, "the launch file starts no rt2_ros node"
    for n in ours:
        exe = _kw(n, "executable").value
        assert exe in _installed_programs(), f"{exe} is not installed by CMakeLists.txt install(PROGRAMS ...)"
        script = ROOT / "scripts" / exe
        assert script.is_file() and os.access(script, os.X_OK), f"scripts/{exe} missing or not executable"
        assert "rt2_ros.ros.node import main" in script.read_text()
    others = {_kw(n, "package").value for n in nodes} - {"rt2_ros"}
    assert others <= {"rviz2"}, others
    assert "rviz2" in (ROOT / "package.xml").read_text()


def test_package_files_exist_and_are_installed(tree):
    found = []
    for call in _calls(tree, "PathJoinSubstitution"):
        parts = call.args[0].elts
        first = parts[0]
        if isinstance(first, ast.Call) and first.func.id == "FindPackageShare" and first.args[0].value == "rt2_ros":
            rel = [p.value for p in parts[1:]]
            found.append(rel)
            assert (ROOT.joinpath(*rel)).is_file(), f"{'/'.join(rel)} does not exist"
            assert rel[0] in _installed_share_dirs(), f"{rel[0]}/ is not installed to share/rt2_ros"
    assert ["config", "rt2.yaml"] in found and ["rviz", "rt2.rviz"] in found


def test_overridden_parameters_exist_and_arguments_are_declared_and_used(tree):
    param_args = ast.literal_eval(_module_constant(tree, "PARAM_ARGS"))
    schema = {n for n, _, _ in flat_fields()}
    assert set(param_args.values()) <= schema, set(param_args.values()) - schema
    declared = {el.elts[0].value for el in _module_constant(tree, "ARGUMENTS").elts}
    # LaunchConfiguration("x") literals, plus the PARAM_ARGS loop (LaunchConfiguration(arg)).
    literal = [c.args[0] for c in _calls(tree, "LaunchConfiguration")]
    used = {a.value for a in literal if isinstance(a, ast.Constant)} | set(param_args)
    assert REQUIRED_ARGS <= declared, REQUIRED_ARGS - declared
    assert used <= declared, used - declared
    assert declared <= used, declared - used
    # Parameters the launch file sets directly on the node (beyond the overrides).
    for call in _calls(tree, "Node"):
        for d in ast.walk(_kw(call, "parameters")):
            if isinstance(d, ast.Dict):
                keys = {k.value for k in d.keys if isinstance(k, ast.Constant)}
                assert keys <= schema | {"use_sim_time"}, keys
    # The backend names the launch file translates are values the schema accepts; the
    # schema's own names pass through unchanged (no choices list to drift from it).
    choices = next(el.elts[3] for el in _module_constant(tree, "ARGUMENTS").elts if el.elts[0].value == "backend")
    assert ast.literal_eval(choices) is None
    backends = ast.literal_eval(_module_constant(tree, "BACKENDS"))
    assert backends == {"scripted": SCRIPTED_EXPERT}
    for value in ("local", "remote", *backends.values()):
        assert RT2Config.model_validate({"policy": {"backend": value}}).policy.backend == value


def test_rviz_config_shows_the_node_topics():
    rviz = yaml.safe_load((ROOT / "rviz" / "rt2.rviz").read_text())
    displays = {d["Class"]: d for d in rviz["Visualization Manager"]["Displays"]}
    defaults = config_to_flat(RT2Config())
    assert displays["rviz_default_plugins/MarkerArray"]["Topic"]["Value"] == defaults["topics.markers"]
    image = displays["rviz_default_plugins/Image"]["Topic"]
    assert image["Value"] == defaults["topics.annotated_image"]
    assert image["Reliability Policy"] == "Reliable"  # the node publishes it reliable
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == defaults["frames.planning_frame"]

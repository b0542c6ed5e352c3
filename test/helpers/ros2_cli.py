"""The real ROS 2 command line in tests: ``ros2 launch``, ``ros2 topic``, ``ros2 param``, ...

Where they come from: a sourced ROS 2 Jazzy install, or the ros2-tools kit
(``../shared/ros2-tools``) that ``scripts/bootstrap.sh`` installs into the project venv.
Where neither is there, the tests that need them skip, all with :data:`REASON`:

* :func:`requires_ros2_cli` - ``ros2`` on PATH, ``launch_ros`` importable, this package
  found by ``ros2 pkg``;
* :func:`requires_interfaces` - message packages such as ``moveit_msgs`` and
  ``control_msgs`` importable.

:class:`Ros2` runs ``ros2`` commands (and whole launches, :meth:`Ros2.launch`) on a
private ``ROS_DOMAIN_ID`` with ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, each in its
own process group with a timeout; :meth:`Ros2.close` stops every process it started
(SIGINT, then SIGTERM, then SIGKILL to the group) and the ``ros2`` daemon of that domain,
and reports anything that outlived its launch.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

__all__ = ["REASON", "have_ros2_cli", "requires_ros2_cli", "requires_interfaces", "Ros2", "Launch"]

#: The one reason every test that needs the ROS 2 tools gives when it skips.
REASON = (
    "needs ROS 2 launch, the ros2 command line, moveit_msgs and control_msgs: run `source scripts/bootstrap.sh` "
    "with ../shared/ros2-tools beside the clone (installs them into the venv), or source a ROS 2 Jazzy install"
)


@functools.lru_cache(maxsize=None)
def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - missing, or a half-installed package: not usable either way
        return False
    return True


@functools.lru_cache(maxsize=None)
def have_ros2_cli() -> bool:
    """``ros2`` on PATH, ``launch_ros`` importable and the rt2_ros package installed (ament index)."""
    if shutil.which("ros2") is None or not _importable("launch_ros") or not _importable("ros2launch"):
        return False
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix("rt2_ros")
    except PackageNotFoundError:
        return False
    return True


def requires_ros2_cli():
    """Mark: skip (with :data:`REASON`) unless ``ros2 launch`` and the ``ros2`` CLI are usable."""
    return pytest.mark.skipif(not have_ros2_cli(), reason=REASON)


def requires_interfaces(*packages: str):
    """Mark: skip (with :data:`REASON`) unless every message package in ``packages`` imports."""
    return pytest.mark.skipif(
        not all(_importable(p + ".msg") or _importable(p + ".action") for p in packages), reason=REASON
    )


def _pgroup_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_members(pgid: int) -> list[str]:
    """``pid command`` of every live process in the group (for a failure message)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                out.append(f"{d.name} {cmd[:160]}")
        except (OSError, ValueError):
            continue
    return out


class Launch:
    """One ``ros2 launch`` (or any long-running command) in its own process group.

    Output goes to a file (``log_path``) read by :meth:`output`; :meth:`wait_for` polls it.
    """

    def __init__(self, args: list[str], env: dict, log_path: Path, cwd: Path | None = None):
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pgid = self.proc.pid
        self.leftovers: list[str] = []

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, needle: str, timeout_s: float) -> bool:
        """True once ``needle`` is in the output; False at the timeout or when the process ended without it."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if needle in self.output():
                return True
            if self.proc.poll() is not None:
                return needle in self.output()
            time.sleep(0.2)
        return False

    def wait(self, timeout_s: float) -> int | None:
        """The exit status, or None if it is still running after ``timeout_s``."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def orphans(self, grace_s: float = 3.0) -> list[str]:
        """Processes of this launch's group still alive ``grace_s`` after it ended (none = [])."""
        end = time.monotonic() + grace_s
        while time.monotonic() < end and _pgroup_alive(self.pgid):
            time.sleep(0.1)
        return _group_members(self.pgid) if _pgroup_alive(self.pgid) else []

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """Ctrl-C the launch (SIGINT to its group), then SIGTERM, then SIGKILL; returns its status."""
        for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None and not _pgroup_alive(self.pgid):
                break
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                break
            end = time.monotonic() + wait_s
            while time.monotonic() < end and (self.proc.poll() is None or _pgroup_alive(self.pgid)):
                time.sleep(0.1)
        self._log.close()
        return self.proc.poll()


class Ros2:
    """Runs ``ros2`` commands on one private DDS domain; see the module doc.

    Args:
        domain_id: the ``ROS_DOMAIN_ID`` for every command.
        workdir: where launch output files and ROS logs go.
    """

    def __init__(self, domain_id: int, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env.update(
            ROS_DOMAIN_ID=str(domain_id),
            ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
            ROS_LOG_DIR=str(self.workdir / "ros_log"),
            PYTHONUNBUFFERED="1",
            RCUTILS_COLORIZED_OUTPUT="0",
        )
        self.env.pop("ROS_LOCALHOST_ONLY", None)
        self.launches: list[Launch] = []
        self._lock = threading.Lock()
        self._n = 0

    def run(self, *args: str, timeout_s: float = 60.0, check: bool = True) -> subprocess.CompletedProcess:
        """``ros2 ARGS`` to completion (own process group, killed at ``timeout_s``).

        Raises:
            AssertionError: ``check`` and a non-zero status or the timeout (with the output).
        """
        p = subprocess.Popen(
            ["ros2", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = p.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
            raise AssertionError(f"ros2 {' '.join(args)} did not finish in {timeout_s} s:\n{out}") from None
        res = subprocess.CompletedProcess(p.args, p.returncode, out, "")
        if check:
            assert p.returncode == 0, f"ros2 {' '.join(args)} exited with {p.returncode}:\n{out}"
        return res

    def run_retry(self, *args: str, attempts: int = 5, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
        """:meth:`run` until it succeeds: a command that asks the graph (``ros2 param``, ``node``)
        may find nothing while the ``ros2`` daemon it just started is still discovering.

        Raises:
            AssertionError: every attempt failed (with the last output).
        """
        for i in range(attempts):
            res = self.run(*args, timeout_s=timeout_s, check=False)
            if res.returncode == 0:
                return res
            time.sleep(1.0)
        raise AssertionError(f"ros2 {' '.join(args)} failed {attempts} times; last output:\n{res.stdout}")

    def start(self, *args: str, name: str = "launch") -> Launch:
        """Start ``ros2 ARGS`` (a launch, ``ros2 run``, ``ros2 topic echo``) in the background."""
        with self._lock:
            self._n += 1
            log = self.workdir / f"{self._n:02d}_{name}.log"
        launch = Launch(["ros2", *args], self.env, log, cwd=self.workdir)
        self.launches.append(launch)
        return launch

    def launch(self, *args: str, name: str = "launch") -> Launch:
        """``ros2 launch ARGS`` in the background."""
        return self.start("launch", *args, name=name)

    def close(self) -> list[str]:
        """Stop every process started here and the daemon; returns what had to be killed late."""
        leftovers = []
        for launch in self.launches:
            launch.stop()
            if _pgroup_alive(launch.pgid):
                leftovers += _group_members(launch.pgid)
                os.killpg(launch.pgid, signal.SIGKILL)
        try:
            self.run("daemon", "stop", timeout_s=30.0, check=False)
        except AssertionError:
            pass
        return leftovers

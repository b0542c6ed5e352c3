#!/usr/bin/env bash
# Create (or reuse) everything the project needs on a fresh machine:
#   1. a venv with the pinned ROS 2 Jazzy wheels and the Python dependencies,
#   2. ROS 2 launch, the ros2 CLI, moveit_msgs and control_msgs from ../shared/ros2-tools
#      when that kit is there (first build 11-32 min on 2 cores, then cached),
#   3. a colcon build of the package (messages + Python package, symlink install),
# A second run skips any step whose inputs did not change, so it takes seconds.
# Usage: source scripts/bootstrap.sh   (leaves the environment activated)
#    or: bash scripts/bootstrap.sh     (just builds)
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The venv lives outside the source tree: CMake refuses include paths (numpy's) that
# lie inside the package being built. Shared by clones; the stamp below keeps it right.
VENV="${RT2_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rt2_ros/venv}"
PY="${PYTHON:-python3}"


if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
fi
touch "$VENV/COLCON_IGNORE"   # colcon must not look for packages inside the venv

# The stamp covers the requirement files and this checkout's path (the project is
# installed editable, so another clone sharing the venv re-points it).
deps_hash="$( (echo "$ROOT"; cat "$ROOT/requirements/ros-jazzy.txt" "$ROOT/requirements/python.txt" "$ROOT/requirements/docs.txt" "$ROOT/setup.py") | sha256sum | cut -d' ' -f1)"
# RT2_SKIP_PIP=1: use the venv as it is (a second worktree sharing the venv: its own
# colcon install below puts its sources first on PYTHONPATH, ahead of the editable install).
if [ -z "${RT2_SKIP_PIP:-}" ] && [ "$(cat "$VENV/.rt2-deps" 2>/dev/null)" != "$deps_hash" ]; then
  echo "[bootstrap] installing Python dependencies (ROS 2 Jazzy wheels, torch CPU, ...)"
  # One resolver run for both files, so ROS's pins (colcon: setuptools<80) hold for all.
  (cd "$ROOT" && "$VENV/bin/pip" install -q --disable-pip-version-check \
      -r requirements/ros-jazzy.txt -r requirements/python.txt -r requirements/docs.txt 2>&1 | grep -v "is ignored: it is neither") || true
  "$VENV/bin/pip" check >/dev/null || { "$VENV/bin/pip" check; exit 1; }
  echo "$deps_hash" > "$VENV/.rt2-deps"
fi

# shellcheck disable=SC1091
source "$VENV/bin/activate"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"

# ROS 2 Jazzy's launch system, the ros2 command line, moveit_msgs and control_msgs are not
# on PyPI: the ros2-tools kit (../shared/ros2-tools beside the clone, as in CI) installs
# them into the venv and builds the message packages beside it ($VENV-ros2-tools). The
# first build takes 11-32 min on 2 cores (README); later runs find it stamped (0.4 s). Done
# before our colcon build, so that install/setup.bash chains the kit's packages.
# RT2_NO_ROS2_TOOLS=1 skips it (the tests that need it then skip, saying why);
# RT2_SKIP_PIP=1 leaves the venv alone but still sources a kit build that is already there.
KIT="${RT2_ROS2_TOOLS:-$(dirname "$ROOT")/shared/ros2-tools}"
KIT_PREFIX="$VENV-ros2-tools"
if [ -z "${RT2_NO_ROS2_TOOLS:-}" ] && [ -f "$KIT/install.sh" ]; then
  if [ -z "${RT2_SKIP_PIP:-}" ]; then
    if [ ! -f "$KIT_PREFIX/install/.ros2-tools-build" ]; then
      echo "[bootstrap] ros2-tools: installing ROS 2 launch, the ros2 CLI, moveit_msgs, control_msgs" \
        "(first build 11-32 min on 2 cores; cached in $KIT_PREFIX)"
    fi
    kit_line="$(bash "$KIT/install.sh" "$VENV" "$KIT_PREFIX")"
    # shellcheck disable=SC1090
    eval "$kit_line"
  elif [ -f "$KIT_PREFIX/setup.bash" ] && [ -f "$KIT_PREFIX/install/.ros2-tools-build" ]; then
    # shellcheck disable=SC1091
    source "$KIT_PREFIX/setup.bash"
  fi
fi

# With --symlink-install, edits to installed files need no rebuild, but a new file
# (module, launch file, script) does: the stamp covers the build files and the list of
# installed file names.
# COLCON_PREFIX_PATH: install/setup.bash chains the workspaces sourced at build time (the kit).
build_hash="$( (echo "${COLCON_PREFIX_PATH:-}"; cat "$ROOT/CMakeLists.txt" "$ROOT/package.xml" "$ROOT"/msg/*.msg; \
  cd "$ROOT" && find rt2_ros launch config rviz scripts -type f -not -name '*.pyc' | sort) | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$ROOT/install/.rt2-build" 2>/dev/null)" != "$build_hash" ] || [ ! -f "$ROOT/install/setup.bash" ]; then
  echo "[bootstrap] colcon build (messages + Python package)"
  (cd "$ROOT" && colcon build --symlink-install --base-paths . --packages-select rt2_ros \
      --event-handlers console_cohesion- summary+ --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" >"$ROOT/log-colcon.txt" 2>&1) \
    || { cat "$ROOT/log-colcon.txt"; exit 1; }
  echo "$build_hash" > "$ROOT/install/.rt2-build"
fi
# shellcheck disable=SC1091
source "$ROOT/install/setup.bash"

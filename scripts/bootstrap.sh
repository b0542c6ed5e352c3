#!/usr/bin/env bash
# Create (or reuse) everything the project needs on a fresh machine:
#   1. a venv with the pinned ROS 2 Jazzy wheels and the Python dependencies,
#   2. a colcon build of the package (messages + Python package, symlink install),
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
deps_hash="$( (echo "$ROOT"; cat "$ROOT/requirements/ros-jazzy.txt" "$ROOT/requirements/python.txt" "$ROOT/setup.py") | sha256sum | cut -d' ' -f1)"
# RT2_SKIP_PIP=1: use the venv as it is (a second worktree sharing the venv: its own
# colcon install below puts its sources first on PYTHONPATH, ahead of the editable install).
if [ -z "${RT2_SKIP_PIP:-}" ] && [ "$(cat "$VENV/.rt2-deps" 2>/dev/null)" != "$deps_hash" ]; then
  echo "[bootstrap] installing Python dependencies (ROS 2 Jazzy wheels, torch CPU, ...)"
  # One resolver run for both files, so ROS's pins (colcon: setuptools<80) hold for all.
  (cd "$ROOT" && "$VENV/bin/pip" install -q --disable-pip-version-check \
      -r requirements/ros-jazzy.txt -r requirements/python.txt 2>&1 | grep -v "is ignored: it is neither") || true
  "$VENV/bin/pip" check >/dev/null || { "$VENV/bin/pip" check; exit 1; }
  echo "$deps_hash" > "$VENV/.rt2-deps"
fi

# shellcheck disable=SC1091
source "$VENV/bin/activate"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"

# With --symlink-install, edits to installed files need no rebuild, but a new file
# (module, launch file, script) does: the stamp covers the build files and the list of
# installed file names.
build_hash="$( (cat "$ROOT/CMakeLists.txt" "$ROOT/package.xml" "$ROOT"/msg/*.msg; \
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

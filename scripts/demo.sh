#!/usr/bin/env bash
# README command 1 (`make demo`): from a fresh clone to a closed loop with pictures.
#   1. venv with the pinned ROS 2 Jazzy wheels + Python deps, colcon build (scripts/bootstrap.sh);
#   2. the tiny test VLA (random weights, built offline) in out/models/tiny, if missing;
#   3. rt2-ros demo: the simulated Panda + MoveIt Servo stand-in, the rt2 node, N episodes
#      with the scripted expert and then with the tiny VLA, over real ROS 2 DDS; prints the
#      per-episode table and writes out/demo/{report.md,contact_sheet.png,trajectories.png}.
# Arguments go to `rt2-ros demo`, e.g. `bash scripts/demo.sh --episodes 10 --record`
# (`rt2-ros demo --help` lists them).
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
MODEL="${RT2_DEMO_MODEL:-out/models/tiny}"
if [ ! -f "$MODEL/rt2_ros_test_model.json" ]; then
  echo "[demo] building the tiny test model (random weights) in $MODEL"
  python -m rt2_ros.cli make-test-model "$MODEL" --size tiny >/dev/null
fi
exec python -m rt2_ros.cli demo --model "$MODEL" "$@"

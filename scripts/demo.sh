#!/usr/bin/env bash
# README command 1 (`make demo`): from a fresh clone to a closed loop with pictures.
#   1. venv with the pinned ROS 2 Jazzy wheels + Python deps, colcon build (scripts/bootstrap.sh);
#   2. rt2-ros demo: the simulated Panda + MoveIt Servo stand-in, the rt2 node, N episodes
#      with the scripted expert and then with the learned policy (models/rt1_sim, RT-1, shipped;
#      else models/rt2_sim_mini when `make train-vlm` installed one, else the tiny random-weight
#      test model, built offline in out/models/tiny),
#      over real ROS 2 DDS; prints the per-episode table with the success rates and writes
#      out/demo/{report.md,contact_sheet.png,trajectories.png}.
# RT2_DEMO_MODEL=DIR runs another model as the vla policy (an rt2-ros train output, or a
# random-weight test model from `rt2-ros make-test-model DIR`).
# Arguments go to `rt2-ros demo`, e.g. `bash scripts/demo.sh --episodes 10 --record`
# (`rt2-ros demo --help` lists them).
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
MODEL="${RT2_DEMO_MODEL:-models/rt1_sim}"   # the shipped RT-1 (make train reproduces it)
if [ ! -f "$MODEL/config.json" ] && [ -z "${RT2_DEMO_MODEL:-}" ]; then MODEL=models/rt2_sim_mini; fi
if [ ! -f "$MODEL/config.json" ] && [ -z "${RT2_DEMO_MODEL:-}" ]; then
  MODEL=out/models/tiny  # no trained model installed (make train): the random-weight test model
  if [ ! -f "$MODEL/rt2_ros_test_model.json" ]; then
    echo "[demo] building the tiny test model (random weights) in $MODEL"
    python -m rt2_ros.cli make-test-model "$MODEL" --size tiny >/dev/null
  fi
fi
EXTRA=()
# The shipped RT-1 was trained on reach episodes only (docs/rt1.md): its episodes are reach tasks.
if [ "$MODEL" = models/rt1_sim ]; then
  EXTRA=(--vla-instructions "move to the red block" "move to the green block" "move to the blue block")
fi
exec python -m rt2_ros.cli demo --model "$MODEL" "${EXTRA[@]}" "$@"

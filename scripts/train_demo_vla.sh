#!/usr/bin/env bash
# `make train`: RT-2's recipe end to end on this machine's CPUs, from nothing to a VLA directory.
#   1. scripted-expert episodes recorded in the simulator (MCAP), layout seeds 100000.. (the
#      evaluation and the demo use seeds below 100000, so every evaluated layout is held out);
#   2. rt2-ros dataset build -> LeRobotDataset v3; rt2-ros dataset vqa -> the co-fine-tuning
#      VQA set (from the robot scenes and from scenes with a yellow block, a colour the robot
#      data never shows);
#   3. rt2-ros make-test-model --size mini: a random-init PaliGemma-architecture base;
#   4. rt2-ros train (HF Trainer) with the VQA mix, codec of config/train_sim_vla.yaml (33 bins);
#   5. with RT2_TRAIN_INSTALL=1: the exported model installed into models/rt2_sim_mini (the demo's
#      default VLA when present) with its model card. Without it: run it with
#      RT2_DEMO_MODEL=out/train/model make demo, or benchmarks/eval_vla.py --model out/train/model.
# Status (README, "Training a VLA in the simulator"): on 2 CPU cores the default run does not yet
# give a policy that localises the named block; no trained model is shipped.
# Environment: RT2_TRAIN_OUT (work directory, default out/train), RT2_TRAIN_STEPS (optimizer
# steps, default 5000), RT2_TRAIN_EPISODES ("reach push pick" robot episodes, default "240 120 120"),
# RT2_TRAIN_VQA_EPISODES (the yellow-block scenes, default "40 20 20"), RT2_TRAIN_COTRAIN (VQA fraction of each batch, default 0.5 as RT-2;
# 0 = no co-fine-tuning), RT2_TRAIN_INSTALL (0 = do not touch models/), RT2_TRAIN_WORKERS (recording
# processes, default: the CPU count).
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT="${RT2_TRAIN_OUT:-out/train}"
STEPS="${RT2_TRAIN_STEPS:-5000}"
read -r N_REACH N_PUSH N_PICK <<< "${RT2_TRAIN_EPISODES:-240 120 120}"
read -r V_REACH V_PUSH V_PICK <<< "${RT2_TRAIN_VQA_EPISODES:-40 20 20}"
COTRAIN="${RT2_TRAIN_COTRAIN:-0.5}"
WORKERS="${RT2_TRAIN_WORKERS:-$(nproc)}"
MODEL="$OUT/model"
mkdir -p "$OUT"
t0=$(date +%s)
say() { echo "[train $(( $(date +%s) - t0 )) s] $*"; }

if [ ! -f "$OUT/mcap/episodes.json" ]; then
  say "recording scripted-expert episodes (robot data)"
  python -m rt2_ros.sim.record_inprocess "$OUT/mcap" --reach "$N_REACH" --push "$N_PUSH" --pick "$N_PICK" \
    --first-seed 100000 --task-seed 1 --workers "$WORKERS"
fi
if [ ! -f "$OUT/mcap_vqa/episodes.json" ]; then
  say "recording scenes with a yellow block (VQA only, never robot data)"
  python -m rt2_ros.sim.record_inprocess "$OUT/mcap_vqa" --reach "$V_REACH" --push "$V_PUSH" --pick "$V_PICK" \
    --first-seed 200000 --task-seed 2 --colors yellow green blue --workers "$WORKERS"
fi
if [ ! -f "$OUT/data/meta/info.json" ]; then
  say "building the dataset"
  python -m rt2_ros.cli dataset build "$OUT/mcap" --out "$OUT/data" --robot-type panda --overwrite --no-progress
fi
if [ ! -f "$OUT/vqa/meta.json" ]; then
  say "building the VQA set"
  python -m rt2_ros.cli dataset vqa "$OUT/mcap" "$OUT/mcap_vqa" --out "$OUT/vqa" --every 2 --overwrite
fi
if [ ! -f "$OUT/base/config.json" ]; then
  say "random-init base model (PaliGemma architecture, size mini)"
  python -m rt2_ros.cli make-test-model "$OUT/base" --size mini --seed 0 >/dev/null
fi
COT=()
if [ "$COTRAIN" != "0" ]; then COT=(--cotrain-dataset "$OUT/vqa" --cotrain-ratio "$COTRAIN"); fi
say "training $STEPS steps (co-fine-tuning fraction $COTRAIN)"
python -m rt2_ros.cli train --dataset "$OUT/data" --base "$OUT/base" --out "$MODEL" "${COT[@]}" \
  --config config/train_sim_vla.yaml \
  --max-steps "$STEPS" --batch-size 16 --lr 1e-3 --warmup-ratio 0.03 --save-steps 500 --save-total-limit 10 \
  --logging-steps 50 --seed 0 --report-to none --no-progress
say "trained: $MODEL"
if [ "${RT2_TRAIN_INSTALL:-0}" = "1" ]; then
  python -m rt2_ros.training.install_model "$MODEL" models/rt2_sim_mini --command "make train" \
    --data-seeds "robot 100000-$((100000 + N_REACH + N_PUSH + N_PICK - 1)), VQA scenes 200000-$((200000 + V_REACH + V_PUSH + V_PICK - 1))" \
    --train-seconds "$(( $(date +%s) - t0 ))"
  say "installed models/rt2_sim_mini"
else
  say "run it: RT2_DEMO_MODEL=$MODEL make demo   (or python benchmarks/eval_vla.py --model $MODEL)"
fi

#!/usr/bin/env bash
# `make train`: the demo's learned policy, RT-1 (rt2_ros/policies/rt1, docs/rt1.md), from
# nothing on this machine's CPUs: record -> train -> evaluate -> install.
#   1. scripted-expert episodes in the simulator, in process (python -m rt2_ros.sim.record_frames:
#      the frame the policy saw + the expert's RT-2 tokens, 33 bins of config/train_sim_vla.yaml):
#      400 reach episodes on the expert's own path (layout seeds 100000-100399) and 300 with DART
#      noise (--noise-bins 3: the executed x/y/z tokens get Gaussian noise, the recorded tokens are
#      the expert's corrections; seeds 100400-100699). Every evaluated layout (seeds < 100000) is
#      held out. Without the DART episodes the model learns to follow the arm's own motion instead
#      of finding the block and reaches 0 of 10 held-out layouts (docs/rt1.md, "Measured");
#      then 300 more DART episodes with the camera timing of the DDS loop (--camera-jitter: phase
#      and 30-80 ms delay per episode; seeds 100700-100999);
#   2. rt2-ros train --arch rt1: stage 1, 3000 steps from scratch (lr 1e-3) and stage 2, from stage
#      1's weights, 5000 steps at lr 5e-4 (at most 25 min), on the first 700 episodes; stage 3,
#      from stage 2, 3000 steps at lr 3e-4 (at most 16 min) on all 1000: the shipped model's recipe
#      (history 2 frames, 96 px, a stride-2 first block, batch 32 windows). It saw reach episodes
#      only (RT2_RT1_PUSHPICK adds push/pick episodes to every stage);
#   3. benchmarks/eval_vla.py --mode inprocess on held-out layouts (seeds 0..);
#   4. with RT2_TRAIN_INSTALL=1 (default): installed into models/rt1_sim with its model card.
# Prints where the time went. The VLM recipe (PaliGemma architecture) is scripts/train_demo_vla.sh.
# Environment: RT2_TRAIN_OUT (default out/train_rt1), RT2_TRAIN_WORKERS (recording processes,
# default: the CPU count), RT2_RT1_PUSHPICK ("push pick" episodes, default "0 0"),
# RT2_RT1_STEPS ("stage1 stage2 stage3" optimizer steps, default "3000 5000 3000"),
# RT2_RT1_MINUTES ("stage1 stage2 stage3" wall-clock caps, default "30 25 16"), RT2_RT1_EVAL (held-out
# layouts per family, default 20), RT2_TRAIN_INSTALL (0 = do not touch models/).
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT="${RT2_TRAIN_OUT:-out/train_rt1}"
WORKERS="${RT2_TRAIN_WORKERS:-$(nproc)}"
read -r STEPS1 STEPS2 STEPS3 <<< "${RT2_RT1_STEPS:-3000 5000 3000}"
read -r MIN1 MIN2 MIN3 <<< "${RT2_RT1_MINUTES:-30 25 16}"
read -r N_PUSH N_PICK <<< "${RT2_RT1_PUSHPICK:-0 0}"
N_EVAL="${RT2_RT1_EVAL:-20}"
mkdir -p "$OUT"
t0=$(date +%s)
declare -A took
mark=$t0
say() { echo "[train_rt1 $(( $(date +%s) - t0 )) s] $*"; }
lap() { local now; now=$(date +%s); took[$1]=$(( now - mark )); mark=$now; }
COMMON=(--config config/train_sim_vla.yaml --batch-size 32 --save-steps 100 --logging-steps 50 --eval-steps 500
        --report-to none --no-progress --shift 4 --label-sigma 1.0
        --rt1-config '{"history": 2, "blocks": [[32, 2, 1], [64, 2, 1], [64, 1, 1]]}')

if [ ! -f "$OUT/data/reach_episodes.json" ]; then
  say "recording 400 reach episodes (layout seeds 100000-100399)"
  python -m rt2_ros.sim.record_frames "$OUT/data" --reach 400 --first-seed 100000 --task-seed 1 \
    --workers "$WORKERS" --prefix reach
fi
if [ ! -f "$OUT/data/dart_episodes.json" ]; then
  say "recording 300 reach episodes with DART noise (layout seeds 100400-100699)"
  python -m rt2_ros.sim.record_frames "$OUT/data" --reach 300 --first-seed 100400 --task-seed 4 \
    --workers "$WORKERS" --prefix dart --noise-bins 3
fi
if [ ! -f "$OUT/data/dartjit_episodes.json" ]; then
  say "recording 300 reach episodes with DART noise and the DDS camera timing (layout seeds 100700-100999)"
  python -m rt2_ros.sim.record_frames "$OUT/data" --reach 300 --first-seed 100700 --task-seed 5 \
    --workers "$WORKERS" --prefix dartjit --noise-bins 3 --camera-jitter
fi
if [ $((N_PUSH + N_PICK)) -gt 0 ] && [ ! -f "$OUT/data/pushpick_episodes.json" ]; then
  say "recording $N_PUSH push + $N_PICK pick episodes (layout seeds from 101000)"
  python -m rt2_ros.sim.record_frames "$OUT/data" --push "$N_PUSH" --pick "$N_PICK" --first-seed 101000 \
    --task-seed 2 --workers "$WORKERS" --prefix pushpick
fi
lap record
FIRST=("$OUT"/data/reach*.npz "$OUT"/data/dart[0-9]*.npz)
if [ $((N_PUSH + N_PICK)) -gt 0 ]; then FIRST+=("$OUT"/data/pushpick*.npz); fi
# --resume: a run that was stopped continues exactly where its checkpoint left off
say "stage 1: rt2-ros train --arch rt1 from scratch ($STEPS1 steps, at most $MIN1 min)"
python -m rt2_ros.cli train --arch rt1 --dataset "${FIRST[@]}" --out "$OUT/stage1" "${COMMON[@]}" \
  --max-steps "$STEPS1" --max-minutes "$MIN1" --lr 1e-3 --warmup-ratio 0.02 --seed 3 --resume
lap stage1
say "stage 2: from stage 1 ($STEPS2 steps, at most $MIN2 min)"
python -m rt2_ros.cli train --arch rt1 --dataset "${FIRST[@]}" --out "$OUT/stage2" "${COMMON[@]}" \
  --max-steps "$STEPS2" --max-minutes "$MIN2" --lr 5e-4 --warmup-ratio 0.01 --seed 5 --init-from "$OUT/stage1/model" \
  --resume
lap stage2
say "stage 3: from stage 2, on every recorded episode ($STEPS3 steps, at most $MIN3 min)"
python -m rt2_ros.cli train --arch rt1 --dataset "$OUT/data" --out "$OUT/stage3" "${COMMON[@]}" \
  --max-steps "$STEPS3" --max-minutes "$MIN3" --lr 3e-4 --warmup-ratio 0.01 --seed 7 --init-from "$OUT/stage2/model" \
  --resume
lap stage3
MODEL="$OUT/stage3/model"
say "evaluating on $N_EVAL held-out layouts per family (in process, simulated time)"
python benchmarks/eval_vla.py --model "$MODEL" --mode inprocess --episodes "$N_EVAL" --out "$OUT/eval" --expert
lap evaluate
if [ "${RT2_TRAIN_INSTALL:-1}" = "1" ]; then
  python -m rt2_ros.training.install_model "$MODEL" models/rt1_sim --command "make train" --script scripts/train_rt1.sh \
    --data-seeds "reach 100000-100399 (task seed 1), DART reach 100400-100699 (task seed 4, --noise-bins 3), DART + camera jitter reach 100700-100999 (task seed 5)$([ $((N_PUSH + N_PICK)) -gt 0 ] && echo ", push/pick from 101000 (task seed 2)")" \
    --train-seconds "$(( $(date +%s) - t0 ))" --eval-json "$OUT/eval/eval.json"
  say "installed models/rt1_sim"
fi
lap install
say "where the time went (s): record ${took[record]}, stage 1 ${took[stage1]}, stage 2 ${took[stage2]}, stage 3 ${took[stage3]}, " \
    "evaluate ${took[evaluate]}, install ${took[install]}; total $(( $(date +%s) - t0 ))"

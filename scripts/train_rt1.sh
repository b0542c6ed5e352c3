#!/usr/bin/env bash
# `make train`: the demo's learned policy, RT-1 (rt2_ros/policies/rt1, docs/rt1.md), from
# nothing on this machine's CPUs: record -> train -> evaluate -> install.
#   1. scripted-expert episodes in the simulator, in process (python -m rt2_ros.sim.record_frames:
#      the frame the policy saw + the expert's RT-2 tokens, 33 bins of config/train_sim_vla.yaml);
#      layout seeds 100000.. (every evaluated layout, seeds < 100000, is held out);
#   2. rt2-ros train --arch rt1, stage 1 on the reach episodes (30 min), stage 2 from stage 1's
#      weights with a fresh optimizer and a lower peak learning rate (24 min) on every recorded
#      episode: the shipped model's recipe. It saw reach episodes only: on the shared 2-core VM
#      the push/pick recording did not finish in time (RT2_RT1_PUSHPICK adds them);
#   3. benchmarks/eval_vla.py --mode inprocess on held-out layouts (seeds 0..);
#   4. with RT2_TRAIN_INSTALL=1 (default): installed into models/rt1_sim with its model card.
# Prints where the time went. The VLM recipe (PaliGemma architecture) is scripts/train_demo_vla.sh.
# Environment: RT2_TRAIN_OUT (default out/train_rt1), RT2_TRAIN_WORKERS (recording processes,
# default: the CPU count), RT2_RT1_PUSHPICK ("push pick" episodes for stage 2, default "0 0"),
# RT2_RT1_STEPS ("stage1 stage2" optimizer steps, default "1000 1000"),
# RT2_RT1_MINUTES ("stage1 stage2" wall-clock caps, default "30 24"), RT2_RT1_EVAL (held-out
# layouts per family, default 20), RT2_TRAIN_INSTALL (0 = do not touch models/).
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT="${RT2_TRAIN_OUT:-out/train_rt1}"
WORKERS="${RT2_TRAIN_WORKERS:-$(nproc)}"
read -r STEPS1 STEPS2 <<< "${RT2_RT1_STEPS:-1000 1000}"
read -r MIN1 MIN2 <<< "${RT2_RT1_MINUTES:-30 24}"
read -r N_PUSH N_PICK <<< "${RT2_RT1_PUSHPICK:-0 0}"
N_EVAL="${RT2_RT1_EVAL:-20}"
mkdir -p "$OUT"
t0=$(date +%s)
declare -A took
mark=$t0
say() { echo "[train_rt1 $(( $(date +%s) - t0 )) s] $*"; }
lap() { local now; now=$(date +%s); took[$1]=$(( now - mark )); mark=$now; }
VOCAB=(push pick up left right forward backward)
COMMON=(--config config/train_sim_vla.yaml --batch-size 8 --lr 1e-3 --warmup-ratio 0.03 --save-steps 100
        --logging-steps 25 --eval-steps 200 --seed 0 --report-to none --no-progress)

if [ ! -f "$OUT/data/reach_episodes.json" ]; then
  say "recording 400 reach episodes (layout seeds 100000-100399)"
  python -m rt2_ros.sim.record_frames "$OUT/data" --reach 400 --first-seed 100000 --task-seed 1 \
    --workers "$WORKERS" --prefix reach
fi
if [ $((N_PUSH + N_PICK)) -gt 0 ] && [ ! -f "$OUT/data/pushpick_episodes.json" ]; then
  say "recording $N_PUSH push + $N_PICK pick episodes (layout seeds from 101000)"
  python -m rt2_ros.sim.record_frames "$OUT/data" --push "$N_PUSH" --pick "$N_PICK" --first-seed 101000 \
    --task-seed 2 --workers "$WORKERS" --prefix pushpick
fi
lap record
# --resume: a run that was stopped continues exactly where its checkpoint left off
say "stage 1: rt2-ros train --arch rt1 on the reach episodes ($STEPS1 steps, at most $MIN1 min)"
python -m rt2_ros.cli train --arch rt1 --dataset "$OUT"/data/reach*.npz --out "$OUT/stage1" "${COMMON[@]}" \
  --max-steps "$STEPS1" --max-minutes "$MIN1" --vocab "${VOCAB[@]}" --resume
lap stage1
say "stage 2: from stage 1, on every recorded episode ($STEPS2 steps, at most $MIN2 min)"
python -m rt2_ros.cli train --arch rt1 --dataset "$OUT/data" --out "$OUT/stage2" "${COMMON[@]}" \
  --max-steps "$STEPS2" --max-minutes "$MIN2" --lr 5e-4 --seed 1 --save-steps 50 --init-from "$OUT/stage1/model" --resume
lap stage2
MODEL="$OUT/stage2/model"
say "evaluating on $N_EVAL held-out layouts per family (in process, simulated time)"
python benchmarks/eval_vla.py --model "$MODEL" --mode inprocess --episodes "$N_EVAL" --out "$OUT/eval" --expert
lap evaluate
if [ "${RT2_TRAIN_INSTALL:-1}" = "1" ]; then
  python -m rt2_ros.training.install_model "$MODEL" models/rt1_sim --command "make train" --script scripts/train_rt1.sh \
    --data-seeds "reach 100000-100399 (task seed 1)$([ $((N_PUSH + N_PICK)) -gt 0 ] && echo ", push/pick from 101000 (task seed 2)")" \
    --train-seconds "$(( $(date +%s) - t0 ))" --eval-json "$OUT/eval/eval.json"
  say "installed models/rt1_sim"
fi
lap install
say "where the time went (s): record ${took[record]}, stage 1 ${took[stage1]}, stage 2 ${took[stage2]}, " \
    "evaluate ${took[evaluate]}, install ${took[install]}; total $(( $(date +%s) - t0 ))"

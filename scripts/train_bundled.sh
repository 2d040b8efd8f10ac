#!/usr/bin/env bash
# Make the bundled models again, from scratch, on a CPU: simulate the training and the
# held-out acquisitions (seeds never trained on), train, export to ONNX with a parity
# check, and copy model.onnx, model.pt, model_card.json and the confusion matrix into
# livecell/engine/bundled/. Usage: scripts/train_bundled.sh [WORKDIR] (default: ./bundled-work)
set -euo pipefail
work="${1:-bundled-work}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$work"
cd "$work"

simulate() {  # simulate NAME KIND SEED [options...]
  local name=$1 kind=$2 seed=$3
  shift 3
  [ -f "$name/ground_truth/tracks.csv" ] || livecell simulate "$name" --kind "$kind" --seed "$seed" "$@" > /dev/null
}

# holotomo patch states: 6 training acquisitions, 2 held out
for seed in 21 22 23 24 25 26 31 32; do
  simulate "holo$seed" holotomo "$seed" --mip --size 1024 --positions 3 --frames 24
done
livecell train holo21 holo22 holo23 holo24 holo25 holo26 --test holo31 holo32 \
  --out holotomo_states --arch compact --epochs 16 --patience 4 --onnx
livecell export holotomo_states

# nanowell sequence models: 5 training acquisitions, 2 held out, 72 frames (6 h at 5 min)
for seed in 41 42 43 44 45 51 52; do
  simulate "nano$seed" nanowell "$seed" --positions 1 --frames 72
done
for task in cell_type death; do
  OMP_NUM_THREADS=1 livecell train nano41 nano42 nano43 nano44 nano45 --test nano51 nano52 \
    --task "$task" --out "nanowell_$task" --crop-px 48 --window 8 --stride 8 \
    --epochs "$([ "$task" = death ] && echo 10 || echo 8)" \
    --patience "$([ "$task" = death ] && echo 4 || echo 3)"
done

bundled="$repo/livecell/engine/bundled"
for model in holotomo_states nanowell_cell_type nanowell_death; do
  mkdir -p "$bundled/$model"
  cp "$model/model.onnx" "$model/model.pt" "$model/model_card.json" "$model/confusion_test.png" \
    "$bundled/$model/"
done

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
  --out holotomo_states --arch compact --epochs 16 --patience 4 --onnx --quiet
livecell export holotomo_states

bundled="$repo/livecell/engine/bundled"
for model in holotomo_states; do
  mkdir -p "$bundled/$model"
  cp "$model/model.onnx" "$model/model.pt" "$model/model_card.json" "$model/confusion_test.png" \
    "$bundled/$model/"
done

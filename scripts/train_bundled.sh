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

# nanowell death, second step: the per-frame encoder of nanowell_death above is kept
# (frozen) and its LSTM retrained, bidirectional, on the windows the daemon feeds: 24
# frames ending at every frame of every ground-truth track, with the motion on the chip
# (--chip-motion: the simulator's stage.csv takes the stage drift out; log speed).
# Training: seeds 101-108 and 151-160, 3 positions each; validation (the choice of epoch,
# by the daemon's DeathWatch at the config defaults, its arrest rule on the chip steps):
# seeds 109-110 (1 position) and 161-164 (3); measured only: seeds 111-112.
# Each acquisition's encoder features are cached once (death_features/, about 12 MB),
# then its images are dropped (3 positions x 72 frames: about 3.6 GB of TIFFs and masks).
# About 1 minute per acquisition to simulate and cache, then 25 minutes of training
# on one core (OMP_NUM_THREADS=1; measured on a shared 2-core VM with other jobs running).
cached() {  # cached NAME SEED POSITIONS
  local name=$1 seed=$2 positions=$3
  [ -f "death_features/$name.npz" ] && return
  simulate "$name" nanowell "$seed" --positions "$positions" --frames 72
  OMP_NUM_THREADS=1 python "$repo/scripts/train_death_head.py" "$name" --val "$name" \
    --base nanowell_death --cache death_features --out unused --features-only > /dev/null
  rm -rf "$name/frames" "$name"/ground_truth/Pos*
}
train=()
for seed in 101 102 103 104 105 106 107 108 151 152 153 154 155 156 157 158 159 160; do
  cached "death$seed" "$seed" 3
  train+=("death$seed")
done
cached nano109 109 1
cached nano110 110 1
for seed in 161 162 163 164; do
  cached "val$seed" "$seed" 3
done
for seed in 111 112; do
  simulate "nano$seed" nanowell "$seed" --positions 1 --frames 72
done
OMP_NUM_THREADS=1 python "$repo/scripts/train_death_head.py" "${train[@]}" \
  --val nano109 nano110 val161 val162 val163 val164 --test nano111 nano112 \
  --base nanowell_death --cache death_features --out nanowell_death_lstm \
  --window 24 --epochs 8 --dropout 0.2 --frame-weight 2 --chip-motion
# the daemon's view of it (DeathWatch on every window of the held-out tracks)
OMP_NUM_THREADS=1 python "$repo/scripts/death_probe.py" nano111 nano112 --model nanowell_death_lstm

bundled="$repo/livecell/engine/bundled"
for model in holotomo_states nanowell_cell_type nanowell_death_lstm; do
  dest="${model%_lstm}"
  mkdir -p "$bundled/$dest"
  cp "$model/model.onnx" "$model/model.pt" "$model/model_card.json" "$model/confusion_test.png" \
    "$bundled/$dest/"
done

# nanowell segmentation U-Net: 6 training acquisitions (seeds 61-66), 2 held out (71, 72),
# 24 frames each; trains on every 4th frame's wells, about 11 minutes on one CPU thread
for seed in 61 62 63 64 65 66 71 72; do
  simulate "seg$seed" nanowell "$seed" --positions 1 --frames 24
done
OMP_NUM_THREADS=1 livecell train seg61 seg62 seg63 seg64 seg65 seg66 --test seg71 seg72 \
  --task segmentation --out nanowell_segmentation --steps 3000 --batch-size 8 \
  --window-px 96 --frame-stride 4
mkdir -p "$bundled/nanowell_segmentation"
cp nanowell_segmentation/model.onnx nanowell_segmentation/model.pt \
  nanowell_segmentation/model_card.json "$bundled/nanowell_segmentation/"
# nanowell contact net: every pair of neighbouring cells the bundled U-Net finds in every
# frame of seeds 131-140 and 165-184 (72 frames, 1 position; 181-184, the last 15 %,
# choose the epoch), measured on held-out seeds 144, 148 and 91; about 2 minutes per
# acquisition to cut the patches (kept in contact-cache/), then 12 epochs of about 25 s
# (measured on the shared 2-core VM)
contact_data=()
for seed in 131 132 133 134 135 136 137 138 139 140 165 166 167 168 169 170 171 172 173 \
  174 175 176 177 178 179 180 181 182 183 184; do
  simulate "contact$seed" nanowell "$seed" --frames 72
  contact_data+=("contact$seed")
done
for seed in 144 148 91; do
  simulate "contact$seed" nanowell "$seed" --frames 72
done
livecell train "${contact_data[@]}" --test contact144 contact148 contact91 \
  --task contact --out nanowell_contact --epochs 12 --batch-size 128 --lr 2e-3 \
  --cache contact-cache
mkdir -p "$bundled/nanowell_contact"
cp nanowell_contact/model.onnx nanowell_contact/model.pt nanowell_contact/model_card.json \
  "$bundled/nanowell_contact/"

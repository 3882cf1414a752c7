#!/usr/bin/env bash
# The quality table of docs/fishernet.md: FisherNet and the VAE at D = 2, 5, 10 with the paper's
# hyperparameters (Adam 1e-4, batch 64) for the epochs of the PyTorch reference's figures, plus
# FisherNet at D = 5 with a separate learning rate of 1e-2 for the noise parameter.
#
#   bash bench/fishernet_quality.sh [infield binary] [runs directory] [threads]
# Resumable: a finished run is skipped, an interrupted one continues from its checkpoint.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
infield=${1:-$root/build/release/apps/infield}
runs=${2:-$root/runs/quality}
threads=${3:-1}
bash "$root/scripts/fetch-fashion-mnist.sh" "$infield" "$root/data/fashion-mnist"
configs=("fishernet 2 25" "vae 2 25" "fishernet 5 40" "vae 5 40" "fishernet 10 25" "vae 10 25"
         "fishernet 5 15 0.01")
for c in "${configs[@]}"; do
  read -r model d epochs noise_lr <<< "$c"
  name="${model}_d${d}${noise_lr:+_noiselr$noise_lr}"
  extra=()
  [[ -n "${noise_lr:-}" ]] && extra=(--noise-lr "$noise_lr")
  "$infield" fishernet train --model "$model" --latent "$d" --epochs "$epochs" --seed 1 \
    --threads "$threads" --data "$root/data/fashion-mnist" --out "$runs/$name" --resume --quiet \
    "${extra[@]}"
done
echo "run,epochs,test_mse,noise_std,images_per_s"
for dir in "$runs"/*/; do
  tail -n 1 "$dir/metrics.csv" | awk -F, -v n="$(basename "$dir")" '{print n "," $1 "," $3 "," $4 "," $6}'
done

#!/usr/bin/env bash
# The amortisation gap of docs/fishernet.md: FisherNet D = 5 trained 10 epochs (paper's
# hyperparameters) for several seeds, then `infield fishernet infer` (full MGVI per image, 8
# samples, 3 global iterations) on the first 1000 test images of each: the reconstruction MSE of
# the encoder's means against the refined means, the time, and how many images converged.
#
#   bash bench/fishernet_infer.sh [infield binary] [runs directory] [threads] [seeds]
# Resumable: finished training runs are reused.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
infield=${1:-$root/build/release/apps/infield}
runs=${2:-$root/runs/infer}
threads=${3:-2}
seeds=${4:-"1 2 3"}
bash "$root/scripts/fetch-fashion-mnist.sh" "$infield" "$root/data/fashion-mnist"
echo "seed,encoder_mse,refined_mse,gap_percent,seconds,images_per_s,not_converged"
for seed in $seeds; do
  run="$runs/fishernet_d5_seed$seed"
  "$infield" fishernet train --model fishernet --latent 5 --epochs 10 --seed "$seed" \
    --threads "$threads" --data "$root/data/fashion-mnist" --out "$run" --resume --quiet >/dev/null
  "$infield" fishernet infer --run "$run" --images "$root/data/fashion-mnist/t10k-images-idx3-ubyte" \
    --first 1000 --samples 8 --iterations 3 --threads "$threads" --seed "$seed" \
    --out "$run/infer" >/dev/null 2>&1
  /usr/bin/python3 - "$run/infer/summary.json" "$seed" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
gap = 100 * (s["encoder_mse"] - s["refined_mse"]) / s["encoder_mse"]
print(f'{sys.argv[2]},{s["encoder_mse"]:.6f},{s["refined_mse"]:.6f},{gap:.2f},'
      f'{s["seconds"]:.1f},{s["images_per_s"]:.1f},{s["not_converged"]}')
PY
done

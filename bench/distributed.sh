#!/usr/bin/env bash
# Ranks against threads on one machine: cf2d-256 (`infield reconstruct`, 8 samples, NIFTy's
# schedule) and one epoch of FisherNet with D = 5 on Fashion-MNIST, each as 1 rank x 1 thread,
# 1 rank x 2 threads and 2 ranks x 1 thread, over several rounds; prints every wall time and the
# medians, and the speed-up of 2 ranks over 1 rank x 1 thread (issue target: at least 1.6x).
#
#   bash bench/distributed.sh [build dir] [rounds]
# Needs ../shared/benchmarks/cf2d-256 and data/fashion-mnist (bash scripts/fetch-fashion-mnist.sh).
set -euo pipefail
build=${1:-build/release}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
shared=$root/../shared/benchmarks/cf2d-256
infield=$build/apps/infield
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
launch() {  # launch <ranks> <command...>
  local ranks=$1; shift
  if [[ $ranks == 1 ]]; then "$@"; else mpirun -np "$ranks" --bind-to none "$@"; fi
}
seconds() {  # seconds <ranks> <command...>: wall time of the command
  local start end
  start=$(date +%s.%N)
  launch "$@" > "$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

configurations=("1 1" "1 2" "2 1")
echo "cf2d-256 (256 x 256, 8 samples, 5 global iterations): wall seconds"
for c in "${configurations[@]}"; do
  read -r ranks threads <<< "$c"
  times=()
  for ((r = 0; r < rounds; ++r)); do
    times+=("$(seconds "$ranks" "$infield" reconstruct --data "$shared/data.npy" \
      --mask "$shared/mask.npy" --noise-std 0.05 --shape 256,256 --samples 8 --iterations 5 \
      --seed 1 --threads "$threads" --out "$work/cf-$ranks-$threads")")
  done
  m=$(printf '%s\n' "${times[@]}" | median)
  echo "  $ranks rank(s) x $threads thread(s): ${times[*]} (median $m)"
  echo "$ranks $threads $m" >> "$work/cf.txt"
done
awk '$1 == 1 && $2 == 1 {one = $3} $1 == 2 {two = $3} END {printf "  2 ranks against 1 rank x 1 thread: %.2fx\n", one / two}' "$work/cf.txt"

echo "FisherNet D = 5, one epoch of 60,000 images (paper hyperparameters): wall seconds"
echo "(the whole command; in brackets the epoch's own training time from metrics.csv)"
for c in "${configurations[@]}"; do
  read -r ranks threads <<< "$c"
  times=()
  epochs=()
  for ((r = 0; r < rounds; ++r)); do
    rm -rf "$work/fn"
    times+=("$(seconds "$ranks" "$infield" fishernet train --model fishernet --latent 5 \
      --epochs 1 --seed 1 --threads "$threads" --data "$root/data/fashion-mnist" \
      --out "$work/fn" --quiet)")
    epochs+=("$(tail -n 1 "$work/fn/metrics.csv" | cut -d, -f5)")
  done
  m=$(printf '%s\n' "${times[@]}" | median)
  e=$(printf '%s\n' "${epochs[@]}" | median)
  echo "  $ranks rank(s) x $threads thread(s): ${times[*]} (median $m) [epoch ${epochs[*]}, median $e]"
  echo "$ranks $threads $m $e" >> "$work/fn.txt"
done
awk '$1 == 1 && $2 == 1 {one = $3; one_epoch = $4} $1 == 2 {two = $3; two_epoch = $4}
     END {printf "  2 ranks against 1 rank x 1 thread: %.2fx (the epoch alone: %.2fx)\n", one / two, one_epoch / two_epoch}' "$work/fn.txt"

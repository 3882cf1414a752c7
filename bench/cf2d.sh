#!/usr/bin/env bash
# The cf2d benchmark (../shared/benchmarks/README.md): `infield reconstruct` with NIFTy's schedule
# (5 global iterations, 4 mirrored pairs) over several seeds, and the same recipe at 256 x 256.
# Prints per seed: RMS error (all, observed, unobserved), wall time, peak memory; then medians.
#
#   bash bench/cf2d.sh [build dir] [seeds]     e.g. bash bench/cf2d.sh build/release "1 2 3"
set -euo pipefail
build=${1:-build/release}
seeds=${2:-"1 2 3 4 5 6 7 8 9 10"}
shared=$(cd "$(dirname "$0")/../.." && pwd)/shared/benchmarks/cf2d
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
infield=$build/apps/infield

run() {  # run <data dir> <n> <seed> <tag>
  local dir=$1 n=$2 seed=$3 tag=$4
  /usr/bin/time -f "%e %M" -o "$work/time" "$infield" reconstruct --data "$dir/data.npy" \
    --mask "$dir/mask.npy" --truth "$dir/truth_signal.npy" --noise-std 0.05 --response sigmoid \
    --shape "$n,$n" --samples 8 --iterations 5 --seed "$seed" --threads 2 \
    --out "$work/$tag" > "$work/$tag.log" 2>&1
  read -r seconds kb < "$work/time"
  python3 - "$work/$tag/summary.json" "$seconds" "$kb" "$tag" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); r = s["rms_error"]
print(f'{sys.argv[4]:>12} rms {r["all"]:.4f} observed {r["observed"]:.4f} unobserved '
      f'{r["unobserved"]:.4f}  wall {float(sys.argv[2]):.2f} s  peak {int(sys.argv[3])/1024:.0f} MiB  '
      f'jvp {1e3*s["seconds_per_jvp"]:.3f} ms vjp {1e3*s["seconds_per_vjp"]:.3f} ms')
PY
}

echo "cf2d 128 x 128 (NIFTy 8: rms 0.1164, observed 0.0439, unobserved 0.1529, 45.1 s, 4.0 ms per Jacobian)"
for seed in $seeds; do run "$shared" 128 "$seed" "128-seed$seed"; done | tee "$work/128.txt"
python3 - "$work/128.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
col = lambda k: [float(r[r.index(k) + 1]) for r in rows]
print(f'median over {len(rows)} seeds: rms {statistics.median(col("rms")):.4f} unobserved '
      f'{statistics.median(col("unobserved")):.4f} wall {statistics.median(col("wall")):.2f} s; '
      f'rms <= 0.1164 in {sum(v <= 0.1164 for v in col("rms"))} of {len(rows)}')
PY

echo "same recipe, 256 x 256 (bench/make_cf2d.cpp) against 128 x 128 generated the same way"
for n in 128 256; do
  "$build/bench/make_cf2d" --n "$n" --seed 1 --out "$work/data$n" > /dev/null
  run "$work/data$n" "$n" 1 "gen$n"
done

#!/usr/bin/env bash
# The cf2d benchmarks (../shared/benchmarks/README.md and cf2d-256/README.md): `infield
# reconstruct` with NIFTy's schedule (5 global iterations, 4 mirrored pairs, sampling CG to an
# energy change of 0.05 with at most 100 iterations, Newton-CG up to 10 steps, start 0.1 N(0, 1))
# over several seeds, on cf2d (128 x 128) and cf2d-256. Prints per seed: RMS error (all, observed,
# unobserved), the KL after each global iteration, wall time and peak memory; then the median and
# worst over the seeds against NIFTy 8's figures.
#
#   bash bench/cf2d.sh [build dir] [seeds] [problems] [method]
#   e.g. bash bench/cf2d.sh build/release "1 2 3" "cf2d cf2d-256" geovi
# method: mgvi (default) or geovi (each sample refined, up to GEOVI_STEPS=20 Newton steps).
set -euo pipefail
build=${1:-build/release}
seeds=${2:-"1 2 3 4 5 6 7 8 9 10"}
problems=${3:-"cf2d cf2d-256"}
method=${4:-mgvi}
shared=$(cd "$(dirname "$0")/../.." && pwd)/shared/benchmarks
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
infield=$build/apps/infield
py=/usr/bin/python3

run() {  # run <problem> <n> <seed>
  local problem=$1 n=$2 seed=$3 dir=$shared/$1 tag=$1-seed$3
  /usr/bin/time -f "%e %M" -o "$work/time" "$infield" reconstruct --data "$dir/data.npy" \
    --mask "$dir/mask.npy" --truth "$dir/truth_signal.npy" --noise-std 0.05 --response sigmoid \
    --shape "$n,$n" --samples 8 --iterations 5 --seed "$seed" --threads 2 \
    --method "$method" --geovi-steps "${GEOVI_STEPS:-20}" \
    --out "$work/$tag" > "$work/$tag.log" 2>&1
  read -r seconds kb < "$work/time"
  $py - "$work/$tag/summary.json" "$seconds" "$kb" "$tag" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); r = s["rms_error"]
kl = ",".join(f'{i["kl"] / 1e3:.1f}k' for i in s["iterations"])
print(f'{sys.argv[4]:>16} rms {r["all"]:.4f} observed {r["observed"]:.4f} unobserved '
      f'{r["unobserved"]:.4f} within1std {s["truth_within_one_std"]:.3f} '
      f'wall {float(sys.argv[2]):.2f} s peak {int(sys.argv[3])/1024:.0f} MiB '
      f'slope {s["parameters"]["loglogavgslope"]["mean"]:.2f} kl {kl}')
PY
}

summary() {  # summary <rows file> <NIFTy's median RMS> <NIFTy's wall>
  $py - "$@" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
col = lambda k: [float(r[r.index(k) + 1]) for r in rows]
rms, obs, wall, cover = col("rms"), col("observed"), col("wall"), col("within1std")
print(f'over {len(rows)} seeds: rms median {statistics.median(rms):.4f} worst {max(rms):.4f} '
      f'(NIFTy median {sys.argv[2]}); observed worst {max(obs):.4f} (< 0.05: '
      f'{sum(v < 0.05 for v in obs)} of {len(rows)}); truth within 1 std median '
      f'{statistics.median(cover):.3f}; wall median {statistics.median(wall):.2f} s '
      f'(NIFTy {sys.argv[3]} s: {float(sys.argv[3]) / statistics.median(wall):.1f}x)')
PY
}

for problem in $problems; do
  case $problem in
    cf2d) n=128 nifty_rms=0.1176 nifty_wall=45.1 ;;
    cf2d-256) n=256 nifty_rms=0.2154 nifty_wall=114 ;;
    *) echo "unknown problem $problem" >&2; exit 2 ;;
  esac
  echo "$problem ($n x $n), $method, NIFTy 8 (MGVI): median rms $nifty_rms over its seeds, $nifty_wall s"
  for seed in $seeds; do run "$problem" "$n" "$seed"; done | tee "$work/$problem.txt"
  summary "$work/$problem.txt" "$nifty_rms" "$nifty_wall"
done

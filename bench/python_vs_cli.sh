#!/usr/bin/env bash
# examples/python/getting_started_3.py against `infield reconstruct` on cf2d's data (the same
# computation, the same seed): whole-process wall time of each over several rounds, the median
# ratio, and the posterior means' largest difference. NIFTy 8's figure for this run on this
# machine class is 45.1 s (../shared/benchmarks/README.md).
#
#   bash bench/python_vs_cli.sh [build dir] [rounds] [seed]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
rounds=${2:-5}
seed=${3:-1}
data=$root/tests/data/cf2d
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py=/usr/bin/python3
for r in $(seq "$rounds"); do
  /usr/bin/time -f "%e" -o "$work/cli.$r" "$build/apps/infield" reconstruct --data "$data/data.npy" \
    --mask "$data/mask.npy" --noise-std 0.05 --response sigmoid --shape 128,128 --samples 8 \
    --iterations 5 --seed "$seed" --threads 2 --out "$work/cli" > /dev/null 2>&1
  PYTHONPATH=$build/python /usr/bin/time -f "%e" -o "$work/py.$r" $py \
    "$root/examples/python/getting_started_3.py" --data "$data" --seed "$seed" --threads 2 \
    --out "$work/py" --no-figures > /dev/null 2>&1
  PYTHONPATH=$build/python /usr/bin/time -f "%e" -o "$work/pyfig.$r" $py \
    "$root/examples/python/getting_started_3.py" --data "$data" --seed "$seed" --threads 2 \
    --out "$work/pyfig" > /dev/null 2>&1
done
$py - "$work" "$rounds" <<'PY'
import sys, numpy as np
work, rounds = sys.argv[1], int(sys.argv[2])
t = {k: np.array([float(open(f"{work}/{k}.{r}").read()) for r in range(1, rounds + 1)])
     for k in ("cli", "py", "pyfig")}
cli, py = np.load(f"{work}/cli/mean.npy"), np.load(f"{work}/py/mean.npy")
print(f"max |mean_python - mean_cli| = {np.abs(py - cli.reshape(py.shape)).max():.3g}")
for k, name in (("cli", "infield reconstruct"), ("py", "getting_started_3.py --no-figures"),
                ("pyfig", "getting_started_3.py with figures")):
    print(f"{name:36s} median {np.median(t[k]):.2f} s  (rounds: {', '.join(f'{v:.2f}' for v in t[k])})")
ratio = t["py"] / t["cli"]
print(f"python / cli: median {np.median(ratio):.3f}, worst {ratio.max():.3f} (target <= 1.15)")
print(f"NIFTy 8 (45.1 s) / python: {45.1 / np.median(t['py']):.1f}x without figures, "
      f"{45.1 / np.median(t['pyfig']):.1f}x with them (target >= 15x)")
PY

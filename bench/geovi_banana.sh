#!/usr/bin/env bash
# geoVI against MGVI on the banana posterior of ../shared/benchmarks/banana (a = 1, sigma = 0.1,
# d = 1.5; 200 samples, 6 global iterations, NIFTy's schedule, one thread) over several seeds:
# per seed the sample moments and the histogram's Hellinger distance to the exact posterior, then
# the median and worst against NIFTy 8.5.7's figures; draws docs/figures/geovi_banana.png from the
# first seed (exact density, MGVI's and geoVI's samples side by side).
#
#   bash bench/geovi_banana.sh [build dir] [seeds]
set -euo pipefail
build=${1:-build/release}
seeds=${2:-"1 2 3 4 5"}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
example=$build/examples/example_geovi_banana
py=/usr/bin/python3

for method in mgvi geovi; do
  for seed in $seeds; do
    "$example" --method "$method" --seed "$seed" --threads 1 --out "$work/$method-$seed.npy" |
      tail -1 | sed "s/^/seed $seed /"
  done | tee "$work/$method.txt"
  $py - "$work/$method.txt" "$method" <<'PY'
import re, statistics, sys
rows = [l for l in open(sys.argv[1])]
get = lambda pattern: [float(re.search(pattern, r).group(1)) for r in rows]
hell = get(r"Hellinger ([0-9.]+)")
std2 = get(r"std [0-9.]+ ([0-9.]+)")
wall = get(r", ([0-9.]+) s\)")
nifty = {"mgvi": (0.874, 0.201, 39.0), "geovi": (0.593, 0.689, 64.0)}[sys.argv[2]]
print(f"{sys.argv[2]} over {len(rows)} seeds: Hellinger median {statistics.median(hell):.3f} worst "
      f"{max(hell):.3f} (NIFTy {nifty[0]}); std xi_2 median {statistics.median(std2):.3f}, range "
      f"{min(std2):.3f}-{max(std2):.3f} (exact 0.771, NIFTy {nifty[1]}); wall median "
      f"{statistics.median(wall):.3f} s (NIFTy {nifty[2]} s: {nifty[2] / statistics.median(wall):.0f}x)")
PY
done

if ! $py -c "import matplotlib" 2>/dev/null; then
  echo "no figure: $py cannot import matplotlib (apt-get install python3-matplotlib)" >&2
  exit 0
fi
first=$(echo "$seeds" | awk '{print $1}')
mkdir -p "$root/docs/figures"
$py - "$work/mgvi-$first.npy" "$work/geovi-$first.npy" "$root/docs/figures/geovi_banana.png" <<'PY'
import sys
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
a, sigma, d = 1.0, 0.1, 1.5
g = np.linspace(-4, 4, 801)
x1, x2 = np.meshgrid(g, g, indexing="ij")
logp = -0.5 * (x1**2 + x2**2) - 0.5 * ((d - x2 - a * x1**2) / sigma) ** 2
p = np.exp(logp - logp.max())
fig, axes = plt.subplots(1, 3, figsize=(13, 4.3), sharex=True, sharey=True)
for ax, title, path in zip(axes, ["exact posterior", "MGVI samples", "geoVI samples"],
                           [None, sys.argv[1], sys.argv[2]]):
    ax.contourf(x1, x2, p, levels=12, cmap="Greys")
    if path:
        s = np.load(path)
        ax.scatter(s[:, 0], s[:, 1], s=6, color="C0" if "mgvi" in path else "C3",
                   label=f"{len(s)} samples")
        ax.legend(loc="lower right")
    ax.set_title(title)
    ax.set_xlabel(r"$\xi_1$")
    ax.set_xlim(-3, 3)
    ax.set_ylim(-3.5, 2.5)
axes[0].set_ylabel(r"$\xi_2$")
fig.suptitle(r"$\xi \sim N(0, 1)$, $d = \xi_2 + \xi_1^2 + n$, $n \sim N(0, 0.1^2)$, $d = 1.5$"
             " (seed 1, 6 global iterations)")
fig.tight_layout()
fig.savefig(sys.argv[3], dpi=110)
print("wrote", sys.argv[3])
PY

#!/usr/bin/env bash
# FisherNet and VAE training throughput, Infield against the PyTorch reference
# (../shared/reference/fishernet_torch.py on OpenBLAS), measured side by side in one run: for each
# thread count, the reference's `bench` and then `fishernet_bench` on the same configurations.
# Prints one line per model, D and thread count with both rates and their ratio.
#
#   bash bench/fishernet_vs_torch.sh [build dir] [threads list] [dims list]
# Needs python3-torch and python3-numpy (apt) and OpenBLAS unpacked as in the reference README:
#   mkdir -p /tmp/openblas && cd /tmp/openblas && apt-get download libopenblas0-openmp &&
#   dpkg -x libopenblas0-openmp_*.deb root
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
threads_list=${2:-"1 2"}
dims=${3:-2,5,10,20}
data=$root/data/fashion-mnist
reference=$root/../shared/reference/fishernet_torch.py
out=$(mktemp -d)
for t in $threads_list; do
  FMNIST_DIR=$data LD_LIBRARY_PATH=/tmp/openblas/root/usr/lib/x86_64-linux-gnu/openblas-openmp \
    /usr/bin/python3 "$reference" bench --threads "$t" --dims "$dims" --models vae,fisher \
    --batches 200 --warmup 20 --repeats 3 --prewarm 20 > "$out/torch_$t.jsonl"
  "$build/bench/fishernet_bench" --threads "$t" --dims "$dims" --models vae,fishernet \
    --batches 200 --warmup 20 --repeats 3 --data "$data" > "$out/infield_$t.jsonl"
done
/usr/bin/python3 - "$out" <<'PY'
import glob, json, sys
rows = {}
for path in sorted(glob.glob(sys.argv[1] + "/*.jsonl")):
    for line in open(path):
        r = json.loads(line)
        if "model" not in r:
            continue
        model = "fishernet" if r["model"] in ("fisher", "fishernet") else "vae"
        side = "torch" if "torch_" in path else "infield"
        rows.setdefault((model, int(r["d"]), int(r["threads"])), {})[side] = r
print("model      D  threads  torch img/s  infield img/s  ratio  infield GFLOP/s  of peak")
for (model, d, t), v in sorted(rows.items()):
    if "torch" in v and "infield" in v:
        a, b = v["torch"]["img_per_s"], v["infield"]["img_per_s"]
        print(f"{model:9s} {d:3d} {t:8d} {a:12.0f} {b:14.0f} {b / a:6.2f} {v['infield']['gflops']:16.1f}"
              f" {v['infield']['fraction_of_peak']:8.2f}")
PY

#!/usr/bin/env bash
# FisherNet and VAE training throughput, Infield against the PyTorch reference
# (../shared/reference/fishernet_torch.py on OpenBLAS), measured side by side: each round runs,
# for each thread count, model and D, the reference's `bench` and right after it
# `fishernet_bench` on that configuration. Prints one line per model, D and thread count with
# both rates (medians over the rounds) and the median ratio with its range over the rounds: on a
# shared machine the rate of both sides drifts by tens of percent within minutes (most with 2
# threads), so a ratio is only as good as the rounds that agree on it.
#
#   bash bench/fishernet_vs_torch.sh [build dir] [threads list] [dims list] [rounds]
# Needs python3-torch and python3-numpy (apt) and OpenBLAS unpacked as in the reference README:
#   mkdir -p /tmp/openblas && cd /tmp/openblas && apt-get download libopenblas0-openmp &&
#   dpkg -x libopenblas0-openmp_*.deb root
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
threads_list=${2:-"1 2"}
dims=${3:-2,5,10,20}
rounds=${4:-1}
data=$root/data/fashion-mnist
reference=$root/../shared/reference/fishernet_torch.py
out=$(mktemp -d)
openblas=/tmp/openblas/root/usr/lib/x86_64-linux-gnu/openblas-openmp
# OpenBLAS 0.3.21 (bookworm) does not know newer CPUs: loaded by torch on an Emerald Rapids Xeon it
# falls back to its SSE3 "Prescott" kernels (3x slower than its AVX-512 ones). Give the reference
# the kernels its CPU can run, unless OPENBLAS_CORETYPE is set already.
if [[ -z ${OPENBLAS_CORETYPE:-} ]]; then
  core=$(LD_LIBRARY_PATH=$openblas /usr/bin/python3 -c '
import ctypes, torch
lib = ctypes.CDLL("libopenblas.so.0"); lib.openblas_get_corename.restype = ctypes.c_char_p
print(lib.openblas_get_corename().decode())')
  if [[ $core == Prescott || $core == Core2 || $core == Nehalem ]]; then
    if grep -q avx512_bf16 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Cooperlake
    elif grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
    elif grep -q avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
    echo "OpenBLAS detected $core on this CPU; the reference runs with OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$core}" >&2
  fi
fi
for round in $(seq 1 "$rounds"); do
  for t in $threads_list; do
    for model in vae fishernet; do
      for d in ${dims//,/ }; do
        # One configuration at a time, the reference first and Infield right after it, so that
        # both sides of a ratio see the machine in the same minute.
        FMNIST_DIR=$data LD_LIBRARY_PATH=$openblas \
          /usr/bin/python3 "$reference" bench --threads "$t" --dims "$d" \
          --models "$([ "$model" = fishernet ] && echo fisher || echo vae)" \
          --batches 200 --warmup 20 --repeats 3 --prewarm 20 >> "$out/torch_${t}_$round.jsonl"
        "$build/bench/fishernet_bench" --threads "$t" --dims "$d" --models "$model" \
          --batches 200 --warmup 20 --repeats 3 --data "$data" >> "$out/infield_${t}_$round.jsonl"
      done
    done
  done
done
/usr/bin/python3 - "$out" <<'PY'
import glob, json, os, statistics, sys
rows = {}
for path in sorted(glob.glob(sys.argv[1] + "/*.jsonl")):
    side, _, round_ = os.path.basename(path)[:-len(".jsonl")].split("_")
    for line in open(path):
        r = json.loads(line)
        if "model" not in r:
            continue
        model = "fishernet" if r["model"] in ("fisher", "fishernet") else "vae"
        rows.setdefault((model, int(r["d"]), int(r["threads"])), {}).setdefault(round_, {})[side] = r
print("model      D  threads  torch img/s  infield img/s  ratio (range over rounds)  infield GFLOP/s  of peak")
for (model, d, t), by_round in sorted(rows.items()):
    pairs = [v for v in by_round.values() if "torch" in v and "infield" in v]
    if not pairs:
        continue
    torch_rate = statistics.median(v["torch"]["img_per_s"] for v in pairs)
    ours = statistics.median(v["infield"]["img_per_s"] for v in pairs)
    ratios = sorted(v["infield"]["img_per_s"] / v["torch"]["img_per_s"] for v in pairs)
    gflops = statistics.median(v["infield"]["gflops"] for v in pairs)
    peak = statistics.median(v["infield"]["fraction_of_peak"] for v in pairs)
    print(f"{model:9s} {d:3d} {t:8d} {torch_rate:12.0f} {ours:14.0f} {statistics.median(ratios):6.2f}"
          f" ({ratios[0]:.2f}-{ratios[-1]:.2f}) {gflops:22.1f} {peak:8.2f}")
PY

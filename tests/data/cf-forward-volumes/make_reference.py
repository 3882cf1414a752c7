"""NIFTy 8.5.7's correlated field at fixed excitations on grids whose volume is not 1 (the cases of
../shared/benchmarks/cf-forward are all unit boxes, so they cannot check the volume factors), made
the same way as ../shared/benchmarks/cf-forward/make_reference.py: excitations from numpy's
default_rng(seed) per key in sorted key order; per case a folder with <KEY>.npy, field.npy,
power.npy (cfm.power_spectrum for one sub-domain, the first normalised amplitude squared for a
product), k.npy and meta.json.

Usage: PYTHONPATH=<NIFTy 8.5.7 tree with src as nifty8> /usr/bin/python3 make_reference.py OUTDIR
"""
import json
import os
import sys

import numpy as np
import nifty8 as ift

GS3 = dict(fluctuations=(1.0, 0.8), flexibility=(2.0, 1.0), asperity=(0.5, 0.4), loglogavgslope=(-3.0, 1.0))
MATERN = dict(scale=(1.0, 0.5), cutoff=(3.0, 1.0), loglogslope=(-4.0, 0.5))


def build(name):
    cfm = ift.CorrelatedFieldMaker("cf")
    if name == "rect24x20_volume":
        cfm.add_fluctuations(ift.RGSpace((24, 20), distances=(0.3, 0.7)), *GS3.values())
    elif name == "matern40_volume":
        cfm.add_fluctuations_matern(ift.RGSpace(40, distances=0.05), *MATERN.values())
    elif name == "matern40_unadjusted":
        cfm.add_fluctuations_matern(ift.RGSpace(40, distances=0.05), *MATERN.values(), adjust_for_volume=False)
    elif name == "product12x10_volume":
        cfm.add_fluctuations(ift.RGSpace(12, distances=0.3), (1.0, 0.5), (1.0, 0.5), (0.3, 0.2), (-3.0, 0.5), prefix="a")
        cfm.add_fluctuations(ift.RGSpace(10, distances=0.7), (0.7, 0.3), (0.5, 0.2), (0.2, 0.1), (-2.0, 0.5), prefix="b")
    elif name == "product_matern12x10_volume":
        cfm.add_fluctuations_matern(ift.RGSpace(12, distances=0.3), *MATERN.values(), prefix="a")
        cfm.add_fluctuations(ift.RGSpace(10, distances=0.7), *GS3.values(), prefix="b")
    cfm.set_amplitude_total_offset(1.0, (0.7, 0.2))
    return cfm, cfm.finalize(prior_info=0)


out = sys.argv[1]
for seed, name in enumerate(["rect24x20_volume", "matern40_volume", "matern40_unadjusted",
                             "product12x10_volume", "product_matern12x10_volume"], start=41):
    cfm, cf = build(name)
    rng = np.random.default_rng(seed)
    xi = ift.MultiField.from_dict({k: ift.makeField(cf.domain[k], rng.standard_normal(cf.domain[k].shape))
                                   for k in sorted(cf.domain.keys())})
    product = name.startswith("product")
    ps = cfm.get_normalized_amplitudes()[0] ** 2 if product else cfm.power_spectrum
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    for kk, v in xi.val.items():
        np.save(os.path.join(d, kk + ".npy"), np.asarray(v, dtype=np.float64))
    np.save(os.path.join(d, "field.npy"), np.asarray(cf(xi).val, dtype=np.float64))
    np.save(os.path.join(d, "power.npy"), np.asarray(ps.force(xi).val, dtype=np.float64))
    np.save(os.path.join(d, "k.npy"), np.asarray(ps.target[0].k_lengths, dtype=np.float64))
    json.dump(dict(seed=seed, keys={kk: list(cf.domain[kk].shape) for kk in sorted(cf.domain.keys())},
                   field_std=float(np.std(cf(xi).val)), nifty="8.5.7"),
              open(os.path.join(d, "meta.json"), "w"), indent=1)
    print(name, "std", round(float(np.std(cf(xi).val)), 4))

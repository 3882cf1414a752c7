#!/usr/bin/env python3
"""NIFTy's classic demo (getting_started_3) with Infield: a correlated field on a 128 x 128 grid
seen through a sigmoid and a mask with Gaussian noise, reconstructed by MGVI with NIFTy's
schedule, with figures of the posterior and its power spectrum.

    python3 examples/python/getting_started_3.py --out runs/gs3               # mock data
    python3 examples/python/getting_started_3.py --data tests/data/cf2d --seed 1 --out runs/gs3

With --data DIR (data.npy: the observed values, mask.npy: true where observed, optionally
truth_signal.npy) it is the computation of `infield reconstruct --data DIR/data.npy --mask
DIR/mask.npy --noise-std 0.05 --response sigmoid --shape 128,128 --samples 8 --iterations 5
--seed S`: the same posterior mean to rounding (docs/python.md). Without it, mock data are drawn
from the prior, as NIFTy's demo does. Each NIFTy call of the demo and ours side by side:
docs/python.md.
"""

import argparse
import json
import os
import time

import numpy as np

import infield as inf


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="directory with data.npy and mask.npy (default: mock data)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument("--noise-std", type=float, default=0.05)
    parser.add_argument("--out", default="runs/getting_started_3")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures (timing)")
    args = parser.parse_args()
    start = time.perf_counter()

    # The model: NIFTy's
    #   cfmaker = ift.CorrelatedFieldMaker("")
    #   cfmaker.add_fluctuations(position_space, (1, 0.8), (2, 1), (0.5, 0.4), (-3, 1), "")
    #   cfmaker.set_amplitude_total_offset(0, (1e-3, 1e-6))
    #   correlated_field = cfmaker.finalize(); signal = ift.sigmoid(correlated_field)
    position_space = inf.regular_grid([128, 128])
    cfmaker = inf.CorrelatedFieldMaker("")
    cfmaker.add_fluctuations(position_space, fluctuations=(1.0, 0.8), flexibility=(2.0, 1.0),
                             asperity=(0.5, 0.4), loglogavgslope=(-3.0, 1.0), prefix="")
    cfmaker.set_amplitude_total_offset(0.0, (1e-3, 1e-6))
    correlated_field = cfmaker.finalize()
    power_spectrum = cfmaker.power_spectrum
    signal = 0.5 * correlated_field.tanh() + 0.5  # NIFTy's sigmoid: 0.5 (1 + tanh(x))

    truth = None
    if args.data:
        data = np.load(os.path.join(args.data, "data.npy")).astype(float)
        mask = np.load(os.path.join(args.data, "mask.npy")).astype(bool)
        truth_file = os.path.join(args.data, "truth_signal.npy")
        if os.path.exists(truth_file):
            truth = np.load(truth_file)
    else:
        # Mock data: a prior draw through the response, a band of the sky left unobserved.
        mock = inf.normal(correlated_field.domain, seed=args.seed + 1)
        truth = signal(mock)
        mask = np.ones(position_space.shape, dtype=bool)
        mask[40:80, :] = False
        rng = np.random.default_rng(args.seed)
        data = truth[mask] + args.noise_std * rng.standard_normal(mask.sum())

    R = inf.mask_operator(position_space, mask)
    signal_response = R @ signal
    likelihood = inf.gaussian_likelihood(data, noise_std=args.noise_std)
    hamiltonian = inf.standard_hamiltonian(likelihood, signal_response)

    # NIFTy's schedule: 5 global iterations, 4 mirrored pairs, sampling CG to an energy change of
    # 0.05 (at most 100 iterations), Newton-CG up to 10 steps to an energy change of 0.5 seen
    # twice, inexact CG; start 0.1 N(0, 1) (the command line's draw for the same seed).
    initial = {k: 0.1 * v for k, v in inf.normal(correlated_field.domain, seed=args.seed ^ 0x5EED).items()}
    result = inf.optimize_kl(
        hamiltonian, initial, global_iterations=5, sample_pairs=4, seed=args.seed,
        threads=args.threads, sampling_cg_tolerance=1e-12, sampling_cg_delta_energy=0.05,
        sampling_cg_max=100, newton_steps=10, newton_delta_energy=0.5, newton_convergence_level=2,
        newton_gradient_tolerance=1e-7, newton_cg_tolerance=1e-6, newton_cg_max=200,
        newton_cg_reduction=0.1, dense_entropy_limit=0, progress=True)
    mean, std = result.samples.statistics(signal)
    seconds_mgvi = time.perf_counter() - start

    os.makedirs(args.out, exist_ok=True)
    np.save(os.path.join(args.out, "mean.npy"), mean)
    np.save(os.path.join(args.out, "std.npy"), std)
    spectra = np.array([power_spectrum(s) for s in result.samples])
    k = cfmaker.power_space(0).k  # |k| of the power spectrum's bins
    summary = {"seed": args.seed, "samples": len(result.samples), "seconds": seconds_mgvi,
               "all_converged": result.all_converged,
               "kl": [r["kl"] for r in result.reports]}
    if truth is not None:
        summary["rms_error"] = float(np.sqrt(np.mean((mean - truth) ** 2)))
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"MGVI done in {seconds_mgvi:.2f} s" +
          (f", RMS error {summary['rms_error']:.4f}" if truth is not None else ""))

    if not args.no_figures:
        inf.plot.save(inf.plot.posterior_panels(mean, std, data=data, mask=mask, truth=truth,
                                                label="signal"),
                      os.path.join(args.out, "posterior.png"))
        truth_spectrum = None
        if not args.data:
            truth_spectrum = power_spectrum(mock)
        inf.plot.save(inf.plot.power_spectrum(k, spectra,
                                              truth=truth_spectrum),
                      os.path.join(args.out, "power_spectrum.png"))
        print(f"figures in {args.out}: posterior.png, power_spectrum.png")


if __name__ == "__main__":
    main()

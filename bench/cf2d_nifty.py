"""cf2d and cf2d-256 with NIFTy 8.5.7 itself, for side-by-side quality checks of `infield
reconstruct` (bench/cf2d.sh) on the same seeds: the benchmark's recipe and NIFTy's schedule (5
global iterations, 4 mirrored pairs, sampling CG AbsDeltaEnergyController(0.05, limit 100),
NewtonCG(AbsDeltaEnergyController(0.5, convergence_level=2, limit 10)), start 0.1 N(0, 1)). Prints
the RMS errors, wall time and the KL after each global iteration. Reference only: Infield never
needs it.

Usage (a NIFTy 8.5.7 source tree with its `src` renamed `nifty8`, plus a dist-info folder so that
importlib.metadata finds version 8.5.7; Debian's numpy and scipy):
    PYTHONPATH=<tree> /usr/bin/python3 bench/cf2d_nifty.py cf2d 128 SEED
    PYTHONPATH=<tree> /usr/bin/python3 bench/cf2d_nifty.py cf2d-256 256 SEED
"""
import logging
import os
import sys
import time

import numpy as np
import nifty8 as ift

problem, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "benchmarks", problem)
ift.random.push_sseq_from_seed(seed)
pos = ift.RGSpace((n, n), distances=(1 / n, 1 / n))
cfm = ift.CorrelatedFieldMaker('')
cfm.set_amplitude_total_offset(0., (1e-3, 1e-6))
cfm.add_fluctuations(pos, (1., 0.8), (2., 1.), (0.5, 0.4), (-3., 1.))
cf = cfm.finalize(prior_info=0)
signal = ift.sigmoid(cf)
mask = np.load(f'{d}/mask.npy').astype(bool)
data = np.load(f'{d}/data.npy').astype(np.float64)
truth = np.load(f'{d}/truth_signal.npy').astype(np.float64)
R = ift.MaskOperator(ift.makeField(pos, ~mask))
N = ift.ScalingOperator(R.target, 0.05 ** 2, np.float64)
lh = ift.GaussianEnergy(ift.makeField(R.target, data), inverse_covariance=N.inverse) @ R @ signal

kls = []  # the Newton minimizer's energies, logged; the last one of each global iteration is its KL


class NewtonLog(logging.Handler):
    def emit(self, record):
        m = record.getMessage()
        if m.startswith('Newton: Iteration'):
            kls.append(float(m.split('energy=')[1].split()[0]))


logging.getLogger('NIFTy8').addHandler(NewtonLog())
logging.getLogger('NIFTy8').setLevel(logging.INFO)
trajectory = []
ic_sampling = ift.AbsDeltaEnergyController(deltaE=0.05, iteration_limit=100)
ic_newton = ift.AbsDeltaEnergyController(name='Newton', deltaE=0.5, convergence_level=2, iteration_limit=10)
t0 = time.time()
sl = ift.optimize_kl(lh, 5, 4, ift.NewtonCG(ic_newton), ic_sampling, None, output_directory=None,
                     inspect_callback=lambda sl, i: trajectory.append(kls[-1]))
wall = time.time() - t0
mean, _ = sl.sample_stat(signal)
diff = mean.val - truth
print(f'{problem} seed {seed} rms {np.sqrt(np.mean(diff ** 2)):.4f} observed {np.sqrt(np.mean(diff[mask] ** 2)):.4f} '
      f'unobserved {np.sqrt(np.mean(diff[~mask] ** 2)):.4f} wall {wall:.1f} s kl '
      + ','.join(f'{k / 1e3:.1f}k' for k in trajectory), flush=True)

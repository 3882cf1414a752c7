#!/usr/bin/env python3
"""A forward model written in Python, used by the C++ core like any of its own operators.

The instrument blurs a positive 1D signal with a Gaussian beam (numpy FFTs) and saturates it,
d = B(s) / (1 + B(s)) + n, with s = exp(correlated field). The instrument is an Infield operator
made from three numpy functions (value, JVP, VJP); check_jacobian verifies them against finite
differences before MGVI uses them, and a deliberately wrong VJP is caught.

    python3 examples/python/custom_operator.py --out runs/custom_operator
"""

import argparse
import os

import numpy as np

import infield as inf


def gaussian_beam(n, width):
    """The beam's transfer function on n periodic pixels (width in pixels)."""
    k = np.fft.rfftfreq(n) * n
    return np.exp(-0.5 * (2 * np.pi * k * width / n) ** 2)


def make_instrument(space, width):
    beam = gaussian_beam(space.shape[0], width)
    blur = lambda s: np.fft.irfft(np.fft.rfft(s) * beam, n=s.size)  # symmetric: its own adjoint

    def value(s):
        b = blur(s)
        return b / (1 + b)

    def jvp(s, v):
        b = blur(s)
        return blur(v) / (1 + b) ** 2

    def vjp(s, u):
        b = blur(s)
        return blur(u / (1 + b) ** 2)

    return inf.make_operator(space, space, value=value, jvp=jvp, vjp=vjp, name="BlurSaturate"), vjp


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", default="runs/custom_operator")
    args = parser.parse_args()

    x = inf.regular_grid([256])
    cfmaker = inf.CorrelatedFieldMaker("")
    cfmaker.add_fluctuations(x, fluctuations=(0.8, 0.3), flexibility=None, asperity=None,
                             loglogavgslope=(-4.0, 0.5))
    cfmaker.set_amplitude_total_offset(0.0, (0.3, 0.1))
    signal = cfmaker.finalize().exp()
    instrument, vjp = make_instrument(x, width=4.0)

    # The Python operator passes the same checks as the C++ ones; a wrong VJP does not.
    probe = np.random.default_rng(0).uniform(0.5, 2.0, 256)
    report = inf.check_jacobian(instrument, probe)
    print("check_jacobian(BlurSaturate):", "passed" if report.passed else report.summary())
    assert report.passed
    wrong = inf.make_operator(x, x, value=lambda s: instrument(s),
                              jvp=lambda s, v: instrument.linearize(s)[1].times(v),
                              vjp=lambda s, u: 1.1 * vjp(s, u), name="WrongVjp")
    assert not inf.check_jacobian(wrong, probe).passed
    print("check_jacobian(WrongVjp): fails, as it must")

    # Mock data, then MGVI through the Python instrument.
    truth_xi = inf.normal(signal.domain, seed=args.seed)
    truth = signal(truth_xi)
    noise_std = 0.02
    rng = np.random.default_rng(args.seed)
    data = instrument(truth) + noise_std * rng.standard_normal(256)
    hamiltonian = inf.standard_hamiltonian(inf.gaussian_likelihood(data, noise_std=noise_std),
                                           instrument @ signal)
    result = inf.optimize_kl(hamiltonian, global_iterations=5, sample_pairs=4, seed=args.seed,
                             newton_steps=10, newton_delta_energy=0.1, sampling_cg_max=200)
    mean, std = result.samples.statistics(signal)
    coverage = np.mean(np.abs(mean - truth) < 2 * std)
    print(f"posterior: RMS error {np.sqrt(np.mean((mean - truth) ** 2)):.4f}, "
          f"truth within 2 std at {100 * coverage:.0f}% of pixels, KL {result.reports[-1]['kl']:.1f}")

    os.makedirs(args.out, exist_ok=True)
    samples = np.array([signal(s) for s in result.samples])
    grid = np.arange(256) / 256
    fig = inf.plot.posterior_1d(grid, samples=samples, truth=truth, ylabel="signal s(x)")
    inf.plot.save(fig, os.path.join(args.out, "posterior.png"))
    fig = inf.plot.posterior_1d(grid, mean=instrument(mean), data=(grid, data),
                                truth=instrument(truth), ylabel="instrument output")
    inf.plot.save(fig, os.path.join(args.out, "data.png"))
    print(f"figures in {args.out}: posterior.png, data.png")


if __name__ == "__main__":
    main()

"""Likelihoods, Hamiltonians and optimize_kl from Python: the API contract of issue 20, the exact
posterior of a linear-Gaussian problem, every likelihood, checkpoints and resume, callbacks,
Ctrl-C between iterations, geoVI, and bad input."""

import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import infield as inf


def chi2_quantile(p_z, dof):
    """Wilson-Hilferty approximation of the chi-square quantile for the normal quantile p_z."""
    return dof * (1 - 2 / (9 * dof) + p_z * math.sqrt(2 / (9 * dof))) ** 3


def test_the_api_contract_runs_as_written():
    rng = np.random.default_rng(7)
    R_np = rng.standard_normal((60, 90)) / 9
    A_np = np.eye(90) + 0.1 * rng.standard_normal((90, 90))
    d_np = R_np @ A_np @ rng.standard_normal(90) + 0.3 * rng.standard_normal(60)
    x, y = inf.regular_grid([90]), inf.unstructured(60)
    R, A = inf.matrix_operator(x, y, R_np), inf.matrix_operator(x, x, A_np)
    ham = inf.standard_hamiltonian(inf.gaussian_likelihood(d_np, noise_std=0.3), R @ A)
    result = inf.optimize_kl(ham, global_iterations=3, sample_pairs=200, seed=5)
    mean, std = result.samples.statistics(A)
    assert mean.shape == (90,) and std.shape == (90,)
    sat = inf.make_operator(x, x, value=lambda s: s / (1 + s), jvp=lambda s, v: v / (1 + s) ** 2,
                            vjp=lambda s, u: u / (1 + s) ** 2, name="Saturate")
    assert inf.check_jacobian(sat @ A.exp(), np.random.default_rng(0).standard_normal(90)).passed

    # The exact posterior: M = (RA)^T (RA) / s^2 + 1, xi ~ N(M^-1 (RA)^T d / s^2, M^-1).
    RA = R_np @ A_np
    M = RA.T @ RA / 0.09 + np.eye(90)
    cov = np.linalg.inv(M)
    exact_xi = cov @ RA.T @ d_np / 0.09
    np.testing.assert_allclose(result.mean, exact_xi, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(mean, A_np @ exact_xi, rtol=1e-6, atol=1e-8)
    # Sample variances of 200 mirrored pairs: (n - 1) var_hat / (2 var) ~ chi2(200) per entry.
    var = np.diag(A_np @ cov @ A_np.T)
    n = len(result.samples)
    statistic = (n - 1) * std ** 2 / (2 * var)
    assert np.all(statistic > chi2_quantile(-3.9, 200)) and np.all(statistic < chi2_quantile(3.9, 200))
    reports = result.reports
    assert len(reports) == 3 and set(["kl", "gradient_norm", "seconds_sampling"]) <= set(reports[0])
    assert result.all_converged and result.resumed_iterations == 0


def test_every_likelihood_gives_its_energy(rng):
    x = inf.unstructured(6)
    ident = inf.identity_operator(x)
    s = rng.uniform(0.2, 0.8, 6)
    d = rng.uniform(0.2, 0.8, 6)
    counts = np.array([0, 1, 2, 3, 1, 0])
    binary = np.array([0, 1, 1, 0, 1, 0])

    def energy(lh, model=ident):
        return inf.standard_hamiltonian(lh, model).energy(s) - 0.5 * s @ s

    assert energy(inf.gaussian_likelihood(d, noise_std=0.5)) == pytest.approx(0.5 * np.sum((d - s) ** 2) / 0.25)
    var = rng.uniform(0.1, 1.0, 6)
    assert energy(inf.gaussian_likelihood(d, noise_variance=var)) == pytest.approx(0.5 * np.sum((d - s) ** 2 / var))
    assert energy(inf.poisson_likelihood(counts)) == pytest.approx(np.sum(s - counts * np.log(s)))
    assert energy(inf.bernoulli_likelihood(binary)) == pytest.approx(
        -np.sum(binary * np.log(s) + (1 - binary) * np.log(1 - s)))
    t = inf.student_t_likelihood(d, noise_std=0.3, dof=4.0)
    assert energy(t) == pytest.approx(np.sum(2.5 * np.log1p((d - s) ** 2 / (4 * 0.09))))
    assert energy(inf.inverse_gamma_likelihood(d, alpha=2.0)) == pytest.approx(np.sum(s / d - 2 * np.log(s)))
    two = inf.multi_domain({"mean": x, "inverse_variance": x})
    vcg = inf.variable_covariance_gaussian_likelihood(d)
    h = inf.standard_hamiltonian(vcg, inf.identity_operator(two))
    w = rng.uniform(0.5, 2.0, 6)
    value = h.energy({"mean": s, "inverse_variance": w}) - 0.5 * (s @ s + w @ w)
    assert value == pytest.approx(0.5 * np.sum((d - s) ** 2 * w - np.log(w)))
    with pytest.raises(ValueError, match="give exactly one"):
        inf.gaussian_likelihood(d)
    with pytest.raises(ValueError, match=r"data have shape \(6,\).*has shape \(7,\)"):
        inf.standard_hamiltonian(inf.gaussian_likelihood(d, noise_std=1.0),
                                 inf.identity_operator(inf.unstructured(7)))
    with pytest.raises(TypeError):
        inf.gaussian_likelihood(np.array(["a", "b"]), noise_std=1.0)


def problem(seed=0, slow=False):
    """A small non-linear problem; with slow=True its model sleeps in Python (for Ctrl-C)."""
    rng = np.random.default_rng(seed)
    x = inf.regular_grid([30])
    A = inf.matrix_operator(x, x, rng.standard_normal((30, 30)) / 6)
    model = A.exp()
    if slow:
        def value(s):
            time.sleep(0.002)
            return np.tanh(s)
        model = inf.make_operator(x, x, value=value, jvp=lambda s, v: v / np.cosh(s) ** 2,
                                  vjp=lambda s, u: u / np.cosh(s) ** 2, name="SlowTanh") @ model
    data = model(rng.standard_normal(30)) + 0.1 * rng.standard_normal(30)
    return inf.standard_hamiltonian(inf.gaussian_likelihood(data, noise_std=0.1), model)


def test_checkpoint_and_resume_continue_exactly(tmp_path):
    ham = problem()
    full = inf.optimize_kl(ham, global_iterations=4, sample_pairs=2, seed=3)
    ckpt = tmp_path / "kl.ckpt"
    inf.optimize_kl(ham, global_iterations=2, sample_pairs=2, seed=3, checkpoint=ckpt)
    assert ckpt.exists()
    resumed = inf.optimize_kl(ham, global_iterations=4, sample_pairs=2, seed=3, checkpoint=ckpt,
                              resume=True)
    assert resumed.resumed_iterations == 2
    np.testing.assert_array_equal(resumed.mean, full.mean)
    with pytest.raises(OSError, match="belongs to another run"):
        inf.optimize_kl(ham, global_iterations=4, sample_pairs=2, seed=4, checkpoint=ckpt, resume=True)


def test_callback_sees_reports_and_samples_and_may_stop_the_run():
    ham = problem()
    seen = []
    inf.optimize_kl(ham, global_iterations=3, sample_pairs=2, seed=1,
                    callback=lambda report, samples: seen.append((report["iteration"], len(samples))))
    assert seen == [(0, 4), (1, 4), (2, 4)]  # iterations count from 0

    def stop(report, samples):
        if report["iteration"] == 1:
            raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        inf.optimize_kl(ham, global_iterations=5, sample_pairs=2, seed=1, callback=stop)


def test_ctrl_c_stops_between_iterations_with_the_checkpoint_intact(tmp_path):
    ham = problem(slow=True)
    ckpt = tmp_path / "kl.ckpt"
    iterations = []
    timer = threading.Timer(0.4, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        inf.optimize_kl(ham, global_iterations=200, sample_pairs=2, seed=2, checkpoint=ckpt,
                        callback=lambda r, s: iterations.append(r["iteration"]))
    timer.cancel()
    assert time.perf_counter() - started < 60
    assert len(iterations) < 199
    # The run stopped after a complete iteration and its checkpoint (the iteration at whose end
    # the interrupt was seen did not reach the user's callback): resuming continues it, and one
    # more iteration equals an uninterrupted run of that length.
    done = len(iterations) + 1
    resumed = inf.optimize_kl(ham, global_iterations=done + 1, sample_pairs=2, seed=2,
                              checkpoint=ckpt, resume=True)
    assert resumed.resumed_iterations == done
    straight = inf.optimize_kl(ham, global_iterations=done + 1, sample_pairs=2, seed=2)
    np.testing.assert_array_equal(resumed.mean, straight.mean)
    # Python's own SIGINT handling is back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_geovi_runs_and_equals_mgvi_on_a_linear_problem(rng):
    x = inf.unstructured(8)
    A = inf.matrix_operator(x, x, rng.standard_normal((8, 8)))
    data = A(rng.standard_normal(8)) + 0.2 * rng.standard_normal(8)
    ham = inf.standard_hamiltonian(inf.gaussian_likelihood(data, noise_std=0.2), A)
    mgvi = inf.optimize_kl(ham, global_iterations=2, sample_pairs=3, seed=4)
    geovi = inf.optimize_kl(ham, global_iterations=2, sample_pairs=3, seed=4, method="geovi")
    np.testing.assert_allclose(geovi.mean, mgvi.mean, rtol=1e-6, atol=1e-8)
    assert geovi.reports[0]["nonlinear_sampling"]
    with pytest.raises(ValueError, match="method"):
        inf.optimize_kl(ham, method="hmc")


def test_hamiltonian_gradient_and_metric(rng):
    ham = problem()
    xi = 0.1 * rng.standard_normal(30)
    value, grad = ham.gradient(xi)
    h = 1e-6
    v = rng.standard_normal(30)
    fd = (ham.energy(xi + h * v) - ham.energy(xi - h * v)) / (2 * h)
    assert grad @ v == pytest.approx(fd, rel=1e-6)
    metric = ham.metric(xi)
    assert inf.check_linear_operator(metric).passed
    assert metric.times(v) @ v > v @ v  # M = J^T F J + 1 > 1


def test_communicators_without_an_mpi_launcher_are_this_process_alone():
    alone, world = inf.Communicator(), inf.Communicator.world()
    for c in (alone, world):  # pytest is not started by mpirun: world() is one process
        assert (c.rank, c.size, c.is_root) == (0, 1, True)
        assert c.sum(2.5) == 2.5 and c.share(7) == (0, 7)
        c.barrier()
    assert repr(world) == "Communicator(rank=0, size=1)"
    rng = np.random.default_rng(2)
    x = inf.regular_grid([20])
    R = inf.matrix_operator(x, x, np.eye(20) + 0.1 * rng.standard_normal((20, 20)))
    ham = inf.standard_hamiltonian(inf.gaussian_likelihood(rng.standard_normal(20), noise_std=0.5), R)
    runs = [inf.optimize_kl(ham, global_iterations=2, sample_pairs=3, seed=1, communicator=c)
            for c in (None, alone, world)]
    for r in runs[1:]:
        assert np.array_equal(r.samples.mean, runs[0].samples.mean)
    with pytest.raises(TypeError, match="communicator must be an infield.Communicator"):
        inf.optimize_kl(ham, global_iterations=1, communicator="world")
    with pytest.raises(TypeError, match="communicator"):
        inf.Mkde(cells=16, communicator=3).fit(rng.standard_normal((50, 1)))


@pytest.mark.skipif(not inf.Communicator.mpi_supported() or shutil.which("mpiexec") is None,
                    reason="built without MPI, or no mpiexec")
def test_an_uncaught_exception_on_one_rank_ends_every_rank(tmp_path):
    # Rank 1 raises while rank 0 waits for it in a barrier: the job must end (non-zero) within
    # seconds instead of hanging.
    script = tmp_path / "one_rank_fails.py"
    script.write_text(
        "import infield as inf\n"
        "comm = inf.Communicator.world()\n"
        "assert comm.size == 2\n"
        "if comm.rank == 1:\n"
        "    raise ValueError('rank 1 fails')\n"
        "comm.barrier()\n")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_mpi_yield_when_idle="1")
    start = time.monotonic()
    run = subprocess.run([shutil.which("mpiexec"), "-n", "2", "--oversubscribe", sys.executable,
                          str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert time.monotonic() - start < 30
    assert "rank 1 fails" in run.stderr
    assert "uncaught exception on rank 1 of 2: ending every rank" in run.stderr

"""Operators from Python: composition and arithmetic against numpy, pointwise methods,
linearize, the consistency checks, and operators written in Python (including a wrong VJP that
check_jacobian must catch, errors raised in callbacks, and use from oneTBB's threads)."""

import numpy as np
import pytest

import infield as inf


@pytest.fixture
def setup(rng):
    x, y = inf.regular_grid([20]), inf.unstructured(12)
    R_np = rng.standard_normal((12, 20))
    A_np = rng.standard_normal((20, 20))
    return x, y, R_np, A_np, inf.matrix_operator(x, y, R_np), inf.matrix_operator(x, x, A_np)


def test_composition_and_arithmetic_match_numpy(setup, rng):
    x, y, R_np, A_np, R, A = setup
    v = rng.standard_normal(20)
    assert isinstance(R @ A, inf.LinearOperator)
    np.testing.assert_allclose((R @ A)(v), R_np @ A_np @ v, rtol=1e-12)
    np.testing.assert_allclose((A + A)(v), 2 * A_np @ v, rtol=1e-12)
    np.testing.assert_allclose((A - 0.5 * A)(v), 0.5 * A_np @ v, rtol=1e-12)
    np.testing.assert_allclose((-A)(v), -A_np @ v, rtol=1e-12)
    np.testing.assert_allclose((A * 3.0)(v), 3 * A_np @ v, rtol=1e-12)
    np.testing.assert_allclose((A.exp() * A)(v), np.exp(A_np @ v) * (A_np @ v), rtol=1e-12)
    np.testing.assert_allclose((A + 1.5)(v), A_np @ v + 1.5, rtol=1e-12)
    np.testing.assert_allclose((A - np.arange(20.0))(v), A_np @ v - np.arange(20.0), rtol=1e-12)
    np.testing.assert_allclose(R.adjoint_times(np.ones(12)), R_np.T @ np.ones(12), rtol=1e-12)
    np.testing.assert_allclose(R.T(np.ones(12)), R_np.T @ np.ones(12), rtol=1e-12)
    np.testing.assert_allclose(A.inverse_times(A(v)), v, rtol=1e-9)
    s = A_np @ v
    for method, f in [("exp", np.exp), ("tanh", np.tanh), ("sigmoid", lambda t: 1 / (1 + np.exp(-t))),
                      ("softplus", lambda t: np.log1p(np.exp(t)))]:
        np.testing.assert_allclose(getattr(A, method)()(v), f(s), rtol=1e-12, err_msg=method)
    pos = A.exp()
    np.testing.assert_allclose(pos.log()(v), s, rtol=1e-10)
    np.testing.assert_allclose(pos.sqrt()(v), np.exp(s / 2), rtol=1e-12)
    np.testing.assert_allclose(pos.power(3)(v), np.exp(3 * s), rtol=1e-12)
    assert not A.exp().is_linear and A.is_linear


def test_linearize_returns_value_and_jacobian(setup, rng):
    x, y, R_np, A_np, R, A = setup
    v, dv = rng.standard_normal(20), rng.standard_normal(20)
    value, jac = (R @ A.tanh()).linearize(v)
    np.testing.assert_allclose(value, R_np @ np.tanh(A_np @ v), rtol=1e-12)
    expected = R_np @ ((1 - np.tanh(A_np @ v) ** 2) * (A_np @ dv))
    np.testing.assert_allclose(jac.times(dv), expected, rtol=1e-10)
    assert isinstance(jac, inf.LinearOperator)


def test_checks_report_pass_and_fail(setup, rng):
    x, y, R_np, A_np, R, A = setup
    report = inf.check_jacobian(R @ A.exp(), 0.1 * rng.standard_normal(20))
    assert report.passed and bool(report) and report.details
    assert inf.check_linear_operator(R).passed
    # A linear operator whose adjoint is wrong fails the check, with a reason.
    bad = inf.make_linear_operator(x, y, times=lambda v: R_np @ v,
                                   adjoint_times=lambda u: 1.01 * R_np.T @ u, name="BadAdjoint")
    report = inf.check_linear_operator(bad)
    assert not report.passed and report.failures
    assert "passed" in report.to_dict()


def saturate(x):
    return inf.make_operator(x, x, value=lambda s: s / (1 + s), jvp=lambda s, v: v / (1 + s) ** 2,
                             vjp=lambda s, u: u / (1 + s) ** 2, name="Saturate")


def test_python_operator_matches_and_composes(setup, rng):
    x, y, R_np, A_np, R, A = setup
    sat = saturate(x)
    s = rng.uniform(0.1, 2.0, 20)
    np.testing.assert_allclose(sat(s), s / (1 + s))
    assert sat.name == "Saturate"
    assert inf.check_jacobian(sat @ A.exp(), 0.1 * rng.standard_normal(20)).passed
    assert inf.check_jacobian(R @ sat @ A.exp(), 0.1 * rng.standard_normal(20)).passed


def test_python_operator_with_a_wrong_vjp_fails_check_jacobian(setup, rng):
    x = setup[0]
    wrong = inf.make_operator(x, x, value=lambda s: s / (1 + s), jvp=lambda s, v: v / (1 + s) ** 2,
                              vjp=lambda s, u: u / (1 + s), name="WrongVjp")
    report = inf.check_jacobian(wrong, rng.uniform(0.1, 2.0, 20))
    assert not report.passed
    assert any("adjoint" in f.lower() for f in report.failures), report.summary()


def test_errors_in_python_callbacks_become_python_exceptions(setup, rng):
    x = setup[0]

    def broken(s):
        raise ValueError("instrument offline")

    op = inf.make_operator(x, x, value=broken, jvp=lambda s, v: v, vjp=lambda s, u: u, name="Broken")
    with pytest.raises(RuntimeError, match="Broken.value raised.*instrument offline"):
        op(np.zeros(20))
    short = inf.make_operator(x, x, value=lambda s: s[:5], jvp=lambda s, v: v, vjp=lambda s, u: u,
                              name="Short")
    with pytest.raises(RuntimeError, match=r"Short.value.*shape \(20,\).*\(5,\)"):
        short(np.zeros(20))


def test_python_operator_in_mgvi_on_worker_threads(setup, rng):
    # optimize_kl runs samples on oneTBB threads with the GIL released; the Python operator takes
    # the GIL per call. The result must not depend on the thread count.
    x, y, R_np, A_np, R, A = setup
    model = R @ saturate(x) @ (0.1 * A).exp()
    data = model(rng.standard_normal(20)) + 0.05 * rng.standard_normal(12)
    ham = inf.standard_hamiltonian(inf.gaussian_likelihood(data, noise_std=0.05), model)
    one = inf.optimize_kl(ham, global_iterations=2, sample_pairs=3, seed=1, threads=1)
    two = inf.optimize_kl(ham, global_iterations=2, sample_pairs=3, seed=1, threads=2)
    np.testing.assert_allclose(one.mean, two.mean, rtol=0, atol=1e-12)


def test_bad_operator_arguments(setup):
    x, y, R_np, A_np, R, A = setup
    with pytest.raises(ValueError):
        inf.matrix_operator(x, y, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="mask"):
        inf.mask_operator(x, np.ones(7, dtype=bool))
    with pytest.raises(ValueError):
        R @ R  # target 12 points, domain a grid of 20
    with pytest.raises(TypeError):
        inf.check_linear_operator(A.exp())

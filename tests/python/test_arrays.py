"""Domains, spaces and fields as numpy arrays: shapes, MultiFields as dicts, no copies on the
way out, and the errors for shapes, keys, dtypes and non-finite values."""

import numpy as np
import pytest

import infield as inf


def test_domains_and_spaces():
    g = inf.regular_grid([4, 6])
    assert g.shape == (4, 6) and g.size == 24
    assert g.distances == pytest.approx([0.25, 1 / 6])
    u = inf.unstructured(5)
    assert u.shape == (5,) and u.distances is None
    p = inf.product(u, g)
    assert p.shape == (5, 4, 6) and p.size == 120 and not p.is_multi
    m = inf.multi_domain({"b": g, "a": [u, u]})
    assert m.is_multi and m.keys() == ["a", "b"]
    assert m.shape == {"a": (5, 5), "b": (4, 6)}
    assert m["b"] == g
    assert inf.regular_grid([4, 6]) == g and not (inf.regular_grid([4, 7]) == g)


def test_fields_round_trip_with_shapes_and_dicts(rng):
    g = inf.regular_grid([3, 5])
    ident = inf.identity_operator(g)
    x = rng.standard_normal((3, 5))
    y = ident(x)
    assert y.shape == (3, 5) and y.dtype == np.float64
    np.testing.assert_array_equal(y, x)
    # Integer and boolean arrays are converted to float64.
    np.testing.assert_array_equal(ident(np.arange(15).reshape(3, 5)), np.arange(15).reshape(3, 5))
    m = inf.multi_domain({"a": inf.unstructured(2), "b": g})
    mf = {"a": np.array([1.0, 2.0]), "b": x}
    out = inf.identity_operator(m)(mf)
    assert set(out) == {"a", "b"}
    np.testing.assert_array_equal(out["b"], x)


def test_results_are_not_copied():
    # The returned array views the C++ result (its owner is the base object), not a copy.
    out = inf.identity_operator(inf.unstructured(4))(np.ones(4))
    assert out.base is not None and not out.flags.owndata


def test_wrong_shapes_keys_and_dtypes_raise_with_clear_messages(rng):
    g = inf.regular_grid([3, 5])
    ident = inf.identity_operator(g)
    with pytest.raises(ValueError, match=r"expected an array of shape \(3, 5\).*got shape \(5, 3\)"):
        ident(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"shape \(3, 5\)"):
        ident(np.zeros(15))
    with pytest.raises(TypeError, match="real numbers"):
        ident(np.zeros((3, 5), dtype=complex))
    with pytest.raises(TypeError, match="real numbers"):
        ident(np.full((3, 5), "a"))
    with pytest.raises(TypeError):
        ident({"a": np.zeros((3, 5))})
    m = inf.multi_domain({"a": inf.unstructured(2), "b": g})
    mident = inf.identity_operator(m)
    with pytest.raises(ValueError, match="key 'b' is missing"):
        mident({"a": np.zeros(2)})
    with pytest.raises(ValueError, match="unknown key 'c'"):
        mident({"a": np.zeros(2), "b": np.zeros((3, 5)), "c": np.zeros(1)})
    with pytest.raises(TypeError, match="dict of arrays"):
        mident(np.zeros(17))
    with pytest.raises(TypeError):
        inf.identity_operator("not a space")


def test_non_finite_values_are_refused_where_cpp_checks_them():
    # The C++ message arrives unchanged as a ValueError.
    d = np.zeros(4)
    d[2] = np.nan
    lh = inf.gaussian_likelihood(d, noise_std=1.0)
    with pytest.raises(ValueError, match="gaussian_likelihood: data"):
        inf.standard_hamiltonian(lh, inf.identity_operator(inf.unstructured(4)))
    ham = inf.standard_hamiltonian(inf.gaussian_likelihood(np.zeros(4), noise_std=1.0),
                                   inf.identity_operator(inf.unstructured(4)))
    with pytest.raises(ValueError, match="initial|position"):
        inf.optimize_kl(ham, np.array([0.0, np.inf, 0.0, 0.0]), global_iterations=1)
    with pytest.raises(ValueError, match="noise_std"):
        inf.standard_hamiltonian(inf.gaussian_likelihood(np.zeros(4), noise_std=-1.0),
                                 inf.identity_operator(inf.unstructured(4)))
    with pytest.raises(ValueError, match="x"):
        inf.check_jacobian(inf.exp(inf.unstructured(2)), np.array([0.0, np.nan]))


def test_normal_is_seeded():
    s = inf.multi_domain({"a": inf.unstructured(3)})
    a, b = inf.normal(s, seed=1), inf.normal(s, seed=1)
    np.testing.assert_array_equal(a["a"], b["a"])
    assert not np.array_equal(a["a"], inf.normal(s, seed=2)["a"])

"""Models from Python: the correlated field against NIFTy 8.5.7's own numbers (tests/data/
cf-forward), MKDE fit / logpdf / sample / save / load, and FisherNet / VAE training on arrays."""

import json

import numpy as np
import pytest

import infield as inf


@pytest.mark.parametrize("case", ["sq64", "line4096", "cube32"])
def test_correlated_field_maker_gives_niftys_field(source_dir, case):
    ref = source_dir / "tests" / "data" / "cf-forward" / case
    meta = json.loads((ref / "meta.json").read_text())
    hp = meta["hyperparameters"]
    grid = inf.regular_grid(meta["shape"])
    cfmaker = inf.CorrelatedFieldMaker("cf")
    cfmaker.add_fluctuations(grid, fluctuations=hp["fluctuations"], flexibility=hp["flexibility"],
                             asperity=hp["asperity"], loglogavgslope=hp["loglogavgslope"])
    cfmaker.set_amplitude_total_offset(hp["offset_mean"], hp["offset_std"])
    field = cfmaker.finalize()
    assert sorted(field.domain.keys()) == sorted(meta["keys"])
    excitations = {key: np.load(ref / f"{key}.npy") for key in meta["keys"]}
    expected = np.load(ref / "field.npy")
    np.testing.assert_allclose(field(excitations), expected, rtol=1e-10,
                               atol=1e-10 * np.abs(expected).max())
    power = cfmaker.power_spectrum(excitations)
    np.testing.assert_allclose(power, np.load(ref / "power.npy"), rtol=1e-10)
    np.testing.assert_allclose(cfmaker.power_space(0).k, np.load(ref / "k.npy"), rtol=1e-12)


def test_correlated_field_maker_errors():
    cfmaker = inf.CorrelatedFieldMaker("")
    with pytest.raises(ValueError, match="finalize"):
        cfmaker.power_spectrum
    with pytest.raises(ValueError):
        cfmaker.finalize()  # no sub-domain
    with pytest.raises(TypeError):
        cfmaker.add_fluctuations(inf.product(inf.regular_grid([4])), (1, 1), None, None, (-3, 1))


def test_mkde_fits_scores_samples_and_round_trips(tmp_path):
    rng = np.random.default_rng(5)
    points = np.concatenate([rng.normal(-1.5, 0.4, 300), rng.normal(1.0, 0.6, 300)])[:, None]
    kde = inf.Mkde(cells=64, global_iterations=3, sample_pairs=3, seed=1).fit(points)
    assert kde.dimensions == 1
    grid = np.linspace(-3.5, 3.5, 200)[:, None]
    density = np.exp(kde.logpdf(grid))
    # A density: it integrates to about one over the box and is higher at the modes than between.
    assert density.sum() * (grid[1, 0] - grid[0, 0]) == pytest.approx(1.0, abs=0.05)
    assert kde.logpdf([[-1.5]])[0] > kde.logpdf([[-0.3]])[0]
    draws = kde.sample(2000, seed=2)
    assert draws.shape == (2000, 1)
    assert abs(draws.mean() - points.mean()) < 4 * points.std() / np.sqrt(2000) + 0.05
    kde.save(tmp_path / "kde")
    loaded = inf.Mkde.load(tmp_path / "kde")
    np.testing.assert_allclose(loaded.logpdf(grid), kde.logpdf(grid), rtol=1e-12)
    with pytest.raises(ValueError, match="columns"):
        kde.logpdf(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="fit"):
        inf.Mkde().logpdf([[0.0]])
    with pytest.raises(OSError):
        inf.Mkde.load(tmp_path / "missing")


@pytest.mark.parametrize("model", ["fishernet", "vae"])
def test_autoencoder_trains_on_arrays(model):
    rng = np.random.default_rng(3)
    basis = rng.standard_normal((3, 36))
    images = 1 / (1 + np.exp(-rng.standard_normal((256, 3)) @ basis))
    epochs = []
    net = inf.train_autoencoder(images, model=model, latent=2, hidden=(32, 32), epochs=30,
                                batch=32, learning_rate=2e-3, noise_learning_rate=2e-2, seed=1,
                                on_epoch=epochs.append)
    assert [e["epoch"] for e in epochs] == list(range(1, 31))
    history = net.history
    assert history[-1]["test_mse"] < history[0]["test_mse"]
    # Better than the mean image (whose MSE is the pixels' mean variance).
    assert history[-1]["test_mse"] < images.var(axis=0).mean()
    means, covariances = net.encode(images[:10])
    assert means.shape == (10, 2) and covariances.shape == (10, 2, 2)
    assert np.all(np.linalg.eigvalsh(covariances) > 0)
    assert net.decode(means).shape == (10, 36)
    assert net.test_mse(images) == pytest.approx(history[-1]["test_mse"], rel=1e-5)
    with pytest.raises(ValueError, match="pixels"):
        net.encode(np.zeros((3, 35)))
    with pytest.raises(ValueError, match="non-finite"):
        inf.train_autoencoder(np.full((8, 36), np.nan), latent=2, hidden=(8,))

"""infield.plot: every figure is written as PNG and SVG, with labelled axes."""

import numpy as np
import pytest

import infield as inf


def labels_of(fig):
    return [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_every_plot_writes_png_and_svg_with_labels(tmp_path):
    plot = inf.plot
    rng = np.random.default_rng(0)
    mean, std = rng.random((16, 16)), 0.1 * rng.random((16, 16))
    mask = rng.random((16, 16)) > 0.3
    k = np.arange(0, 12.0)
    spectra = np.exp(-np.outer(1 + 0.1 * rng.random(8), np.log1p(k)))
    means = rng.standard_normal((300, 2))
    covs = np.tile(0.05 * np.eye(2), (300, 1, 1))
    figures = {
        "field": plot.field(mean, label="signal"),
        "panels": plot.posterior_panels(mean, std, data=mean[mask], mask=mask, truth=mean),
        "power": plot.power_spectrum(k, spectra, truth=spectra[0]),
        "power_mean": plot.power_spectrum(k, mean=spectra.mean(0), std=spectra.std(0)),
        "posterior_1d": plot.posterior_1d(np.arange(10), mean[0, :10], std[0, :10],
                                          data=(np.arange(10), mean[0, :10])),
        "samples_1d": plot.posterior_1d(np.arange(10), samples=mean[:5, :10]),
        "latents": plot.latent_scatter(means, covs, rng.integers(0, 10, 300),
                                       class_names=[f"c{i}" for i in range(10)]),
    }
    for name, fig in figures.items():
        for xlabel, ylabel in labels_of(fig):
            assert xlabel and ylabel, name
        plot.save(fig, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    fig = plot.field(mean)
    plot.save(fig, tmp_path / "field.svg")
    assert (tmp_path / "field.svg").read_text().startswith("<?xml")
    with pytest.raises(ValueError, match="png or .svg"):
        plot.save(plot.field(mean), tmp_path / "field.jpg")
    with pytest.raises(ValueError, match="1D or 2D"):
        plot.field(np.zeros((2, 2, 2)))

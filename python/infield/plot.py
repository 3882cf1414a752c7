"""Figures of fields, posteriors, power spectra and latent spaces (matplotlib).

Every function draws into a new figure (or the axes given as ``ax``), labels its axes and returns
the figure; ``save(fig, path)`` writes PNG or SVG by the file's extension. Nothing is shown on
screen: the Agg backend is used unless another one was chosen before the import.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import matplotlib

if matplotlib.get_backend().lower() not in ("agg", "svg", "pdf", "module://matplotlib_inline.backend_inline"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

__all__ = ["field", "posterior_panels", "power_spectrum", "posterior_1d", "latent_scatter", "save"]


def _axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def field(values, ax=None, *, title: str = "", label: str = "value", extent=None, cmap="viridis",
          vmin=None, vmax=None, xlabel="x", ylabel="y"):
    """A 2D field as an image with a colour bar (``label`` names its values), or a 1D field as a
    line. ``extent`` = (x0, x1, y0, y1) in physical units (default: the unit box, as a regular
    grid's default distances)."""
    values = np.asarray(values, dtype=float)
    fig, ax = _axes(ax, (5, 4.2))
    if values.ndim == 1:
        ax.plot(np.linspace(0, 1, values.size, endpoint=False), values)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
    elif values.ndim == 2:
        extent = (0, 1, 0, 1) if extent is None else extent
        # Axis 0 runs along x, axis 1 along y (NIFTy's convention for its plots).
        image = ax.imshow(values.T, origin="lower", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax,
                          interpolation="nearest")
        fig.colorbar(image, ax=ax, label=label, shrink=0.9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    else:
        raise ValueError(f"field: expected a 1D or 2D array, got shape {values.shape}")
    if title:
        ax.set_title(title)
    return fig


def posterior_panels(mean, std, *, data=None, mask=None, truth=None, label="signal",
                     titles=None):
    """Side-by-side panels: the truth (if given), the data (unobserved pixels blank; ``data``
    holds the observed values in the order of ``mask``'s true entries, or a full array), the
    posterior mean on the same colour scale, and the posterior standard deviation on its own."""
    mean = np.asarray(mean, dtype=float)
    panels = []
    if truth is not None:
        panels.append(("truth", np.asarray(truth, dtype=float), label))
    if data is not None:
        data = np.asarray(data, dtype=float)
        if mask is not None and data.shape != mean.shape:
            image = np.full(mean.shape, np.nan)
            image[np.asarray(mask, dtype=bool)] = data
            data = image
        panels.append(("data", data, "data"))
    panels.append(("posterior mean", mean, label))
    panels.append(("posterior std", np.asarray(std, dtype=float), f"std of {label}"))
    shared = [p[1] for p in panels[:-1]]
    lo = min(np.nanmin(v) for v in shared)
    hi = max(np.nanmax(v) for v in shared)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 4.0), layout="constrained")
    for i, (ax, (name, values, values_label)) in enumerate(zip(np.atleast_1d(axes), panels)):
        last = i == len(panels) - 1
        field(values, ax, title=titles[i] if titles else name, label=values_label,
              vmin=None if last else lo, vmax=None if last else hi,
              cmap="magma" if last else "viridis")
    return fig


def power_spectrum(k, samples=None, *, mean=None, std=None, truth=None, ax=None,
                   label="posterior", ylabel="power P(k)"):
    """Power spectra on log-log axes: the samples' median with 68% and 95% bands (``samples``:
    n_samples x n_k), or a mean with a +-1 std band; ``truth`` as a dashed line. Bin k = 0 is
    left out (no logarithm)."""
    k = np.asarray(k, dtype=float)
    keep = k > 0
    fig, ax = _axes(ax, (5.5, 4.2))
    if samples is not None:
        samples = np.asarray(samples, dtype=float)[:, keep]
        q = np.percentile(samples, [2.5, 16, 50, 84, 97.5], axis=0)
        ax.fill_between(k[keep], q[0], q[4], color="C0", alpha=0.18, lw=0, label="95%")
        ax.fill_between(k[keep], q[1], q[3], color="C0", alpha=0.35, lw=0, label="68%")
        ax.plot(k[keep], q[2], color="C0", label=f"{label} median")
    elif mean is not None:
        mean = np.asarray(mean, dtype=float)[keep]
        ax.plot(k[keep], mean, color="C0", label=f"{label} mean")
        if std is not None:
            std = np.asarray(std, dtype=float)[keep]
            ax.fill_between(k[keep], np.maximum(mean - std, mean * 1e-3), mean + std, color="C0",
                            alpha=0.3, lw=0, label="+-1 std")
    if truth is not None:
        ax.plot(k[keep], np.asarray(truth, dtype=float)[keep], "k--", label="truth")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("|k| (cycles per unit length)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(frameon=False)
    return fig


def posterior_1d(x, mean=None, std=None, *, samples=None, data=None, truth=None, ax=None,
                 xlabel="x", ylabel="signal"):
    """A 1D posterior: mean with +-1 and +-2 std bands (or the samples' 68% / 95% bands and a few
    samples as thin lines), data points (x_d, d) and the truth."""
    x = np.asarray(x, dtype=float)
    fig, ax = _axes(ax, (7, 4))
    if samples is not None:
        samples = np.asarray(samples, dtype=float)
        q = np.percentile(samples, [2.5, 16, 50, 84, 97.5], axis=0)
        ax.fill_between(x, q[0], q[4], color="C0", alpha=0.18, lw=0, label="95%")
        ax.fill_between(x, q[1], q[3], color="C0", alpha=0.35, lw=0, label="68%")
        for s in samples[: min(5, len(samples))]:
            ax.plot(x, s, color="C0", lw=0.5, alpha=0.6)
        if mean is None:
            mean = samples.mean(axis=0)
    if mean is not None:
        mean = np.asarray(mean, dtype=float)
        if std is not None and samples is None:
            std = np.asarray(std, dtype=float)
            ax.fill_between(x, mean - 2 * std, mean + 2 * std, color="C0", alpha=0.18, lw=0,
                            label="+-2 std")
            ax.fill_between(x, mean - std, mean + std, color="C0", alpha=0.35, lw=0, label="+-1 std")
        ax.plot(x, mean, color="C0", lw=1.5, label="posterior mean")
    if truth is not None:
        ax.plot(x, np.asarray(truth, dtype=float), "k--", lw=1, label="truth")
    if data is not None:
        xd, d = data
        ax.plot(np.asarray(xd), np.asarray(d), "o", ms=3, color="C3", label="data")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, ncol=2)
    return fig


def latent_scatter(means, covariances=None, labels=None, *, class_names: Optional[Sequence[str]] = None,
                   ellipse_every: int = 100, ax=None, dims=(0, 1)):
    """Latent means coloured by class, with 2-sigma ellipses of the covariances for every
    ``ellipse_every``-th point, and a legend of the classes."""
    means = np.asarray(means, dtype=float)
    i, j = dims
    fig, ax = _axes(ax, (6.5, 5.5))
    labels = np.zeros(len(means), dtype=int) if labels is None else np.asarray(labels).astype(int)
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10")
    for c in classes:
        sel = labels == c
        name = class_names[c] if class_names is not None and c < len(class_names) else f"class {c}"
        ax.scatter(means[sel, i], means[sel, j], s=4, color=cmap(c % 10), alpha=0.6, label=name,
                   linewidths=0)
    if covariances is not None:
        covariances = np.asarray(covariances, dtype=float)
        for n in range(0, len(means), max(1, ellipse_every)):
            cov = covariances[n][np.ix_([i, j], [i, j])]
            w, v = np.linalg.eigh(cov)
            angle = np.degrees(np.arctan2(v[1, 1], v[0, 1]))
            ax.add_patch(Ellipse((means[n, i], means[n, j]), 4 * np.sqrt(max(w[1], 0)),
                                 4 * np.sqrt(max(w[0], 0)), angle=angle, fill=False,
                                 color=cmap(labels[n] % 10), lw=0.8))
    ax.set_xlabel(f"latent z{i + 1}")
    ax.set_ylabel(f"latent z{j + 1}")
    ax.legend(frameon=False, markerscale=3, fontsize="small", loc="center left",
              bbox_to_anchor=(1.01, 0.5))
    return fig


def save(fig, path, dpi: int = 120) -> None:
    """Writes the figure as PNG or SVG (by the extension) and closes it."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in (".png", ".svg"):
        raise ValueError(f"save: {path} must end in .png or .svg")
    fig.savefig(path, dpi=dpi)
    plt.close(fig)

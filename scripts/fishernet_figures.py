#!/usr/bin/env python3
"""Figures of the FisherNet study (scripts/reproduce_fishernet.py) from its outputs in RUNS: test
MSE against D (paper Figs. 2-3), training curves, Fréchet distances against D (Table 1), latent
scatter at D = 2 with 2-sigma ellipses (Figs. 4-6), sample grids for N(0, 1) and MKDE latents
(Figs. 7-9), and the k-means overlap matrices at D = 5 (Fig. A1). PNG and SVG in RUNS/figures.

    python3 scripts/fishernet_figures.py --runs runs/reproduction
"""

import argparse
import json
import pathlib
import sys

import numpy as np

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]
MODELS = {"fishernet": ("FisherNet", "C0", "o"), "vae": ("VAE", "C1", "s"), "cvae": ("CVAE", "C2", "^")}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", required=True)
    p.add_argument("--build", default=str(pathlib.Path(__file__).resolve().parents[1] / "build" / "release"))
    args = p.parse_args()
    sys.path.insert(0, str(pathlib.Path(args.build) / "python"))
    import infield as inf
    import matplotlib.pyplot as plt

    runs = pathlib.Path(args.runs)
    results = json.loads((runs / "results.json").read_text())["runs"]
    out = runs / "figures"
    out.mkdir(exist_ok=True)

    def save(fig, name, dpi=130):
        fig.savefig(out / f"{name}.png", dpi=dpi)
        fig.savefig(out / f"{name}.svg")
        plt.close(fig)

    def by_model(key):
        series = {}
        for r in results.values():
            if key in r:
                series.setdefault(r["model"], []).append((r["latent"], r[key]))
        return {m: sorted(v) for m, v in series.items()}

    # Test MSE against D.
    fig, ax = plt.subplots(figsize=(6, 4.2), layout="constrained")
    for model, points in by_model("test_mse").items():
        label, colour, marker = MODELS[model]
        d, v = zip(*points)
        ax.plot(d, v, marker=marker, color=colour, label=label)
    ax.set_xlabel("latent dimension D")
    ax.set_ylabel("test MSE per pixel")
    ax.set_xticks(sorted({r["latent"] for r in results.values()}))
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    save(fig, "mse_vs_latent")

    # Training curves.
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for name, r in sorted(results.items(), key=lambda kv: (kv[1]["model"], kv[1]["latent"])):
        label, colour, marker = MODELS[r["model"]]
        e = [h["epoch"] for h in r["history"]]
        v = [h["test_mse"] for h in r["history"]]
        alpha = 0.35 + 0.65 * (r["latent"] / 20)
        ax.plot(e, v, color=colour, alpha=min(alpha, 1.0), label=f"{label} D={r['latent']}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test MSE per pixel")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize="small", ncol=3)
    save(fig, "training_curves")

    # Fréchet distances against D.
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True, layout="constrained")
    for ax, model in zip(axes, ["fishernet", "vae", "cvae"]):
        label, colour, marker = MODELS[model]
        for key, style, name in (("fd_rec", "-", "reconstructions"), ("fd_sample", "--", "N(0, 1) samples"),
                                 ("fd_mkde", ":", "MKDE samples")):
            points = by_model(key).get(model)
            if points:
                d, v = zip(*points)
                ax.plot(d, v, style, marker=marker, color=colour, label=name)
        ax.set_title(label)
        ax.set_xlabel("latent dimension D")
        ax.set_xticks(sorted({r["latent"] for r in results.values()}))
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize="small")
    axes[0].set_ylabel("Fréchet distance (our classifier's features)")
    save(fig, "frechet_vs_latent")

    # Latent scatter at D = 2 with 2-sigma ellipses.
    for model in MODELS:
        run = runs / f"{model}_d2"
        if not (run / "test_means.npy").exists():
            continue
        labels = np.load(runs / "test_labels.npy")
        means = np.load(run / "test_means.npy")
        covs = np.load(run / "test_covariances.npy")
        fig = inf.plot.latent_scatter(means, covs, labels, class_names=CLASSES, ellipse_every=100)
        fig.axes[0].set_title(f"{MODELS[model][0]}, D = 2: test latent means, 2-sigma ellipses")
        save(fig, f"latent_scatter_{model}")

    # Sample grids.
    def grid(images, rows=8, cols=8):
        side = int(round(np.sqrt(images.shape[1])))
        tiles = images[: rows * cols].reshape(rows, cols, side, side)
        return tiles.transpose(0, 2, 1, 3).reshape(rows * side, cols * side)

    for d in (2, 5, 15):
        kinds = [(m, "samples_gaussian.npy", f"{MODELS[m][0]}, N(0, 1)") for m in MODELS] + \
                [(m, "samples_mkde.npy", f"{MODELS[m][0]}, MKDE") for m in MODELS]
        panels = [(runs / f"{m}_d{d}" / f, t) for m, f, t in kinds if (runs / f"{m}_d{d}" / f).exists()]
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), layout="constrained")
        for ax, (path, title) in zip(np.atleast_1d(axes), panels):
            ax.imshow(grid(np.load(path)), cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(title, fontsize="medium")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"decoded latent samples, D = {d} (8 x 8 of 10^4)")
        save(fig, f"samples_d{d}", dpi=80)  # the images' own pixels, not finer

    # k-means overlap at D = 5.
    models = [m for m in MODELS if (runs / f"{m}_d5" / "kmeans_overlap.npy").exists()]
    if models:
        fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.8), layout="constrained")
        for ax, model in zip(np.atleast_1d(axes), models):
            m = np.load(runs / f"{model}_d5" / "kmeans_overlap.npy")
            image = ax.imshow(100 * m, cmap="viridis", vmin=0, vmax=100)
            for i in range(10):
                for j in range(10):
                    if m[i, j] >= 0.05:
                        ax.text(j, i, f"{100 * m[i, j]:.0f}", ha="center", va="center", fontsize=7,
                                color="white" if m[i, j] < 0.6 else "black")
            ax.set_xticks(range(10))
            ax.set_yticks(range(10), CLASSES, fontsize="small")
            ax.set_xlabel("k-means cluster (ordered to maximise the trace)")
            ax.set_title(f"{MODELS[model][0]}, D = 5: trace {np.trace(m):.2f}")
        fig.colorbar(image, ax=axes, label="% of the class in the cluster", shrink=0.8)
        save(fig, "kmeans_overlap_d5")
    print(f"figures in {out}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The FisherNet paper's study (Zacherl et al., Entropy 2021, sections 3.3-3.4, Table 1, Appendix
B) with Infield: FisherNet, VAE and CVAE for D = 2, 5, 10, 15, 20 with the paper's hyperparameters
(Appendix A: Adam 1e-4, batch 64), and per run the test MSE, the Fréchet distances of test
reconstructions, of 10^4 decoded N(0, 1) latents and (D = 2, 5) of latents drawn from an MKDE of
the test latents, on the features of our own classifier (`infield classifier train`), and the
k-means cluster trace of Appendix B. Writes RUNS/results.json and the figures
(scripts/fishernet_figures.py).

Resumable: every step checks for its output first; a killed study re-run continues where it
stopped (training resumes from its last epoch's checkpoint) without retraining finished runs.

    bash scripts/reproduce-fishernet.sh              # the budget below, about 40 min on 2 cores
    python3 scripts/reproduce_fishernet.py --epochs 40 --cvae-epochs 20 --cvae-latents 2,5,10,15,20

Needs the build (build/release: the infield program and the Python package) and
data/fashion-mnist (scripts/fetch-fashion-mnist.sh).
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(args):
    subprocess.run([str(a) for a in args], check=True)


def kmeans(points, k, seed, restarts=10, iterations=300):
    """Lloyd's algorithm with k-means++ seeding; the best of `restarts` by inertia."""
    rng = np.random.default_rng(seed)
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        centres = [points[rng.integers(len(points))]]
        for _ in range(1, k):
            d2 = np.min(((points[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
            centres.append(points[rng.choice(len(points), p=d2 / d2.sum())])
        centres = np.array(centres)
        for _ in range(iterations):
            assign = np.argmin(((points[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
            new = np.array([points[assign == j].mean(0) if np.any(assign == j) else centres[j]
                            for j in range(k)])
            if np.allclose(new, centres):
                break
            centres = new
        inertia = ((points - centres[assign]) ** 2).sum()
        if inertia < best_inertia:
            best, best_inertia = assign, inertia
    return best


def cluster_overlap(labels, clusters, k=10):
    """Appendix B: per class the fraction of its test latents in each k-means cluster, columns
    permuted to maximise the trace (Hungarian algorithm); returns (matrix, trace)."""
    from scipy.optimize import linear_sum_assignment

    m = np.zeros((k, k))
    for c in range(k):
        sel = labels == c
        m[c] = np.bincount(clusters[sel], minlength=k) / max(sel.sum(), 1)
    rows, cols = linear_sum_assignment(-m)
    permuted = m[:, cols[np.argsort(rows)]]
    return permuted, float(np.trace(permuted))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default=str(ROOT / "runs" / "reproduction"))
    p.add_argument("--data", default=str(ROOT / "data" / "fashion-mnist"))
    p.add_argument("--build", default=str(ROOT / "build" / "release"))
    p.add_argument("--latents", default="2,5,10,15,20")
    p.add_argument("--epochs", type=int, default=10, help="epochs of FisherNet and the VAE")
    p.add_argument("--cvae-epochs", type=int, default=5)
    p.add_argument("--cvae-latents", default="2,5", help="the CVAE's latent sizes (it is slow)")
    p.add_argument("--classifier-epochs", type=int, default=6)
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--classifier", default=None,
                   help="an existing classifier directory to measure with (default: RUNS/classifier, "
                        "trained here); distances of several seeds compare only on one classifier")
    args = p.parse_args()

    build = pathlib.Path(args.build)
    sys.path.insert(0, str(build / "python"))
    import infield as inf

    cli = build / "apps" / "infield"
    runs = pathlib.Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timings_file = runs / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}

    def timed(name, fn):
        # Compute time per step, summed over invocations (a resumed step adds its remainder).
        t = time.perf_counter()
        fn()
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t
        timings_file.write_text(json.dumps(timings, indent=1))

    # The feature extractor of the distances.
    cls = pathlib.Path(args.classifier) if args.classifier else runs / "classifier"
    metrics = cls / "metrics.json"
    if args.classifier and not metrics.exists():
        sys.exit(f"reproduce_fishernet: {cls} holds no classifier (no metrics.json)")
    if not args.classifier and (not metrics.exists() or
                                json.loads(metrics.read_text())["epochs"] < args.classifier_epochs):
        log(f"classifier: training {args.classifier_epochs} epochs")
        timed("classifier", lambda: run([cli, "classifier", "train", "--data", args.data, "--out", cls,
                                         "--epochs", args.classifier_epochs, "--threads", args.threads,
                                         "--seed", args.seed, "--quiet"]
                                        + (["--resume"] if (cls / "checkpoint.npy").exists() else [])))
    accuracy = json.loads(metrics.read_text())["test_accuracy"]
    log(f"classifier test accuracy {accuracy:.4f}")

    test_images, test_labels = inf.read_image_dataset(args.data, "t10k")
    test_npy = runs / "test_images.npy"
    if not test_npy.exists():
        np.save(test_npy, test_images)
        np.save(runs / "test_labels.npy", np.asarray(test_labels))

    def frechet(images_npy, out_json):
        if not out_json.exists():
            run([cli, "frechet", "--classifier", cls, "--images", images_npy, "--reference",
                 test_npy, "--out", out_json, "--threads", args.threads])
        return json.loads(out_json.read_text())["frechet_distance"]

    latents = [int(d) for d in args.latents.split(",")]
    cvae_latents = [int(d) for d in args.cvae_latents.split(",") if d]
    plan = [(m, d) for d in latents for m in ("fishernet", "vae")] + \
           [("cvae", d) for d in cvae_latents]
    results = {"classifier_test_accuracy": accuracy, "epochs": args.epochs,
               "cvae_epochs": args.cvae_epochs, "runs": {}}
    for model, d in plan:
        name = f"{model}_d{d}"
        out = runs / name
        epochs = args.cvae_epochs if model == "cvae" else args.epochs
        done = out / "metrics.csv"
        if not done.exists() or len(done.read_text().strip().splitlines()) - 1 < epochs:
            log(f"{name}: training to {epochs} epochs")
            timed(f"train_{name}", lambda: run(
                [cli, "fishernet", "train", "--model", model, "--latent", d, "--epochs", epochs,
                 "--seed", args.seed, "--threads", args.threads, "--data", args.data, "--out", out,
                 "--quiet"] + (["--resume"] if (out / "checkpoint.npy").exists() else [])))
        net = inf.Autoencoder.load(str(out / "checkpoint.npy"))
        r = {"model": model, "latent": d, "epochs": epochs}
        lines = done.read_text().strip().splitlines()
        header = lines[0].split(",")
        history = [dict(zip(header, map(float, line.split(",")))) for line in lines[1:]]
        r["test_mse"] = history[-1]["test_mse"]
        r["history"] = history
        means, covariances = net.encode(test_images)
        np.save(out / "test_means.npy", means)
        np.save(out / "test_covariances.npy", covariances)
        recon = out / "reconstructions.npy"
        if not recon.exists():
            np.save(recon, np.clip(net.decode(means), 0, 1))
        r["fd_rec"] = frechet(recon, out / "fd_rec.json")
        gauss = out / "samples_gaussian.npy"
        if not gauss.exists():
            z = np.random.default_rng(args.seed).standard_normal((args.samples, d))
            np.save(gauss, np.clip(net.decode(z), 0, 1))
        r["fd_sample"] = frechet(gauss, out / "fd_sample.json")
        if d <= 5:
            mkde_samples = out / "samples_mkde.npy"
            if not mkde_samples.exists():
                log(f"{name}: MKDE of the test latents")
                t = time.perf_counter()
                kde = inf.Mkde(cells=64 if d <= 2 else 8, seed=args.seed, threads=args.threads).fit(means)
                z = kde.sample(args.samples, seed=args.seed)
                np.save(out / "mkde_latents.npy", z)
                np.save(mkde_samples, np.clip(net.decode(z), 0, 1))
                timings[f"mkde_{name}"] = time.perf_counter() - t
                timings_file.write_text(json.dumps(timings, indent=1))
            r["fd_mkde"] = frechet(mkde_samples, out / "fd_mkde.json")
        overlap, trace = cluster_overlap(np.asarray(test_labels), kmeans(means, 10, args.seed))
        np.save(out / "kmeans_overlap.npy", overlap)
        r["cluster_trace"] = trace
        results["runs"][name] = r
        log(f"{name}: test MSE {r['test_mse']:.5f}, FD rec {r['fd_rec']:.2f}, sample "
            f"{r['fd_sample']:.2f}" + (f", MKDE {r['fd_mkde']:.2f}" if "fd_mkde" in r else "")
            + f", cluster trace {trace:.2f}")

    results["timings_s"] = timings
    results["total_compute_s"] = sum(timings.values())
    results["this_invocation_s"] = time.perf_counter() - started
    (runs / "results.json").write_text(json.dumps(results, indent=1))
    log(f"results in {runs / 'results.json'}; figures next")
    run([sys.executable, ROOT / "scripts" / "fishernet_figures.py", "--runs", runs,
         "--build", build])


if __name__ == "__main__":
    main()

#include "matplotlib_figures.h"

#include <fmt/core.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace infield::apps {
namespace {

namespace fs = std::filesystem;

// The drawing script, run as `python3 SCRIPT run RUN` or `python3 SCRIPT report OUT EPOCH RUN...`.
// It needs numpy and matplotlib only (not the infield package). Exit status 3: no matplotlib.
constexpr const char* kScript = R"PY(
import json, os, sys
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse
    from matplotlib.ticker import MaxNLocator
    import numpy as np
except ImportError:
    sys.exit(3)

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]

def history(run):
    rows = [l.strip().split(",") for l in open(os.path.join(run, "metrics.csv")) if l.strip()]
    head = rows[0]
    return [dict(zip(head, map(float, r))) for r in rows[1:]]

def config(run):
    return json.load(open(os.path.join(run, "config.json")))

def save(fig, base):
    fig.savefig(base + ".png", dpi=110)
    fig.savefig(base + ".svg")
    plt.close(fig)

def run_figures(run):
    h = history(run)
    c = config(run)
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    e = [r["epoch"] for r in h]
    ax.plot(e, [r["test_mse"] for r in h], "o-", ms=3, label="test MSE per pixel")
    ax.plot(e, [r["noise_std"] ** 2 for r in h], "--", color="grey", label="noise variance exp(zeta_N)")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("per pixel (log scale)")
    ax.set_title(f"{c.get('model', '')} D = {c.get('latent', '')}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False)
    save(fig, os.path.join(run, "mse"))
    means_file = os.path.join(run, "latent_test_mean.npy")
    if int(c.get("latent", 0)) == 2 and os.path.exists(means_file):
        means = np.load(means_file)
        covs = np.load(os.path.join(run, "latent_test_covariance.npy"))
        labels = np.load(os.path.join(run, "latent_test_labels.npy")).astype(int)
        fig, ax = plt.subplots(figsize=(6.8, 5.4), layout="constrained")
        cmap = plt.get_cmap("tab10")
        for k in np.unique(labels):
            sel = labels == k
            ax.scatter(means[sel, 0], means[sel, 1], s=3, color=cmap(k % 10), alpha=0.6,
                       linewidths=0, label=CLASSES[k] if k < len(CLASSES) else f"class {k}")
        for n in range(0, len(means), 100):
            w, v = np.linalg.eigh(covs[n])
            ax.add_patch(Ellipse(means[n], 4 * np.sqrt(max(w[1], 0)), 4 * np.sqrt(max(w[0], 0)),
                                 angle=np.degrees(np.arctan2(v[1, 1], v[0, 1])), fill=False,
                                 color=cmap(labels[n] % 10), lw=0.8))
        ax.set_xlabel("latent z1")
        ax.set_ylabel("latent z2")
        ax.set_title("test latent means, 2-sigma ellipses of the latent covariance")
        ax.legend(frameon=False, markerscale=3, fontsize="small", loc="center left",
                  bbox_to_anchor=(1.01, 0.5))
        save(fig, os.path.join(run, "latent_scatter"))

def report_figures(out, epoch, runs):
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    versus = {}
    for run in runs:
        h, c = history(run), config(run)
        name = os.path.basename(os.path.normpath(run))
        ax.plot([r["epoch"] for r in h], [r["test_mse"] for r in h], label=name)
        row = next((r for r in h if int(r["epoch"]) == epoch), h[-1])
        versus.setdefault(c["model"], []).append((int(c["latent"]), row["test_mse"]))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test MSE per pixel")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize="small", ncol=2)
    save(fig, os.path.join(out, "curves"))
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for model, points in sorted(versus.items()):
        d, v = zip(*sorted(points))
        ax.plot(d, v, "o-", label=model)
    ax.set_xlabel("latent dimension D")
    ax.set_ylabel("test MSE per pixel")
    ax.set_xticks(sorted({p[0] for pts in versus.values() for p in pts}))
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    save(fig, os.path.join(out, "mse_vs_latent"))

if sys.argv[1] == "run":
    run_figures(sys.argv[2])
else:
    report_figures(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
)PY";

std::string python() {
  if (const char* p = std::getenv("INFIELD_PYTHON")) return p;
  return "/usr/bin/python3";
}

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out.append("'\\''");  // close, escaped quote, reopen
    else
      out.push_back(c);
  }
  return out + "'";
}

/// Runs the script with `args`; true on success, false (with a warning unless matplotlib is
/// simply missing) otherwise.
bool run_script(const std::string& args) {
  if (std::getenv("INFIELD_NO_MATPLOTLIB") != nullptr) return false;
  if (::access(python().c_str(), X_OK) != 0) return false;
  char name[] = "/tmp/infield_figures_XXXXXX";
  const int fd = ::mkstemp(name);
  if (fd < 0) return false;
  ::close(fd);
  const fs::path script(name);
  { std::ofstream(script) << kScript; }
  const int status =
      std::system((quoted(python()) + " " + quoted(script.string()) + " " + args + " 2>&1").c_str());
  std::error_code ignored;
  fs::remove(script, ignored);
  if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 3))
    fmt::print(stderr, "infield fishernet: matplotlib figures failed; drawing plain ones\n");
  return false;
}

}  // namespace

bool draw_run_figures(const fs::path& run) {
  return run_script("run " + quoted(run.string()));
}

bool draw_report_figures(const std::vector<fs::path>& runs, const fs::path& out, int epoch) {
  std::string args = "report " + quoted(out.string()) + " " + std::to_string(epoch);
  for (const fs::path& r : runs) args += " " + quoted(r.string());
  return run_script(args);
}

}  // namespace infield::apps

#pragma once
// FisherNet's figures drawn with matplotlib where Debian's python3 has it (axes labelled, ticks,
// legends; PNG and SVG): the per-run test MSE curve and D = 2 latent scatter, the report's curves
// and MSE against D. Where it is missing, or INFIELD_NO_MATPLOTLIB is set, the callers draw their
// own small PNGs (png_image.h) instead.

#include <filesystem>
#include <vector>

namespace infield::apps {

/// mse.png/.svg (test MSE and noise variance per epoch) and, for D = 2, latent_scatter.png/.svg
/// (test latent means by class with 2-sigma ellipses) in `run`, from its metrics.csv,
/// config.json and latent_test_*.npy. Returns false (writing nothing) if matplotlib is not
/// available or the drawing failed (with a warning on stderr).
bool draw_run_figures(const std::filesystem::path& run);

/// curves.png/.svg (test MSE per epoch of every run) and mse_vs_latent.png/.svg (the last or
/// `epoch`'s test MSE against D per model) in `out`. Returns false as above.
bool draw_report_figures(const std::vector<std::filesystem::path>& runs,
                         const std::filesystem::path& out, int epoch);

}  // namespace infield::apps

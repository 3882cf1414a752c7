// `infield mkde fit | sample | logpdf`: the Matérn kernel density estimator from the command line.

#include <fmt/core.h>
#include <tbb/global_control.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "infield/error.h"
#include "infield/models/mkde.h"
#include "infield/npy.h"
#include "json_output.h"
#include "matrix_io.h"
#include "png_image.h"
#include "sampling_method_flags.h"

namespace infield::apps {
namespace {

struct MkdeCommandOptions {
  std::string points, model, out;
  Eigen::Index cells = 64;
  std::optional<double> pad;  // unset: the library's default for the dimension
  int samples = 10;
  int iterations = 5;
  std::uint64_t seed = 42;
  int threads = 0;
  Eigen::Index n = 1000;
  SamplingMethodFlags sampling;
};

/// The density with the points on top: a heat map for D = 2 (axis 0 to the right, axis 1 up), a
/// filled curve with a rug of the points for D = 1.
void write_density_png(const std::filesystem::path& path, const Mkde& model,
                       const Eigen::MatrixXd& points) {
  const Eigen::VectorXd& rho = model.density_mean();
  const double top = rho.maxCoeff();
  if (model.dimensions() == 2) {
    const int scale = model.cells()[0] <= 128 ? 4 : 2;
    const int w = static_cast<int>(model.cells()[0]) * scale;
    const int h = static_cast<int>(model.cells()[1]) * scale;
    std::vector<unsigned char> px(static_cast<std::size_t>(w) * h * 3);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const Eigen::Index i0 = x / scale, i1 = (h - 1 - y) / scale;
        const Rgb c = viridis(rho[i0 * model.cells()[1] + i1] / top);
        std::copy(c.begin(), c.end(), px.begin() + (static_cast<std::size_t>(y) * w + x) * 3);
      }
    const auto [lo0, hi0] = model.bounds()[0];
    const auto [lo1, hi1] = model.bounds()[1];
    for (Eigen::Index p = 0; p < points.rows(); ++p) {
      const int x = std::clamp(static_cast<int>((points(p, 0) - lo0) / (hi0 - lo0) * w), 0, w - 1);
      const int y = std::clamp(h - 1 - static_cast<int>((points(p, 1) - lo1) / (hi1 - lo1) * h), 0,
                               h - 1);
      std::fill_n(px.begin() + (static_cast<std::size_t>(y) * w + x) * 3, 3, 255);
    }
    write_png_rgb(path, w, h, px);
    return;
  }
  const Eigen::Index n = model.cells()[0];
  const int scale = n <= 256 ? 4 : 1;
  const int w = static_cast<int>(n) * scale, h = 240, rug = 16;
  std::vector<unsigned char> px(static_cast<std::size_t>(w) * h * 3, 255);
  for (int x = 0; x < w; ++x) {
    const double v = rho[x / scale] / top;
    const int height = static_cast<int>(v * (h - rug - 8));
    const Rgb c = viridis(v);
    for (int y = h - rug - height; y < h - rug; ++y)
      std::copy(c.begin(), c.end(), px.begin() + (static_cast<std::size_t>(y) * w + x) * 3);
  }
  const auto [lo, hi] = model.bounds()[0];
  for (Eigen::Index p = 0; p < points.rows(); ++p) {
    const int x = std::clamp(static_cast<int>((points(p, 0) - lo) / (hi - lo) * w), 0, w - 1);
    for (int y = h - rug + 2; y < h; ++y)
      std::fill_n(px.begin() + (static_cast<std::size_t>(y) * w + x) * 3, 3, 0);
  }
  write_png_rgb(path, w, h, px);
}

int run_fit(const MkdeCommandOptions& opt) {
  constexpr std::string_view fn = "infield mkde fit";
  check_argument(opt.samples >= 2 && opt.samples % 2 == 0, fn, "--samples",
                 "must be an even number >= 2 (samples come in mirrored pairs), got " +
                     std::to_string(opt.samples));
  check_argument(opt.iterations >= 1, fn, "--iterations", "must be at least 1");
  check_argument(opt.cells >= 2, fn, "--cells",
                 "must be at least 2, got " + std::to_string(opt.cells));
  check_argument(opt.threads >= 0, fn, "--threads", "must be >= 0 (0: all cores)");
  std::unique_ptr<tbb::global_control> threads;
  if (opt.threads > 0)
    threads = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    opt.threads);
  const Eigen::MatrixXd points = read_npy_matrix(opt.points, fn, "--points", "points x dimensions");
  MkdeOptions options;
  options.cells = {opt.cells};
  options.padding = opt.pad;  // validated by Mkde::fit
  options.sample_pairs = opt.samples / 2;
  options.global_iterations = opt.iterations;
  options.seed = opt.seed;
  options.nonlinear_sampling_minimizer = opt.sampling.nonlinear_sampling_minimizer();
  options.progress = &std::cerr;
  options.communicator = Communicator::world();  // the ranks of mpirun, or this process
  const auto start = std::chrono::steady_clock::now();
  const Mkde model = Mkde::fit(points, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (!options.communicator.is_root()) return 0;  // the root rank writes the model
  const std::filesystem::path out(opt.out);
  model.save(out);
  const std::vector<Eigen::Index> shape = model.cells();
  write_npy(out / "density_mean.npy", shape, model.density_mean());
  write_npy(out / "density_std.npy", shape, model.density_std());
  nlohmann::json grid = {{"shape", shape},
                         {"bounds", nlohmann::json::array()},
                         {"cell_volume", model.cell_volume()},
                         {"points", points.rows()},
                         {"samples", model.density_samples().size()},
                         {"seconds", seconds},
                         {"method", opt.sampling.method},
                         {"ranks", options.communicator.size()},
                         {"layout", "C order over the axes; cell i of axis a spans "
                                    "[lower + i w, lower + (i + 1) w), w = (upper - lower) / shape[a]"}};
  for (const auto& [lo, hi] : model.bounds()) grid["bounds"].push_back({lo, hi});
  write_json_atomic(out / "grid.json", grid, fn);
  std::string figure;
  if (model.dimensions() <= 2) {
    write_density_png(out / "density.png", model, points);
    figure = ", density.png";
  }
  fmt::print("wrote {}/density_mean.npy, density_std.npy, grid.json, the model{} in {:.2f} s\n",
             opt.out, figure, seconds);
  return 0;
}

int run_sample(const MkdeCommandOptions& opt) {
  check_argument(opt.n >= 1, "infield mkde sample", "--n", "must be at least 1");
  const Mkde model = Mkde::load(opt.model);
  std::mt19937_64 rng(opt.seed);
  write_npy_rows(opt.out, model.sample(opt.n, rng));
  fmt::print("wrote {} ({} x {})\n", opt.out, opt.n, model.dimensions());
  return 0;
}

int run_logpdf(const MkdeCommandOptions& opt) {
  constexpr std::string_view fn = "infield mkde logpdf";
  const Mkde model = Mkde::load(opt.model);
  const Eigen::MatrixXd points = read_npy_matrix(opt.points, fn, "--points", "points x dimensions");
  check_argument(points.cols() == model.dimensions(), fn, "--points",
                 opt.points + " has " + std::to_string(points.cols()) + " columns, the model " +
                     std::to_string(model.dimensions()) + " dimensions");
  const Eigen::VectorXd l = model.log_density(points);
  write_npy(opt.out, {l.size()}, l);
  fmt::print("wrote {} ({} values; -inf outside the model's bounds)\n", opt.out, l.size());
  return 0;
}

}  // namespace

std::function<int()> register_mkde_command(CLI::App& app) {
  auto opt = std::make_shared<MkdeCommandOptions>();
  CLI::App* mkde = app.add_subcommand("mkde", "Matérn kernel density estimation (MGVI)");
  mkde->require_subcommand(1);
  CLI::App* fit = mkde->add_subcommand("fit", "fit the density of a point cloud (1 to 5 dimensions)");
  fit->add_option("--points", opt->points, "points as a 2-D .npy (points x dimensions)")->required();
  fit->add_option("--cells", opt->cells, "cells per axis")->capture_default_str();
  fit->add_option("--pad", opt->pad,
                  "padding of the periodic grid, fraction of the box per axis (default 0.5 for "
                  "D <= 2, 0.25 above)");
  fit->add_option("--samples", opt->samples, "posterior samples (even: mirrored pairs)")
      ->capture_default_str();
  fit->add_option("--iterations", opt->iterations, "global MGVI iterations")->capture_default_str();
  fit->add_option("--seed", opt->seed, "random seed")->capture_default_str();
  fit->add_option("--threads", opt->threads, "threads (0: all cores)")->capture_default_str();
  opt->sampling.geovi_steps = 15;  // as reconstruct: NIFTy's getting_started_3
  opt->sampling.geovi_delta_energy = 0.5;
  opt->sampling.add_to(fit);
  fit->add_option("--out", opt->out, "output directory (also the saved model)")->required();
  CLI::App* sample = mkde->add_subcommand("sample", "draw points from a fitted model");
  sample->add_option("--model", opt->model, "directory of a fitted model")->required();
  sample->add_option("--n", opt->n, "number of points")->capture_default_str();
  sample->add_option("--seed", opt->seed, "random seed")->capture_default_str();
  sample->add_option("--out", opt->out, "output .npy (n x dimensions)")->required();
  CLI::App* logpdf = mkde->add_subcommand("logpdf", "log-density of a fitted model at points");
  logpdf->add_option("--model", opt->model, "directory of a fitted model")->required();
  logpdf->add_option("--points", opt->points, "points as a 2-D .npy")->required();
  logpdf->add_option("--out", opt->out, "output .npy (one value per point)")->required();
  return [opt, fit, sample] {
    if (fit->parsed()) return run_fit(*opt);
    if (sample->parsed()) return run_sample(*opt);
    return run_logpdf(*opt);
  };
}

}  // namespace infield::apps

// geoVI against MGVI on a curved 2D posterior with a known answer (../shared/benchmarks/banana):
// xi ~ N(0, 1_2), d = xi_2 + a xi_1^2 + n, n ~ N(0, sigma^2). Writes the posterior samples of xi
// (N x 2) and prints their moments and the Hellinger distance of their histogram to the exact
// posterior on the benchmark's 40 x 40 bins of [-4, 4]^2.
#include <infield/inference/mgvi.h>
#include <infield/infield.h>
#include <tbb/global_control.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

using namespace infield;

namespace {

/// The benchmark's bins: 40 of [-4, 4] with numpy's edges linspace(-4, 4, 41). A grid point goes
/// where np.digitize puts it (clipped into the range); a sample where np.histogram2d counts it
/// (-1 outside, 4 itself in the last bin).
int edges_below(double x) {
  int below = 0;
  for (int j = 0; j <= 40; ++j) below += (j * (8.0 / 40) - 4.0 <= x) ? 1 : 0;
  return below;
}
int grid_bin(double x) { return std::clamp(edges_below(x) - 1, 0, 39); }
int sample_bin(double x) {
  if (!(x >= -4.0 && x <= 4.0)) return -1;
  return std::min(edges_below(x) - 1, 39);
}

}  // namespace

int main(int argc, char** argv) {
  double a = 1.0, sigma = 0.1, d = 1.5;
  std::string method = "geovi", out;
  double start_value = 0.1;
  int samples = 200, iterations = 6, threads = 1, geovi_steps = 20;
  std::uint64_t seed = 1;
  CLI::App app{"geoVI and MGVI on the banana posterior"};
  app.add_option("--a", a, "curvature of the response xi_2 + a xi_1^2");
  app.add_option("--sigma", sigma, "noise std")->check(CLI::PositiveNumber);
  app.add_option("--d", d, "the datum");
  app.add_option("--method", method, "mgvi or geovi")->check(CLI::IsMember({"mgvi", "geovi"}));
  app.add_option("--samples", samples, "posterior samples (even: mirrored pairs)")
      ->check(CLI::Range(2, 1000000));
  app.add_option("--iterations", iterations, "global iterations")->check(CLI::Range(1, 1000));
  app.add_option("--geovi-steps", geovi_steps, "Newton steps per geoVI sample")
      ->check(CLI::Range(1, 1000));
  app.add_option("--seed", seed, "random seed");
  app.add_option("--start", start_value, "initial value of both components of xi");
  app.add_option("--threads", threads, "threads")->check(CLI::Range(1, 1024));
  app.add_option("--out", out, "write the samples here (.npy, N x 2)");
  CLI11_PARSE(app, argc, argv);
  if (samples % 2 != 0) {
    std::cerr << "error: --samples must be even (mirrored pairs)\n";
    return 2;
  }
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);

  // The model and its Hamiltonian.
  const Space in = unstructured(2), target = unstructured(1);
  auto response = make_operator(
      in, target, [a](ConstVectorRef x) { return Eigen::VectorXd::Constant(1, x[1] + a * x[0] * x[0]); },
      [a](ConstVectorRef x, ConstVectorRef v) { return Eigen::VectorXd::Constant(1, 2 * a * x[0] * v[0] + v[1]); },
      [a](ConstVectorRef x, ConstVectorRef u) { return Eigen::Vector2d(2 * a * x[0] * u[0], u[0]).eval(); },
      "Banana");
  auto hamiltonian = standard_hamiltonian(
      gaussian_likelihood(Field(target, Eigen::VectorXd::Constant(1, d)), sigma), response);

  // NIFTy's settings of the benchmark: Newton-CG for the KL and for each geoVI sample.
  OptimizeKLOptions options;
  options.global_iterations = iterations;
  options.seed = seed;
  options.settings.sample_pairs = samples / 2;
  options.settings.sampling_cg = {1e-12, 1e-10, 200};
  NewtonCGOptions newton;
  newton.max_iterations = 30;
  newton.absolute_energy_change = 1e-10;
  newton.convergence_level = 2;
  newton.energy_reduction_factor = 0.1;
  options.settings.minimizer = newton_cg(newton);
  if (method == "geovi") options.settings.nonlinear_sampling_minimizer = geovi_sample_minimizer(geovi_steps);
  options.progress = &std::cout;
  const auto start = std::chrono::steady_clock::now();
  const OptimizeKLSummary result = optimize_kl(hamiltonian, Field::full(in, start_value), options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // Samples, their moments and histogram.
  const int n = result.samples.size();
  Eigen::MatrixXd xi(n, 2);
  for (int k = 0; k < n; ++k) xi.row(k) = result.samples.sample(k).values().transpose();
  Eigen::MatrixXd histogram = Eigen::MatrixXd::Zero(40, 40);
  for (int k = 0; k < n; ++k) {
    const int i = sample_bin(xi(k, 0)), j = sample_bin(xi(k, 1));
    if (i >= 0 && j >= 0) histogram(i, j) += 1.0;
  }
  histogram /= histogram.sum();

  // The exact posterior on the benchmark's 801 x 801 grid, binned the same way.
  Eigen::VectorXd g(801);
  for (int i = 0; i < 801; ++i) g[i] = i * (8.0 / 800) - 4.0;
  Eigen::MatrixXd log_p(801, 801);
  for (int i = 0; i < 801; ++i)
    for (int j = 0; j < 801; ++j) {
      const double r = (d - g[j] - a * g[i] * g[i]) / sigma;
      log_p(i, j) = -0.5 * (g[i] * g[i] + g[j] * g[j]) - 0.5 * r * r;
    }
  const Eigen::MatrixXd p = (log_p.array() - log_p.maxCoeff()).exp().matrix();
  const double mass = p.sum();
  double mean[2] = {0, 0}, second[2] = {0, 0};
  Eigen::MatrixXd exact = Eigen::MatrixXd::Zero(40, 40);
  for (int i = 0; i < 801; ++i)
    for (int j = 0; j < 801; ++j) {
      const double w = p(i, j) / mass;
      mean[0] += w * g[i], mean[1] += w * g[j];
      second[0] += w * g[i] * g[i], second[1] += w * g[j] * g[j];
      exact(grid_bin(g[i]), grid_bin(g[j])) += w;
    }
  const double hellinger =
      std::sqrt(0.5 * (histogram.array().sqrt() - exact.array().sqrt()).square().sum());

  const Eigen::RowVector2d sample_mean = xi.colwise().mean();
  const Eigen::RowVector2d sample_std =
      ((xi.rowwise() - sample_mean).array().square().colwise().sum() / n).sqrt();
  const Eigen::VectorXd expansion_point = result.samples.mean().values();
  std::printf("expansion point %.3f %.3f\n", expansion_point[0], expansion_point[1]);
  std::printf("exact:  mean %.3f %.3f  std %.3f %.3f\n", mean[0], mean[1],
              std::sqrt(second[0] - mean[0] * mean[0]), std::sqrt(second[1] - mean[1] * mean[1]));
  std::printf("%s: mean %.3f %.3f  std %.3f %.3f  E|xi_1| %.3f  Hellinger %.3f  (%d samples, %.3f s)\n",
              method.c_str(), sample_mean[0], sample_mean[1], sample_std[0], sample_std[1],
              xi.col(0).cwiseAbs().mean(), hellinger, n, seconds);
  if (!out.empty()) {
    const Eigen::MatrixXd row_major = xi.transpose();  // C order: xi_1, xi_2 of each sample
    write_npy(out, {n, 2}, row_major.reshaped());
  }
  return 0;
}

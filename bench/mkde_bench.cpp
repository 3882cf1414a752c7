// MKDE fit time and peak memory on Gaussian mixtures (issue: MKDE performance), and its Hellinger
// distance to the truth next to the Gaussian KDE's where that is affordable.
//
//   mkde_bench --dims 2 --cells 128 --points 10000 [--pad 0.5] [--seed 1] [--threads 2]
//
// One configuration per process, so that the peak resident set size (getrusage) is its own.

#include <sys/resource.h>
#include <tbb/global_control.h>

#include <Eigen/Cholesky>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numbers>
#include <random>
#include <string>

#include "infield/models/mkde.h"

int main(int argc, char** argv) {
  using namespace infield;
  int dims = 2, threads = 2;
  Eigen::Index cells = 128, n = 10000;
  std::uint64_t seed = 1;
  double pad = -1.0;  // unset: the library's default
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--dims") dims = std::stoi(value);
    else if (flag == "--cells") cells = std::stol(value);
    else if (flag == "--points") n = std::stol(value);
    else if (flag == "--seed") seed = std::stoull(value);
    else if (flag == "--threads") threads = std::stoi(value);
    else if (flag == "--pad") pad = std::stod(value);
    else {
      std::fprintf(stderr, "mkde_bench: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  tbb::global_control control(tbb::global_control::max_allowed_parallelism, threads);
  // 2D: three Gaussians, one elongated (as the accuracy test); other D: two Gaussians at -+1.5.
  std::vector<double> weights;
  std::vector<Eigen::VectorXd> means;
  std::vector<Eigen::MatrixXd> covs;
  if (dims == 2) {
    Eigen::MatrixXd elongated(2, 2);
    elongated << 2.0, 1.3, 1.3, 1.0;
    weights = {0.4, 0.35, 0.25};
    means = {Eigen::Vector2d(-2, -1), Eigen::Vector2d(2, 2), Eigen::Vector2d(2.5, -2.5)};
    covs = {elongated, 0.2 * Eigen::MatrixXd::Identity(2, 2), 0.5 * Eigen::MatrixXd::Identity(2, 2)};
  } else {
    weights = {0.5, 0.5};
    means = {Eigen::VectorXd::Constant(dims, -1.5), Eigen::VectorXd::Constant(dims, 1.5)};
    covs = {0.5 * Eigen::MatrixXd::Identity(dims, dims), 0.5 * Eigen::MatrixXd::Identity(dims, dims)};
  }
  std::mt19937_64 rng(seed);
  std::discrete_distribution<int> pick(weights.begin(), weights.end());
  std::normal_distribution<double> gauss;
  Eigen::MatrixXd points(n, dims);
  for (Eigen::Index p = 0; p < n; ++p) {
    const int c = pick(rng);
    Eigen::VectorXd z(dims);
    for (auto& v : z) v = gauss(rng);
    points.row(p) = (means[c] + covs[c].llt().matrixL() * z).transpose();
  }
  try {
    MkdeOptions options;
    options.cells = {cells};
    options.seed = seed;
    if (pad >= 0) options.padding = pad;
    options.progress = &std::cerr;
    const auto t0 = std::chrono::steady_clock::now();
    const Mkde mkde = Mkde::fit(points, options);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    std::printf("D=%d cells=%ld pad=%.2f points=%ld threads=%d: fit %.2f s, peak RSS %.0f MiB",
                dims, static_cast<long>(cells), options.padding.value_or(dims <= 2 ? 0.5 : 0.25),
                static_cast<long>(n), threads, seconds,
                usage.ru_maxrss / 1024.0);
    const Eigen::MatrixXd centres = mkde.cell_centres();
    if (static_cast<double>(centres.rows()) * static_cast<double>(n) <= 2e9) {
      Eigen::VectorXd truth = Eigen::VectorXd::Zero(centres.rows());
      for (std::size_t c = 0; c < weights.size(); ++c) {
        const Eigen::LLT<Eigen::MatrixXd> llt(covs[c]);
        const Eigen::MatrixXd l = llt.matrixL();
        const double norm = weights[c] / (std::pow(2 * std::numbers::pi, dims / 2.0) * l.diagonal().prod());
        for (Eigen::Index p = 0; p < centres.rows(); ++p)
          truth[p] += norm * std::exp(-0.5 * l.triangularView<Eigen::Lower>()
                                                  .solve((centres.row(p).transpose() - means[c]).eval())
                                                  .squaredNorm());
      }
      const GaussianKde kde(points);
      const Eigen::VectorXd p_kde = kde.log_density(centres).array().exp();
      std::printf(", Hellinger to truth: MKDE %.4f, KDE (Scott) %.4f", hellinger_distance(mkde.density_mean(), truth),
                  hellinger_distance(p_kde, truth));
    }
    std::printf("\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mkde_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

// Density estimation with MKDE next to a Gaussian KDE, on a two-component point cloud.
#include <infield/models/mkde.h>

#include <cstdio>
#include <random>

using namespace infield;

int main() {
  // 2,000 points: a tight blob and an elongated one.
  std::mt19937_64 rng(1);
  std::normal_distribution<double> g;
  Eigen::MatrixXd points(2000, 2);
  for (Eigen::Index p = 0; p < points.rows(); ++p) {
    const double a = g(rng), b = g(rng);
    if (p % 2) points.row(p) << -2.0 + 0.3 * a, 1.0 + 0.3 * b;
    else points.row(p) << 1.0 + 1.2 * a, 0.6 * a + 0.4 * b;
  }

  MkdeOptions options;  // 5 global MGVI iterations, 5 mirrored pairs, padding 0.5
  options.cells = {64};
  const Mkde mkde = Mkde::fit(points, options);
  const GaussianKde kde(points);  // Scott's bandwidth, full covariance

  // Same interface: log-density at points, new samples.
  Eigen::MatrixXd at(2, 2);
  at << -2.0, 1.0,   // centre of the tight blob
        0.0, 0.0;    // between the blobs
  const Eigen::VectorXd l_mkde = mkde.log_density(at), l_kde = kde.log_density(at);
  std::printf("log-density at the tight blob: MKDE %.2f, KDE %.2f\n", l_mkde[0], l_kde[0]);
  std::printf("log-density between the blobs: MKDE %.2f, KDE %.2f\n", l_mkde[1], l_kde[1]);
  const Eigen::MatrixXd draws = mkde.sample(1000, rng);
  std::printf("mean of 1000 draws: (%.2f, %.2f); of the points: (%.2f, %.2f)\n",
              draws.col(0).mean(), draws.col(1).mean(), points.col(0).mean(), points.col(1).mean());
  // The posterior: uncertainty of the density per cell.
  std::printf("largest posterior std of the density: %.3g (mean density %.3g)\n",
              mkde.density_std().maxCoeff(), mkde.density_mean().mean());
  mkde.save("mkde_2d_model");
  const Mkde back = Mkde::load("mkde_2d_model");
  return back.log_density(at) == l_mkde ? 0 : 1;
}

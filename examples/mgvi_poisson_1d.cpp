// MGVI on a non-neural problem: a log-normal rate on a periodic 1D grid seen through Poisson counts.
#include <infield/inference/mgvi.h>
#include <infield/infield.h>

#include <cmath>
#include <cstdio>
#include <iostream>

using namespace infield;

int main() {
  const Eigen::Index n = 128;
  auto grid = regular_grid({n});
  // Prior: log-rate = log(20) + A xi, with A a smoothing convolution (Gaussian kernel, width 4 px).
  Eigen::MatrixXd kernel(n, n);
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < n; ++j) {
      const double d = std::min<double>(std::abs(i - j), n - std::abs(i - j));
      kernel(i, j) = 0.35 * std::exp(-0.5 * d * d / 16.0);
    }
  auto smooth = matrix_operator(grid, grid, kernel);
  auto offset = make_operator(
      grid, grid, [](ConstVectorRef x) { return (x.array() + std::log(20.0)).matrix().eval(); },
      [](ConstVectorRef, ConstVectorRef v) { return Eigen::VectorXd(v); },
      [](ConstVectorRef, ConstVectorRef u) { return Eigen::VectorXd(u); }, "Offset");
  auto rate = exp(compose(offset, smooth));

  // Synthetic truth and counts, drawn from the model itself.
  std::mt19937_64 rng(1);
  Field truth = rate->apply(Field::normal(grid, rng));
  Field counts(grid, poisson_likelihood(Field::zeros(grid))->draw_data(truth.values(), rng));

  auto hamiltonian = standard_hamiltonian(poisson_likelihood(counts), rate);
  OptimizeKLOptions options;
  options.global_iterations = 4;
  options.settings.sample_pairs = 6;
  options.progress = &std::cout;
  OptimizeKLSummary result = optimize_kl(hamiltonian, Field::zeros(grid), options);

  SampleList::Statistics posterior = result.samples.statistics(*rate);
  const Eigen::ArrayXd z =
      (posterior.mean.values() - truth.values()).array().abs() / posterior.std.values().array();
  std::printf("truth within 2 posterior std in %.0f%% of the pixels; all solves converged: %s\n",
              100.0 * (z <= 2.0).cast<double>().mean(), result.all_converged() ? "yes" : "no");
  return result.all_converged() ? 0 : 1;
}

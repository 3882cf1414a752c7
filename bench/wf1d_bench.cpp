// MGVI on the wf1d benchmark (../shared/benchmarks/wf1d) with NIFTy's schedule: 2 global
// iterations, 16 mirrored pairs. The prior is a user-defined linear operator that convolves with
// the square root of the prior covariance by FFTW (what a user writes before the harmonic layer);
// the response keeps the observed pixels.
//
//   build/release/bench/wf1d_bench [--threads T] [--repeats R]
// Prints the wall time (median of R runs), the accuracy against the stored analytic mean, and the
// speed-up of sample drawing (8 samples) with 2 threads over 1.
#include <fftw3.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "infield/inference/mgvi.h"
#include "infield/infield.h"

namespace {

using namespace infield;

/// x -> F^-1 diag(sqrt(P)) F x on a periodic 1D grid with P(k) = 100 / (20 + k^3) (symmetric:
/// it is its own adjoint).
class CirculantSqrt {
 public:
  explicit CirculantSqrt(Eigen::Index n) : n_(n), amplitude_(n / 2 + 1) {
    for (Eigen::Index k = 0; k <= n / 2; ++k)
      amplitude_[k] = std::sqrt(100.0 / (20.0 + std::pow(static_cast<double>(k), 3))) /
                      std::sqrt(static_cast<double>(n));
    std::vector<double> in(n);
    std::vector<fftw_complex> out(n / 2 + 1);
    forward_ = fftw_plan_dft_r2c_1d(n, in.data(), out.data(), FFTW_MEASURE);
    backward_ = fftw_plan_dft_c2r_1d(n, out.data(), in.data(), FFTW_MEASURE);
  }
  ~CirculantSqrt() {
    fftw_destroy_plan(forward_);
    fftw_destroy_plan(backward_);
  }
  // The new-array execute functions are thread-safe; the plans were made for aligned arrays of
  // the same size, which Eigen and std::vector give (16-byte alignment).
  Eigen::VectorXd apply(ConstVectorRef x) const {
    Eigen::VectorXd in = x, out(n_);
    std::vector<fftw_complex> spectrum(n_ / 2 + 1);
    fftw_execute_dft_r2c(forward_, in.data(), spectrum.data());
    for (Eigen::Index k = 0; k <= n_ / 2; ++k) {
      spectrum[k][0] *= amplitude_[k];
      spectrum[k][1] *= amplitude_[k];
    }
    fftw_execute_dft_c2r(backward_, spectrum.data(), out.data());
    return out;
  }

 private:
  Eigen::Index n_;
  Eigen::VectorXd amplitude_;
  fftw_plan forward_, backward_;
};

double seconds(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, repeats = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--repeats")) repeats = std::stoi(argv[i + 1]);
  }
  const std::string dir = std::string(INFIELD_SHARED_DIR) + "/benchmarks/wf1d/";
  const Eigen::Index n = 1024;
  NpyArray mask = read_npy(dir + "mask.npy");
  NpyArray data = read_npy(dir + "data.npy");
  NpyArray analytic = read_npy(dir + "analytic_mean.npy");
  std::vector<bool> keep(n);
  for (Eigen::Index i = 0; i < n; ++i) keep[i] = mask.values[i] != 0.0;

  auto grid = regular_grid({n}, {1.0});
  auto sqrt_cov = std::make_shared<CirculantSqrt>(n);
  auto prior = make_linear_operator(
      grid, grid, [sqrt_cov](ConstVectorRef x) { return sqrt_cov->apply(x); },
      [sqrt_cov](ConstVectorRef y) { return sqrt_cov->apply(y); }, "CirculantSqrt");
  auto response = mask_operator(grid, keep);
  auto h = standard_hamiltonian(
      gaussian_likelihood(Field(response->target(), data.values), std::sqrt(5.0)),
      compose(response, prior));

  OptimizeKLOptions options;
  options.global_iterations = 2;
  options.settings.sample_pairs = 16;
  options.settings.sampling_cg = {1e-6, 0.0, 1000};
  NewtonCGOptions newton;
  newton.cg = {1e-8, 0.0, 1000};
  options.settings.minimizer = newton_cg(newton);
  options.dense_entropy_limit = 0;  // timing the algorithm, not the diagnostic

  std::vector<double> times;
  double error = 0;
  {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    for (int r = 0; r < repeats; ++r) {
      auto start = std::chrono::steady_clock::now();
      auto result = optimize_kl(h, Field::zeros(grid), options);
      times.push_back(seconds(start));
      Eigen::VectorXd mean = prior->apply(result.samples.mean()).values();
      error = std::sqrt((mean - analytic.values).squaredNorm() / analytic.values.squaredNorm());
    }
  }
  std::sort(times.begin(), times.end());
  std::printf("wf1d MGVI (2 iterations, 32 samples), %d thread(s): median %.4f s over %d runs "
              "(min %.4f); relative RMS error of the mean %.2e\n",
              threads, times[times.size() / 2], repeats, times.front(), error);

  // Sample drawing alone, 8 samples (4 pairs), 1 vs 2 threads: on wf1d itself (0.5 ms per
  // sample, where thread start-up and synchronisation show) and on the same recipe with 2^16
  // pixels (synthetic data, 60% of the pixels observed), where each sample is real work.
  auto draw_time = [&](const StandardHamiltonian& ham, const Field& at, int t) {
    SamplingOptions sampling;
    sampling.pairs = 4;
    sampling.cg = {1e-6, 0.0, 1000};
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, t);
    std::vector<double> ts;
    for (int r = 0; r < repeats; ++r) {
      auto start = std::chrono::steady_clock::now();
      draw_samples(ham, at, sampling, 1, static_cast<std::uint64_t>(r));
      ts.push_back(seconds(start));
    }
    std::sort(ts.begin(), ts.end());
    return ts[ts.size() / 2];
  };
  {
    const double one = draw_time(*h, Field::zeros(grid), 1), two = draw_time(*h, Field::zeros(grid), 2);
    std::printf("wf1d, drawing 8 samples: 1 thread %.4f s, 2 threads %.4f s, speed-up %.2f\n", one,
                two, one / two);
  }
  {
    const Eigen::Index big = 1 << 16;
    auto big_grid = regular_grid({big}, {1.0});
    auto big_sqrt = std::make_shared<CirculantSqrt>(big);
    auto big_prior = make_linear_operator(
        big_grid, big_grid, [big_sqrt](ConstVectorRef x) { return big_sqrt->apply(x); },
        [big_sqrt](ConstVectorRef y) { return big_sqrt->apply(y); }, "CirculantSqrt");
    std::mt19937_64 rng(3);
    std::vector<bool> observed(big);
    std::bernoulli_distribution coin(0.6);
    for (Eigen::Index i = 0; i < big; ++i) observed[i] = coin(rng);
    auto big_response = mask_operator(big_grid, observed);
    Field signal = big_prior->apply(Field::normal(big_grid, rng));
    Field noise = Field::normal(big_response->target(), rng);
    Field big_data = big_response->apply(signal) + std::sqrt(5.0) * noise;
    auto big_h = standard_hamiltonian(gaussian_likelihood(big_data, std::sqrt(5.0)),
                                      compose(big_response, big_prior));
    Field at = Field::zeros(big_grid);
    const double one = draw_time(*big_h, at, 1), two = draw_time(*big_h, at, 2);
    std::printf("2^16 pixels, drawing 8 samples: 1 thread %.4f s, 2 threads %.4f s, speed-up %.2f\n",
                one, two, one / two);
  }
  return 0;
}

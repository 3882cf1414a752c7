#include "infield/inference/mgvi.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <Eigen/Cholesky>
#include <boost/math/distributions/chi_squared.hpp>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <sstream>

#include "infield/error.h"
#include "infield/linear_operators.h"
#include "infield/npy.h"
#include "infield/pointwise.h"
#include "test_problems.h"

namespace infield {
namespace {
using namespace infield::test;

TEST(Mgvi, LinearGaussianMeanEqualsTheAnalyticPosteriorMean) {
  LinearGaussianProblem p(1);
  OptimizeKLOptions options;
  options.global_iterations = 2;
  options.settings.sample_pairs = 3;
  options.settings.minimizer = newton_cg(exact_newton());
  auto result = optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n)), options);
  const Eigen::VectorXd& mean = result.samples.mean().values();
  EXPECT_LT((mean - p.analytic_mean).norm() / p.analytic_mean.norm(), 1e-8);
  EXPECT_TRUE(result.all_converged());
  ASSERT_EQ(result.iterations.size(), 2u);
}

// The residuals are exact posterior samples for a linear Gaussian model: whitened by the analytic
// covariance (w = L^-1 delta, L L^T = C) they are standard normal.
TEST(Mgvi, LinearGaussianSampleCovariancePassesChiSquareTests) {
  LinearGaussianProblem p(2);
  Field position(unstructured(p.n), p.analytic_mean);
  SamplingOptions sampling;
  sampling.pairs = 400;
  sampling.cg.relative_residual = 1e-12;
  SamplingSummary summary;
  SampleList samples = draw_samples(*p.hamiltonian, position, sampling, 7, 0, &summary);
  EXPECT_EQ(summary.cg_not_converged, 0);
  Eigen::MatrixXd l = p.analytic_covariance.llt().matrixL();
  Eigen::MatrixXd w(p.n, sampling.pairs);
  for (int k = 0; k < sampling.pairs; ++k)
    w.col(k) = l.triangularView<Eigen::Lower>().solve(samples.residuals()[k]);

  const double alpha = 1e-3;
  using boost::math::chi_squared;
  using boost::math::quantile;
  using boost::math::complement;
  // (a) sum of all squared whitened entries ~ chi2(K n).
  chi_squared total(static_cast<double>(sampling.pairs * p.n));
  const double t = w.squaredNorm();
  EXPECT_GT(t, quantile(total, alpha / 2));
  EXPECT_LT(t, quantile(complement(total, alpha / 2)));
  // (b) along 20 random unit directions u: sum_k (u^T w_k)^2 ~ chi2(K) (Bonferroni over 20).
  std::mt19937_64 rng(11);
  chi_squared per_direction(static_cast<double>(sampling.pairs));
  const double a = alpha / 20;
  for (int j = 0; j < 20; ++j) {
    Eigen::VectorXd u = gaussian(p.n, rng).normalized();
    const double s = (u.transpose() * w).squaredNorm();
    EXPECT_GT(s, quantile(per_direction, a / 2)) << "direction " << j;
    EXPECT_LT(s, quantile(complement(per_direction, a / 2))) << "direction " << j;
  }
}

TEST(Mgvi, SamplesAreTheSameForOneAndTwoThreads) {
  LinearGaussianProblem p(3);
  Field position(unstructured(p.n), p.analytic_mean);
  SamplingOptions sampling;
  sampling.pairs = 6;
  auto draw = [&](int threads) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    return draw_samples(*p.hamiltonian, position, sampling, 5, 1).residuals();
  };
  auto one = draw(1), two = draw(2);
  ASSERT_EQ(one.size(), two.size());
  for (std::size_t k = 0; k < one.size(); ++k) EXPECT_EQ(one[k], two[k]) << "sample " << k;
  auto kl = [&](int threads) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    OptimizeKLOptions options;
    options.global_iterations = 2;
    options.settings.sample_pairs = 3;
    return optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n)), options).samples.mean().values();
  };
  EXPECT_EQ(kl(1), kl(2));
}

TEST(Mgvi, SampledKLGradientMatchesFiniteDifferences) {
  LinearGaussianProblem p(4);
  auto model = compose(exp(unstructured(p.m)),
                       matrix_operator(unstructured(p.n), unstructured(p.m), 0.1 * p.response));
  auto h = standard_hamiltonian(poisson_likelihood(Field(unstructured(p.m),
                                                         Eigen::VectorXd::Constant(p.m, 3.0))),
                                model);
  std::mt19937_64 rng(5);
  SampledKL kl(h, {0.1 * gaussian(p.n, rng), 0.1 * gaussian(p.n, rng)});
  Eigen::VectorXd x = 0.1 * gaussian(p.n, rng), v = gaussian(p.n, rng);
  EnergyEvaluation e = kl.evaluate(x, kValue | kGradient | kMetric);
  const double h_step = 1e-6;
  const double fd = (kl.evaluate(x + h_step * v, kValue).value -
                     kl.evaluate(x - h_step * v, kValue).value) / (2 * h_step);
  EXPECT_NEAR(e.gradient.dot(v), fd, 1e-6 * std::abs(fd));
  // The averaged metric is symmetric positive definite.
  Eigen::VectorXd u = gaussian(p.n, rng), mu(p.n), mv(p.n);
  e.metric->apply_times(u, mu);
  e.metric->apply_times(v, mv);
  EXPECT_NEAR(mu.dot(v), u.dot(mv), 1e-10 * std::abs(mu.dot(v)));
  EXPECT_GT(u.dot(mu), u.squaredNorm());
}

TEST(Mgvi, PointEstimatedKeysHaveZeroResiduals) {
  MultiDomain md{{"xi", DomainTuple{unstructured(5)}}, {"scale", DomainTuple{unstructured(1)}}};
  auto spread = matrix_operator(unstructured(1), unstructured(5), Eigen::MatrixXd::Ones(5, 1));
  auto signal = multiply(field_adapter(md, "xi"), exp(compose(spread, field_adapter(md, "scale"))));
  auto h = standard_hamiltonian(
      gaussian_likelihood(Field(unstructured(5), Eigen::VectorXd::LinSpaced(5, -1, 1)), 0.5), signal);
  SamplingOptions sampling;
  sampling.pairs = 3;
  sampling.point_estimates = {"scale"};
  std::mt19937_64 rng(1);
  SampleList samples = draw_samples(*h, Field::normal(md, rng), sampling, 3, 0);
  for (const auto& r : samples.residuals()) {
    EXPECT_EQ(r[md.at("scale").offset], 0.0);
    EXPECT_GT(r.segment(md.at("xi").offset, 5).norm(), 0.0);
  }
  sampling.point_estimates = {"nope"};
  EXPECT_THROW(draw_samples(*h, Field::zeros(md), sampling, 3, 0), InvalidArgument);
}

TEST(Mgvi, SampleListStatistics) {
  Field mean(unstructured(2), Eigen::Vector2d(1.0, 2.0));
  SampleList list(mean, {Eigen::Vector2d(0.5, 0.0), Eigen::Vector2d(0.0, 1.0)}, true);
  ASSERT_EQ(list.size(), 4);
  auto stats = list.statistics(*identity_operator(unstructured(2)));
  EXPECT_TRUE(stats.mean.values().isApprox(mean.values()));
  // entry 0: samples 1.5, 0.5, 1, 1 -> unbiased variance 0.5/3
  EXPECT_NEAR(stats.std.values()[0], std::sqrt(0.5 / 3), 1e-14);
  EXPECT_NEAR(stats.std.values()[1], std::sqrt(2.0 / 3), 1e-14);
  EXPECT_THROW(list.sample(4), InvalidArgument);
}

TEST(Mgvi, CheckpointResumesExactlyAndRejectsAnotherRun) {
  LinearGaussianProblem p(5);
  auto dir = std::filesystem::temp_directory_path() / ("infield_mgvi_ckpt_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  OptimizeKLOptions options;
  options.global_iterations = 3;
  options.settings.sample_pairs = 2;
  options.checkpoint = dir / "kl.ckpt";
  auto full = optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n)), options);

  // Run only two iterations, then resume to three: the same result as uninterrupted.
  std::filesystem::remove(options.checkpoint);
  OptimizeKLOptions partial = options;
  partial.global_iterations = 2;
  optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n)), partial);
  OptimizeKLOptions resumed = options;
  resumed.resume = true;
  auto rest = optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n)), resumed);
  EXPECT_EQ(rest.resumed_iterations, 2);
  EXPECT_EQ(rest.samples.mean().values(), full.samples.mean().values());
  ASSERT_EQ(rest.iterations.size(), 3u);
  EXPECT_EQ(rest.iterations[2].kl_value, full.iterations[2].kl_value);

  OptimizeKLOptions other_seed = resumed;
  other_seed.seed = 99;
  EXPECT_THROW(optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n)), other_seed), FileError);
  OptimizeKLOptions other_run = resumed;
  other_run.run_id = "another problem";
  EXPECT_THROW(optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n)), other_run), FileError);
  {  // flip one byte: the checksum catches it
    std::fstream f(options.checkpoint, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x7f');
  }
  EXPECT_THROW(optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n)), resumed), FileError);
  std::filesystem::remove_all(dir);
}

TEST(Mgvi, ProgressLineAndCallbackPerIteration) {
  LinearGaussianProblem p(6);
  std::ostringstream progress;
  int calls = 0;
  OptimizeKLOptions options;
  options.global_iterations = 2;
  options.settings.sample_pairs = 1;
  options.progress = &progress;
  options.callback = [&](const GlobalIterationReport& r, const SampleList& s) {
    EXPECT_EQ(r.iteration, calls++);
    EXPECT_EQ(s.size(), 2);
  };
  optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n)), options);
  EXPECT_EQ(calls, 2);
  EXPECT_THAT(progress.str(), ::testing::HasSubstr("KL iteration 2: KL "));
  EXPECT_THAT(progress.str(), ::testing::HasSubstr("sampling CG"));
}

TEST(Mgvi, WienerFilterBenchmarkMatchesTheStoredAnalyticMean) {
  const std::filesystem::path dir = std::filesystem::path(INFIELD_SHARED_DIR) / "benchmarks/wf1d";
  if (!std::filesystem::exists(dir / "data.npy")) GTEST_SKIP() << "no " << dir;
  const Eigen::Index n = 1024;
  NpyArray mask = read_npy(dir / "mask.npy");
  NpyArray data = read_npy(dir / "data.npy");
  NpyArray analytic = read_npy(dir / "analytic_mean.npy");
  ASSERT_EQ(mask.values.size(), n);
  std::vector<bool> keep(n);
  for (Eigen::Index i = 0; i < n; ++i) keep[i] = mask.values[i] != 0.0;
  auto grid = regular_grid({n}, {1.0});
  auto prior = matrix_operator(grid, grid,
                               circulant_sqrt(n, [](double k) { return 100.0 / (20.0 + k * k * k); }));
  auto response = mask_operator(grid, keep);
  ASSERT_EQ(response->target().size(), data.values.size());
  auto h = standard_hamiltonian(
      gaussian_likelihood(Field(response->target(), data.values), std::sqrt(5.0)),
      compose(response, prior));
  OptimizeKLOptions options;  // NIFTy's schedule: 2 global iterations, 16 mirrored pairs
  options.global_iterations = 2;
  options.settings.sample_pairs = 16;
  NewtonCGOptions newton;
  newton.cg.relative_residual = 1e-10;
  options.settings.minimizer = newton_cg(newton);
  auto result = optimize_kl(h, Field::zeros(grid), options);
  Eigen::VectorXd mean = prior->apply(result.samples.mean()).values();
  EXPECT_LT((mean - analytic.values).norm() / analytic.values.norm(), 1e-6);
  EXPECT_TRUE(result.all_converged());
}

TEST(Mgvi, LogNormalPoissonKLDecreasesAndCoversTheTruth) {
  int covered = 0, total = 0;
  for (unsigned seed = 0; seed < 10; ++seed) {
    LogNormalPoissonProblem p(seed);
    OptimizeKLOptions options;
    options.global_iterations = 5;
    options.settings.sample_pairs = 8;
    options.seed = 100 + seed;
    auto result = optimize_kl(p.hamiltonian, Field::zeros(p.grid), options);
    // The KL (with the entropy term, so that iterations with different sample covariances
    // compare) decreases from one global iteration to the next. Each value is a Monte Carlo
    // estimate over fresh samples, so once converged it can only be compared up to its noise:
    // allow 3 combined standard errors (one-sided p = 1.3e-3 per comparison).
    const auto& its = result.iterations;
    EXPECT_LT(its[1].kl_with_entropy, its[0].kl_with_entropy) << "seed " << seed;
    for (std::size_t i = 1; i < its.size(); ++i) {
      const double noise = std::hypot(its[i].kl_standard_error, its[i - 1].kl_standard_error);
      EXPECT_GT(its[i].kl_standard_error, 0.0);
      EXPECT_LT(its[i].kl_with_entropy, its[i - 1].kl_with_entropy + 3 * noise)
          << "seed " << seed << " iteration " << i;
      // Within an iteration, with its samples fixed, the minimizer strictly lowers the KL.
      EXPECT_LT(its[i].minimizer.final_value, its[i].minimizer.initial_value);
    }
    auto stats = result.samples.statistics(*p.signal);
    const Eigen::ArrayXd z =
        (stats.mean.values() - p.truth).array().abs() / stats.std.values().array();
    covered += static_cast<int>((z <= 2.0).count());
    total += static_cast<int>(z.size());
  }
  const double fraction = static_cast<double>(covered) / total;
  EXPECT_GE(fraction, 0.85);
  EXPECT_LE(fraction, 0.99);
  std::printf("truth within 2 posterior std: %.1f%% of %d pixels\n", 100 * fraction, total);
}

TEST(Mgvi, RejectsBadInput) {
  LinearGaussianProblem p(7);
  OptimizeKLOptions options;
  EXPECT_THROW(optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n + 1)), options),
               DomainMismatch);
  Field nan_start = Field::zeros(unstructured(p.n));
  nan_start.values()[3] = std::nan("");
  EXPECT_THROW(optimize_kl(p.hamiltonian, nan_start, options), InvalidArgument);
  options.global_iterations = 0;
  EXPECT_THROW(optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n)), options),
               InvalidArgument);
}

}  // namespace
}  // namespace infield

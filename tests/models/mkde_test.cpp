// MKDE: normalisation, sampling (chi-square over cells), interpolation, save/load, accuracy against
// the Gaussian KDE on known densities (Hellinger distance on the grid), bad input.
#include "infield/models/mkde.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <Eigen/LU>
#include <boost/math/distributions/chi_squared.hpp>
#include <cmath>
#include <filesystem>
#include <numbers>
#include <random>

#include "infield/error.h"
#include "infield/npy.h"

namespace infield {
namespace {

namespace fs = std::filesystem;

/// A Gaussian mixture with full covariances.
struct Mixture {
  std::vector<double> weights;
  std::vector<Eigen::VectorXd> means;
  std::vector<Eigen::MatrixXd> covariances;

  Eigen::MatrixXd sample(Eigen::Index n, std::mt19937_64& rng) const {
    const auto d = means[0].size();
    std::discrete_distribution<int> pick(weights.begin(), weights.end());
    std::normal_distribution<double> gauss;
    Eigen::MatrixXd out(n, d);
    for (Eigen::Index p = 0; p < n; ++p) {
      const int c = pick(rng);
      Eigen::VectorXd z(d);
      for (auto& v : z) v = gauss(rng);
      out.row(p) = (means[c] + covariances[c].llt().matrixL() * z).transpose();
    }
    return out;
  }
  Eigen::VectorXd density(const Eigen::MatrixXd& x) const {
    Eigen::VectorXd out = Eigen::VectorXd::Zero(x.rows());
    const auto d = static_cast<double>(means[0].size());
    for (std::size_t c = 0; c < weights.size(); ++c) {
      const Eigen::LLT<Eigen::MatrixXd> llt(covariances[c]);
      const double norm = weights[c] / (std::pow(2 * std::numbers::pi, d / 2) *
                                        llt.matrixL().toDenseMatrix().diagonal().prod());
      for (Eigen::Index p = 0; p < x.rows(); ++p) {
        const Eigen::VectorXd r = llt.matrixL().solve((x.row(p).transpose() - means[c]).eval());
        out[p] += norm * std::exp(-0.5 * r.squaredNorm());
      }
    }
    return out;
  }
};

Eigen::VectorXd vec(std::initializer_list<double> v) {
  Eigen::VectorXd out(static_cast<Eigen::Index>(v.size()));
  Eigen::Index i = 0;
  for (double x : v) out[i++] = x;
  return out;
}

Mixture bimodal_1d() {
  return {{0.6, 0.4},
          {vec({-2.0}), vec({1.5})},
          {Eigen::MatrixXd::Constant(1, 1, 0.3 * 0.3), Eigen::MatrixXd::Constant(1, 1, 1.0)}};
}

Mixture three_gaussians_2d() {
  Eigen::MatrixXd elongated(2, 2);
  elongated << 2.0, 1.3, 1.3, 1.0;  // correlation 0.92
  return {{0.4, 0.35, 0.25},
          {vec({-2.0, -1.0}), vec({2.0, 2.0}), vec({2.5, -2.5})},
          {elongated, 0.2 * Eigen::MatrixXd::Identity(2, 2), 0.5 * Eigen::MatrixXd::Identity(2, 2)}};
}

Mixture two_gaussians_5d() {
  return {{0.5, 0.5},
          {Eigen::VectorXd::Constant(5, -1.5), Eigen::VectorXd::Constant(5, 1.5)},
          {0.5 * Eigen::MatrixXd::Identity(5, 5), 0.5 * Eigen::MatrixXd::Identity(5, 5)}};
}

struct Accuracy {
  double mkde, kde;
};

/// Hellinger distances of the MKDE and of the Scott-bandwidth KDE to the truth on the MKDE's grid.
Accuracy accuracy(const Mixture& truth, Eigen::Index cells, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const Eigen::MatrixXd points = truth.sample(2000, rng);
  MkdeOptions options;
  options.cells = {cells};
  const Mkde mkde = Mkde::fit(points, options);
  const Eigen::MatrixXd centres = mkde.cell_centres();
  const GaussianKde kde(points);
  const Eigen::VectorXd p_true = truth.density(centres);
  const Eigen::VectorXd p_kde = kde.log_density(centres).array().exp();
  return {hellinger_distance(mkde.density_mean(), p_true), hellinger_distance(p_kde, p_true)};
}

TEST(MkdeAccuracy, BeatsTheGaussianKdeIn1D) {
  const Accuracy a = accuracy(bimodal_1d(), 128, 1);
  RecordProperty("mkde", std::to_string(a.mkde));
  RecordProperty("kde", std::to_string(a.kde));
  EXPECT_LE(a.mkde, 0.8 * a.kde) << "MKDE " << a.mkde << " KDE " << a.kde;
}

TEST(MkdeAccuracy, BeatsTheGaussianKdeIn2D) {
  const Accuracy a = accuracy(three_gaussians_2d(), 64, 2);
  RecordProperty("mkde", std::to_string(a.mkde));
  RecordProperty("kde", std::to_string(a.kde));
  EXPECT_LE(a.mkde, 0.8 * a.kde) << "MKDE " << a.mkde << " KDE " << a.kde;
}

TEST(MkdeAccuracy, NoWorseThanTheGaussianKdeIn5D) {
  const Accuracy a = accuracy(two_gaussians_5d(), 6, 3);
  RecordProperty("mkde", std::to_string(a.mkde));
  RecordProperty("kde", std::to_string(a.kde));
  EXPECT_LE(a.mkde, a.kde) << "MKDE " << a.mkde << " KDE " << a.kde;
}

class MkdeFitted : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::mt19937_64 rng(4);
    points_ = new Eigen::MatrixXd(bimodal_1d().sample(1000, rng));
    MkdeOptions options;
    options.cells = {32};
    options.global_iterations = 3;
    model_ = new Mkde(Mkde::fit(*points_, options));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete points_;
  }
  static Eigen::MatrixXd* points_;
  static Mkde* model_;
};
Eigen::MatrixXd* MkdeFitted::points_ = nullptr;
Mkde* MkdeFitted::model_ = nullptr;

TEST_F(MkdeFitted, DensitiesIntegrateToOne) {
  const Mkde& m = *model_;
  EXPECT_NEAR(m.density_mean().sum() * m.cell_volume(), 1.0, 1e-12);
  ASSERT_EQ(m.density_samples().size(), 10u);  // 5 mirrored pairs
  for (const auto& s : m.density_samples()) {
    EXPECT_NEAR(s.sum() * m.cell_volume(), 1.0, 1e-12);
    EXPECT_TRUE((s.array() > 0).all());
  }
  EXPECT_TRUE((m.density_std().array() > 0).all());
  // Bounds: the points' range widened by 10% on both sides.
  const double lo = points_->minCoeff(), hi = points_->maxCoeff();
  EXPECT_NEAR(m.bounds()[0].first, lo - 0.1 * (hi - lo), 1e-12);
  EXPECT_NEAR(m.bounds()[0].second, hi + 0.1 * (hi - lo), 1e-12);
}

TEST_F(MkdeFitted, SamplesFollowTheDensityAndStayInside) {
  const Mkde& m = *model_;
  std::mt19937_64 rng(5);
  const Eigen::Index n = 40000;
  const Eigen::MatrixXd x = m.sample(n, rng);
  const auto [lo, hi] = m.bounds()[0];
  EXPECT_GE(x.minCoeff(), lo);
  EXPECT_LE(x.maxCoeff(), hi);
  // Chi-square over cells (cells with fewer than 5 expected draws pooled).
  const Eigen::Index cells = m.cells()[0];
  Eigen::VectorXd observed = Eigen::VectorXd::Zero(cells);
  for (Eigen::Index p = 0; p < n; ++p)
    observed[std::min<Eigen::Index>(cells - 1, static_cast<Eigen::Index>((x(p, 0) - lo) / (hi - lo) * cells))] += 1;
  const Eigen::VectorXd expected = m.density_mean() * m.cell_volume() * static_cast<double>(n);
  double chi2 = 0.0, pooled_o = 0.0, pooled_e = 0.0;
  int bins = 0;
  for (Eigen::Index c = 0; c < cells; ++c) {
    if (expected[c] < 5) {
      pooled_o += observed[c];
      pooled_e += expected[c];
      continue;
    }
    chi2 += std::pow(observed[c] - expected[c], 2) / expected[c];
    ++bins;
  }
  if (pooled_e > 0) {
    chi2 += std::pow(pooled_o - pooled_e, 2) / pooled_e;
    ++bins;
  }
  const boost::math::chi_squared dist(bins - 1);
  EXPECT_LT(chi2, boost::math::quantile(boost::math::complement(dist, 1e-3))) << bins << " bins";
}

TEST_F(MkdeFitted, LogDensityInterpolatesTheMeanAndIsMinusInfinityOutside) {
  const Mkde& m = *model_;
  const Eigen::MatrixXd centres = m.cell_centres();
  const Eigen::VectorXd at_centres = m.log_density(centres);
  for (Eigen::Index c = 0; c < centres.rows(); ++c)
    EXPECT_NEAR(at_centres[c], std::log(m.density_mean()[c]), 1e-12);
  // Half-way between two centres: the mean of the two densities.
  Eigen::MatrixXd mid(1, 1);
  mid(0, 0) = 0.5 * (centres(10, 0) + centres(11, 0));
  EXPECT_NEAR(m.log_density(mid)[0],
              std::log(0.5 * (m.density_mean()[10] + m.density_mean()[11])), 1e-12);
  Eigen::MatrixXd outside(2, 1);
  outside << m.bounds()[0].first - 1e-9, m.bounds()[0].second + 1.0;
  EXPECT_TRUE((m.log_density(outside).array() == -std::numeric_limits<double>::infinity()).all());
  EXPECT_THROW(m.log_density(Eigen::MatrixXd::Zero(2, 2)), InvalidArgument);
}

TEST_F(MkdeFitted, SavesAndLoadsAndRejectsCorruptFiles) {
  const Mkde& m = *model_;
  const fs::path dir = fs::temp_directory_path() / ("infield_mkde_" + std::to_string(::getpid()));
  m.save(dir);
  const Mkde back = Mkde::load(dir);
  EXPECT_EQ(back.cells(), m.cells());
  EXPECT_EQ(back.bounds(), m.bounds());
  EXPECT_EQ(back.density_mean(), m.density_mean());
  Eigen::MatrixXd q(3, 1);
  q << -2.0, 0.0, 1.5;
  EXPECT_EQ(back.log_density(q), m.log_density(q));

  // Wrong tag, wrong version, shape mismatch, negative density, missing file.
  const NpyArray meta = read_npy(dir / "mkde_meta.npy");
  auto with_meta = [&](Eigen::Index index, double value) {
    Eigen::VectorXd v = meta.values;
    v[index] = value;
    write_npy(dir / "mkde_meta.npy", meta.shape, v);
  };
  with_meta(0, 1.0);
  EXPECT_THROW(Mkde::load(dir), FileError);
  with_meta(1, 2.0);
  EXPECT_THROW(Mkde::load(dir), FileError);
  with_meta(3, 33.0);
  EXPECT_THROW(Mkde::load(dir), FileError);
  write_npy(dir / "mkde_meta.npy", meta.shape, meta.values);
  NpyArray samples = read_npy(dir / "density_samples.npy");
  samples.values[0] = -1.0;
  write_npy(dir / "density_samples.npy", samples.shape, samples.values);
  EXPECT_THROW(Mkde::load(dir), FileError);
  fs::remove(dir / "density_samples.npy");
  EXPECT_THROW(Mkde::load(dir), FileError);
  fs::remove_all(dir);
}

TEST(GaussianKde, MatchesTheDirectSumAndBandwidthRules) {
  std::mt19937_64 rng(6);
  const Eigen::MatrixXd points = three_gaussians_2d().sample(300, rng);
  const GaussianKde scott(points), silverman(points, GaussianKde::Bandwidth::kSilverman);
  EXPECT_NEAR(scott.bandwidth_factor(), std::pow(300.0, -1.0 / 6.0), 1e-15);
  EXPECT_NEAR(silverman.bandwidth_factor(), std::pow(300.0 * 4.0 / 4.0, -1.0 / 6.0), 1e-15);
  const Eigen::RowVector2d mean = points.colwise().mean();
  const Eigen::MatrixXd centred = points.rowwise() - mean;
  const Eigen::Matrix2d h = scott.bandwidth_factor() * scott.bandwidth_factor() *
                            (centred.transpose() * centred) / 299.0;
  const Eigen::Matrix2d h_inv = h.inverse();
  Eigen::MatrixXd q(2, 2);
  q << 0.3, -0.2, 2.0, 2.1;
  const Eigen::VectorXd got = scott.log_density(q);
  for (Eigen::Index i = 0; i < 2; ++i) {
    double sum = 0.0;
    for (Eigen::Index j = 0; j < points.rows(); ++j) {
      const Eigen::Vector2d r = (q.row(i) - points.row(j)).transpose();
      sum += std::exp(-0.5 * r.dot(h_inv * r));
    }
    const double direct = sum / (300.0 * 2.0 * std::numbers::pi * std::sqrt(h.determinant()));
    EXPECT_NEAR(got[i], std::log(direct), 1e-10);
  }
  // Its samples have the points' mean and the covariance (1 + h^2) Sigma.
  const Eigen::MatrixXd draws = scott.sample(20000, rng);
  EXPECT_LT((draws.colwise().mean() - mean).norm(), 0.05);
}

TEST(Mkde, BadInputThrows) {
  Eigen::MatrixXd good(20, 2);
  std::mt19937_64 rng(7);
  std::normal_distribution<double> g;
  for (auto& v : good.reshaped()) v = g(rng);
  Eigen::MatrixXd nan = good, inf = good;
  nan(3, 1) = std::nan("");
  inf(4, 0) = std::numeric_limits<double>::infinity();
  EXPECT_THROW(Mkde::fit(nan), InvalidArgument);
  EXPECT_THROW(Mkde::fit(inf), InvalidArgument);
  EXPECT_THROW(Mkde::fit(Eigen::MatrixXd(0, 2)), InvalidArgument);
  EXPECT_THROW(Mkde::fit(good.topRows(1)), InvalidArgument);
  EXPECT_THROW(Mkde::fit(Eigen::MatrixXd::Random(20, 6)), InvalidArgument);
  EXPECT_THROW(Mkde::fit(Eigen::MatrixXd::Ones(20, 1)), InvalidArgument);  // no spread
  for (Eigen::Index cells : {0, -3, 1}) {
    MkdeOptions o;
    o.cells = {cells};
    EXPECT_THROW(Mkde::fit(good, o), InvalidArgument) << cells;
  }
  MkdeOptions three_axes;
  three_axes.cells = {8, 8, 8};
  EXPECT_THROW(Mkde::fit(good, three_axes), InvalidArgument);
  MkdeOptions tight;
  tight.bounds = {{-0.1, 0.1}, {-0.1, 0.1}};
  EXPECT_THROW(Mkde::fit(good, tight), InvalidArgument);  // points outside the bounds
  EXPECT_THROW(GaussianKde(Eigen::MatrixXd::Ones(20, 2)), InvalidArgument);
  EXPECT_THROW(hellinger_distance(Eigen::VectorXd::Ones(3), Eigen::VectorXd::Ones(4)),
               InvalidArgument);
}

}  // namespace
}  // namespace infield

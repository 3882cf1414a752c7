// The image classifier and the Fréchet distance: the matrix square root's trace against closed
// forms and an independent eigen-solver, the distance of Gaussians with known distance, the
// cross-entropy gradient against finite differences, training to high accuracy on a learnable
// set, checkpoints, and bad input.
#include "infield/models/classifier.h"

#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>
#include <cmath>
#include <filesystem>
#include <random>

#include "infield/error.h"

namespace infield {
namespace {

using neural::FeatureGaussian;
using neural::ImageClassifier;
using neural::Matrix;
using neural::Vector;

Eigen::MatrixXd random_spd(Eigen::Index n, std::mt19937_64& rng) {
  std::normal_distribution<double> g;
  Eigen::MatrixXd a(n, n);
  for (auto& v : a.reshaped()) v = g(rng);
  return a * a.transpose() + 0.1 * Eigen::MatrixXd::Identity(n, n);
}

TEST(FrechetDistance, TraceSqrtProductMatchesTheClosedFormIn2D) {
  // For 2 x 2 M = S1^1/2 S2 S1^1/2: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)), with
  // tr M = tr(S1 S2) and det M = det S1 det S2; S1 and S2 do not commute.
  std::mt19937_64 rng(1);
  for (int trial = 0; trial < 20; ++trial) {
    const Eigen::MatrixXd s1 = random_spd(2, rng), s2 = random_spd(2, rng);
    const double expected =
        std::sqrt((s1 * s2).trace() + 2 * std::sqrt(s1.determinant() * s2.determinant()));
    EXPECT_NEAR(neural::trace_sqrt_product(s1, s2), expected, 1e-10 * expected);
  }
}

TEST(FrechetDistance, TraceSqrtProductEqualsTheSumOfRootsOfTheProductsEigenvalues) {
  // S1 S2 is similar to S1^1/2 S2 S1^1/2: real positive eigenvalues, whose roots sum to the trace.
  std::mt19937_64 rng(2);
  const Eigen::MatrixXd s1 = random_spd(30, rng), s2 = random_spd(30, rng);
  const Eigen::EigenSolver<Eigen::MatrixXd> e(s1 * s2);
  const double expected = e.eigenvalues().real().cwiseSqrt().sum();
  EXPECT_NEAR(neural::trace_sqrt_product(s1, s2), expected, 1e-9 * expected);
  EXPECT_NEAR(neural::trace_sqrt_product(s2, s1), expected, 1e-9 * expected);
}

TEST(FrechetDistance, OfGaussiansWithAKnownDistance) {
  // Diagonal (commuting) covariances: |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2.
  FeatureGaussian a, b;
  a.mean.resize(3);
  b.mean.resize(3);
  a.mean << 0.0, 1.0, 2.0;
  b.mean << 1.0, 1.0, 0.0;
  Eigen::VectorXd va(3), vb(3);
  va << 1.0, 4.0, 9.0;
  vb << 4.0, 4.0, 1.0;
  a.covariance = va.asDiagonal();
  b.covariance = vb.asDiagonal();
  EXPECT_NEAR(neural::frechet_distance(a, b), 5.0 + 1.0 + 0.0 + 4.0, 1e-12);
  EXPECT_NEAR(neural::frechet_distance(b, a), 10.0, 1e-12);
  EXPECT_NEAR(neural::frechet_distance(a, a), 0.0, 1e-12);
  // Rotating one covariance keeps the distance to itself at 0 and is symmetric otherwise.
  std::mt19937_64 rng(3);
  FeatureGaussian c{Eigen::VectorXd::Zero(5), random_spd(5, rng), 10};
  FeatureGaussian d{Eigen::VectorXd::Ones(5), random_spd(5, rng), 10};
  EXPECT_NEAR(neural::frechet_distance(c, c), 0.0, 1e-9);
  EXPECT_NEAR(neural::frechet_distance(c, d), neural::frechet_distance(d, c),
              1e-9 * neural::frechet_distance(c, d));
  EXPECT_GT(neural::frechet_distance(c, d), 5.0 - 1e-9);  // at least the mean term
}

TEST(FrechetDistance, FitNeedsTwoFiniteRows) {
  EXPECT_THROW(neural::fit_feature_gaussian(Eigen::MatrixXd::Zero(1, 3)), InvalidArgument);
  Eigen::MatrixXd f = Eigen::MatrixXd::Zero(3, 2);
  f(1, 1) = NAN;
  EXPECT_THROW(neural::fit_feature_gaussian(f), InvalidArgument);
  Eigen::MatrixXd x(3, 1);
  x << 1.0, 2.0, 3.0;
  const FeatureGaussian g = neural::fit_feature_gaussian(x);
  EXPECT_DOUBLE_EQ(g.mean[0], 2.0);
  EXPECT_DOUBLE_EQ(g.covariance(0, 0), 1.0);  // divides by n - 1
}

/// 8 x 8 images of 4 classes: a bright 4 x 4 quadrant per class, with noise.
void quadrant_images(Eigen::Index n, std::uint64_t seed, Matrix<float>& x, std::vector<int>& y) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> noise(0.0F, 0.4F);
  x.resize(n, 64);
  y.resize(static_cast<std::size_t>(n));
  for (Eigen::Index i = 0; i < n; ++i) {
    const int label = static_cast<int>(i % 4);
    y[static_cast<std::size_t>(i)] = label;
    for (int r = 0; r < 8; ++r)
      for (int c = 0; c < 8; ++c)
        x(i, r * 8 + c) = noise(rng) + ((r / 4) * 2 + c / 4 == label ? 0.6F : 0.0F);
  }
}

TEST(ImageClassifier, CrossEntropyGradientMatchesFiniteDifferences) {
  const ImageClassifier model(8, 8, 4);
  Matrix<float> x;
  std::vector<int> y;
  quadrant_images(6, 1, x, y);
  const Vector<float> p = model.initialize(2);
  Vector<float> g;
  const double loss = model.loss(p, x, y, &g);
  EXPECT_GT(loss, 0.0);
  // Random directions, central differences in float (step 1e-2 of the parameters' scale).
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal;
  for (int trial = 0; trial < 3; ++trial) {
    Vector<float> v(p.size());
    for (auto& e : v) e = normal(rng);
    v /= v.norm();
    const float h = 1e-2F;
    const double fd = (model.loss(p + h * v, x, y) - model.loss(p - h * v, x, y)) / (2.0 * h);
    EXPECT_NEAR(g.dot(v), fd, 2e-2 * std::abs(fd) + 1e-3) << "trial " << trial;
  }
}

TEST(ImageClassifier, LearnsALearnableSetAndCheckpointsExactly) {
  const ImageClassifier model(8, 8, 4);
  Matrix<float> train, test;
  std::vector<int> train_y, test_y;
  quadrant_images(400, 4, train, train_y);
  quadrant_images(100, 5, test, test_y);
  neural::ClassifierOptions o;
  o.epochs = 4;
  o.batch = 20;
  o.seed = 1;
  int calls = 0;
  const neural::ClassifierState state =
      neural::train_classifier(model, o, train, train_y, test, test_y,
                               neural::start_classifier(model, o),
                               [&](const neural::ClassifierState&) { ++calls; });
  EXPECT_EQ(calls, 4);
  ASSERT_EQ(state.history.size(), 4U);
  // Chance is 25%; the quadrants are separable.
  EXPECT_GT(state.history.back().test_accuracy, 0.95);
  EXPECT_EQ(model.features(state.params, test).cols(), neural::kClassifierFeatures);
  EXPECT_DOUBLE_EQ(model.accuracy(state.params, test, test_y), state.history.back().test_accuracy);

  // Two epochs, save, load, two more: the same parameters as four in one go.
  o.epochs = 2;
  const auto half = neural::train_classifier(model, o, train, train_y, test, test_y,
                                             neural::start_classifier(model, o));
  const auto dir = std::filesystem::temp_directory_path() / "infield_classifier_test";
  std::filesystem::create_directories(dir);
  neural::save_classifier(dir / "c.npy", half);
  auto loaded = neural::load_classifier(dir / "c.npy");
  EXPECT_EQ(loaded.params, half.params);
  o.epochs = 4;
  const auto resumed =
      neural::train_classifier(model, o, train, train_y, test, test_y, std::move(loaded));
  EXPECT_EQ(resumed.params, state.params);
  // A truncated checkpoint is a file error naming the file.
  std::filesystem::resize_file(dir / "c.npy", std::filesystem::file_size(dir / "c.npy") / 2);
  EXPECT_THROW(neural::load_classifier(dir / "c.npy"), FileError);
  std::filesystem::remove_all(dir);
}

TEST(ImageClassifier, BadInputIsRefused) {
  EXPECT_THROW(ImageClassifier(10, 8), InvalidArgument);
  EXPECT_THROW(ImageClassifier(8, 8, 1), InvalidArgument);
  const ImageClassifier model(8, 8, 4);
  const Vector<float> p = model.initialize(1);
  EXPECT_THROW(model.features(p, Matrix<float>::Zero(3, 60)), InvalidArgument);
  EXPECT_THROW(model.loss(p, Matrix<float>::Zero(2, 64), {0, 4}), InvalidArgument);
  EXPECT_THROW(model.loss(p, Matrix<float>::Zero(2, 64), {0}), InvalidArgument);
}

}  // namespace
}  // namespace infield

#include "infield/inference/conjugate_gradient.h"

#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <Eigen/QR>

#include "infield/error.h"
#include "infield/linear_operators.h"

namespace infield {
namespace {

Eigen::MatrixXd spd_matrix(Eigen::Index n, double conditioning) {
  std::srand(5);
  Eigen::MatrixXd q = Eigen::MatrixXd::Random(n, n).householderQr().householderQ();
  Eigen::VectorXd eig = Eigen::VectorXd::LinSpaced(n, 1.0, conditioning);
  return q * eig.asDiagonal() * q.transpose();
}

TEST(ConjugateGradient, SolvesASymmetricPositiveDefiniteSystemToTheRequestedResidual) {
  const Eigen::Index n = 60;
  Eigen::MatrixXd a = spd_matrix(n, 100.0);
  auto op = matrix_operator(unstructured(n), unstructured(n), a);
  Eigen::VectorXd b = Eigen::VectorXd::LinSpaced(n, -1.0, 2.0);
  Eigen::VectorXd x = Eigen::VectorXd::Zero(n);
  ConjugateGradientOptions options;
  options.relative_residual = 1e-12;
  auto summary = conjugate_gradient(*op, b, x, options);
  EXPECT_TRUE(summary.converged()) << summary.brief_report();
  EXPECT_LE(summary.relative_residual, 1e-12);
  EXPECT_LE((a * x - b).norm() / b.norm(), 1e-11);
  EXPECT_LT((x - a.llt().solve(b)).norm() / x.norm(), 1e-9);
  EXPECT_NEAR(summary.energy, 0.5 * x.dot(a * x) - b.dot(x), 1e-9 * std::abs(summary.energy));
}

TEST(ConjugateGradient, ReportsTheIterationLimitAsAStatus) {
  const Eigen::Index n = 50;
  auto op = matrix_operator(unstructured(n), unstructured(n), spd_matrix(n, 1e4));
  Eigen::VectorXd b = Eigen::VectorXd::Ones(n), x = Eigen::VectorXd::Zero(n);
  ConjugateGradientOptions options;
  options.max_iterations = 3;
  auto summary = conjugate_gradient(*op, b, x, options);
  EXPECT_EQ(summary.status, ConjugateGradientStatus::kIterationLimit);
  EXPECT_EQ(summary.iterations, 3);
  EXPECT_GT(summary.relative_residual, options.relative_residual);
}

TEST(ConjugateGradient, ReportsBreakdownOnAnIndefiniteOperator) {
  auto op = diagonal_operator(unstructured(3), Eigen::Vector3d(1.0, -1.0, 2.0));
  Eigen::VectorXd b = Eigen::Vector3d(0.0, 1.0, 0.0), x = Eigen::VectorXd::Zero(3);
  auto summary = conjugate_gradient(*op, b, x);
  EXPECT_EQ(summary.status, ConjugateGradientStatus::kBreakdown);
  EXPECT_NE(summary.message.find("not positive definite"), std::string::npos);
}

TEST(ConjugateGradient, StopsOnSmallEnergyChange) {
  const Eigen::Index n = 80;
  auto op = matrix_operator(unstructured(n), unstructured(n), spd_matrix(n, 1e3));
  Eigen::VectorXd b = Eigen::VectorXd::Ones(n), x = Eigen::VectorXd::Zero(n);
  ConjugateGradientOptions options;
  options.relative_residual = 0.0;
  options.absolute_energy_change = 1e-3;
  auto summary = conjugate_gradient(*op, b, x, options);
  EXPECT_TRUE(summary.converged());
  EXPECT_LT(summary.iterations, n);
  EXPECT_NE(summary.message.find("energy"), std::string::npos);
}

TEST(ConjugateGradient, ZeroRightHandSideGivesZero) {
  auto op = identity_operator(unstructured(4));
  Eigen::VectorXd b = Eigen::VectorXd::Zero(4), x = Eigen::VectorXd::Ones(4);
  auto summary = conjugate_gradient(*op, b, x);
  EXPECT_TRUE(summary.converged());
  EXPECT_EQ(x, Eigen::VectorXd::Zero(4));
}

TEST(ConjugateGradient, RejectsBadInput) {
  auto op = identity_operator(unstructured(3));
  Eigen::VectorXd x = Eigen::VectorXd::Zero(3);
  Eigen::VectorXd nan_b = Eigen::Vector3d(1.0, std::nan(""), 0.0);
  EXPECT_THROW(conjugate_gradient(*op, nan_b, x), InvalidArgument);
  Eigen::VectorXd short_b = Eigen::VectorXd::Ones(2);
  EXPECT_THROW(conjugate_gradient(*op, short_b, x), InvalidArgument);
  ConjugateGradientOptions options;
  options.max_iterations = 0;
  Eigen::VectorXd b = Eigen::VectorXd::Ones(3);
  EXPECT_THROW(conjugate_gradient(*op, b, x, options), InvalidArgument);
  auto rect = matrix_operator(unstructured(3), unstructured(2), Eigen::MatrixXd::Ones(2, 3));
  EXPECT_THROW(conjugate_gradient(*rect, b, x), InvalidArgument);
}

}  // namespace
}  // namespace infield

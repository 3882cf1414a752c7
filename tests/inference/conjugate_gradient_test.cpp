#include "infield/inference/conjugate_gradient.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <Eigen/QR>

#include "infield/error.h"
#include "infield/linear_operators.h"
#include "infield/testing/matchers.h"

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

ConjugateGradientOptions tight_cg() {
  ConjugateGradientOptions options;
  options.relative_residual = 1e-12;
  return options;
}

TEST(InverseByCG, InvertsASymmetricPositiveDefiniteOperator) {
  const Eigen::Index n = 40;
  Eigen::MatrixXd a = spd_matrix(n, 100.0);
  auto op = matrix_operator(unstructured(n), unstructured(n), a);
  auto log = std::make_shared<CGLog>();
  auto inv = inverse_by_cg(op, tight_cg(), log);
  EXPECT_EQ(inv->domain(), op->target());
  EXPECT_EQ(inv->target(), op->domain());
  EXPECT_TRUE(inv->supports(LinearOperator::kInverseTimes));

  std::mt19937_64 rng(11);
  const Field x = Field::normal(unstructured(n), rng);
  // A^{-1} A x = x to the CG tolerance (times the condition number, 100).
  const Field back = inv->times(op->times(x));
  EXPECT_LT((back - x).norm(), 100 * 1e-12 * x.norm());
  const Field back_adjoint = inv->adjoint_times(op->times(x));
  EXPECT_LT((back_adjoint - x).norm(), 100 * 1e-12 * x.norm());
  // inverse_times applies A itself.
  EXPECT_LT((inv->inverse_times(x) - op->times(x)).norm(), 1e-14 * op->times(x).norm());
  EXPECT_LT((inv->adjoint_inverse_times(x) - op->times(x)).norm(), 1e-14 * op->times(x).norm());
  EXPECT_EQ(log->solves.load(), 2);
  EXPECT_EQ(log->not_converged.load(), 0);
  EXPECT_GT(log->iterations.load(), 2);
  EXPECT_LE(log->iterations.load(), 2 * 3 * n);
}

TEST(InverseByCG, PassesTheLinearOperatorChecksToTheCGTolerance) {
  const Eigen::Index n = 30;
  auto op = matrix_operator(unstructured(n), unstructured(n), spd_matrix(n, 50.0));
  LinearCheckOptions check;
  check.tolerance = 1e-8;
  EXPECT_THAT(*inverse_by_cg(op, tight_cg()), testing::IsConsistentLinearOperatorWith(check));
  // A sandwich B^T B + 1 is SPD without closed-form inverse; its CG inverse checks the same way.
  Eigen::MatrixXd b = Eigen::MatrixXd::Random(2 * n, n);
  auto m = sandwich(matrix_operator(unstructured(n), unstructured(2 * n), b)) +
           identity_operator(unstructured(n));
  EXPECT_THAT(*inverse_by_cg(m, tight_cg()), testing::IsConsistentLinearOperatorWith(check));
}

TEST(InverseByCG, CountsSolvesAndNonConvergenceInTheLog) {
  const Eigen::Index n = 50;
  auto op = matrix_operator(unstructured(n), unstructured(n), spd_matrix(n, 1e6));
  ConjugateGradientOptions options;
  options.max_iterations = 2;
  auto log = std::make_shared<CGLog>();
  auto inv = inverse_by_cg(op, options, log);
  const Field y = Field::full(unstructured(n), 1.0);
  const Field x = inv->times(y);  // not converged: still a result, no exception
  EXPECT_TRUE(x.all_finite());
  inv->adjoint_times(y);
  EXPECT_EQ(log->solves.load(), 2);
  EXPECT_EQ(log->not_converged.load(), 2);
  EXPECT_EQ(log->iterations.load(), 4);
  // A converging solve counts as a solve only.
  auto easy = inverse_by_cg(identity_operator(unstructured(n)), options, log);
  easy->times(y);
  EXPECT_EQ(log->solves.load(), 3);
  EXPECT_EQ(log->not_converged.load(), 2);
  // Without a log the operator works the same.
  EXPECT_EQ(inverse_by_cg(op, options)->times(y).values(), x.values());
}

TEST(InverseByCG, RejectsBadArguments) {
  auto rect = matrix_operator(unstructured(3), unstructured(2), Eigen::MatrixXd::Ones(2, 3));
  EXPECT_THROW(inverse_by_cg(rect), InvalidArgument);
  EXPECT_THROW(inverse_by_cg(nullptr), InvalidArgument);
  ConjugateGradientOptions bad;
  bad.max_iterations = 0;
  EXPECT_THROW(inverse_by_cg(identity_operator(unstructured(3)), bad), InvalidArgument);
  auto inv = inverse_by_cg(identity_operator(unstructured(3)));
  const Field nan_y(unstructured(3), Eigen::Vector3d(1.0, std::nan(""), 0.0));
  EXPECT_THROW(inv->times(nan_y), InvalidArgument);
}

}  // namespace
}  // namespace infield

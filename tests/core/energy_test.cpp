#include "infield/energy.h"

#include <gtest/gtest.h>

#include "infield/error.h"
#include "infield/linear_operators.h"
#include "infield/pointwise.h"

namespace infield {
namespace {

struct Problem {
  Space latent = unstructured(6);
  Space data_space = unstructured(9);
  OperatorPtr model;
  LikelihoodPtr likelihood;
  Problem() {
    std::srand(4);
    model = exp(matrix_operator(latent, data_space, 0.4 * Eigen::MatrixXd::Random(9, 6)));
    std::mt19937_64 rng(2);
    Eigen::VectorXd counts = poisson_likelihood(Field::zeros(data_space))
                                 ->draw_data(Eigen::VectorXd::Constant(9, 4.0), rng);
    likelihood = poisson_likelihood(Field(data_space, counts));
  }
};

// Value, gradient (against central differences) and metric (against J^T F J built densely).
void check_energy(const Energy& energy, const Problem& p, bool with_prior) {
  std::mt19937_64 rng(5);
  Eigen::VectorXd x = 0.3 * standard_normal_vector(6, rng), v = standard_normal_vector(6, rng);
  EnergyEvaluation e = energy.evaluate(x, kValue | kGradient | kMetric);
  const double expected = p.likelihood->evaluate(p.model->evaluate(x), nullptr) +
                          (with_prior ? 0.5 * x.squaredNorm() : 0.0);
  EXPECT_NEAR(e.value, expected, 1e-12 * std::abs(expected));
  const double h = 1e-6;
  const double fd = (energy.evaluate(x + h * v, kValue).value -
                     energy.evaluate(x - h * v, kValue).value) / (2 * h);
  EXPECT_NEAR(e.gradient.dot(v), fd, 1e-6 * std::abs(fd));
  FlatLinearization lin = p.model->linearize_flat(x);
  Eigen::MatrixXd j(9, 6);
  for (int c = 0; c < 6; ++c) j.col(c) = lin.jacobian->evaluate(Eigen::VectorXd::Unit(6, c));
  Eigen::MatrixXd m = j.transpose() * lin.value.cwiseInverse().asDiagonal() * j;
  if (with_prior) m.diagonal().array() += 1.0;
  EXPECT_TRUE(e.metric->evaluate(v).isApprox(m * v, 1e-12));
}

TEST(Energy, LikelihoodEnergyIsTheLikelihoodOfTheModel) {
  Problem p;
  check_energy(*likelihood_energy(p.likelihood, p.model), p, false);
}

TEST(Energy, StandardHamiltonianAddsTheStandardNormalPrior) {
  Problem p;
  check_energy(*standard_hamiltonian(p.likelihood, p.model), p, true);
}

TEST(Energy, RejectsAModelThatDoesNotFeedTheLikelihood) {
  Problem p;
  auto other = exp(unstructured(4));
  EXPECT_THROW(likelihood_energy(p.likelihood, other), DomainMismatch);
  EXPECT_THROW(standard_hamiltonian(p.likelihood, other), DomainMismatch);
  EXPECT_THROW(standard_hamiltonian(nullptr, p.model), InvalidArgument);
}

}  // namespace
}  // namespace infield

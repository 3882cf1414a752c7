#include "infield/energy.h"

#include "infield/error.h"
#include "infield/linear_operators.h"

namespace infield {

StandardHamiltonian::StandardHamiltonian(LikelihoodPtr likelihood, OperatorPtr model)
    : Energy(model ? model->domain() : Space()), likelihood_(std::move(likelihood)),
      model_(std::move(model)) {
  check_argument(likelihood_ && model_, "StandardHamiltonian", "likelihood, model",
                 "must not be null");
  check_same_space(likelihood_->domain(), model_->target(), "StandardHamiltonian",
                   "model's target vs likelihood's domain:");
}

EnergyEvaluation StandardHamiltonian::evaluate(ConstVectorRef xi, unsigned request) const {
  EnergyEvaluation out;
  const double prior = 0.5 * xi.squaredNorm();
  if (!(request & (kGradient | kMetric))) {
    out.value = likelihood_->evaluate(model_->evaluate(xi), nullptr) + prior;
    return out;
  }
  FlatLinearization lin = model_->linearize_flat(xi);
  Eigen::VectorXd likelihood_gradient;
  out.value = likelihood_->evaluate(lin.value, &likelihood_gradient) + prior;
  if (request & kGradient) {
    out.gradient.resize(xi.size());
    lin.jacobian->apply_adjoint(likelihood_gradient, out.gradient);
    out.gradient += xi;
  }
  if (request & kMetric)
    out.metric = sandwich(lin.jacobian, likelihood_->metric(lin.value)) + identity_operator(domain());
  return out;
}

Eigen::VectorXd StandardHamiltonian::draw_metric_sample(const LinearOperator& jacobian,
                                                        ConstVectorRef model_value,
                                                        std::mt19937_64& rng) const {
  Eigen::VectorXd n = likelihood_->draw_metric_sample(model_value, rng);
  Eigen::VectorXd theta(domain().size());
  jacobian.apply_adjoint(n, theta);
  std::normal_distribution<double> gauss;
  for (auto& t : theta) t += gauss(rng);
  return theta;
}

std::shared_ptr<const StandardHamiltonian> standard_hamiltonian(LikelihoodPtr likelihood,
                                                                OperatorPtr model) {
  return std::make_shared<StandardHamiltonian>(std::move(likelihood), std::move(model));
}

}  // namespace infield

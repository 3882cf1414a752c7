#include "infield/energy.h"

#include "infield/error.h"
#include "infield/linear_operators.h"

namespace infield {

namespace {

void check_composable(const LikelihoodPtr& likelihood, const OperatorPtr& model,
                      std::string_view fn) {
  check_argument(likelihood && model, fn, "likelihood, model", "must not be null");
  check_same_space(likelihood->domain(), model->target(), fn,
                   "model's target vs likelihood's domain:");
}

/// L(model(xi)) (+ 0.5 |xi|^2 with the prior) and what `request` asks for, from one linearisation.
EnergyEvaluation evaluate_composed(const Likelihood& likelihood, const Operator& model,
                                   const Space& domain, ConstVectorRef xi, unsigned request,
                                   bool with_prior) {
  EnergyEvaluation out;
  const double prior = with_prior ? 0.5 * xi.squaredNorm() : 0.0;
  if (!(request & (kGradient | kMetric))) {
    out.value = likelihood.evaluate(model.evaluate(xi), nullptr) + prior;
    return out;
  }
  FlatLinearization lin = model.linearize_flat(xi);
  Eigen::VectorXd likelihood_gradient;
  out.value = likelihood.evaluate(lin.value, &likelihood_gradient) + prior;
  if (request & kGradient) {
    out.gradient.resize(xi.size());
    lin.jacobian->apply_adjoint(likelihood_gradient, out.gradient);
    if (with_prior) out.gradient += xi;
  }
  if (request & kMetric) {
    out.metric = sandwich(lin.jacobian, likelihood.metric(lin.value));
    if (with_prior) out.metric = out.metric + identity_operator(domain);
  }
  return out;
}

}  // namespace

LikelihoodEnergy::LikelihoodEnergy(LikelihoodPtr likelihood, OperatorPtr model)
    : Energy(model ? model->domain() : Space()), likelihood_(std::move(likelihood)),
      model_(std::move(model)) {
  check_composable(likelihood_, model_, "LikelihoodEnergy");
}

EnergyEvaluation LikelihoodEnergy::evaluate(ConstVectorRef xi, unsigned request) const {
  return evaluate_composed(*likelihood_, *model_, domain(), xi, request, false);
}

std::shared_ptr<const LikelihoodEnergy> likelihood_energy(LikelihoodPtr likelihood,
                                                          OperatorPtr model) {
  return std::make_shared<LikelihoodEnergy>(std::move(likelihood), std::move(model));
}

StandardHamiltonian::StandardHamiltonian(LikelihoodPtr likelihood, OperatorPtr model)
    : Energy(model ? model->domain() : Space()), likelihood_(std::move(likelihood)),
      model_(std::move(model)) {
  check_composable(likelihood_, model_, "StandardHamiltonian");
}

EnergyEvaluation StandardHamiltonian::evaluate(ConstVectorRef xi, unsigned request) const {
  return evaluate_composed(*likelihood_, *model_, domain(), xi, request, true);
}

Eigen::VectorXd StandardHamiltonian::draw_metric_sample(const LinearOperator& jacobian,
                                                        ConstVectorRef model_value,
                                                        std::mt19937_64& rng,
                                                        Eigen::VectorXd* prior_part) const {
  Eigen::VectorXd n = likelihood_->draw_metric_sample(model_value, rng);
  Eigen::VectorXd theta(domain().size());
  jacobian.apply_adjoint(n, theta);
  std::normal_distribution<double> gauss;
  if (prior_part != nullptr) prior_part->resize(theta.size());
  for (Eigen::Index i = 0; i < theta.size(); ++i) {
    const double eta = gauss(rng);
    theta[i] += eta;
    if (prior_part != nullptr) (*prior_part)[i] = eta;
  }
  return theta;
}

OperatorPtr StandardHamiltonian::transformation() const {
  OperatorPtr f = likelihood_->transformation();
  if (!f) return nullptr;
  return compose(std::move(f), model_);
}

std::shared_ptr<const StandardHamiltonian> standard_hamiltonian(LikelihoodPtr likelihood,
                                                                OperatorPtr model) {
  return std::make_shared<StandardHamiltonian>(std::move(likelihood), std::move(model));
}

}  // namespace infield

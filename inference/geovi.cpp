#include "infield/inference/geovi.h"

#include <tbb/parallel_for.h>

#include <Eigen/LU>
#include <cmath>
#include <limits>

#include "infield/error.h"
#include "infield/linear_operators.h"

namespace infield {

/// What every sample of one expansion shares: the transformation f (after the model), its value
/// and Jacobian J̄ at xi_bar, and the projection P onto the sampled entries (null: all sampled).
namespace detail {
struct GeoVIState {
  OperatorPtr transformation;
  Eigen::VectorXd position;
  Eigen::VectorXd value;  // f(xi_bar)
  LinearOperatorPtr jacobian;  // J̄
  LinearOperatorPtr projection;  // P, or null

  Eigen::VectorXd embed(const Eigen::VectorXd& delta) const {
    if (!projection) return delta;
    Eigen::VectorXd full(position.size());
    projection->apply_adjoint(delta, full);
    return full;
  }
  Eigen::VectorXd project(const Eigen::VectorXd& full) const {
    return projection ? projection->evaluate(full) : full;
  }
  /// P J̄^T u for u in f's target.
  Eigen::VectorXd pullback(ConstVectorRef u) const {
    Eigen::VectorXd full(position.size());
    jacobian->apply_adjoint(u, full);
    return project(full);
  }
};
}  // namespace detail

namespace {

/// J_g v = v + P J̄^T J_f P^T v at one point, J_f the transformation's Jacobian there.
class TransformationJacobian final : public LinearOperator {
 public:
  TransformationJacobian(const Space& space, std::shared_ptr<const detail::GeoVIState> state,
                         LinearOperatorPtr local_jacobian)
      : LinearOperator(space, space), state_(std::move(state)),
        local_(std::move(local_jacobian)) {}
  std::string name() const override { return "GeoVITransformationJacobian"; }
  void apply_times(ConstVectorRef v, VectorRef out) const override {
    const Eigen::VectorXd full = state_->embed(v);
    Eigen::VectorXd u(local_->target().size());
    local_->apply_times(full, u);
    out = v + state_->pullback(u);
  }
  void apply_adjoint(ConstVectorRef w, VectorRef out) const override {
    const Eigen::VectorXd full = state_->embed(w);
    Eigen::VectorXd u(state_->jacobian->target().size());
    state_->jacobian->apply_times(full, u);
    Eigen::VectorXd back(state_->position.size());
    local_->apply_adjoint(u, back);
    out = w + state_->project(back);
  }

 private:
  std::shared_ptr<const detail::GeoVIState> state_;
  LinearOperatorPtr local_;
};

/// 0.5 |g(delta) - g(0) - y|^2 with g(delta) - g(0) = delta + P J̄^T (f(xi_bar + P^T delta) - f̄).
class SampleEnergy final : public Energy {
 public:
  SampleEnergy(const Space& space, std::shared_ptr<const detail::GeoVIState> state,
               Eigen::VectorXd y)
      : Energy(space), state_(std::move(state)), y_(std::move(y)) {}
  bool has_metric() const override { return true; }

  EnergyEvaluation evaluate(ConstVectorRef delta, unsigned request) const override {
    const Eigen::VectorXd x = state_->position + state_->embed(delta);
    EnergyEvaluation out;
    Eigen::VectorXd f;
    LinearOperatorPtr local;
    if (request & (kGradient | kMetric)) {
      FlatLinearization lin = state_->transformation->linearize_flat(x);
      f = std::move(lin.value);
      local = std::move(lin.jacobian);
    } else {
      f = state_->transformation->evaluate(x);
    }
    const Eigen::VectorXd residual = delta + state_->pullback(f - state_->value) - y_;
    out.value = 0.5 * residual.squaredNorm();
    if (!std::isfinite(out.value)) out.value = std::numeric_limits<double>::infinity();
    if (!local) return out;
    auto jacobian = std::make_shared<TransformationJacobian>(domain(), state_, local);
    if (request & kGradient) {
      out.gradient.resize(delta.size());
      jacobian->apply_adjoint(residual, out.gradient);
    }
    if (request & kMetric) out.metric = sandwich(jacobian);  // J_g^T J_g
    return out;
  }

 private:
  std::shared_ptr<const detail::GeoVIState> state_;
  Eigen::VectorXd y_;
};

}  // namespace

GeoVIExpansion::GeoVIExpansion(const StandardHamiltonian& hamiltonian, const Field& position,
                               std::vector<bool> sampled) {
  constexpr std::string_view fn = "GeoVIExpansion";
  check_same_space(hamiltonian.domain(), position.space(), fn, "position");
  check_finite(position.values(), fn, "position");
  auto state = std::make_shared<detail::GeoVIState>();
  state->transformation = hamiltonian.transformation();
  check_argument(state->transformation != nullptr, fn, "hamiltonian",
                 "has a likelihood (" + hamiltonian.likelihood()->name() +
                     ") without a coordinate transformation; geoVI needs one");
  state->position = position.values();
  FlatLinearization lin = state->transformation->linearize_flat(state->position);
  check_finite(lin.value, fn, "the likelihood's transformation at position");
  state->value = std::move(lin.value);
  state->jacobian = std::move(lin.jacobian);
  sampled_space_ = position.space();
  if (!sampled.empty()) {
    check_argument(static_cast<Eigen::Index>(sampled.size()) == position.size(), fn, "sampled",
                   "must have one entry per position entry");
    bool all = true;
    for (bool s : sampled) all = all && s;
    if (!all) {
      state->projection = mask_operator(position.space(), sampled);
      sampled_space_ = state->projection->target();
    }
  }
  state_ = std::move(state);
  const LinearOperatorPtr bun =
      state_->projection ? compose(state_->jacobian, adjoint(state_->projection)) : state_->jacobian;
  metric_ = sandwich(bun) + identity_operator(sampled_space_);
}

Eigen::VectorXd GeoVIExpansion::draw_metric_sample(std::mt19937_64& rng,
                                                   Eigen::VectorXd* prior_part) const {
  // Same order as StandardHamiltonian::draw_metric_sample (likelihood part first, then eta), so
  // a Gaussian likelihood, whose metric sample is N^{-1/2} eps, gets MGVI's random numbers.
  const Eigen::VectorXd eps = standard_normal_vector(state_->jacobian->target().size(), rng);
  Eigen::VectorXd theta(state_->position.size());
  state_->jacobian->apply_adjoint(eps, theta);
  const Eigen::VectorXd eta = standard_normal_vector(theta.size(), rng);
  theta += eta;
  if (prior_part) *prior_part = state_->project(eta);
  return state_->project(theta);
}

std::shared_ptr<const Energy> GeoVIExpansion::sample_energy(Eigen::VectorXd y) const {
  check_argument(y.size() == sampled_space_.size(), "GeoVIExpansion::sample_energy", "y",
                 "must live on the sampled entries");
  return std::make_shared<SampleEnergy>(sampled_space_, state_, std::move(y));
}

MinimizerSummary GeoVIExpansion::refine(Eigen::VectorXd y, Eigen::VectorXd& residual,
                                        const Minimizer& minimizer) const {
  check_argument(residual.size() == sampled_space_.size(), "GeoVIExpansion::refine", "residual",
                 "must live on the sampled entries");
  const auto energy = sample_energy(std::move(y));
  return minimizer.minimize(*energy, residual);
}

double GeoVIExpansion::log_abs_det_jacobian(const Eigen::VectorXd& residual) const {
  const Eigen::VectorXd x = state_->position + state_->embed(residual);
  const TransformationJacobian jacobian(sampled_space_, state_,
                                        state_->transformation->linearize_flat(x).jacobian);
  const Eigen::Index n = sampled_space_.size();
  Eigen::MatrixXd dense(n, n);
  tbb::parallel_for(Eigen::Index{0}, n, [&](Eigen::Index j) {
    Eigen::VectorXd unit = Eigen::VectorXd::Zero(n), column(n);
    unit[j] = 1.0;
    jacobian.apply_times(unit, column);
    dense.col(j) = column;
  });
  if (!dense.allFinite()) return std::numeric_limits<double>::quiet_NaN();
  const Eigen::PartialPivLU<Eigen::MatrixXd> lu(dense);
  return lu.matrixLU().diagonal().array().abs().log().sum();
}

Eigen::VectorXd GeoVIExpansion::embed(const Eigen::VectorXd& residual) const {
  return state_->embed(residual);
}

MinimizerPtr geovi_sample_minimizer(int max_iterations, double absolute_energy_change) {
  NewtonCGOptions options;
  options.max_iterations = max_iterations;
  options.absolute_energy_change = absolute_energy_change;
  options.convergence_level = 2;
  options.energy_reduction_factor = 0.1;  // NIFTy's NewtonCG: inexact steps
  options.cg = {1e-6, 0.0, 200};
  return newton_cg(options);
}

}  // namespace infield

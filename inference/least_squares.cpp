#include "infield/inference/least_squares.h"

#include <cmath>

#include "infield/error.h"
#include "infield/linear_operators.h"

namespace infield {

LeastSquaresEnergy::LeastSquaresEnergy(OperatorPtr residuals)
    : Energy(residuals ? residuals->domain() : Space()), residuals_(std::move(residuals)) {
  check_argument(residuals_ != nullptr, "LeastSquaresEnergy", "residuals", "must not be null");
}

EnergyEvaluation LeastSquaresEnergy::evaluate(ConstVectorRef x, unsigned request) const {
  EnergyEvaluation out;
  if (!(request & (kGradient | kMetric))) {
    out.value = 0.5 * residuals_->evaluate(x).squaredNorm();
    return out;
  }
  FlatLinearization lin = residuals_->linearize_flat(x);
  out.value = 0.5 * lin.value.squaredNorm();
  if (request & kGradient) {
    out.gradient.resize(x.size());
    lin.jacobian->apply_adjoint(lin.value, out.gradient);
  }
  if (request & kMetric) out.metric = sandwich(std::move(lin.jacobian));
  return out;
}

std::shared_ptr<const LeastSquaresEnergy> least_squares_energy(OperatorPtr residuals) {
  return std::make_shared<LeastSquaresEnergy>(std::move(residuals));
}

namespace {

// [ J_model / sigma ; 1 ]: the Jacobian of the Gaussian residuals, from the model's Jacobian.
class GaussianResidualsJacobian final : public LinearOperator {
 public:
  GaussianResidualsJacobian(Space domain, Space target, LinearOperatorPtr model_jacobian,
                            double inverse_sigma)
      : LinearOperator(std::move(domain), std::move(target)),
        model_jacobian_(std::move(model_jacobian)),
        inverse_sigma_(inverse_sigma) {}
  std::string name() const override { return "GaussianResidualsJacobian"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    const Eigen::Index m = out.size() - x.size();
    model_jacobian_->apply_times(x, out.head(m));
    out.head(m) *= inverse_sigma_;
    out.tail(x.size()) = x;
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    const Eigen::Index m = y.size() - out.size();
    model_jacobian_->apply_adjoint(y.head(m), out);
    out = inverse_sigma_ * out + y.tail(out.size());
  }

 private:
  LinearOperatorPtr model_jacobian_;
  double inverse_sigma_;
};

// xi -> [ (model(xi) - d) / sigma ; xi ].
class GaussianResiduals final : public Operator {
 public:
  GaussianResiduals(OperatorPtr model, Eigen::VectorXd data, double sigma)
      : Operator(model->domain(), unstructured(model->target().size() + model->domain().size())),
        model_(std::move(model)),
        data_(std::move(data)),
        inverse_sigma_(1.0 / sigma) {}
  std::string name() const override { return "GaussianResiduals(" + model_->name() + ")"; }

  Eigen::VectorXd evaluate(ConstVectorRef xi) const override {
    return stack(model_->evaluate(xi), xi);
  }
  FlatLinearization linearize_flat(ConstVectorRef xi) const override {
    FlatLinearization lin = model_->linearize_flat(xi);
    return {stack(lin.value, xi), std::make_shared<GaussianResidualsJacobian>(
                                      domain(), target(), std::move(lin.jacobian), inverse_sigma_)};
  }

 private:
  Eigen::VectorXd stack(ConstVectorRef model_value, ConstVectorRef xi) const {
    Eigen::VectorXd r(target().size());
    r.head(data_.size()) = inverse_sigma_ * (model_value - data_);
    r.tail(xi.size()) = xi;
    return r;
  }

  OperatorPtr model_;
  Eigen::VectorXd data_;
  double inverse_sigma_;
};

}  // namespace

std::shared_ptr<const LeastSquaresEnergy> gaussian_least_squares(OperatorPtr model,
                                                                 const Field& data,
                                                                 double noise_std) {
  constexpr std::string_view fn = "gaussian_least_squares";
  check_argument(model != nullptr, fn, "model", "must not be null");
  check_same_space(model->target(), data.space(), fn, "data vs model's target:");
  check_finite(data.values(), fn, "data");
  check_positive(noise_std, fn, "noise_std");
  return least_squares_energy(
      std::make_shared<GaussianResiduals>(std::move(model), data.values(), noise_std));
}

}  // namespace infield

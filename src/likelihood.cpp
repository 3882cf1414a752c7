#include "infield/likelihood.h"

#include <cmath>
#include <limits>

#include "infield/error.h"
#include "unchecked_diagonal.h"
#include "infield/linear_operators.h"
#include "infield/pointwise.h"

namespace infield {

double Likelihood::value(const Field& s) const {
  check_same_space(domain(), s.space(), name() + "::value", "s");
  return evaluate(s.values(), nullptr);
}

Field Likelihood::gradient(const Field& s) const {
  check_same_space(domain(), s.space(), name() + "::gradient", "s");
  Eigen::VectorXd g;
  evaluate(s.values(), &g);
  return Field(domain(), std::move(g));
}

namespace {

/// Gaussian noise with a diagonal covariance (a scalar one is the constant diagonal).
class DiagonalGaussianLikelihood final : public Likelihood {
 public:
  DiagonalGaussianLikelihood(const Field& data, Eigen::VectorXd inverse_variance)
      : Likelihood(data.space()), data_(data.values()),
        inverse_variance_(std::move(inverse_variance)),
        inverse_std_(inverse_variance_.cwiseSqrt()) {}
  std::string name() const override { return "GaussianLikelihood"; }

  double evaluate(ConstVectorRef s, Eigen::VectorXd* gradient) const override {
    Eigen::VectorXd weighted = (s - data_).cwiseProduct(inverse_variance_);
    const double value = 0.5 * weighted.dot(s - data_);
    if (gradient) *gradient = std::move(weighted);
    return value;
  }
  LinearOperatorPtr metric(ConstVectorRef) const override {
    return std::make_shared<detail::UncheckedDiagonal>(domain(), inverse_variance_);
  }
  Eigen::VectorXd draw_metric_sample(ConstVectorRef, std::mt19937_64& rng) const override {
    return inverse_std_.cwiseProduct(standard_normal_vector(data_.size(), rng));
  }
  Eigen::VectorXd draw_data(ConstVectorRef s, std::mt19937_64& rng) const override {
    return s + standard_normal_vector(data_.size(), rng).cwiseQuotient(inverse_std_);
  }
  OperatorPtr transformation() const override { return diagonal_operator(domain(), inverse_std_); }

 private:
  Eigen::VectorXd data_, inverse_variance_, inverse_std_;
};

/// Gaussian noise with N^{-1} given as an operator and a factor L, L L^T = N^{-1}.
class OperatorGaussianLikelihood final : public Likelihood {
 public:
  OperatorGaussianLikelihood(const Field& data, LinearOperatorPtr inverse_covariance,
                             LinearOperatorPtr factor)
      : Likelihood(data.space()), data_(data.values()),
        inverse_covariance_(std::move(inverse_covariance)), factor_(std::move(factor)) {}
  std::string name() const override { return "GaussianLikelihood"; }

  double evaluate(ConstVectorRef s, Eigen::VectorXd* gradient) const override {
    Eigen::VectorXd residual = s - data_;
    Eigen::VectorXd weighted = inverse_covariance_->evaluate(residual);
    const double value = 0.5 * weighted.dot(residual);
    if (gradient) *gradient = std::move(weighted);
    return value;
  }
  LinearOperatorPtr metric(ConstVectorRef) const override { return inverse_covariance_; }
  Eigen::VectorXd draw_metric_sample(ConstVectorRef, std::mt19937_64& rng) const override {
    return factor_->evaluate(standard_normal_vector(factor_->domain().size(), rng));
  }
  Eigen::VectorXd draw_data(ConstVectorRef s, std::mt19937_64& rng) const override {
    // n = N^{1/2} xi: solve L^T n = xi, so that Cov(n) = L^{-T} L^{-1} = (L L^T)^{-1} = N.
    if (!factor_->supports(LinearOperator::kAdjointInverseTimes))
      throw UnsupportedOperation(
          "GaussianLikelihood::draw_data: the factor of N^{-1} has no closed-form inverse");
    Eigen::VectorXd xi = standard_normal_vector(factor_->domain().size(), rng);
    Eigen::VectorXd noise(data_.size());
    factor_->apply_mode(LinearOperator::kAdjointInverseTimes, xi, noise);
    return s + noise;
  }
  OperatorPtr transformation() const override { return adjoint(factor_); }

 private:
  Eigen::VectorXd data_;
  LinearOperatorPtr inverse_covariance_, factor_;
};

class PoissonLikelihood final : public Likelihood {
 public:
  explicit PoissonLikelihood(const Field& counts)
      : Likelihood(counts.space()), counts_(counts.values()) {}
  std::string name() const override { return "PoissonLikelihood"; }

  double evaluate(ConstVectorRef s, Eigen::VectorXd* gradient) const override {
    if (!(s.array() > 0.0).all()) {
      if (gradient) gradient->setConstant(s.size(), std::numeric_limits<double>::quiet_NaN());
      return std::numeric_limits<double>::infinity();
    }
    const double value = s.sum() - counts_.dot(s.array().log().matrix());
    if (gradient) *gradient = (1.0 - counts_.array() / s.array()).matrix();
    return value;
  }
  LinearOperatorPtr metric(ConstVectorRef s) const override {
    return std::make_shared<detail::UncheckedDiagonal>(domain(), s.cwiseInverse());
  }
  Eigen::VectorXd draw_metric_sample(ConstVectorRef s, std::mt19937_64& rng) const override {
    return standard_normal_vector(s.size(), rng).cwiseQuotient(s.cwiseSqrt());
  }
  Eigen::VectorXd draw_data(ConstVectorRef s, std::mt19937_64& rng) const override {
    Eigen::VectorXd d(s.size());
    for (Eigen::Index i = 0; i < s.size(); ++i)
      d[i] = static_cast<double>(std::poisson_distribution<long long>(s[i])(rng));
    return d;
  }
  OperatorPtr transformation() const override { return scale(2.0, sqrt(domain())); }

 private:
  Eigen::VectorXd counts_;
};

}  // namespace

LikelihoodPtr gaussian_likelihood(const Field& data, double noise_std) {
  check_finite(data.values(), "gaussian_likelihood", "data");
  check_positive(noise_std, "gaussian_likelihood", "noise_std");
  return std::make_shared<DiagonalGaussianLikelihood>(
      data, Eigen::VectorXd::Constant(data.size(), 1.0 / (noise_std * noise_std)));
}

LikelihoodPtr gaussian_likelihood(const Field& data, const Eigen::VectorXd& noise_variance) {
  constexpr std::string_view fn = "gaussian_likelihood";
  check_finite(data.values(), fn, "data");
  check_argument(noise_variance.size() == data.size(), fn, "noise_variance",
                 "has " + std::to_string(noise_variance.size()) + " entries, the data " +
                     std::to_string(data.size()));
  check_finite(noise_variance, fn, "noise_variance");
  check_argument((noise_variance.array() > 0.0).all(), fn, "noise_variance",
                 "must be positive everywhere");
  return std::make_shared<DiagonalGaussianLikelihood>(data, noise_variance.cwiseInverse());
}

LikelihoodPtr gaussian_likelihood(const Field& data, LinearOperatorPtr inverse_covariance,
                                  LinearOperatorPtr inverse_covariance_factor) {
  constexpr std::string_view fn = "gaussian_likelihood";
  check_finite(data.values(), fn, "data");
  check_argument(inverse_covariance && inverse_covariance_factor, fn,
                 "inverse_covariance, inverse_covariance_factor", "must not be null");
  check_same_space(data.space(), inverse_covariance->domain(), fn, "inverse_covariance's domain");
  check_same_space(data.space(), inverse_covariance->target(), fn, "inverse_covariance's target");
  check_same_space(data.space(), inverse_covariance_factor->target(), fn,
                   "inverse_covariance_factor's target");
  return std::make_shared<OperatorGaussianLikelihood>(data, std::move(inverse_covariance),
                                                      std::move(inverse_covariance_factor));
}

LikelihoodPtr poisson_likelihood(const Field& counts) {
  constexpr std::string_view fn = "poisson_likelihood";
  check_finite(counts.values(), fn, "counts");
  check_argument((counts.values().array() >= 0.0).all() &&
                     (counts.values().array() == counts.values().array().round()).all(),
                 fn, "counts", "must be non-negative integers");
  return std::make_shared<PoissonLikelihood>(counts);
}

}  // namespace infield

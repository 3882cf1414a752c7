// The likelihood families beyond the Gaussian and Poisson ones of likelihood.cpp: Student-t,
// Bernoulli, Gaussian with inferred variance, inverse gamma.
#include <cmath>
#include <limits>

#include "infield/error.h"
#include "unchecked_diagonal.h"
#include "infield/likelihood.h"
#include "infield/linear_operators.h"
#include "infield/pointwise.h"

namespace infield {
namespace {

/// +inf outside the support; the gradient, if asked for, is NaN there.
double outside_support(Eigen::Index n, Eigen::VectorXd* gradient) {
  if (gradient) gradient->setConstant(n, std::numeric_limits<double>::quiet_NaN());
  return std::numeric_limits<double>::infinity();
}

/// Student-t noise around s: d = s + sigma t_dof.
class StudentTLikelihood final : public Likelihood {
 public:
  StudentTLikelihood(const Field& data, double noise_std, double dof)
      : Likelihood(data.space()), data_(data.values()), dof_(dof),
        scaled_variance_(dof * noise_std * noise_std), noise_std_(noise_std),
        fisher_((dof + 1.0) / ((dof + 3.0) * noise_std * noise_std)) {}
  std::string name() const override { return "StudentTLikelihood"; }

  double evaluate(ConstVectorRef s, Eigen::VectorXd* gradient) const override {
    const Eigen::ArrayXd residual = s.array() - data_.array();
    const Eigen::ArrayXd squared = residual.square();
    const double value = 0.5 * (dof_ + 1.0) * (squared / scaled_variance_).log1p().sum();
    if (gradient) *gradient = ((dof_ + 1.0) * residual / (scaled_variance_ + squared)).matrix();
    return value;
  }
  LinearOperatorPtr metric(ConstVectorRef) const override {
    return std::make_shared<detail::UncheckedDiagonal>(domain(), Eigen::VectorXd::Constant(data_.size(), fisher_));
  }
  Eigen::VectorXd draw_metric_sample(ConstVectorRef, std::mt19937_64& rng) const override {
    return std::sqrt(fisher_) * standard_normal_vector(data_.size(), rng);
  }
  Eigen::VectorXd draw_data(ConstVectorRef s, std::mt19937_64& rng) const override {
    std::student_t_distribution<double> student(dof_);
    Eigen::VectorXd d(s.size());
    for (Eigen::Index i = 0; i < s.size(); ++i) d[i] = s[i] + noise_std_ * student(rng);
    return d;
  }
  OperatorPtr transformation() const override {
    return scaling_operator(domain(), std::sqrt(fisher_));
  }

 private:
  Eigen::VectorXd data_;
  double dof_, scaled_variance_, noise_std_, fisher_;
};

/// Binary data with probabilities s in (0, 1).
class BernoulliLikelihood final : public Likelihood {
 public:
  explicit BernoulliLikelihood(const Field& data)
      : Likelihood(data.space()), data_(data.values()) {}
  std::string name() const override { return "BernoulliLikelihood"; }

  double evaluate(ConstVectorRef s, Eigen::VectorXd* gradient) const override {
    if (!((s.array() > 0.0).all() && (s.array() < 1.0).all()))
      return outside_support(s.size(), gradient);
    const Eigen::ArrayXd d = data_.array();
    const double value =
        -(d * s.array().log() + (1.0 - d) * (-s.array()).log1p()).sum();
    if (gradient) *gradient = (-d / s.array() + (1.0 - d) / (1.0 - s.array())).matrix();
    return value;
  }
  LinearOperatorPtr metric(ConstVectorRef s) const override {
    return std::make_shared<detail::UncheckedDiagonal>(domain(), (s.array() * (1.0 - s.array())).inverse().matrix());
  }
  Eigen::VectorXd draw_metric_sample(ConstVectorRef s, std::mt19937_64& rng) const override {
    return standard_normal_vector(s.size(), rng).cwiseQuotient(
        (s.array() * (1.0 - s.array())).sqrt().matrix());
  }
  Eigen::VectorXd draw_data(ConstVectorRef s, std::mt19937_64& rng) const override {
    Eigen::VectorXd d(s.size());
    for (Eigen::Index i = 0; i < s.size(); ++i)
      d[i] = std::bernoulli_distribution(s[i])(rng) ? 1.0 : 0.0;
    return d;
  }
  /// f(s) = 2 arcsin(sqrt(s)): f'(s) = 1 / sqrt(s (1 - s)). NaN outside [0, 1].
  OperatorPtr transformation() const override {
    auto derivative = [](ConstVectorRef s, ConstVectorRef v) -> Eigen::VectorXd {
      return (v.array() / (s.array() * (1.0 - s.array())).sqrt()).matrix();
    };
    return make_operator(
        domain(), domain(),
        [](ConstVectorRef s) -> Eigen::VectorXd { return (2.0 * s.array().sqrt().asin()).matrix(); },
        derivative, derivative, "BernoulliTransformation");
  }

 private:
  Eigen::VectorXd data_;
};

/// Gaussian noise whose inverse variance w is a model output next to the mean m.
class VariableCovarianceGaussianLikelihood final : public Likelihood {
 public:
  VariableCovarianceGaussianLikelihood(const Field& data, MultiDomain domain)
      : Likelihood(domain), data_(data.values()), mean_offset_(domain.at("mean").offset),
        inverse_variance_offset_(domain.at("inverse_variance").offset) {}
  std::string name() const override { return "VariableCovarianceGaussianLikelihood"; }

  double evaluate(ConstVectorRef s, Eigen::VectorXd* gradient) const override {
    const Eigen::Index n = data_.size();
    const auto mean = s.segment(mean_offset_, n).array();
    const auto w = s.segment(inverse_variance_offset_, n).array();
    if (!(w > 0.0).all()) return outside_support(s.size(), gradient);
    const Eigen::ArrayXd residual = mean - data_.array();
    const double value = 0.5 * (residual.square() * w - w.log()).sum();
    if (gradient) {
      gradient->resize(s.size());
      gradient->segment(mean_offset_, n) = (residual * w).matrix();
      gradient->segment(inverse_variance_offset_, n) =
          (0.5 * residual.square() - 0.5 / w).matrix();
    }
    return value;
  }
  LinearOperatorPtr metric(ConstVectorRef s) const override {
    return std::make_shared<detail::UncheckedDiagonal>(domain(), fisher_diagonal(s));
  }
  Eigen::VectorXd draw_metric_sample(ConstVectorRef s, std::mt19937_64& rng) const override {
    return fisher_diagonal(s).cwiseSqrt().cwiseProduct(standard_normal_vector(s.size(), rng));
  }
  Eigen::VectorXd draw_data(ConstVectorRef s, std::mt19937_64& rng) const override {
    const Eigen::Index n = data_.size();
    return s.segment(mean_offset_, n) +
           standard_normal_vector(n, rng).cwiseQuotient(s.segment(inverse_variance_offset_, n).cwiseSqrt());
  }
  /// NIFTy's local transformation f(m, w) = (sqrt(w) (m - d), 0.5 log w), laid out like the input.
  OperatorPtr transformation() const override {
    const Eigen::Index n = data_.size(), mo = mean_offset_, wo = inverse_variance_offset_;
    const Eigen::VectorXd data = data_;
    auto value = [=](ConstVectorRef s) -> Eigen::VectorXd {
      const auto w = s.segment(wo, n).array();
      Eigen::VectorXd f(s.size());
      f.segment(mo, n) = (w.sqrt() * (s.segment(mo, n).array() - data.array())).matrix();
      f.segment(wo, n) = (0.5 * w.log()).matrix();
      return f;
    };
    auto jvp = [=](ConstVectorRef s, ConstVectorRef v) -> Eigen::VectorXd {
      const auto w = s.segment(wo, n).array();
      const Eigen::ArrayXd residual = s.segment(mo, n).array() - data.array();
      Eigen::VectorXd out(s.size());
      out.segment(mo, n) = (w.sqrt() * v.segment(mo, n).array() +
                            residual / (2.0 * w.sqrt()) * v.segment(wo, n).array())
                               .matrix();
      out.segment(wo, n) = (0.5 * v.segment(wo, n).array() / w).matrix();
      return out;
    };
    auto vjp = [=](ConstVectorRef s, ConstVectorRef u) -> Eigen::VectorXd {
      const auto w = s.segment(wo, n).array();
      const Eigen::ArrayXd residual = s.segment(mo, n).array() - data.array();
      Eigen::VectorXd out(s.size());
      out.segment(mo, n) = (w.sqrt() * u.segment(mo, n).array()).matrix();
      out.segment(wo, n) = (residual / (2.0 * w.sqrt()) * u.segment(mo, n).array() +
                            0.5 * u.segment(wo, n).array() / w)
                               .matrix();
      return out;
    };
    return make_operator(domain(), domain(), value, jvp, vjp,
                         "VariableCovarianceGaussianTransformation");
  }
  bool transformation_is_exact() const override { return false; }

 private:
  /// F = diag(w) on the mean, diag(1 / (2 w^2)) on w.
  Eigen::VectorXd fisher_diagonal(ConstVectorRef s) const {
    const Eigen::Index n = data_.size();
    const auto w = s.segment(inverse_variance_offset_, n).array();
    Eigen::VectorXd diagonal(s.size());
    diagonal.segment(mean_offset_, n) = w.matrix();
    diagonal.segment(inverse_variance_offset_, n) = (0.5 / w.square()).matrix();
    return diagonal;
  }

  Eigen::VectorXd data_;
  Eigen::Index mean_offset_, inverse_variance_offset_;
};

/// Inverse-gamma data with shape alpha and scale s: 1/d ~ Gamma(alpha, rate s).
class InverseGammaLikelihood final : public Likelihood {
 public:
  InverseGammaLikelihood(const Field& data, double alpha)
      : Likelihood(data.space()), inverse_data_(data.values().cwiseInverse()), alpha_(alpha) {}
  std::string name() const override { return "InverseGammaLikelihood"; }

  double evaluate(ConstVectorRef s, Eigen::VectorXd* gradient) const override {
    if (!(s.array() > 0.0).all()) return outside_support(s.size(), gradient);
    const double value = s.dot(inverse_data_) - alpha_ * s.array().log().sum();
    if (gradient) *gradient = (inverse_data_.array() - alpha_ / s.array()).matrix();
    return value;
  }
  LinearOperatorPtr metric(ConstVectorRef s) const override {
    return std::make_shared<detail::UncheckedDiagonal>(domain(), (alpha_ / s.array().square()).matrix());
  }
  Eigen::VectorXd draw_metric_sample(ConstVectorRef s, std::mt19937_64& rng) const override {
    return std::sqrt(alpha_) * standard_normal_vector(s.size(), rng).cwiseQuotient(s);
  }
  Eigen::VectorXd draw_data(ConstVectorRef s, std::mt19937_64& rng) const override {
    Eigen::VectorXd d(s.size());
    for (Eigen::Index i = 0; i < s.size(); ++i)
      d[i] = 1.0 / std::gamma_distribution<double>(alpha_, 1.0 / s[i])(rng);
    return d;
  }
  OperatorPtr transformation() const override {
    return scale(std::sqrt(alpha_), log(domain()));
  }

 private:
  Eigen::VectorXd inverse_data_;
  double alpha_;
};

}  // namespace

LikelihoodPtr student_t_likelihood(const Field& data, double noise_std, double dof) {
  constexpr std::string_view fn = "student_t_likelihood";
  check_finite(data.values(), fn, "data");
  check_positive(noise_std, fn, "noise_std");
  check_positive(dof, fn, "dof");
  return std::make_shared<StudentTLikelihood>(data, noise_std, dof);
}

LikelihoodPtr bernoulli_likelihood(const Field& data) {
  constexpr std::string_view fn = "bernoulli_likelihood";
  check_finite(data.values(), fn, "data");
  check_argument((data.values().array() == 0.0 || data.values().array() == 1.0).all(), fn, "data",
                 "must be 0 or 1 everywhere");
  return std::make_shared<BernoulliLikelihood>(data);
}

LikelihoodPtr variable_covariance_gaussian_likelihood(const Field& data) {
  constexpr std::string_view fn = "variable_covariance_gaussian_likelihood";
  check_argument(!data.is_multi(), fn, "data",
                 "must be a field on a DomainTuple, not a MultiField on " +
                     data.space().to_string());
  check_finite(data.values(), fn, "data");
  const DomainTuple& tuple = data.space().tuple();
  return std::make_shared<VariableCovarianceGaussianLikelihood>(
      data, MultiDomain{{"inverse_variance", tuple}, {"mean", tuple}});
}

LikelihoodPtr inverse_gamma_likelihood(const Field& data, double alpha) {
  constexpr std::string_view fn = "inverse_gamma_likelihood";
  check_finite(data.values(), fn, "data");
  check_argument((data.values().array() > 0.0).all(), fn, "data", "must be positive everywhere");
  check_positive(alpha, fn, "alpha");
  return std::make_shared<InverseGammaLikelihood>(data, alpha);
}

}  // namespace infield

#pragma once
/// @file likelihood.h
/// @brief Likelihood energies H(d | s) = -log p(d | s) + const as functions of the model output s.
///
/// Each likelihood holds its data and gives, at a model output s:
///  - the value H(s) and the gradient dH/ds,
///  - the Fisher metric F(s) = E_{d ~ p(d|s)}[grad H grad H^T] as a positive semi-definite
///    LinearOperator on domain() (what MGVI's metric M = J^T F J + 1 is built from),
///  - a draw from N(0, F(s)) (for metric samples) and synthetic data from p(d | s),
///  - the coordinate transformation f whose Jacobian squares to F (geoVI's metric square root).
/// `likelihood(model)` composition and the standard Hamiltonian are in <infield/energy.h>.

#include <memory>
#include <random>
#include <string>

#include "infield/operator.h"

namespace infield {

class Likelihood {
 public:
  explicit Likelihood(Space domain) : domain_(std::move(domain)) {}
  virtual ~Likelihood() = default;
  Likelihood(const Likelihood&) = delete;
  Likelihood& operator=(const Likelihood&) = delete;

  /// The space of the model output s this likelihood is a function of.
  const Space& domain() const { return domain_; }
  virtual std::string name() const = 0;

  /// H(s); when `gradient` is not null it receives dH/ds (resized to domain().size()).
  /// Outside the support (e.g. a Poisson rate <= 0) the value is +inf, never an exception.
  virtual double evaluate(ConstVectorRef s, Eigen::VectorXd* gradient) const = 0;
  /// The Fisher metric at s.
  virtual LinearOperatorPtr metric(ConstVectorRef s) const = 0;
  /// A draw from N(0, F(s)).
  virtual Eigen::VectorXd draw_metric_sample(ConstVectorRef s, std::mt19937_64& rng) const = 0;
  /// Synthetic data drawn from p(d | s), laid out like the stored data.
  virtual Eigen::VectorXd draw_data(ConstVectorRef s, std::mt19937_64& rng) const = 0;

  /// The coordinate transformation into which the Fisher metric is Euclidean (NIFTy's
  /// `get_transformation`): an operator f from domain() to a space of its own whose Jacobian
  /// satisfies J_f(s)^T J_f(s) = F(s), so J_f(s)^T applied to a vector is a square root of the
  /// metric (N^{-1/2} for a Gaussian, diag(1 / sqrt(s)) for Poisson rates). geoVI maps samples
  /// through it; only differences f(s) - f(s') matter. Null for a likelihood that has none (geoVI
  /// then refuses it); every likelihood of this header has one. Check it with
  /// check_likelihood_transformation() (<infield/checks.h>).
  virtual OperatorPtr transformation() const { return nullptr; }
  /// True if J_f^T J_f equals metric(s) at every s. False for the Gaussian with inferred variance,
  /// which (as in NIFTy) has no exact global transformation: its J_f^T J_f equals F only in
  /// expectation over data drawn from p(d | s).
  virtual bool transformation_is_exact() const { return true; }

  /// Field-level conveniences; throw DomainMismatch if s is not on domain().
  double value(const Field& s) const;
  Field gradient(const Field& s) const;

 private:
  Space domain_;
};

using LikelihoodPtr = std::shared_ptr<const Likelihood>;

/// H = 0.5 |d - s|^2 / sigma^2 (constants dropped). sigma > 0. Transformation f(s) = s / sigma.
LikelihoodPtr gaussian_likelihood(const Field& data, double noise_std);
/// H = 0.5 sum_i (d_i - s_i)^2 / var_i with a diagonal noise covariance; all var_i > 0.
/// Transformation f(s) = s / sqrt(var).
LikelihoodPtr gaussian_likelihood(const Field& data, const Eigen::VectorXd& noise_variance);
/// H = 0.5 (d - s)^T N^{-1} (d - s) with N^{-1} = `inverse_covariance` (symmetric positive
/// definite). `inverse_covariance_factor` L with L L^T = N^{-1} (L maps a standard-normal vector on
/// its domain to the data space) is used to draw metric samples L xi; the transformation is
/// f(s) = L^T s (on L's domain), so J_f^T J_f = L L^T = N^{-1}.
LikelihoodPtr gaussian_likelihood(const Field& data, LinearOperatorPtr inverse_covariance,
                                  LinearOperatorPtr inverse_covariance_factor);
/// Poisson counts d_i >= 0 (integers) with rates s_i: H = sum_i s_i - d_i log s_i; F = diag(1/s);
/// f(s) = 2 sqrt(s).
LikelihoodPtr poisson_likelihood(const Field& counts);
/// Student-t noise with `dof` > 0 degrees of freedom and scale sigma > 0:
/// H = sum_i (dof + 1)/2 log(1 + (d_i - s_i)^2 / (dof sigma^2)); F = (dof+1)/((dof+3) sigma^2);
/// f(s) = sqrt(F) s.
LikelihoodPtr student_t_likelihood(const Field& data, double noise_std, double dof);
/// Binary data d_i in {0, 1} with probabilities s_i in (0, 1):
/// H = -sum_i [d_i log s_i + (1 - d_i) log(1 - s_i)]; F = diag(1 / (s (1 - s)));
/// f(s) = 2 arcsin(sqrt(s)).
LikelihoodPtr bernoulli_likelihood(const Field& data);
/// Gaussian with inferred variance: the model output is a MultiField with parts "mean" and
/// "inverse_variance" (both on the data's space); H = 0.5 sum_i [(d_i - m_i)^2 w_i - log w_i];
/// F = diag(w) on the mean and diag(1 / (2 w^2)) on w. Its transformation is NIFTy's local one,
/// f(m, w) = (sqrt(w) (m - d), 0.5 log w) on the same MultiDomain: J_f^T J_f has the off-diagonal
/// block (m - d) / 2 and w-block (m - d)^2 / (4 w) + 1 / (4 w^2), which average to F over data
/// drawn from p(d | m, w) (transformation_is_exact() is false).
LikelihoodPtr variable_covariance_gaussian_likelihood(const Field& data);
/// Inverse-gamma distributed data d_i > 0 (e.g. variances) with shape alpha > 0 and model scale
/// s_i > 0: H = sum_i s_i / d_i - alpha log s_i; F = diag(alpha / s^2); f(s) = sqrt(alpha) log s.
LikelihoodPtr inverse_gamma_likelihood(const Field& data, double alpha);

}  // namespace infield

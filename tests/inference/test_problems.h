#pragma once
// Problems shared by the inference tests (MGVI and geoVI): a linear-Gaussian one with an analytic
// posterior and a log-normal field observed through Poisson counts.

#include <cmath>
#include <functional>
#include <random>

#include <Eigen/Cholesky>

#include "infield/energy.h"
#include "infield/inference/minimizer.h"
#include "infield/linear_operators.h"
#include "infield/pointwise.h"

namespace infield::test {

inline Eigen::VectorXd gaussian(Eigen::Index n, std::mt19937_64& rng) {
  std::normal_distribution<double> g;
  Eigen::VectorXd v(n);
  for (auto& x : v) x = g(rng);
  return v;
}

/// d = R xi + n with a dense random response: the analytic posterior is
/// mean = (R^T N^-1 R + 1)^-1 R^T N^-1 d, covariance (R^T N^-1 R + 1)^-1.
struct LinearGaussianProblem {
  Eigen::Index n = 80, m = 100;
  double noise_std = 0.3;
  Eigen::MatrixXd response;
  Eigen::VectorXd data;
  std::shared_ptr<const StandardHamiltonian> hamiltonian;
  Eigen::VectorXd analytic_mean;
  Eigen::MatrixXd analytic_covariance;

  explicit LinearGaussianProblem(unsigned seed) {
    std::mt19937_64 rng(seed);
    response = Eigen::MatrixXd(m, n);
    for (auto& x : response.reshaped()) x = std::normal_distribution<double>(0, 0.3)(rng);
    Eigen::VectorXd truth = gaussian(n, rng);
    data = response * truth + noise_std * gaussian(m, rng);
    auto model = matrix_operator(unstructured(n), unstructured(m), response);
    hamiltonian = standard_hamiltonian(gaussian_likelihood(Field(unstructured(m), data), noise_std),
                                       model);
    const double w = 1.0 / (noise_std * noise_std);
    Eigen::MatrixXd precision = w * response.transpose() * response;
    precision.diagonal().array() += 1.0;
    Eigen::LLT<Eigen::MatrixXd> llt(precision);
    analytic_mean = llt.solve(w * response.transpose() * data);
    analytic_covariance = llt.solve(Eigen::MatrixXd::Identity(n, n));
  }
};

inline NewtonCGOptions exact_newton() {
  NewtonCGOptions o;
  o.cg.relative_residual = 1e-12;
  o.gradient_tolerance = 1e-10;
  return o;
}

/// A dense circulant square root of the stationary covariance with power spectrum P(|k|) on a
/// periodic grid of n pixels: A = F^-1 diag(sqrt(P)) F, first column a_j = n^-1/2 sum_k sqrt(P_k)
/// cos(2 pi j k / n), so that A A^T has first row c = n ifft(P) (the wf1d convention).
inline Eigen::MatrixXd circulant_sqrt(Eigen::Index n, const std::function<double(double)>& power) {
  Eigen::VectorXd a = Eigen::VectorXd::Zero(n);
  for (Eigen::Index k = 0; k < n; ++k) {
    const double amp = std::sqrt(power(static_cast<double>(std::min(k, n - k))));
    for (Eigen::Index j = 0; j < n; ++j)
      a[j] += amp * std::cos(2 * M_PI * static_cast<double>((j * k) % n) / static_cast<double>(n));
  }
  a /= std::sqrt(static_cast<double>(n));
  Eigen::MatrixXd m(n, n);
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < n; ++j) m(i, j) = a[(i - j + n) % n];
  return m;
}

// A log-normal field observed through Poisson counts: s = exp(A xi), d ~ Poisson(s).
struct LogNormalPoissonProblem {
  static constexpr Eigen::Index n = 64;
  DomainPtr grid = regular_grid({n});
  LinearOperatorPtr prior;
  OperatorPtr signal;
  Eigen::VectorXd truth;
  std::shared_ptr<const StandardHamiltonian> hamiltonian;

  /// `mean_count`: the rate's median counts per pixel (30: nearly Gaussian; 1: few events).
  explicit LogNormalPoissonProblem(unsigned seed, double mean_count = 30.0) {
    // Smooth log-rate with fluctuations of about 0.6 around log(30) counts per pixel.
    prior = matrix_operator(grid, grid, circulant_sqrt(n, [](double k) {
                              return 0.36 * 8.0 / (1.0 + std::pow(k / 3.0, 4.0)) / 8.0;
                            }));
    auto offset = make_operator(
        grid, grid,
        [mean_count](ConstVectorRef x) {
          return (x.array() + std::log(mean_count)).matrix().eval();
        },
        [](ConstVectorRef, ConstVectorRef v) { return Eigen::VectorXd(v); },
        [](ConstVectorRef, ConstVectorRef u) { return Eigen::VectorXd(u); }, "Offset");
    signal = exp(compose(offset, prior));
    std::mt19937_64 rng(seed);
    Field xi_true = Field::normal(grid, rng);
    truth = signal->apply(xi_true).values();
    auto draw = poisson_likelihood(Field(grid, Eigen::VectorXd::Zero(n)));
    Eigen::VectorXd counts = draw->draw_data(truth, rng);
    hamiltonian = standard_hamiltonian(poisson_likelihood(Field(grid, counts)), signal);
  }
};

/// A likelihood without a transformation (as a user's own may be).
class OpaqueLikelihood final : public Likelihood {
 public:
  OpaqueLikelihood() : Likelihood(unstructured(1)), inner_(gaussian_likelihood(Field::zeros(unstructured(1)), 1.0)) {}
  std::string name() const override { return "Opaque"; }
  double evaluate(ConstVectorRef s, Eigen::VectorXd* g) const override { return inner_->evaluate(s, g); }
  LinearOperatorPtr metric(ConstVectorRef s) const override { return inner_->metric(s); }
  Eigen::VectorXd draw_metric_sample(ConstVectorRef s, std::mt19937_64& rng) const override {
    return inner_->draw_metric_sample(s, rng);
  }
  Eigen::VectorXd draw_data(ConstVectorRef s, std::mt19937_64& rng) const override {
    return inner_->draw_data(s, rng);
  }

 private:
  LikelihoodPtr inner_;
};

}  // namespace infield::test

#include "infield/prior_transforms.h"

#include "unchecked_diagonal.h"

#include <boost/math/distributions/complement.hpp>
#include <boost/math/distributions/inverse_gamma.hpp>
#include <boost/math/policies/policy.hpp>
#include <charconv>
#include <cmath>
#include <string>
#include <utility>

#include "infield/error.h"

namespace infield {
namespace {

// Evaluating an operator reports numerical outcomes in its values (inf, NaN) and never throws,
// like the pointwise functions: a quantile beyond the double range is +inf, not an exception.
namespace bmp = boost::math::policies;
using QuietPolicy =
    bmp::policy<bmp::domain_error<bmp::ignore_error>, bmp::overflow_error<bmp::ignore_error>,
                bmp::underflow_error<bmp::ignore_error>, bmp::evaluation_error<bmp::ignore_error>>;

constexpr double kInvSqrt2 = 0.70710678118654752440;      // 1 / sqrt(2), rounded
constexpr double kInvSqrt2Lo = -4.833646656726457e-17;    // 1 / sqrt(2) - kInvSqrt2
constexpr double kLogSqrt2Pi = 0.91893853320467274178;    // log(sqrt(2 pi))
constexpr double kInvSqrt2Pi = 0.39894228040143267794;    // 1 / sqrt(2 pi)
constexpr double kTwoOverSqrtPi = 1.1283791670955125739;  // 2 / sqrt(pi)
// Beyond this |xi| the normal tail Phi(-|xi|) comes from its asymptotic series (it underflows
// at ~37.5); at 30 eight terms of the series are exact to double precision.
constexpr double kAsymptoticTail = 30.0;

// In the tails exp(-xi^2 / 2) and erfc(xi / sqrt 2) magnify the rounding of their arguments by
// ~xi^2 (7e-15 relative at xi = 8); both carry the rounding error of the argument (from fma) as a
// first-order correction, which keeps them within a few ulps.

/// phi(xi), the standard-normal density.
double normal_pdf(double xi) {
  const double square = xi * xi;
  const double square_error = std::fma(xi, xi, -square);  // xi^2 = square + square_error
  return kInvSqrt2Pi * std::exp(-0.5 * square) * (1.0 - 0.5 * square_error);
}

/// Phi(-|xi|): the smaller of the two tails Phi(xi), Phi(-xi), from erfc (no cancellation), so it
/// is never rounded to 0 or 1 for |xi| < 37.
double smaller_tail(double xi) {
  const double t = std::abs(xi);
  const double z = t * kInvSqrt2;
  const double z_error = std::fma(t, kInvSqrt2, -z) + t * kInvSqrt2Lo;  // t / sqrt 2 = z + z_error
  return 0.5 * (std::erfc(z) - kTwoOverSqrtPi * std::exp(-z * z) * z_error);
}

/// S(t) with Phi(-t) = phi(t) / t * S(t): 1 - 1/t^2 + 3/t^4 - 15/t^6 + ... (t >= kAsymptoticTail).
double mills_series(double t) {
  const double inv_t2 = 1.0 / (t * t);
  double term = 1.0, sum = 1.0;
  for (int k = 1; k <= 8; ++k) {
    term *= -(2.0 * k - 1.0) * inv_t2;
    sum += term;
  }
  return sum;
}

/// log(2 Phi(-t)) for t >= 0, with full relative accuracy for small t and no underflow for large t.
double log_two_tail(double t) {
  const double z = t * kInvSqrt2;
  if (z < 0.5) return std::log1p(-std::erf(z));  // 2 Phi(-t) = 1 - erf(z), close to 1
  if (t < kAsymptoticTail) return std::log(2.0 * smaller_tail(t));
  return std::log(2.0) - 0.5 * t * t - std::log(t) - kLogSqrt2Pi + std::log(mills_series(t));
}

/// phi(t) / Phi(-t) for t >= 0 (the inverse Mills ratio), finite for every finite t.
double normal_hazard(double t) {
  if (t < kAsymptoticTail) return normal_pdf(t) / smaller_tail(t);
  return t / mills_series(t);
}

/// The shortest decimal that reads back as the same double.
std::string shortest(double v) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, v);
  return std::string(buffer, result.ptr);
}

std::string format_name(const char* kind, const char* a_name, double a, const char* b_name,
                        double b) {
  return std::string(kind) + '(' + a_name + '=' + shortest(a) + ", " + b_name + '=' + shortest(b) +
         ')';
}

// ---- One struct per prior: value(xi) and value_and_derivative(xi) -------------------------------

struct NormalQuantile {
  double mean, std;
  double value(double xi) const { return mean + std * xi; }
  std::pair<double, double> value_and_derivative(double xi) const { return {value(xi), std}; }
};

struct LogNormalQuantile {
  double mu, sigma;
  double value(double xi) const { return std::exp(mu + sigma * xi); }
  std::pair<double, double> value_and_derivative(double xi) const {
    const double x = value(xi);
    return {x, sigma * x};
  }
};

struct UniformQuantile {
  double lower, upper, width;
  double inside_lower, inside_upper;  // the doubles next to the bounds, inside the interval

  UniformQuantile(double lo, double hi)
      : lower(lo),
        upper(hi),
        width(hi - lo),
        inside_lower(std::nextafter(lo, hi)),
        inside_upper(std::nextafter(hi, lo)) {}

  double value(double xi) const {
    // Measured from the nearer bound, so the tail probability is never rounded away early.
    double x = xi <= 0.0 ? lower + width * smaller_tail(xi) : upper - width * smaller_tail(xi);
    if (x <= lower) x = inside_lower;
    if (x >= upper) x = inside_upper;
    return x;
  }
  std::pair<double, double> value_and_derivative(double xi) const {
    return {value(xi), width * normal_pdf(xi)};
  }
};

struct InverseGammaQuantile {
  boost::math::inverse_gamma_distribution<double, QuietPolicy> dist;
  double alpha, beta;
  double log_norm;  // alpha log(beta) - log Gamma(alpha)

  InverseGammaQuantile(double a, double b)
      : dist(a, b), alpha(a), beta(b), log_norm(a * std::log(b) - std::lgamma(a)) {}

  double value(double xi) const {
    const double tail = smaller_tail(xi);
    return xi <= 0.0 ? boost::math::quantile(dist, tail)
                     : boost::math::quantile(boost::math::complement(dist, tail));
  }
  std::pair<double, double> value_and_derivative(double xi) const {
    const double x = value(xi);
    if (!(x > 0.0)) return {x, x == 0.0 ? 0.0 : x};  // Phi(xi) underflowed (xi < -37), or NaN
    if (std::isinf(x)) return {x, x};                // beyond the double range
    constexpr double kTiny = 1e-280;                 // phi <= 0.4, so phi / pdf cannot overflow
    const double phi = normal_pdf(xi);
    const double pdf = boost::math::pdf(dist, x);
    if (phi > kTiny && pdf > kTiny) return {x, phi / pdf};
    const double log_pdf = log_norm - (alpha + 1.0) * std::log(x) - beta / x;
    return {x, std::exp(-0.5 * xi * xi - kLogSqrt2Pi - log_pdf)};
  }
};

struct LaplaceQuantile {
  double location, scale;
  double value(double xi) const {
    const double sign = xi > 0.0 ? 1.0 : (xi < 0.0 ? -1.0 : 0.0);
    return location - scale * sign * log_two_tail(std::abs(xi));
  }
  std::pair<double, double> value_and_derivative(double xi) const {
    return {value(xi), scale * normal_hazard(std::abs(xi))};
  }
};

// ---- The operator ------------------------------------------------------------------------------

/// x_i = Q(Phi(xi_i)) on every value of a space; one loop per call, no per-element dispatch.
template <typename Quantile>
class PriorTransform final : public Operator {
 public:
  PriorTransform(Space space, Quantile quantile, std::string name)
      : Operator(space, space), quantile_(std::move(quantile)), name_(std::move(name)) {}

  std::string name() const override { return name_; }

  Eigen::VectorXd evaluate(ConstVectorRef x) const override {
    Eigen::VectorXd y(x.size());
    for (Eigen::Index i = 0; i < x.size(); ++i) y[i] = quantile_.value(x[i]);
    return y;
  }

  FlatLinearization linearize_flat(ConstVectorRef x) const override {
    Eigen::VectorXd y(x.size());
    return linearize_into(x, y);
  }

  Eigen::VectorXd evaluate_consuming(Eigen::VectorXd&& x) const override {
    for (Eigen::Index i = 0; i < x.size(); ++i) x[i] = quantile_.value(x[i]);
    return std::move(x);
  }

  FlatLinearization linearize_consuming(Eigen::VectorXd&& x) const override {
    return linearize_into(x, x);
  }

 private:
  // y may alias x: each element is read before it is written.
  FlatLinearization linearize_into(ConstVectorRef x, Eigen::VectorXd& y) const {
    Eigen::VectorXd d(x.size());
    for (Eigen::Index i = 0; i < x.size(); ++i) {
      const auto [value, derivative] = quantile_.value_and_derivative(x[i]);
      y[i] = value;
      d[i] = derivative;
    }
    return {std::move(y), std::make_shared<detail::UncheckedDiagonal>(domain(), std::move(d))};
  }

  Quantile quantile_;
  std::string name_;
};

template <typename Quantile>
OperatorPtr make_prior(Space space, Quantile quantile, std::string name) {
  return std::make_shared<PriorTransform<Quantile>>(std::move(space), std::move(quantile),
                                                    std::move(name));
}

OperatorPtr after(const char* function, OperatorPtr op, OperatorPtr (*prior)(Space, double, double),
                  double a, double b) {
  check_argument(op != nullptr, function, "op", "must not be null");
  return compose(prior(op->target(), a, b), op);
}

}  // namespace

OperatorPtr normal_prior(Space space, double mean, double std) {
  check_finite(mean, "normal_prior", "mean");
  check_positive(std, "normal_prior", "std");
  return make_prior(std::move(space), NormalQuantile{mean, std},
                    format_name("NormalPrior", "mean", mean, "std", std));
}

OperatorPtr lognormal_prior(Space space, double mean, double std) {
  check_positive(mean, "lognormal_prior", "mean");
  check_positive(std, "lognormal_prior", "std");
  const double ratio = std / mean;
  const double sigma2 = std::log1p(ratio * ratio);
  check_argument(sigma2 > 0.0 && std::isfinite(sigma2), "lognormal_prior", "std",
                 "relative to mean must give a finite positive log-variance log(1 + std^2/mean^2)");
  const double mu = std::log(mean) - 0.5 * sigma2;
  return make_prior(std::move(space), LogNormalQuantile{mu, std::sqrt(sigma2)},
                    format_name("LogNormalPrior", "mean", mean, "std", std));
}

OperatorPtr uniform_prior(Space space, double lower, double upper) {
  check_finite(lower, "uniform_prior", "lower");
  check_finite(upper, "uniform_prior", "upper");
  check_argument(lower < upper, "uniform_prior", "lower", "must be below upper");
  check_argument(std::isfinite(upper - lower), "uniform_prior", "upper",
                 "minus lower must be finite");
  return make_prior(std::move(space), UniformQuantile(lower, upper),
                    format_name("UniformPrior", "lower", lower, "upper", upper));
}

OperatorPtr inverse_gamma_prior(Space space, double shape_alpha, double scale_beta) {
  check_positive(shape_alpha, "inverse_gamma_prior", "shape_alpha");
  check_positive(scale_beta, "inverse_gamma_prior", "scale_beta");
  return make_prior(
      std::move(space), InverseGammaQuantile(shape_alpha, scale_beta),
      format_name("InverseGammaPrior", "shape_alpha", shape_alpha, "scale_beta", scale_beta));
}

OperatorPtr laplace_prior(Space space, double location, double scale) {
  check_finite(location, "laplace_prior", "location");
  check_positive(scale, "laplace_prior", "scale");
  return make_prior(std::move(space), LaplaceQuantile{location, scale},
                    format_name("LaplacePrior", "location", location, "scale", scale));
}

OperatorPtr normal_prior(OperatorPtr op, double mean, double std) {
  return after("normal_prior", std::move(op), normal_prior, mean, std);
}
OperatorPtr lognormal_prior(OperatorPtr op, double mean, double std) {
  return after("lognormal_prior", std::move(op), lognormal_prior, mean, std);
}
OperatorPtr uniform_prior(OperatorPtr op, double lower, double upper) {
  return after("uniform_prior", std::move(op), uniform_prior, lower, upper);
}
OperatorPtr inverse_gamma_prior(OperatorPtr op, double shape_alpha, double scale_beta) {
  return after("inverse_gamma_prior", std::move(op), inverse_gamma_prior, shape_alpha, scale_beta);
}
OperatorPtr laplace_prior(OperatorPtr op, double location, double scale) {
  return after("laplace_prior", std::move(op), laplace_prior, location, scale);
}

}  // namespace infield

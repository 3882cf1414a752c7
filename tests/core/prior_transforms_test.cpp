// Prior transforms x = Q(Phi(xi)): values against Boost.Math's quantiles and CDFs, the
// distribution of transformed standard-normal draws (Kolmogorov-Smirnov), the far tails, the
// log-normal's moment parametrisation, Jacobians (check_jacobian and phi/pdf) and bad parameters.
#include "infield/prior_transforms.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/math/distributions/complement.hpp>
#include <boost/math/distributions/gamma.hpp>
#include <boost/math/distributions/inverse_gamma.hpp>
#include <boost/math/distributions/laplace.hpp>
#include <boost/math/distributions/lognormal.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/uniform.hpp>
#include <cmath>
#include <functional>
#include <iostream>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "infield/error.h"
#include "infield/linear_operators.h"
#include "infield/pointwise.h"
#include "infield/testing/matchers.h"
#include "infield/testing/statistics.h"

namespace infield {
namespace {

namespace bm = boost::math;
using testing::HasConsistentJacobianAt;
/// (expected start of the message "function: argument", call that must throw InvalidArgument).
using BadParameters = std::vector<std::pair<std::string, std::function<void()>>>;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kEps = std::numeric_limits<double>::epsilon();

Space grid() { return regular_grid({4, 5}); }

Field normal_point(const Space& space, unsigned seed = 3) {
  std::mt19937_64 rng(seed);
  return Field::normal(space, rng);
}

double standard_normal_pdf(double xi) {
  return std::exp(-0.5 * xi * xi) / std::sqrt(2 * std::numbers::pi);
}

// The parameters of each case are fixed; dist() is the same distribution in Boost.Math.
struct Normal {
  static OperatorPtr make(Space s) { return normal_prior(std::move(s), 1.5, 0.7); }
  static OperatorPtr make_after(OperatorPtr op) { return normal_prior(std::move(op), 1.5, 0.7); }
  static bm::normal dist() { return bm::normal(1.5, 0.7); }
  static bool in_support(double x) { return std::isfinite(x); }
  static BadParameters bad() {
    return {{"normal_prior: mean", [] { normal_prior(grid(), kNaN, 1.0); }},
            {"normal_prior: mean", [] { normal_prior(grid(), kInf, 1.0); }},
            {"normal_prior: std", [] { normal_prior(grid(), 0.0, 0.0); }},
            {"normal_prior: std", [] { normal_prior(grid(), 0.0, -1.0); }},
            {"normal_prior: std", [] { normal_prior(grid(), 0.0, kNaN); }},
            {"normal_prior: std", [] { normal_prior(grid(), 0.0, kInf); }},
            {"normal_prior: op", [] { normal_prior(OperatorPtr{}, 0.0, 1.0); }}};
  }
};

struct LogNormal {
  static constexpr double kMean = 2.0, kStd = 3.0;
  static OperatorPtr make(Space s) { return lognormal_prior(std::move(s), kMean, kStd); }
  static OperatorPtr make_after(OperatorPtr op) {
    return lognormal_prior(std::move(op), kMean, kStd);
  }
  // The parametrisation by the moments of x; its correctness is checked by quadrature below.
  static bm::lognormal dist() {
    const double sigma2 = std::log(1.0 + kStd * kStd / (kMean * kMean));
    return bm::lognormal(std::log(kMean) - sigma2 / 2, std::sqrt(sigma2));
  }
  static bool in_support(double x) { return std::isfinite(x) && x > 0; }
  static BadParameters bad() {
    return {{"lognormal_prior: mean", [] { lognormal_prior(grid(), 0.0, 1.0); }},
            {"lognormal_prior: mean", [] { lognormal_prior(grid(), -1.0, 1.0); }},
            {"lognormal_prior: mean", [] { lognormal_prior(grid(), kNaN, 1.0); }},
            {"lognormal_prior: std", [] { lognormal_prior(grid(), 1.0, 0.0); }},
            {"lognormal_prior: std", [] { lognormal_prior(grid(), 1.0, -2.0); }},
            {"lognormal_prior: std", [] { lognormal_prior(grid(), 1.0, kInf); }},
            // std / mean overflows: no finite log-variance.
            {"lognormal_prior: std", [] { lognormal_prior(grid(), 1e-300, 1e300); }},
            {"lognormal_prior: op", [] { lognormal_prior(OperatorPtr{}, 1.0, 1.0); }}};
  }
};

struct Uniform {
  static OperatorPtr make(Space s) { return uniform_prior(std::move(s), -2.0, 5.0); }
  static OperatorPtr make_after(OperatorPtr op) { return uniform_prior(std::move(op), -2.0, 5.0); }
  static bm::uniform dist() { return bm::uniform(-2.0, 5.0); }
  static bool in_support(double x) { return x > -2.0 && x < 5.0; }
  static BadParameters bad() {
    return {{"uniform_prior: lower", [] { uniform_prior(grid(), kNaN, 1.0); }},
            {"uniform_prior: upper", [] { uniform_prior(grid(), 0.0, kInf); }},
            {"uniform_prior: lower", [] { uniform_prior(grid(), 1.0, 1.0); }},
            {"uniform_prior: lower", [] { uniform_prior(grid(), 2.0, 1.0); }},
            {"uniform_prior: upper", [] { uniform_prior(grid(), -1e308, 1e308); }},
            {"uniform_prior: op", [] { uniform_prior(OperatorPtr{}, 0.0, 1.0); }}};
  }
};

struct InverseGamma {
  static constexpr double kAlpha = 2.5, kBeta = 1.3;
  static OperatorPtr make(Space s) { return inverse_gamma_prior(std::move(s), kAlpha, kBeta); }
  static OperatorPtr make_after(OperatorPtr op) {
    return inverse_gamma_prior(std::move(op), kAlpha, kBeta);
  }
  static bm::inverse_gamma_distribution<double> dist() {
    return bm::inverse_gamma_distribution<double>(kAlpha, kBeta);
  }
  static bool in_support(double x) { return std::isfinite(x) && x > 0; }
  static BadParameters bad() {
    return {{"inverse_gamma_prior: shape_alpha", [] { inverse_gamma_prior(grid(), 0.0, 1.0); }},
            {"inverse_gamma_prior: shape_alpha", [] { inverse_gamma_prior(grid(), -1.0, 1.0); }},
            {"inverse_gamma_prior: shape_alpha", [] { inverse_gamma_prior(grid(), kNaN, 1.0); }},
            {"inverse_gamma_prior: scale_beta", [] { inverse_gamma_prior(grid(), 1.0, 0.0); }},
            {"inverse_gamma_prior: scale_beta", [] { inverse_gamma_prior(grid(), 1.0, kInf); }},
            {"inverse_gamma_prior: op", [] { inverse_gamma_prior(OperatorPtr{}, 1.0, 1.0); }}};
  }
};

struct Laplace {
  static OperatorPtr make(Space s) { return laplace_prior(std::move(s), 0.5, 2.0); }
  static OperatorPtr make_after(OperatorPtr op) { return laplace_prior(std::move(op), 0.5, 2.0); }
  static bm::laplace dist() { return bm::laplace(0.5, 2.0); }
  static bool in_support(double x) { return std::isfinite(x); }
  static BadParameters bad() {
    return {{"laplace_prior: location", [] { laplace_prior(grid(), kNaN, 1.0); }},
            {"laplace_prior: location", [] { laplace_prior(grid(), -kInf, 1.0); }},
            {"laplace_prior: scale", [] { laplace_prior(grid(), 0.0, 0.0); }},
            {"laplace_prior: scale", [] { laplace_prior(grid(), 0.0, -2.0); }},
            {"laplace_prior: scale", [] { laplace_prior(grid(), 0.0, kInf); }},
            {"laplace_prior: op", [] { laplace_prior(OperatorPtr{}, 0.0, 1.0); }}};
  }
};

/// Boost's quantile at Phi(xi), evaluated the accurate way: the lower tail for xi <= 0 and the
/// complementary quantile of the upper tail Phi(-xi) for xi > 0.
template <typename Dist>
double reference_quantile(const Dist& dist, double xi) {
  const bm::normal standard;
  if (xi <= 0) return bm::quantile(dist, bm::cdf(standard, xi));
  return bm::quantile(bm::complement(dist, bm::cdf(bm::complement(standard, xi))));
}

/// Values and Jacobian diagonal of op at the points xi (on an unstructured space).
struct Evaluated {
  Eigen::VectorXd value, derivative;
};
Evaluated evaluate_at(const OperatorPtr& op, const std::vector<double>& xi) {
  Eigen::VectorXd v = Eigen::Map<const Eigen::VectorXd>(xi.data(), xi.size());
  auto lin = op->linearize(Field(op->domain(), v));
  Field ones = Field::full(op->domain(), 1.0);
  return {lin.value.values(), lin.jacobian->times(ones).values()};
}

using testing::ks_statistic;

constexpr int kKsDraws = 20000;
const double kKsCritical = testing::ks_critical_1e3(kKsDraws);

Eigen::VectorXd standard_normal_draws(int n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  Eigen::VectorXd xi(n);
  for (int i = 0; i < n; ++i) xi[i] = normal(rng);
  return xi;
}

template <typename Case>
class PriorTransformTest : public ::testing::Test {};

using Cases = ::testing::Types<Normal, LogNormal, Uniform, InverseGamma, Laplace>;
TYPED_TEST_SUITE(PriorTransformTest, Cases);

TYPED_TEST(PriorTransformTest, EqualsTheQuantileAtPhiOfXi) {
  const std::vector<double> xi = {-8, -3, -1, 0, 0.5, 2, 4, 8};
  auto [value, derivative] = evaluate_at(TypeParam::make(unstructured(xi.size())), xi);
  const auto dist = TypeParam::dist();
  for (size_t i = 0; i < xi.size(); ++i) {
    const double expected = reference_quantile(dist, xi[i]);
    EXPECT_LE(std::abs(value[i] - expected), 1e-12 * std::abs(expected))
        << "xi = " << xi[i] << ": " << value[i] << " vs " << expected;
  }
}

TYPED_TEST(PriorTransformTest, CdfOfTheValueIsPhiOfXi) {
  // The converse of the quantile check, through Boost's CDF instead of its quantile. The value is
  // a double, rounded by up to an ulp or so: that moves the CDF by pdf(x) * 2 eps |x|, allowed on
  // top of 1e-12 relative.
  const std::vector<double> xi = {-3, -1, 0, 0.5, 2, 4};
  auto [value, derivative] = evaluate_at(TypeParam::make(unstructured(xi.size())), xi);
  const auto dist = TypeParam::dist();
  const bm::normal standard;
  for (size_t i = 0; i < xi.size(); ++i) {
    const double x = value[i];
    const double tail = xi[i] <= 0 ? bm::cdf(dist, x) : bm::cdf(bm::complement(dist, x));
    const double expected = bm::cdf(standard, -std::abs(xi[i]));
    const double rounding = bm::pdf(dist, x) * 2 * kEps * std::abs(x);
    EXPECT_LE(std::abs(tail - expected), 1e-12 * expected + rounding) << "xi = " << xi[i];
  }
}

TYPED_TEST(PriorTransformTest, JacobianIsPhiOverPdf) {
  const std::vector<double> xi = {-8, -3, -1, 0, 0.5, 2, 4, 8};
  auto [value, derivative] = evaluate_at(TypeParam::make(unstructured(xi.size())), xi);
  const auto dist = TypeParam::dist();
  for (size_t i = 0; i < xi.size(); ++i) {
    const double expected = standard_normal_pdf(xi[i]) / bm::pdf(dist, value[i]);
    EXPECT_NEAR(derivative[i], expected, 1e-10 * expected) << "xi = " << xi[i];
  }
}

TYPED_TEST(PriorTransformTest, FarTailsAreFiniteInsideTheSupportAndMonotone) {
  const std::vector<double> xi = {-8, -4, 0, 4, 8};
  auto [value, derivative] = evaluate_at(TypeParam::make(unstructured(xi.size())), xi);
  for (size_t i = 0; i < xi.size(); ++i) {
    EXPECT_TRUE(TypeParam::in_support(value[i])) << "xi = " << xi[i] << ": " << value[i];
    EXPECT_TRUE(std::isfinite(derivative[i]) && derivative[i] > 0)
        << "xi = " << xi[i] << ": " << derivative[i];
    if (i > 0) {
      EXPECT_LT(value[i - 1], value[i]) << "xi = " << xi[i];
    }
  }
}

TYPED_TEST(PriorTransformTest, TransformedNormalDrawsFollowThePrior) {
  Eigen::VectorXd xi = standard_normal_draws(kKsDraws, 20240611);
  auto op = TypeParam::make(unstructured(kKsDraws));
  Field x = op->apply(Field(op->domain(), xi));
  const auto dist = TypeParam::dist();
  const double d = ks_statistic(x.values(), [&](double v) { return bm::cdf(dist, v); });
  std::cout << "[ KS       ] " << op->name() << ": D = " << d << " (critical " << kKsCritical
            << ")\n";
  EXPECT_LT(d, kKsCritical);
}

TYPED_TEST(PriorTransformTest, JacobianMatchesFiniteDifferencesAndIsConsistent) {
  auto op = TypeParam::make(grid());
  EXPECT_THAT(*op, HasConsistentJacobianAt(normal_point(grid())));
  // A wider point, with entries out to |xi| ~ 8.
  Field wide = normal_point(grid(), 11);
  wide *= 3.0;
  EXPECT_THAT(*op, HasConsistentJacobianAt(wide));
}

TYPED_TEST(PriorTransformTest, ComposesAfterAnOperator) {
  auto inner = tanh(scaling_operator(grid(), 2.0));
  auto op = TypeParam::make_after(inner);
  Field x = normal_point(grid(), 5);
  EXPECT_EQ(op->apply(x).values(), TypeParam::make(grid())->apply(inner->apply(x)).values());
  EXPECT_THAT(*op, HasConsistentJacobianAt(x));
}

TYPED_TEST(PriorTransformTest, ActsPointwiseOnMultiFields) {
  MultiDomain md{{"a", DomainTuple{unstructured(3)}}, {"b", DomainTuple{regular_grid({2, 2})}}};
  Field x = normal_point(md, 8);
  Field y = TypeParam::make(md)->apply(x);
  EXPECT_EQ(y.space(), Space(md));
  EXPECT_EQ(y.values(),
            TypeParam::make(unstructured(7))->apply(Field(unstructured(7), x.values())).values());
}

TYPED_TEST(PriorTransformTest, ConsumingEvaluationEqualsTheCopyingOne) {
  auto op = TypeParam::make(grid());
  Field x = normal_point(grid(), 4);
  Field v = normal_point(grid(), 9);
  Eigen::VectorXd copy = x.values();
  EXPECT_EQ(op->evaluate_consuming(std::move(copy)), op->evaluate(x.values()));
  Eigen::VectorXd copy2 = x.values();
  FlatLinearization consumed = op->linearize_consuming(std::move(copy2));
  FlatLinearization plain = op->linearize_flat(x.values());
  EXPECT_EQ(consumed.value, plain.value);
  EXPECT_EQ(consumed.jacobian->evaluate(v.values()), plain.jacobian->evaluate(v.values()));
}

TYPED_TEST(PriorTransformTest, RejectsBadParametersNamingTheArgument) {
  for (const auto& [expected, fn] : TypeParam::bad()) {
    try {
      fn();
      ADD_FAILURE() << "expected InvalidArgument starting with '" << expected << "'";
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(), ::testing::StartsWith(expected + " "));
    }
  }
}

// ---- Distribution-specific checks ---------------------------------------------------------------

TEST(LogNormalPrior, HasTheRequestedMeanAndStd) {
  // E[x] and E[x^2] as integrals over xi against phi(xi), by the trapezoid rule on [-30, 30] with
  // h = 1e-3. For these analytic, Gaussian-decaying integrands the rule's error is exponentially
  // small (~exp(-2 pi^2 / h^2)) and the truncated tails are below exp(-(30 - 2 sigma)^2 / 2), so
  // the quadrature is exact to rounding; 1e-10 leaves room for the summation of 60001 terms.
  constexpr double kH = 1e-3;
  constexpr int kN = 60001;
  std::vector<double> xi(kN);
  for (int i = 0; i < kN; ++i) xi[i] = -30.0 + kH * i;
  for (auto [mean, std] : {std::pair{2.0, 3.0}, std::pair{0.5, 0.05}, std::pair{1.0, 10.0}}) {
    auto [value, derivative] = evaluate_at(lognormal_prior(unstructured(kN), mean, std), xi);
    double w_sum = 0, m1 = 0, m2 = 0;
    for (int i = 0; i < kN; ++i) {
      const double w = kH * standard_normal_pdf(xi[i]);
      w_sum += w;
      m1 += w * value[i];
      m2 += w * value[i] * value[i];
    }
    ASSERT_NEAR(w_sum, 1.0, 1e-12);
    const double sd = std::sqrt(m2 - m1 * m1);
    EXPECT_NEAR(m1, mean, 1e-10 * mean) << "mean " << mean << ", std " << std;
    EXPECT_NEAR(sd, std, 1e-9 * std) << "mean " << mean << ", std " << std;
  }
}

TEST(LogNormalPrior, SampleMomentsAgreeWithinFiveStandardErrors) {
  // 200000 draws; standard errors of the sample mean and variance from the log-normal's moments
  // (Var[s^2] ~ (mu_4 - sigma^4) / n), bounds at 5 of them.
  constexpr int kN = 200000;
  const double mean = 2.0, std = 1.0;
  auto op = lognormal_prior(unstructured(kN), mean, std);
  Field x = op->apply(Field(op->domain(), standard_normal_draws(kN, 77)));
  const double m = x.values().mean();
  const double var = (x.values().array() - m).square().sum() / (kN - 1);
  // Central fourth moment of a log-normal: var^2 (w^4 + 2 w^3 + 3 w^2 - 3), w = exp(sigma^2).
  const double w = 1.0 + std * std / (mean * mean);
  const double mu4 = std::pow(std, 4) * (w * w * w * w + 2 * w * w * w + 3 * w * w - 3);
  const double se_mean = std / std::sqrt(kN);
  const double se_var = std::sqrt((mu4 - std::pow(std, 4)) / kN);
  EXPECT_NEAR(m, mean, 5 * se_mean);
  EXPECT_NEAR(var, std * std, 5 * se_var);
}

TEST(PriorTransforms, KolmogorovSmirnovRejectsWrongParametrisations) {
  // The KS check has power: the same draws against plausible mistakes are far above the critical
  // value (sigma = std / mean for the log-normal; the inverse gamma with rate instead of scale).
  Eigen::VectorXd xi = standard_normal_draws(kKsDraws, 20240611);
  Space s = unstructured(kKsDraws);
  Field ln = lognormal_prior(s, 2.0, 3.0)->apply(Field(s, xi));
  const bm::lognormal naive(std::log(2.0), 1.5);
  EXPECT_GT(ks_statistic(ln.values(), [&](double v) { return bm::cdf(naive, v); }), kKsCritical);
  Field ig = inverse_gamma_prior(s, 2.5, 1.3)->apply(Field(s, xi));
  const bm::inverse_gamma_distribution<double> rate(2.5, 1.0 / 1.3);
  EXPECT_GT(ks_statistic(ig.values(), [&](double v) { return bm::cdf(rate, v); }), kKsCritical);
}

TEST(InverseGammaPrior, ReciprocalIsTheGammaQuantileWithRateBeta) {
  // An independent route: 1/x ~ Gamma(shape alpha, rate beta), so 1/x is the Gamma quantile of
  // the complementary probability.
  const std::vector<double> xi = {-8, -3, -1, 0, 0.5, 2, 4, 8};
  for (auto [alpha, beta] : {std::pair{2.5, 1.3}, std::pair{0.5, 4.0}, std::pair{30.0, 0.2}}) {
    auto [value, derivative] =
        evaluate_at(inverse_gamma_prior(unstructured(xi.size()), alpha, beta), xi);
    const bm::gamma_distribution<double> gamma(alpha, 1.0 / beta);
    const bm::normal standard;
    for (size_t i = 0; i < xi.size(); ++i) {
      const double p_below = bm::cdf(standard, xi[i]), p_above = bm::cdf(standard, -xi[i]);
      const double inv =
          xi[i] <= 0 ? bm::quantile(bm::complement(gamma, p_below)) : bm::quantile(gamma, p_above);
      EXPECT_NEAR(1.0 / value[i], inv, 1e-12 * inv) << "alpha " << alpha << ", xi " << xi[i];
      EXPECT_TRUE(std::isfinite(derivative[i]) && derivative[i] > 0);
    }
  }
}

TEST(InverseGammaPrior, DerivativeInLogsWherePdfUnderflows) {
  // alpha = 0.05: at xi = 8 the quantile is ~4e304 and pdf(x) ~ 1e-322 is subnormal, so phi / pdf
  // is computed in logs; the derivative (~ x hazard(xi) / alpha on the Pareto tail) is still
  // finite and agrees with central differences of log x.
  const double alpha = 0.05, beta = 1.0;
  const std::vector<double> xi = {7.0, 8.0, -8.0};
  auto op = inverse_gamma_prior(unstructured(xi.size()), alpha, beta);
  auto [value, derivative] = evaluate_at(op, xi);
  for (size_t i = 0; i < xi.size(); ++i) {
    ASSERT_TRUE(std::isfinite(value[i]) && value[i] > 0) << xi[i];
    ASSERT_TRUE(std::isfinite(derivative[i]) && derivative[i] > 0) << xi[i];
    // Central difference of log x: d log x / d xi = derivative / x.
    const double h = 1e-5;
    auto [plus, unused1] = evaluate_at(op, {xi[i] + h, xi[i] + h, xi[i] + h});
    auto [minus, unused2] = evaluate_at(op, {xi[i] - h, xi[i] - h, xi[i] - h});
    const double fd = (std::log(plus[0]) - std::log(minus[0])) / (2 * h);
    EXPECT_NEAR(derivative[i] / value[i], fd, 1e-6 * fd) << "xi = " << xi[i];
  }
}

TEST(UniformPrior, StaysStrictlyInsideForAnyXi) {
  const std::vector<double> xi = {-1e3, -40, -9, 9, 40, 1e3};
  auto [value, derivative] = evaluate_at(uniform_prior(unstructured(xi.size()), 0.0, 1.0), xi);
  for (size_t i = 0; i < xi.size(); ++i) {
    EXPECT_GT(value[i], 0.0) << xi[i];
    EXPECT_LT(value[i], 1.0) << xi[i];
    EXPECT_TRUE(std::isfinite(derivative[i]) && derivative[i] >= 0) << xi[i];
  }
  // At xi = 8 the upper tail is still resolved: 1 - x = Phi(-8) = 6.2e-16 to within a half ulp.
  auto [at8, unused] = evaluate_at(uniform_prior(unstructured(1), 0.0, 1.0), {8.0});
  EXPECT_NEAR(1.0 - at8[0], bm::cdf(bm::normal(), -8.0), kEps / 2);
  // With the upper bound at 0 the distance to it is representable to full relative precision:
  // x = -Phi(-xi) to a few ulps (-1 + Phi(xi) would be 7% off at xi = 8, where Phi(8) rounds to
  // 1 - 3 eps). The reference is evaluated in long double: in double, rounding xi / sqrt(2) costs
  // erfc up to xi^2 eps relative.
  const std::vector<double> upper_tail = {2, 4, 8, 12, 30};
  auto [near0, unused2] = evaluate_at(uniform_prior(unstructured(5), -1.0, 0.0), upper_tail);
  for (size_t i = 0; i < upper_tail.size(); ++i) {
    const double expected = static_cast<double>(
        -bm::cdf(bm::normal_distribution<long double>(), -static_cast<long double>(upper_tail[i])));
    EXPECT_NEAR(near0[i], expected, 8 * kEps * std::abs(expected)) << upper_tail[i];
  }
}

TEST(LaplacePrior, ClosedFormIsSmoothAcrossTheAsymptoticTail) {
  // Beyond |xi| = 30 the tail comes from an asymptotic series: values and derivatives stay
  // finite to |xi| = 1e3, the switch at 30 is continuous, and the Jacobian there matches
  // central differences.
  auto op = laplace_prior(unstructured(6), 0.5, 2.0);
  auto [value, derivative] = evaluate_at(op, {-1e3, -40, 30 - 1e-9, 30 + 1e-9, 40, 1e3});
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(std::isfinite(value[i])) << i;
    EXPECT_TRUE(std::isfinite(derivative[i]) && derivative[i] > 0) << i;
  }
  // Across the switch the value moves by derivative * 2e-9 ~ 1.2e-7 (rounding ~1e-14), and the
  // derivative scale * h(t), h = phi / Phi(-t) = t + 1/t - 2/t^3 + ..., by scale * h'(30) * 2e-9
  // with h' = h (h - t) = 1 - 1/t^2 + O(t^-4); both forms of h are good to a few ulps.
  EXPECT_NEAR(value[3] - value[2], derivative[2] * 2e-9, 1e-12);
  EXPECT_NEAR(derivative[3] - derivative[2], 2.0 * (1 - 1.0 / 900) * 2e-9, 1e-14 * derivative[2]);
  // x - location = -scale log(2 Phi(-t)) = scale (t^2/2 + log(t sqrt(2 pi) / 2) + 1/t^2 + O(t^-4)).
  const double t = 1e3;
  const double far =
      0.5 + 2.0 * (0.5 * t * t + std::log(t * std::sqrt(2 * std::numbers::pi) / 2) + 1 / (t * t));
  EXPECT_NEAR(value[5], far, 1e-12 * far);
  Field x(unstructured(6), (Eigen::VectorXd(6) << -35, -31, -29, 29, 31, 35).finished());
  EXPECT_THAT(*op, HasConsistentJacobianAt(x));
}

TEST(PriorTransforms, NamesCarryTheParameters) {
  EXPECT_EQ(normal_prior(grid(), 1.5, 0.7)->name(), "NormalPrior(mean=1.5, std=0.7)");
  EXPECT_THAT(inverse_gamma_prior(grid(), 2, 3)->name(),
              ::testing::Eq("InverseGammaPrior(shape_alpha=2, scale_beta=3)"));
}

}  // namespace
}  // namespace infield

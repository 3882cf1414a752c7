// Every likelihood of <infield/likelihood.h> in one typed test. Each case gives a likelihood whose
// data are drawn from the model at a point s inside the support (fixed seeds), a small example
// with a value computed by hand, points outside the support and inputs that must throw. The
// statistical checks compare Monte-Carlo moments with the metric within 5 standard errors
// estimated from the same draws.
#include "infield/likelihood.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "infield/checks.h"
#include "infield/error.h"
#include "infield/linear_operators.h"
#include "infield/pointwise.h"
#include "infield/testing/matchers.h"

namespace infield {
namespace {

using ::testing::HasSubstr;
using testing::IsConsistentLinearOperator;

constexpr double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::nan("");
constexpr int kDraws = 20000;
constexpr double kStandardErrors = 5.0;

/// An input that must throw: InvalidArgument (or DomainMismatch when `domain_mismatch`) whose
/// message names `argument`.
struct BadInput {
  std::string what;
  std::string argument;
  std::function<void()> make;
  bool domain_mismatch = false;
};

/// A likelihood with its parameters, a point and the value H there, computed by hand.
struct HandExample {
  LikelihoodPtr likelihood;
  Eigen::VectorXd s;
  double value;
};

Eigen::VectorXd vec(std::initializer_list<double> values) {
  Eigen::VectorXd v(static_cast<Eigen::Index>(values.size()));
  Eigen::Index i = 0;
  for (double x : values) v[i++] = x;
  return v;
}

Field field(const Space& space, std::initializer_list<double> values) {
  return Field(space, vec(values));
}

/// The dense N^{-1} of the operator Gaussian (symmetric positive definite, det 2.041) and its
/// lower Cholesky factor.
Eigen::Matrix3d dense_inverse_covariance() {
  Eigen::Matrix3d a;
  a << 2.0, 0.6, -0.3,  //
      0.6, 1.5, 0.4,    //
      -0.3, 0.4, 1.0;
  return a;
}

LikelihoodPtr operator_gaussian(const Field& data, const Eigen::MatrixXd& inverse_covariance) {
  const Eigen::MatrixXd factor = inverse_covariance.llt().matrixL();
  return gaussian_likelihood(data,
                             matrix_operator(data.space(), data.space(), inverse_covariance),
                             matrix_operator(data.space(), data.space(), factor));
}

// ------------------------------------------------------------------------------------------------
// Cases. Each has: name, data_space(), make(data) (the factory with the case's parameters),
// placeholder() (valid data for a first likelihood that only draws data), point() (s inside the
// support), outside() (points where H = +inf), hand(), bad().

struct GaussianScalar {
  static constexpr const char* name = "GaussianScalar";
  static Space data_space() { return regular_grid({4}); }
  static LikelihoodPtr make(const Field& data) { return gaussian_likelihood(data, 0.7); }
  static Eigen::VectorXd placeholder() { return Eigen::VectorXd::Zero(4); }
  static Eigen::VectorXd point() { return vec({0.3, -1.2, 2.0, 0.5}); }
  static std::vector<Eigen::VectorXd> outside() { return {}; }
  static HandExample hand() {
    // H = 0.5 |d - s|^2 / sigma^2 = 0.5 (0.25 + 1 + 0) / 4.
    return {gaussian_likelihood(field(unstructured(3), {1.0, -2.0, 0.5}), 2.0),
            vec({1.5, -1.0, 0.5}), 0.15625};
  }
  static std::vector<BadInput> bad() {
    const Space sp = unstructured(2);
    return {{"NaN data", "data", [sp] { gaussian_likelihood(field(sp, {0.0, kNaN}), 1.0); }},
            {"zero noise_std", "noise_std",
             [sp] { gaussian_likelihood(field(sp, {0.0, 1.0}), 0.0); }},
            {"negative noise_std", "noise_std",
             [sp] { gaussian_likelihood(field(sp, {0.0, 1.0}), -1.0); }},
            {"NaN noise_std", "noise_std",
             [sp] { gaussian_likelihood(field(sp, {0.0, 1.0}), kNaN); }}};
  }
};

struct GaussianDiagonal {
  static constexpr const char* name = "GaussianDiagonal";
  static Space data_space() { return unstructured(4); }
  static LikelihoodPtr make(const Field& data) {
    return gaussian_likelihood(data, vec({0.5, 1.0, 2.0, 0.25}));
  }
  static Eigen::VectorXd placeholder() { return Eigen::VectorXd::Zero(4); }
  static Eigen::VectorXd point() { return vec({1.0, -0.5, 0.0, 3.0}); }
  static std::vector<Eigen::VectorXd> outside() { return {}; }
  static HandExample hand() {
    // H = 0.5 (1^2 / 0.5 + 2^2 / 4).
    return {gaussian_likelihood(field(unstructured(2), {1.0, 2.0}), vec({0.5, 4.0})),
            vec({0.0, 4.0}), 1.5};
  }
  static std::vector<BadInput> bad() {
    const Space sp = unstructured(2);
    return {{"NaN data", "data",
             [sp] { gaussian_likelihood(field(sp, {kNaN, 0.0}), vec({1.0, 1.0})); }},
            {"variance of the wrong size", "noise_variance",
             [sp] { gaussian_likelihood(field(sp, {0.0, 0.0}), vec({1.0, 1.0, 1.0})); }},
            {"zero variance", "noise_variance",
             [sp] { gaussian_likelihood(field(sp, {0.0, 0.0}), vec({1.0, 0.0})); }},
            {"negative variance", "noise_variance",
             [sp] { gaussian_likelihood(field(sp, {0.0, 0.0}), vec({-1.0, 1.0})); }},
            {"Inf variance", "noise_variance",
             [sp] { gaussian_likelihood(field(sp, {0.0, 0.0}), vec({1.0, kInf})); }}};
  }
};

struct GaussianOperator {
  static constexpr const char* name = "GaussianOperator";
  static Space data_space() { return unstructured(3); }
  static LikelihoodPtr make(const Field& data) {
    return operator_gaussian(data, dense_inverse_covariance());
  }
  static Eigen::VectorXd placeholder() { return Eigen::VectorXd::Zero(3); }
  static Eigen::VectorXd point() { return vec({0.5, -1.0, 2.0}); }
  static std::vector<Eigen::VectorXd> outside() { return {}; }
  static HandExample hand() {
    // r = s - d = (1, -2); H = 0.5 r^T [[2, 0.5], [0.5, 1]] r = 0.5 (2 - 2 + 4).
    Eigen::Matrix2d a;
    a << 2.0, 0.5, 0.5, 1.0;
    return {operator_gaussian(field(unstructured(2), {1.0, 1.0}), a), vec({2.0, -1.0}), 2.0};
  }
  static std::vector<BadInput> bad() {
    const Space sp = unstructured(3);
    const Eigen::MatrixXd a = dense_inverse_covariance();
    const Eigen::MatrixXd l = a.llt().matrixL();
    auto on = [](const Space& space, const Eigen::MatrixXd& m) {
      return matrix_operator(space, space, m);
    };
    const Field data = field(sp, {0.0, 1.0, 2.0});
    return {
        {"NaN data", "data",
         [=] { gaussian_likelihood(field(sp, {0.0, kNaN, 2.0}), on(sp, a), on(sp, l)); }},
        // The same size, another space.
        {"inverse covariance on another space", "inverse_covariance",
         [=] { gaussian_likelihood(data, on(regular_grid({3}), a), on(sp, l)); }, true},
        {"inverse covariance of the wrong size", "inverse_covariance",
         [=] {
           gaussian_likelihood(data, on(unstructured(4), Eigen::MatrixXd::Identity(4, 4)),
                               on(sp, l));
         },
         true},
        {"factor on another space", "inverse_covariance_factor",
         [=] { gaussian_likelihood(data, on(sp, a), on(regular_grid({3}), l)); }, true},
        {"null operator", "inverse_covariance",
         [=] { gaussian_likelihood(data, nullptr, on(sp, l)); }}};
  }
};

struct Poisson {
  static constexpr const char* name = "Poisson";
  static Space data_space() { return regular_grid({2, 2}); }
  static LikelihoodPtr make(const Field& data) { return poisson_likelihood(data); }
  static Eigen::VectorXd placeholder() { return Eigen::VectorXd::Zero(4); }
  static Eigen::VectorXd point() { return vec({0.5, 2.0, 7.5, 15.0}); }
  static std::vector<Eigen::VectorXd> outside() {
    return {vec({0.5, 0.0, 7.5, 15.0}), vec({0.5, 2.0, -1.0, 15.0}), vec({kNaN, 2.0, 7.5, 15.0})};
  }
  static HandExample hand() {
    // H = sum s - d log s = (0.5 + 2 + 4) - (0 + 3 log 2 + log 4).
    return {poisson_likelihood(field(unstructured(3), {0.0, 3.0, 1.0})), vec({0.5, 2.0, 4.0}),
            6.5 - 5.0 * std::log(2.0)};
  }
  static std::vector<BadInput> bad() {
    const Space sp = unstructured(3);
    return {{"NaN counts", "counts", [sp] { poisson_likelihood(field(sp, {1.0, kNaN, 2.0})); }},
            {"negative counts", "counts",
             [sp] { poisson_likelihood(field(sp, {1.0, -1.0, 2.0})); }},
            {"fractional counts", "counts",
             [sp] { poisson_likelihood(field(sp, {1.0, 2.5, 2.0})); }}};
  }
};

struct StudentT {
  static constexpr const char* name = "StudentT";
  static Space data_space() { return unstructured(4); }
  static LikelihoodPtr make(const Field& data) { return student_t_likelihood(data, 0.8, 3.5); }
  static Eigen::VectorXd placeholder() { return Eigen::VectorXd::Zero(4); }
  static Eigen::VectorXd point() { return vec({-1.0, 0.0, 1.0, 2.5}); }
  static std::vector<Eigen::VectorXd> outside() { return {}; }
  static HandExample hand() {
    // dof sigma^2 = 4 * 0.25 = 1; (d - s)^2 = (0.64, 1); H = (5 / 2) (log 1.64 + log 2).
    return {student_t_likelihood(field(unstructured(2), {1.0, -0.5}), 0.5, 4.0),
            vec({0.2, 0.5}), 2.5 * (std::log(1.64) + std::log(2.0))};
  }
  static std::vector<BadInput> bad() {
    const Space sp = unstructured(2);
    const Field ok = field(sp, {0.0, 1.0});
    return {{"NaN data", "data", [sp] { student_t_likelihood(field(sp, {kNaN, 1.0}), 1.0, 3.0); }},
            {"zero noise_std", "noise_std", [ok] { student_t_likelihood(ok, 0.0, 3.0); }},
            {"negative noise_std", "noise_std", [ok] { student_t_likelihood(ok, -0.5, 3.0); }},
            {"zero dof", "dof", [ok] { student_t_likelihood(ok, 1.0, 0.0); }},
            {"negative dof", "dof", [ok] { student_t_likelihood(ok, 1.0, -2.0); }},
            {"NaN dof", "dof", [ok] { student_t_likelihood(ok, 1.0, kNaN); }}};
  }
};

struct Bernoulli {
  static constexpr const char* name = "Bernoulli";
  static Space data_space() { return unstructured(4); }
  static LikelihoodPtr make(const Field& data) { return bernoulli_likelihood(data); }
  static Eigen::VectorXd placeholder() { return Eigen::VectorXd::Zero(4); }
  static Eigen::VectorXd point() { return vec({0.1, 0.35, 0.6, 0.9}); }
  static std::vector<Eigen::VectorXd> outside() {
    return {vec({0.1, 1.2, 0.6, 0.9}), vec({-0.1, 0.35, 0.6, 0.9}), vec({0.0, 0.35, 0.6, 0.9}),
            vec({0.1, 0.35, 0.6, 1.0})};
  }
  static HandExample hand() {
    // H = -(log 0.25 + log(1 - 0.6) + log 0.9).
    return {bernoulli_likelihood(field(unstructured(3), {1.0, 0.0, 1.0})), vec({0.25, 0.6, 0.9}),
            -(std::log(0.25) + std::log(0.4) + std::log(0.9))};
  }
  static std::vector<BadInput> bad() {
    const Space sp = unstructured(3);
    return {{"NaN data", "data", [sp] { bernoulli_likelihood(field(sp, {1.0, kNaN, 0.0})); }},
            {"data 0.5", "data", [sp] { bernoulli_likelihood(field(sp, {1.0, 0.5, 0.0})); }},
            {"data 2", "data", [sp] { bernoulli_likelihood(field(sp, {1.0, 2.0, 0.0})); }},
            {"data -1", "data", [sp] { bernoulli_likelihood(field(sp, {1.0, -1.0, 0.0})); }}};
  }
};

/// The point of the variable-covariance Gaussian as a MultiField, built by key (no offsets).
Eigen::VectorXd mean_and_inverse_variance(const Space& data_space, const Eigen::VectorXd& mean,
                                          const Eigen::VectorXd& inverse_variance) {
  return Field::multi({{"mean", Field(data_space, mean)},
                       {"inverse_variance", Field(data_space, inverse_variance)}})
      .values();
}

struct VariableCovarianceGaussian {
  static constexpr const char* name = "VariableCovarianceGaussian";
  static Space data_space() { return regular_grid({3}); }
  static LikelihoodPtr make(const Field& data) {
    return variable_covariance_gaussian_likelihood(data);
  }
  static Eigen::VectorXd placeholder() { return Eigen::VectorXd::Zero(3); }
  static Eigen::VectorXd point() {
    return mean_and_inverse_variance(data_space(), vec({0.2, -1.0, 3.0}), vec({0.5, 2.0, 8.0}));
  }
  static std::vector<Eigen::VectorXd> outside() {
    return {mean_and_inverse_variance(data_space(), vec({0.2, -1.0, 3.0}), vec({0.5, 0.0, 8.0})),
            mean_and_inverse_variance(data_space(), vec({0.2, -1.0, 3.0}), vec({-0.5, 2.0, 8.0}))};
  }
  static HandExample hand() {
    // H = 0.5 sum (d - m)^2 w - log w = 0.5 [(0.25 * 2 - log 2) + (1 * 4 - log 4)].
    const Space sp = unstructured(2);
    return {variable_covariance_gaussian_likelihood(field(sp, {1.0, 2.0})),
            mean_and_inverse_variance(sp, vec({0.5, 3.0}), vec({2.0, 4.0})),
            0.5 * (4.5 - 3.0 * std::log(2.0))};
  }
  static std::vector<BadInput> bad() {
    const Space sp = unstructured(3);
    return {{"NaN data", "data",
             [sp] { variable_covariance_gaussian_likelihood(field(sp, {1.0, kNaN, 0.0})); }},
            {"MultiField data", "data", [sp] {
               variable_covariance_gaussian_likelihood(
                   Field::multi({{"a", field(sp, {1.0, 2.0, 0.0})}}));
             }}};
  }
};

struct InverseGamma {
  static constexpr const char* name = "InverseGamma";
  static Space data_space() { return unstructured(4); }
  static LikelihoodPtr make(const Field& data) { return inverse_gamma_likelihood(data, 3.0); }
  static Eigen::VectorXd placeholder() { return Eigen::VectorXd::Ones(4); }
  static Eigen::VectorXd point() { return vec({0.5, 1.0, 2.5, 4.0}); }
  static std::vector<Eigen::VectorXd> outside() {
    return {vec({0.5, 0.0, 2.5, 4.0}), vec({0.5, 1.0, -2.5, 4.0})};
  }
  static HandExample hand() {
    // H = sum s / d - alpha log s = (1.5 / 0.5 + 3 / 2) - 2.5 (log 1.5 + log 3).
    return {inverse_gamma_likelihood(field(unstructured(2), {0.5, 2.0}), 2.5), vec({1.5, 3.0}),
            4.5 - 2.5 * std::log(4.5)};
  }
  static std::vector<BadInput> bad() {
    const Space sp = unstructured(2);
    const Field ok = field(sp, {0.5, 2.0});
    return {{"NaN data", "data", [sp] { inverse_gamma_likelihood(field(sp, {kNaN, 2.0}), 2.0); }},
            {"zero data", "data", [sp] { inverse_gamma_likelihood(field(sp, {0.0, 2.0}), 2.0); }},
            {"negative data", "data",
             [sp] { inverse_gamma_likelihood(field(sp, {0.5, -2.0}), 2.0); }},
            {"zero alpha", "alpha", [ok] { inverse_gamma_likelihood(ok, 0.0); }},
            {"negative alpha", "alpha", [ok] { inverse_gamma_likelihood(ok, -1.0); }},
            {"NaN alpha", "alpha", [ok] { inverse_gamma_likelihood(ok, kNaN); }}};
  }
};

// ------------------------------------------------------------------------------------------------
// Helpers.

/// Central finite differences of H, one coordinate at a time.
Eigen::VectorXd finite_difference_gradient(const Likelihood& likelihood, const Eigen::VectorXd& s) {
  Eigen::VectorXd g(s.size());
  for (Eigen::Index i = 0; i < s.size(); ++i) {
    const double h = 1e-5 * std::max(1.0, std::abs(s[i]));
    Eigen::VectorXd plus = s, minus = s;
    plus[i] += h;
    minus[i] -= h;
    g[i] = (likelihood.evaluate(plus, nullptr) - likelihood.evaluate(minus, nullptr)) / (2.0 * h);
  }
  return g;
}

/// The metric as a dense matrix: its columns are F e_j.
Eigen::MatrixXd dense_metric(const LinearOperator& metric) {
  const Eigen::Index n = metric.domain().size();
  Eigen::MatrixXd f(metric.target().size(), n);
  for (Eigen::Index j = 0; j < n; ++j) f.col(j) = metric.evaluate(Eigen::VectorXd::Unit(n, j));
  return f;
}

/// Monte-Carlo moments of M iid vectors x: the mean and E[x x^T], each with its standard error
/// sqrt(Var / M) estimated from the same draws.
struct Moments {
  Eigen::VectorXd mean, mean_se;
  Eigen::MatrixXd outer, outer_se;

  static Moments of(Eigen::Index n, int draws, const std::function<Eigen::VectorXd()>& draw) {
    Eigen::VectorXd sum = Eigen::VectorXd::Zero(n);
    Eigen::MatrixXd sum_outer = Eigen::MatrixXd::Zero(n, n);
    Eigen::MatrixXd sum_outer_squared = Eigen::MatrixXd::Zero(n, n);
    for (int k = 0; k < draws; ++k) {
      const Eigen::VectorXd x = draw();
      const Eigen::MatrixXd xx = x * x.transpose();
      sum += x;
      sum_outer += xx;
      sum_outer_squared += xx.cwiseProduct(xx);
    }
    const double m = draws;
    Moments r;
    r.mean = sum / m;
    r.outer = sum_outer / m;
    // Var(x) = E[x^2] - E[x]^2; Var(x_k x_l) = E[(x_k x_l)^2] - E[x_k x_l]^2.
    r.mean_se = ((r.outer.diagonal() - r.mean.cwiseAbs2()) / m).cwiseSqrt();
    r.outer_se = ((sum_outer_squared / m - r.outer.cwiseAbs2()) / m).cwiseSqrt();
    return r;
  }
};

/// Expects E[x] = 0 and E[x x^T] = f entrywise within kStandardErrors standard errors; prints
/// the largest deviations in units of standard errors and the relative error of the diagonal.
void expect_moments_match(const Moments& moments, const Eigen::MatrixXd& f,
                          const std::string& label) {
  const Eigen::Index n = f.rows();
  double worst_mean = 0.0, worst_outer = 0.0, worst_diagonal_relative = 0.0,
         worst_diagonal_se_relative = 0.0;
  for (Eigen::Index k = 0; k < n; ++k) {
    const double mean_dev = std::abs(moments.mean[k]);
    EXPECT_LE(mean_dev, kStandardErrors * moments.mean_se[k])
        << label << ": mean of entry " << k << " is " << moments.mean[k] << ", standard error "
        << moments.mean_se[k];
    worst_mean = std::max(worst_mean, mean_dev / moments.mean_se[k]);
    for (Eigen::Index l = 0; l < n; ++l) {
      const double dev = std::abs(moments.outer(k, l) - f(k, l));
      const double se = moments.outer_se(k, l);
      // The floor only matters where x_k x_l is a constant (se = 0), up to rounding.
      EXPECT_LE(dev, kStandardErrors * se + 1e-12 * std::abs(f(k, l)))
          << label << ": E[x x^T](" << k << ", " << l << ") = " << moments.outer(k, l)
          << ", metric " << f(k, l) << ", standard error " << se;
      if (se > 0) worst_outer = std::max(worst_outer, dev / se);
    }
    worst_diagonal_relative =
        std::max(worst_diagonal_relative, std::abs(moments.outer(k, k) / f(k, k) - 1.0));
    worst_diagonal_se_relative =
        std::max(worst_diagonal_se_relative, moments.outer_se(k, k) / f(k, k));
  }
  std::printf(
      "[   STAT   ] %s: max |mean|/SE = %.2f, max |E[xx^T] - F|/SE = %.2f, "
      "max relative error of the diagonal = %.4f (relative SE up to %.4f)\n",
      label.c_str(), worst_mean, worst_outer, worst_diagonal_relative,
      worst_diagonal_se_relative);
}

// ------------------------------------------------------------------------------------------------
// The typed test.

template <typename Case>
class LikelihoodTest : public ::testing::Test {
 protected:
  LikelihoodTest() {
    std::mt19937_64 rng(20240611);
    const LikelihoodPtr model = Case::make(Field(Case::data_space(), Case::placeholder()));
    data_ = Field(Case::data_space(), model->draw_data(s_, rng));
    likelihood_ = Case::make(data_);
  }

  const Eigen::VectorXd s_ = Case::point();
  Field data_;
  LikelihoodPtr likelihood_;
};

using Cases = ::testing::Types<GaussianScalar, GaussianDiagonal, GaussianOperator, Poisson,
                               StudentT, Bernoulli, VariableCovarianceGaussian, InverseGamma>;
struct CaseNames {
  template <typename T>
  static std::string GetName(int) {
    return T::name;
  }
};
TYPED_TEST_SUITE(LikelihoodTest, Cases, CaseNames);

TYPED_TEST(LikelihoodTest, DataAndPointLieOnTheSpaces) {
  ASSERT_EQ(this->s_.size(), this->likelihood_->domain().size());
  EXPECT_EQ(this->data_.size(), TypeParam::data_space().size());
  EXPECT_FALSE(this->likelihood_->name().empty());
}

TYPED_TEST(LikelihoodTest, GradientMatchesFiniteDifferences) {
  const HandExample hand = TypeParam::hand();
  const std::vector<std::pair<const Likelihood*, Eigen::VectorXd>> at = {
      {this->likelihood_.get(), this->s_}, {hand.likelihood.get(), hand.s}};
  for (const auto& [likelihood, s] : at) {
    Eigen::VectorXd g;
    const double value = likelihood->evaluate(s, &g);
    EXPECT_EQ(value, likelihood->evaluate(s, nullptr));
    ASSERT_EQ(g.size(), s.size());
    const Eigen::VectorXd fd = finite_difference_gradient(*likelihood, s);
    EXPECT_LE((g - fd).norm(), 1e-6 * std::max(g.norm(), fd.norm()))
        << "gradient " << g.transpose() << "\nfinite differences " << fd.transpose();
    // The Field-level gradient is the same.
    const Field sf(likelihood->domain(), s);
    EXPECT_TRUE(likelihood->gradient(sf).values() == g);
  }
}

TYPED_TEST(LikelihoodTest, ValueOfAHandComputedExample) {
  const HandExample hand = TypeParam::hand();
  const double tolerance = 1e-12 * std::max(1.0, std::abs(hand.value));
  EXPECT_NEAR(hand.likelihood->evaluate(hand.s, nullptr), hand.value, tolerance);
  EXPECT_NEAR(hand.likelihood->value(Field(hand.likelihood->domain(), hand.s)), hand.value,
              tolerance);
}

TYPED_TEST(LikelihoodTest, MetricIsTheExpectedOuterProductOfTheScore) {
  const Eigen::MatrixXd f = dense_metric(*this->likelihood_->metric(this->s_));
  std::mt19937_64 rng(7);
  const Moments moments = Moments::of(this->s_.size(), kDraws, [&] {
    const Eigen::VectorXd d = this->likelihood_->draw_data(this->s_, rng);
    const LikelihoodPtr likelihood = TypeParam::make(Field(TypeParam::data_space(), d));
    Eigen::VectorXd g;
    likelihood->evaluate(this->s_, &g);
    return g;
  });
  expect_moments_match(moments, f, std::string(TypeParam::name) + " score");
}

TYPED_TEST(LikelihoodTest, MetricSamplesHaveTheMetricAsCovariance) {
  const Eigen::MatrixXd f = dense_metric(*this->likelihood_->metric(this->s_));
  std::mt19937_64 rng(11);
  const Moments moments = Moments::of(this->s_.size(), kDraws, [&] {
    Eigen::VectorXd x = this->likelihood_->draw_metric_sample(this->s_, rng);
    EXPECT_EQ(x.size(), this->s_.size());
    return x;
  });
  expect_moments_match(moments, f, std::string(TypeParam::name) + " metric sample");
}

TYPED_TEST(LikelihoodTest, MetricIsAConsistentPositiveOperator) {
  const LinearOperatorPtr metric = this->likelihood_->metric(this->s_);
  ASSERT_NE(metric, nullptr);
  EXPECT_EQ(metric->domain(), this->likelihood_->domain());
  EXPECT_EQ(metric->target(), this->likelihood_->domain());
  EXPECT_THAT(*metric, IsConsistentLinearOperator());
  const Eigen::MatrixXd f = dense_metric(*metric);
  EXPECT_TRUE(f.isApprox(f.transpose(), 1e-14)) << f;
  std::mt19937_64 rng(3);
  std::normal_distribution<double> gauss;
  for (int trial = 0; trial < 10; ++trial) {
    Eigen::VectorXd x(this->s_.size());
    for (auto& v : x) v = gauss(rng);
    EXPECT_GT(x.dot(metric->evaluate(x)), 0.0);
  }
}

TYPED_TEST(LikelihoodTest, ValueIsInfiniteOutsideTheSupport) {
  for (const Eigen::VectorXd& s : TypeParam::outside()) {
    EXPECT_EQ(this->likelihood_->evaluate(s, nullptr), kInf) << s.transpose();
    Eigen::VectorXd g;
    EXPECT_EQ(this->likelihood_->evaluate(s, &g), kInf) << s.transpose();
    EXPECT_EQ(this->likelihood_->value(Field(this->likelihood_->domain(), s)), kInf);
  }
}

TYPED_TEST(LikelihoodTest, BadInputsThrow) {
  for (const BadInput& bad : TypeParam::bad()) {
    SCOPED_TRACE(bad.what);
    try {
      bad.make();
      ADD_FAILURE() << "no exception";
    } catch (const DomainMismatch& e) {
      EXPECT_TRUE(bad.domain_mismatch) << e.what();
      EXPECT_THAT(e.what(), HasSubstr(bad.argument));
    } catch (const InvalidArgument& e) {
      EXPECT_FALSE(bad.domain_mismatch) << "expected DomainMismatch, got " << e.what();
      EXPECT_THAT(e.what(), HasSubstr(bad.argument));
    }
  }
}

TYPED_TEST(LikelihoodTest, FieldLevelCallsCheckTheSpace) {
  const Field wrong = Field::zeros(unstructured(this->likelihood_->domain().size() + 1));
  EXPECT_THROW(this->likelihood_->value(wrong), DomainMismatch);
  EXPECT_THROW(this->likelihood_->gradient(wrong), DomainMismatch);
}

TYPED_TEST(LikelihoodTest, TransformationIsTheMetricsSquareRoot) {
  // geoVI's coordinate transformation: its Jacobian against finite differences and, where exact,
  // J_f^T J_f = F, at the case's point and at the hand example's.
  const HandExample hand = TypeParam::hand();
  const std::vector<std::pair<const Likelihood*, Eigen::VectorXd>> at = {
      {this->likelihood_.get(), this->s_}, {hand.likelihood.get(), hand.s}};
  for (const auto& [likelihood, s] : at) {
    ASSERT_NE(likelihood->transformation(), nullptr);
    const CheckReport report =
        check_likelihood_transformation(*likelihood, Field(likelihood->domain(), s));
    EXPECT_TRUE(report.passed) << report.summary();
    if (likelihood->transformation_is_exact()) {
      const LinearOperatorPtr jacobian = likelihood->transformation()->linearize_flat(s).jacobian;
      const Eigen::MatrixXd dense_jacobian = dense_metric(*jacobian);  // columns J e_i
      const Eigen::MatrixXd f = dense_metric(*likelihood->metric(s));
      EXPECT_TRUE((dense_jacobian.transpose() * dense_jacobian).isApprox(f, 1e-12));
    }
  }
}

TEST(LikelihoodTransformation, VariableCovarianceGaussianSquaresToTheMetricOnAverage) {
  // J_f^T J_f is quadratic in r = m - d; averaged over d = m -+ 1/sqrt(w) (E r = 0, E r^2 = 1/w,
  // the first two moments of p(d | m, w)) it must be the Fisher metric exactly.
  const DomainTuple tuple{unstructured(2)};
  const Eigen::VectorXd mean = vec({0.3, -1.0}), w = vec({2.0, 0.5});
  const Field s = Field::multi({{"mean", Field(tuple, mean)}, {"inverse_variance", Field(tuple, w)}});
  Eigen::MatrixXd average = Eigen::MatrixXd::Zero(4, 4), fisher;
  for (double sign : {-1.0, 1.0}) {
    const Field data(tuple, (mean.array() + sign / w.array().sqrt()).matrix());
    const LikelihoodPtr likelihood = variable_covariance_gaussian_likelihood(data);
    EXPECT_FALSE(likelihood->transformation_is_exact());
    const CheckReport report = check_likelihood_transformation(*likelihood, s);
    EXPECT_TRUE(report.passed) << report.summary();
    const Eigen::MatrixXd j =
        dense_metric(*likelihood->transformation()->linearize_flat(s.values()).jacobian);
    average += 0.5 * j.transpose() * j;
    fisher = dense_metric(*likelihood->metric(s.values()));
  }
  EXPECT_TRUE(average.isApprox(fisher, 1e-14)) << average << "\n\n" << fisher;
}

/// Poisson counts with a transformation off by a factor: what the check must catch.
class WrongTransformationLikelihood final : public Likelihood {
 public:
  explicit WrongTransformationLikelihood(const Field& counts)
      : Likelihood(counts.space()), poisson_(poisson_likelihood(counts)) {}
  std::string name() const override { return "WrongTransformation"; }
  double evaluate(ConstVectorRef s, Eigen::VectorXd* g) const override {
    return poisson_->evaluate(s, g);
  }
  LinearOperatorPtr metric(ConstVectorRef s) const override { return poisson_->metric(s); }
  Eigen::VectorXd draw_metric_sample(ConstVectorRef s, std::mt19937_64& rng) const override {
    return poisson_->draw_metric_sample(s, rng);
  }
  Eigen::VectorXd draw_data(ConstVectorRef s, std::mt19937_64& rng) const override {
    return poisson_->draw_data(s, rng);
  }
  OperatorPtr transformation() const override { return sqrt(domain()); }  // should be 2 sqrt

 private:
  LikelihoodPtr poisson_;
};

TEST(LikelihoodTransformation, CheckCatchesAWrongSquareRootAndAMissingOne) {
  const Field counts = field(unstructured(3), {1.0, 4.0, 0.0});
  const Field s = field(unstructured(3), {1.5, 3.0, 0.2});
  const CheckReport wrong = check_likelihood_transformation(WrongTransformationLikelihood(counts), s);
  EXPECT_FALSE(wrong.passed);
  EXPECT_THAT(wrong.summary(), HasSubstr("J_f^T J_f v = F v"));
  EXPECT_TRUE(check_likelihood_transformation(*poisson_likelihood(counts), s).passed);
  EXPECT_THROW(check_likelihood_transformation(*poisson_likelihood(counts),
                                               Field::zeros(unstructured(4))),
               DomainMismatch);
}

// ------------------------------------------------------------------------------------------------
// The layout of the variable-covariance Gaussian, through the MultiField API.

TEST(VariableCovarianceGaussianLikelihood, DomainAndMetricByKey) {
  const DomainTuple tuple{regular_grid({3})};
  const LikelihoodPtr likelihood =
      variable_covariance_gaussian_likelihood(field(tuple, {1.0, 2.0, 3.0}));
  const MultiDomain expected{{"mean", tuple}, {"inverse_variance", tuple}};
  EXPECT_EQ(likelihood->domain(), Space(expected));

  const Eigen::VectorXd w = vec({0.5, 2.0, 8.0});
  const Field s = Field::multi({{"mean", field(tuple, {0.0, 2.5, 3.0})},
                                {"inverse_variance", Field(tuple, w)}});
  const Field diagonal = likelihood->metric(s.values())->apply(Field::full(s.space(), 1.0));
  EXPECT_TRUE(Eigen::VectorXd(diagonal.part("mean")).isApprox(w, 1e-15));
  EXPECT_TRUE(Eigen::VectorXd(diagonal.part("inverse_variance"))
                  .isApprox((0.5 / w.array().square()).matrix(), 1e-15));

  // Gradient by key: (m - d) w on the mean, 0.5 (m - d)^2 - 0.5 / w on w.
  const Field g = likelihood->gradient(s);
  EXPECT_TRUE(Eigen::VectorXd(g.part("mean")).isApprox(vec({-0.5, 1.0, 0.0}), 1e-15));
  EXPECT_TRUE(Eigen::VectorXd(g.part("inverse_variance"))
                  .isApprox(vec({0.5 - 1.0, 0.125 - 0.25, -0.0625}), 1e-15));

  // Synthetic data lie on the data's space, centred on the mean part.
  std::mt19937_64 rng(5);
  EXPECT_EQ(likelihood->draw_data(s.values(), rng).size(), 3);
}

}  // namespace
}  // namespace infield

#include "infield/inference/minimizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "infield/checks.h"
#include "infield/error.h"
#include "infield/inference/least_squares.h"
#include "infield/linear_operators.h"
#include "infield/pointwise.h"
#include "infield/testing/matchers.h"

namespace infield {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- Rosenbrock: f = 100 (y - x^2)^2 + (1 - x)^2, minimum 0 at (1, 1) ---------------------------

/// The residuals r = (10 (y - x^2), 1 - x): 0.5 |r|^2 = f / 2.
OperatorPtr rosenbrock_residuals() {
  const Space space = unstructured(2);
  return make_operator(
      space, space,
      [](ConstVectorRef p) { return Eigen::Vector2d(10 * (p[1] - p[0] * p[0]), 1 - p[0]).eval(); },
      [](ConstVectorRef p, ConstVectorRef v) {
        return Eigen::Vector2d(10 * (v[1] - 2 * p[0] * v[0]), -v[0]).eval();
      },
      [](ConstVectorRef p, ConstVectorRef u) {
        return Eigen::Vector2d(-20 * p[0] * u[0] - u[1], 10 * u[0]).eval();
      },
      "RosenbrockResiduals");
}

/// f itself, as an energy without a metric.
class RosenbrockEnergy final : public Energy {
 public:
  RosenbrockEnergy() : Energy(unstructured(2)) {}
  EnergyEvaluation evaluate(ConstVectorRef p, unsigned request) const override {
    const double a = p[1] - p[0] * p[0], b = 1 - p[0];
    EnergyEvaluation out;
    out.value = 100 * a * a + b * b;
    if (request & kGradient) out.gradient = Eigen::Vector2d(-400 * p[0] * a - 2 * b, 200 * a);
    return out;
  }
};

const Eigen::Vector2d kRosenbrockStart(-1.2, 1.0);

NewtonCGOptions precise_newton() {
  NewtonCGOptions o;
  o.max_iterations = 100;
  o.gradient_tolerance = 1e-10;
  o.cg.relative_residual = 1e-10;
  return o;
}

LbfgsOptions precise_lbfgs() {
  LbfgsOptions o;
  o.max_iterations = 1000;
  o.gradient_tolerance = 1e-10;
  return o;
}

CeresLbfgsOptions precise_ceres_lbfgs() {
  CeresLbfgsOptions o;
  o.max_iterations = 1000;
  o.gradient_tolerance = 1e-11;
  o.function_tolerance = 1e-16;
  return o;
}

CeresLMOptions precise_ceres_lm() {
  CeresLMOptions o;
  o.max_iterations = 200;
  return o;
}

// ---- The line searches' Wolfe conditions -------------------------------------------------------

/// The native minimizers are deterministic, so a run limited to k iterations returns x_k, the point
/// the full run accepted at iteration k. With `make(k)` such a minimizer, checks that every step
/// s = x_{k+1} - x_k of a run of `iterations` iterations satisfies the strong Wolfe conditions
///   E(x_{k+1}) <= E(x_k) + c1 g_k^T s,  |g_{k+1}^T s| <= c2 |g_k^T s|
/// (up to rounding in E), and that x_{iterations} is `final_x`.
template <typename MakeMinimizer>
void expect_wolfe_steps(const Energy& energy, const Eigen::VectorXd& start, int iterations,
                        const LineSearchOptions& ls, MakeMinimizer make,
                        const Eigen::VectorXd& final_x) {
  ASSERT_GT(iterations, 0);
  Eigen::VectorXd x_k = start;
  EnergyEvaluation e_k = energy.evaluate(x_k, kValue | kGradient);
  for (int k = 1; k <= iterations; ++k) {
    Eigen::VectorXd x_next = start;
    const MinimizerSummary s = make(k)->minimize(energy, x_next);
    ASSERT_EQ(s.iterations, k) << s.brief_report();
    const EnergyEvaluation e_next = energy.evaluate(x_next, kValue | kGradient);
    const Eigen::VectorXd step = x_next - x_k;
    const double slope = e_k.gradient.dot(step);
    EXPECT_LT(slope, 0.0) << "step " << k;
    EXPECT_LE(e_next.value, e_k.value + ls.c1 * slope + 1e-14 * std::abs(e_k.value))
        << "step " << k;
    EXPECT_LE(std::abs(e_next.gradient.dot(step)), ls.c2 * std::abs(slope) * (1 + 1e-9))
        << "step " << k;
    x_k = x_next;
    e_k = e_next;
  }
  EXPECT_EQ(x_k, final_x);
}

// ---- Rosenbrock from (-1.2, 1) -----------------------------------------------------------------

void expect_at_rosenbrock_minimum(const MinimizerSummary& s, const Eigen::VectorXd& x) {
  EXPECT_TRUE(s.converged()) << s.brief_report();
  EXPECT_LT((x - Eigen::Vector2d(1, 1)).norm(), 1e-6) << x.transpose() << "; " << s.brief_report();
  EXPECT_GT(s.energy_evaluations, s.iterations);
  EXPECT_GT(s.initial_value, s.final_value);
}

TEST(Rosenbrock, NativeNewtonCGWithTheGaussNewtonMetricReachesTheMinimum) {
  auto energy = least_squares_energy(rosenbrock_residuals());
  Eigen::VectorXd x = kRosenbrockStart;
  NewtonCGOptions options = precise_newton();
  auto s = newton_cg(options)->minimize(*energy, x);
  expect_at_rosenbrock_minimum(s, x);
  EXPECT_DOUBLE_EQ(s.initial_value, 0.5 * 24.2);  // f(-1.2, 1) = 24.2
  expect_wolfe_steps(
      *energy, kRosenbrockStart, s.iterations, options.line_search,
      [&](int k) {
        options.max_iterations = k;
        return newton_cg(options);
      },
      x);
}

TEST(Rosenbrock, NativeLbfgsReachesTheMinimum) {
  RosenbrockEnergy energy;
  Eigen::VectorXd x = kRosenbrockStart;
  LbfgsOptions options = precise_lbfgs();
  auto s = lbfgs(options)->minimize(energy, x);
  expect_at_rosenbrock_minimum(s, x);
  EXPECT_DOUBLE_EQ(s.initial_value, 24.2);
  expect_wolfe_steps(
      energy, kRosenbrockStart, s.iterations, options.line_search,
      [&](int k) {
        options.max_iterations = k;
        return lbfgs(options);
      },
      x);
}

TEST(Rosenbrock, CeresLbfgsReachesTheMinimum) {
  RosenbrockEnergy energy;
  Eigen::VectorXd x = kRosenbrockStart;
  auto s = ceres_lbfgs(precise_ceres_lbfgs())->minimize(energy, x);
  expect_at_rosenbrock_minimum(s, x);
  EXPECT_DOUBLE_EQ(s.initial_value, 24.2);
  EXPECT_NEAR(s.final_value, energy.evaluate(x, kValue).value, 1e-15);
}

TEST(Rosenbrock, CeresLevenbergMarquardtReachesTheMinimum) {
  auto energy = least_squares_energy(rosenbrock_residuals());
  Eigen::VectorXd x = kRosenbrockStart;
  auto s = ceres_levenberg_marquardt(precise_ceres_lm())->minimize(*energy, x);
  expect_at_rosenbrock_minimum(s, x);
  EXPECT_DOUBLE_EQ(s.initial_value, 0.5 * 24.2);
  EXPECT_NEAR(s.final_value, energy->evaluate(x, kValue).value, 1e-15);
}

TEST(Rosenbrock, ReportsTheIterationLimit) {
  auto least_squares = least_squares_energy(rosenbrock_residuals());
  RosenbrockEnergy plain;
  NewtonCGOptions newton;
  newton.max_iterations = 2;
  LbfgsOptions native_lbfgs;
  native_lbfgs.max_iterations = 2;
  CeresLbfgsOptions c_lbfgs;
  c_lbfgs.max_iterations = 2;
  CeresLMOptions c_lm;
  c_lm.max_iterations = 2;
  const std::vector<std::pair<MinimizerPtr, const Energy*>> cases = {
      {newton_cg(newton), least_squares.get()},
      {lbfgs(native_lbfgs), &plain},
      {ceres_lbfgs(c_lbfgs), &plain},
      {ceres_levenberg_marquardt(c_lm), least_squares.get()}};
  for (const auto& [minimizer, energy] : cases) {
    Eigen::VectorXd x = kRosenbrockStart;
    auto s = minimizer->minimize(*energy, x);
    EXPECT_EQ(s.status, MinimizerStatus::kIterationLimit)
        << minimizer->name() << ": " << s.brief_report();
    EXPECT_EQ(s.iterations, 2) << minimizer->name();
    // Levenberg-Marquardt may reject both trial steps (its first trust region is large).
    EXPECT_LE(s.final_value, s.initial_value) << minimizer->name();
    EXPECT_NEAR(s.final_value, energy->evaluate(x, kValue).value, 1e-12) << minimizer->name();
  }
}

TEST(CeresLevenbergMarquardt, AssemblesTheJacobianOfFewerResidualsThanParameters) {
  // r(x) = A x - b with 3 residuals and 5 parameters: the Jacobian is assembled from J^T e_i.
  std::mt19937_64 rng(5);
  std::normal_distribution<double> gauss;
  Eigen::MatrixXd a(3, 5);
  for (auto& v : a.reshaped()) v = gauss(rng);
  const Eigen::Vector3d b(1.0, -2.0, 0.5);
  auto residuals = compose(
      make_operator(
          unstructured(3), unstructured(3), [b](ConstVectorRef y) { return (y - b).eval(); },
          [](ConstVectorRef, ConstVectorRef v) { return Eigen::VectorXd(v); },
          [](ConstVectorRef, ConstVectorRef u) { return Eigen::VectorXd(u); }),
      matrix_operator(unstructured(5), unstructured(3), a));
  auto energy = least_squares_energy(residuals);
  Eigen::VectorXd x = Eigen::VectorXd::Zero(5);
  auto s = ceres_levenberg_marquardt()->minimize(*energy, x);
  EXPECT_TRUE(s.converged()) << s.brief_report();
  EXPECT_LT((a * x - b).norm(), 1e-10);
  EXPECT_LT(s.final_value, 1e-20);
}

// ---- A nonlinear Gaussian problem: d = exp(A xi) + n --------------------------------------------

struct ExpProblem {
  static constexpr Eigen::Index m = 20, n = 10;
  static constexpr double noise_std = 0.1;
  OperatorPtr model;
  Field data;
  std::shared_ptr<const StandardHamiltonian> hamiltonian;
  std::shared_ptr<const LeastSquaresEnergy> least_squares;

  ExpProblem() {
    std::mt19937_64 rng(20240611);
    std::normal_distribution<double> gauss(0.0, 0.3);
    Eigen::MatrixXd a(m, n);
    for (auto& v : a.reshaped()) v = gauss(rng);
    model = exp(matrix_operator(unstructured(n), unstructured(m), a));
    const Field truth = Field::normal(unstructured(n), rng);
    data = model->apply(truth) + noise_std * Field::normal(unstructured(m), rng);
    hamiltonian = standard_hamiltonian(gaussian_likelihood(data, noise_std), model);
    least_squares = gaussian_least_squares(model, data, noise_std);
  }
};

TEST(GaussianLeastSquares, EqualsTheStandardHamiltonianWithItsMetric) {
  ExpProblem p;
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 3; ++trial) {
    const Field xi = Field::normal(unstructured(p.n), rng);
    const auto h = p.hamiltonian->evaluate(xi.values(), kValue | kGradient | kMetric);
    const auto l = p.least_squares->evaluate(xi.values(), kValue | kGradient | kMetric);
    EXPECT_NEAR(l.value, h.value, 1e-13 * h.value);
    EXPECT_NEAR(p.least_squares->evaluate(xi.values(), kValue).value, h.value, 1e-13 * h.value);
    EXPECT_LT((l.gradient - h.gradient).norm(), 1e-12 * h.gradient.norm());
    const Field v = Field::normal(unstructured(p.n), rng);
    const Field mh = h.metric->times(v), ml = l.metric->times(v);
    EXPECT_LT((ml - mh).norm(), 1e-12 * mh.norm());
    EXPECT_THAT(*p.least_squares->residuals(), testing::HasConsistentJacobianAt(xi));
  }
  EXPECT_EQ(p.least_squares->num_residuals(), p.m + p.n);
}

TEST(GaussianLeastSquares, RejectsBadArguments) {
  ExpProblem p;
  EXPECT_THROW(gaussian_least_squares(nullptr, p.data, 1.0), InvalidArgument);
  EXPECT_THROW(gaussian_least_squares(p.model, Field::zeros(unstructured(p.m + 1)), 1.0),
               DomainMismatch);
  EXPECT_THROW(gaussian_least_squares(p.model, p.data, 0.0), InvalidArgument);
  EXPECT_THROW(gaussian_least_squares(p.model, p.data, -1.0), InvalidArgument);
  EXPECT_THROW(gaussian_least_squares(p.model, p.data, kInf), InvalidArgument);
  Field bad = p.data;
  bad.values()[4] = std::nan("");
  EXPECT_THROW(gaussian_least_squares(p.model, bad, 1.0), InvalidArgument);
  EXPECT_THROW(least_squares_energy(nullptr), InvalidArgument);
}

TEST(ExpProblem, AllMinimizersReachTheSameMinimum) {
  ExpProblem p;
  const Eigen::VectorXd start = Eigen::VectorXd::Zero(p.n);

  Eigen::VectorXd x_newton = start;
  NewtonCGOptions newton_options = precise_newton();
  auto s_newton = newton_cg(newton_options)->minimize(*p.hamiltonian, x_newton);
  ASSERT_TRUE(s_newton.converged()) << s_newton.brief_report();
  const double newton_tolerance = newton_options.gradient_tolerance;
  expect_wolfe_steps(
      *p.hamiltonian, start, s_newton.iterations, newton_options.line_search,
      [&](int k) {
        newton_options.max_iterations = k;
        return newton_cg(newton_options);
      },
      x_newton);

  // The energy is about 7: changes below |g|^2 ~ 1e-15 are rounding, so the function-value line
  // search cannot get |g| much below 1e-7.
  Eigen::VectorXd x_lbfgs = start;
  LbfgsOptions lbfgs_options = precise_lbfgs();
  lbfgs_options.gradient_tolerance = 1e-7;
  auto s_lbfgs = lbfgs(lbfgs_options)->minimize(*p.hamiltonian, x_lbfgs);
  expect_wolfe_steps(
      *p.hamiltonian, start, s_lbfgs.iterations, lbfgs_options.line_search,
      [&](int k) {
        lbfgs_options.max_iterations = k;
        return lbfgs(lbfgs_options);
      },
      x_lbfgs);

  Eigen::VectorXd x_ceres_lbfgs = start;
  auto s_ceres_lbfgs = ceres_lbfgs(precise_ceres_lbfgs())->minimize(*p.hamiltonian, x_ceres_lbfgs);

  Eigen::VectorXd x_lm = start;
  auto s_lm = ceres_levenberg_marquardt(precise_ceres_lm())->minimize(*p.least_squares, x_lm);

  // Inexact Newton (NIFTy's scheme): far cheaper CG solves, same minimum.
  Eigen::VectorXd x_inexact = start;
  NewtonCGOptions inexact_options = precise_newton();
  inexact_options.energy_reduction_factor = 0.1;
  inexact_options.first_step_cg_iterations = 2;
  auto s_inexact = newton_cg(inexact_options)->minimize(*p.hamiltonian, x_inexact);
  EXPECT_LT(s_inexact.cg_iterations, s_newton.cg_iterations);

  const double value = s_newton.final_value;
  EXPECT_GT(s_newton.initial_value, value);
  const std::vector<std::tuple<const char*, MinimizerSummary, Eigen::VectorXd>> others = {
      {"inexact_newton_cg", s_inexact, x_inexact},
      {"lbfgs", s_lbfgs, x_lbfgs},
      {"ceres_lbfgs", s_ceres_lbfgs, x_ceres_lbfgs},
      {"ceres_levenberg_marquardt", s_lm, x_lm}};
  for (const auto& [name, s, x] : others) {
    EXPECT_TRUE(s.converged()) << name << ": " << s.brief_report();
    EXPECT_NEAR(s.initial_value, s_newton.initial_value, 1e-12 * s_newton.initial_value) << name;
    EXPECT_LE((x - x_newton).norm(), 1e-6 * x_newton.norm()) << name;
    EXPECT_NEAR(s.final_value, value, 1e-9 * value) << name;
    EXPECT_NEAR(p.hamiltonian->evaluate(x, kValue).value, value, 1e-9 * value) << name;
  }
  // Near the minimum, where no line search can resolve the decrease, Newton-CG keeps taking full
  // steps while they lower the gradient norm, so it still reaches its gradient tolerance.
  const Eigen::VectorXd gradient = p.hamiltonian->evaluate(x_newton, kGradient).gradient;
  EXPECT_NEAR(gradient.norm(), s_newton.gradient_norm, 1e-12);
  EXPECT_LE(gradient.norm(), newton_tolerance);
}

TEST(NewtonCG, ConvergenceLevelCountsSmallEnergyChanges) {
  ExpProblem p;
  NewtonCGOptions options = precise_newton();
  options.gradient_tolerance = 0.0;
  options.absolute_energy_change = 1e300;  // every step is "small"
  for (int level : {1, 2, 3}) {
    options.convergence_level = level;
    Eigen::VectorXd x = Eigen::VectorXd::Zero(p.n);
    auto s = newton_cg(options)->minimize(*p.hamiltonian, x);
    EXPECT_TRUE(s.converged()) << s.brief_report();
    EXPECT_EQ(s.iterations, level);
  }
  options.convergence_level = 0;
  EXPECT_THROW(newton_cg(options), InvalidArgument);
  options.convergence_level = 1;
  options.energy_reduction_factor = -1;
  EXPECT_THROW(newton_cg(options), InvalidArgument);
}

// ---- Failures are a status
// -----------------------------------------------------------------------

/// 1 at the start point, +inf everywhere else; the gradient is a descent direction's negative.
class SpikeEnergy final : public Energy {
 public:
  explicit SpikeEnergy(Eigen::VectorXd start)
      : Energy(unstructured(start.size())), start_(std::move(start)) {}
  EnergyEvaluation evaluate(ConstVectorRef x, unsigned request) const override {
    EnergyEvaluation out;
    out.value = x == start_ ? 1.0 : kInf;
    if (request & kGradient) out.gradient = Eigen::VectorXd::Ones(x.size());
    return out;
  }

 private:
  Eigen::VectorXd start_;
};

/// The residual version of SpikeEnergy: r = (1) at the start, (+inf) elsewhere, J = (1 ... 1).
OperatorPtr spike_residuals(const Eigen::VectorXd& start) {
  return make_operator(
      unstructured(start.size()), unstructured(1),
      [start](ConstVectorRef x) { return Eigen::VectorXd::Constant(1, x == start ? 1.0 : kInf); },
      [](ConstVectorRef, ConstVectorRef v) { return Eigen::VectorXd::Constant(1, v.sum()); },
      [](ConstVectorRef x, ConstVectorRef u) {
        return Eigen::VectorXd::Constant(x.size(), u[0]).eval();
      },
      "SpikeResiduals");
}

TEST(MinimizerStatus, AnEnergyThatIsInfiniteAwayFromTheStartIsANumericalFailure) {
  const Eigen::VectorXd start = Eigen::Vector3d(0.5, -1.0, 2.0);
  SpikeEnergy spike(start);
  auto spike_ls = least_squares_energy(spike_residuals(start));
  const std::vector<std::pair<MinimizerPtr, const Energy*>> cases = {
      {newton_cg(), spike_ls.get()},
      {lbfgs(), &spike},
      {ceres_lbfgs(), &spike},
      {ceres_levenberg_marquardt(), spike_ls.get()}};
  for (const auto& [minimizer, energy] : cases) {
    Eigen::VectorXd x = start;
    ::testing::internal::CaptureStderr();
    auto s = minimizer->minimize(*energy, x);
    const std::string logged = ::testing::internal::GetCapturedStderr();
    EXPECT_THAT(s.status, ::testing::AnyOf(MinimizerStatus::kNumericalError,
                                           MinimizerStatus::kLineSearchFailed))
        << minimizer->name() << ": " << s.brief_report();
    EXPECT_FALSE(s.message.empty()) << minimizer->name();
    EXPECT_EQ(x, start) << minimizer->name();
    EXPECT_EQ(s.initial_value, energy == &spike ? 1.0 : 0.5) << minimizer->name();
    EXPECT_EQ(s.final_value, s.initial_value) << minimizer->name();
    EXPECT_EQ(logged, "") << minimizer->name() << " wrote to stderr";
  }
}

TEST(MinimizerStatus, AStartPointWithInfiniteEnergyIsANumericalError) {
  const Eigen::VectorXd start = Eigen::Vector3d(0.5, -1.0, 2.0);
  SpikeEnergy spike(Eigen::Vector3d(1.0, 1.0, 1.0));  // infinite at `start`
  for (const MinimizerPtr& minimizer : {lbfgs(), ceres_lbfgs()}) {
    Eigen::VectorXd x = start;
    auto s = minimizer->minimize(spike, x);
    EXPECT_EQ(s.status, MinimizerStatus::kNumericalError)
        << minimizer->name() << ": " << s.brief_report();
    EXPECT_EQ(s.iterations, 0);
    EXPECT_EQ(x, start);
  }
}

/// Throws std::runtime_error from its second evaluation on.
class ThrowingEnergy final : public Energy {
 public:
  ThrowingEnergy() : Energy(unstructured(2)) {}
  EnergyEvaluation evaluate(ConstVectorRef x, unsigned request) const override {
    if (++calls_ > 1) throw std::runtime_error("user energy failed");
    return RosenbrockEnergy().evaluate(x, request);
  }

 private:
  mutable int calls_ = 0;
};

TEST(CeresMinimizers, PropagateExceptionsOfTheEnergy) {
  ThrowingEnergy energy;
  Eigen::VectorXd x = kRosenbrockStart;
  EXPECT_THROW(ceres_lbfgs()->minimize(energy, x), std::runtime_error);

  int calls = 0;
  auto residuals = make_operator(
      unstructured(2), unstructured(2),
      [&calls](ConstVectorRef p) -> Eigen::VectorXd {
        if (++calls > 1) throw std::runtime_error("user residuals failed");
        return p;
      },
      [](ConstVectorRef, ConstVectorRef v) { return Eigen::VectorXd(v); },
      [](ConstVectorRef, ConstVectorRef u) { return Eigen::VectorXd(u); });
  auto least_squares = least_squares_energy(residuals);
  x = kRosenbrockStart;
  EXPECT_THROW(ceres_levenberg_marquardt()->minimize(*least_squares, x), std::runtime_error);
}

// ---- Misuse throws
// --------------------------------------------------------------------------------

TEST(MinimizerOptions, InvalidOptionsThrow) {
  LbfgsOptions bad_memory;
  bad_memory.memory = 0;
  EXPECT_THROW(lbfgs(bad_memory), InvalidArgument);
  LbfgsOptions bad_wolfe;
  bad_wolfe.line_search.c1 = 0.95;  // c1 >= c2 = 0.9
  EXPECT_THROW(lbfgs(bad_wolfe), InvalidArgument);
  NewtonCGOptions bad_newton;
  bad_newton.line_search.c2 = 1.0;
  EXPECT_THROW(newton_cg(bad_newton), InvalidArgument);
  NewtonCGOptions bad_cg;
  bad_cg.cg.max_iterations = 0;
  EXPECT_THROW(newton_cg(bad_cg), InvalidArgument);
  NewtonCGOptions no_iterations;
  no_iterations.max_iterations = 0;
  EXPECT_THROW(newton_cg(no_iterations), InvalidArgument);

  CeresLbfgsOptions c_memory;
  c_memory.memory = 0;
  EXPECT_THROW(ceres_lbfgs(c_memory), InvalidArgument);
  CeresLbfgsOptions c_tolerance;
  c_tolerance.gradient_tolerance = std::nan("");
  EXPECT_THROW(ceres_lbfgs(c_tolerance), InvalidArgument);
  CeresLbfgsOptions c_iterations;
  c_iterations.max_iterations = 0;
  EXPECT_THROW(ceres_lbfgs(c_iterations), InvalidArgument);

  CeresLMOptions lm_iterations;
  lm_iterations.max_iterations = 0;
  EXPECT_THROW(ceres_levenberg_marquardt(lm_iterations), InvalidArgument);
  CeresLMOptions lm_function;
  lm_function.function_tolerance = -1;
  EXPECT_THROW(ceres_levenberg_marquardt(lm_function), InvalidArgument);
  CeresLMOptions lm_parameter;
  lm_parameter.parameter_tolerance = kInf;
  EXPECT_THROW(ceres_levenberg_marquardt(lm_parameter), InvalidArgument);
  try {
    ceres_levenberg_marquardt(lm_function);
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("function_tolerance"));
  }
}

TEST(MinimizerMisuse, BadStartPointsThrow) {
  RosenbrockEnergy plain;
  auto least_squares = least_squares_energy(rosenbrock_residuals());
  const std::vector<std::pair<MinimizerPtr, const Energy*>> cases = {
      {newton_cg(), least_squares.get()},
      {lbfgs(), &plain},
      {ceres_lbfgs(), &plain},
      {ceres_levenberg_marquardt(), least_squares.get()}};
  for (const auto& [minimizer, energy] : cases) {
    Eigen::VectorXd nan_start = Eigen::Vector2d(std::nan(""), 1.0);
    EXPECT_THROW(minimizer->minimize(*energy, nan_start), InvalidArgument) << minimizer->name();
    Eigen::VectorXd inf_start = Eigen::Vector2d(0.0, -kInf);
    EXPECT_THROW(minimizer->minimize(*energy, inf_start), InvalidArgument) << minimizer->name();
    Eigen::VectorXd wrong_size = Eigen::Vector3d::Zero();
    EXPECT_THROW(minimizer->minimize(*energy, wrong_size), InvalidArgument) << minimizer->name();
  }
}

TEST(MinimizerMisuse, NewtonCGNeedsAMetric) {
  RosenbrockEnergy plain;
  Eigen::VectorXd x = kRosenbrockStart;
  EXPECT_THROW(newton_cg()->minimize(plain, x), InvalidArgument);
}

TEST(MinimizerMisuse, LevenbergMarquardtNeedsALeastSquaresEnergy) {
  RosenbrockEnergy plain;
  Eigen::VectorXd x = kRosenbrockStart;
  try {
    ceres_levenberg_marquardt()->minimize(plain, x);
    ADD_FAILURE() << "no exception";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("LeastSquaresEnergy"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("RosenbrockEnergy"));
  }
  EXPECT_EQ(x, kRosenbrockStart);
}

}  // namespace
}  // namespace infield

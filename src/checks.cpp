#include "infield/checks.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>

#include "infield/error.h"

namespace infield {
namespace {

constexpr double kScaleFloor = 1e-300;

double relative_error(double a, double b, double floor) {
  return std::abs(a - b) / std::max({std::abs(a), std::abs(b), floor});
}

double relative_error(const Eigen::VectorXd& a, const Eigen::VectorXd& b, double floor) {
  return (a - b).norm() / std::max({a.norm(), b.norm(), floor});
}

void record(CheckReport& report, const std::string& what, double error, double tolerance) {
  std::ostringstream line;
  line << what << ": relative error " << error << " (tolerance " << tolerance << ")";
  report.details.push_back(line.str());
  if (!(error <= tolerance)) {
    report.passed = false;
    report.failures.push_back(line.str());
  }
}

void fail(CheckReport& report, const std::string& what) {
  report.passed = false;
  report.failures.push_back(what);
  report.details.push_back(what);
}

Eigen::VectorXd apply(const LinearOperator& op, LinearOperator::Mode mode,
                      const Eigen::VectorXd& x) {
  Eigen::VectorXd out = Eigen::VectorXd::Constant(op.output_space(mode).size(),
                                                  std::numeric_limits<double>::quiet_NaN());
  op.apply_mode(mode, x, out);
  return out;
}

}  // namespace

std::string CheckReport::summary() const {
  std::ostringstream out;
  out << (passed ? "passed" : "FAILED") << " (" << details.size() << " checks)";
  for (const auto& f : failures) out << "\n  " << f;
  return out.str();
}

CheckReport check_linear_operator(const LinearOperator& op, const LinearCheckOptions& options) {
  CheckReport report;
  std::mt19937_64 rng(options.seed);
  const double tol = options.tolerance;
  constexpr LinearOperator::Mode kModes[] = {
      LinearOperator::kTimes, LinearOperator::kAdjointTimes, LinearOperator::kInverseTimes,
      LinearOperator::kAdjointInverseTimes};
  constexpr const char* kNames[] = {"times", "adjoint_times", "inverse_times",
                                    "adjoint_inverse_times"};
  if (!op.supports(LinearOperator::kTimes) || !op.supports(LinearOperator::kAdjointTimes))
    fail(report, op.name() + " must support times and adjoint_times");

  for (int trial = 0; trial < options.trials && report.passed; ++trial) {
    for (int m = 0; m < 4; ++m) {
      const auto mode = kModes[m];
      if (!op.supports(mode)) continue;
      const std::string tag = op.name() + " " + kNames[m];
      Eigen::VectorXd x1 = standard_normal_vector(op.input_space(mode).size(), rng);
      Eigen::VectorXd x2 = standard_normal_vector(op.input_space(mode).size(), rng);
      const double a = 1.3, b = -0.7;
      Eigen::VectorXd y1 = apply(op, mode, x1), y2 = apply(op, mode, x2);
      if (!y1.allFinite() || !y2.allFinite()) {
        fail(report, tag + ": output not finite (entries not written?)");
        continue;
      }
      Eigen::VectorXd combined = apply(op, mode, a * x1 + b * x2);
      record(report, tag + " linearity", relative_error(combined, a * y1 + b * y2, kScaleFloor),
             tol);
    }
    // <A x, y> = <x, A^T y>
    Eigen::VectorXd x = standard_normal_vector(op.domain().size(), rng);
    Eigen::VectorXd y = standard_normal_vector(op.target().size(), rng);
    const double lhs = apply(op, LinearOperator::kTimes, x).dot(y);
    const double rhs = x.dot(apply(op, LinearOperator::kAdjointTimes, y));
    // Scale of the products: cancellation in the dot products limits the attainable accuracy.
    const double scale = apply(op, LinearOperator::kTimes, x).norm() * y.norm();
    record(report, op.name() + " adjointness <Ax,y> = <x,A^T y>",
           relative_error(lhs, rhs, std::max(scale, kScaleFloor)), tol);
    if (op.supports(LinearOperator::kInverseTimes)) {
      Eigen::VectorXd back = apply(op, LinearOperator::kInverseTimes,
                                   apply(op, LinearOperator::kTimes, x));
      record(report, op.name() + " inverse A^{-1} A x = x", relative_error(back, x, kScaleFloor),
             tol * 1e2);
    }
    if (op.supports(LinearOperator::kAdjointInverseTimes)) {
      Eigen::VectorXd back = apply(op, LinearOperator::kAdjointInverseTimes,
                                   apply(op, LinearOperator::kAdjointTimes, y));
      record(report, op.name() + " adjoint inverse A^{-T} A^T y = y",
             relative_error(back, y, kScaleFloor), tol * 1e2);
    }
  }
  return report;
}

CheckReport check_jacobian(const Operator& op, const Field& x, const JacobianCheckOptions& options) {
  check_same_space(op.domain(), x.space(), "check_jacobian", "x");
  check_finite(x.values(), "check_jacobian", "x");
  check_positive(options.step, "check_jacobian", "options.step");
  CheckReport report;
  std::mt19937_64 rng(options.seed);

  const Linearization lin = op.linearize(x);
  const Field value = op.apply(x);
  record(report, op.name() + " apply(x) = linearize(x).value",
         relative_error(value.values(), lin.value.values(), kScaleFloor), 1e-12);
  if (!lin.jacobian) {
    fail(report, op.name() + ": linearize returned no Jacobian");
    return report;
  }
  if (!(lin.jacobian->domain() == op.domain()) || !(lin.jacobian->target() == op.target())) {
    fail(report, op.name() + ": Jacobian maps " + lin.jacobian->domain().to_string() + " -> " +
                     lin.jacobian->target().to_string() + ", expected " +
                     op.domain().to_string() + " -> " + op.target().to_string());
    return report;
  }

  const double h = options.step * std::max(1.0, x.values().lpNorm<Eigen::Infinity>());
  for (int trial = 0; trial < options.trials; ++trial) {
    Eigen::VectorXd v = standard_normal_vector(op.domain().size(), rng);
    Eigen::VectorXd jvp = lin.jacobian->evaluate(v);
    Eigen::VectorXd plus = op.evaluate(x.values() + h * v);
    Eigen::VectorXd minus = op.evaluate(x.values() - h * v);
    Eigen::VectorXd fd = (plus - minus) / (2.0 * h);
    // Rounding in f(x +- h v) limits how well fd can agree: allow eps |f| / h on top.
    const double floor = 1e-12 * std::max(plus.norm(), 1.0) / h;
    record(report, op.name() + " JVP vs central differences", relative_error(jvp, fd, floor),
           options.tolerance);
  }
  CheckReport linear = check_linear_operator(*lin.jacobian, options.linear);
  for (auto& d : linear.details) report.details.push_back("Jacobian: " + d);
  for (auto& f : linear.failures) report.failures.push_back("Jacobian: " + f);
  report.passed = report.passed && linear.passed;
  return report;
}

CheckReport check_likelihood_transformation(const Likelihood& likelihood, const Field& s,
                                            const JacobianCheckOptions& options) {
  check_same_space(likelihood.domain(), s.space(), "check_likelihood_transformation", "s");
  check_finite(s.values(), "check_likelihood_transformation", "s");
  CheckReport report;
  const OperatorPtr f = likelihood.transformation();
  if (!f) {
    fail(report, likelihood.name() + " has no coordinate transformation");
    return report;
  }
  if (!(f->domain() == likelihood.domain())) {
    fail(report, likelihood.name() + "'s transformation maps from " + f->domain().to_string() +
                     ", the likelihood's domain is " + likelihood.domain().to_string());
    return report;
  }
  report = check_jacobian(*f, s, options);
  if (!likelihood.transformation_is_exact()) {
    report.details.push_back(likelihood.name() +
                             ": J^T J = F holds only in expectation over the data; not checked");
    return report;
  }
  const LinearOperatorPtr jacobian = f->linearize_flat(s.values()).jacobian;
  const LinearOperatorPtr metric = likelihood.metric(s.values());
  std::mt19937_64 rng(options.seed);
  for (int trial = 0; trial < options.trials; ++trial) {
    const Eigen::VectorXd v = standard_normal_vector(s.size(), rng);
    Eigen::VectorXd jv = jacobian->evaluate(v);
    Eigen::VectorXd squared(s.size());
    jacobian->apply_adjoint(jv, squared);
    record(report, likelihood.name() + " J_f^T J_f v = F v",
           relative_error(squared, metric->evaluate(v), kScaleFloor), options.linear.tolerance);
  }
  return report;
}

}  // namespace infield

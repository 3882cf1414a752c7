#include "infield/inference/conjugate_gradient.h"

#include <cmath>
#include <sstream>

#include "infield/error.h"

namespace infield {

void ConjugateGradientOptions::validate() const {
  constexpr std::string_view fn = "ConjugateGradientOptions";
  check_argument(relative_residual >= 0 && std::isfinite(relative_residual), fn,
                 "relative_residual", "must be finite and >= 0");
  check_argument(absolute_energy_change >= 0 && std::isfinite(absolute_energy_change), fn,
                 "absolute_energy_change", "must be finite and >= 0");
  check_argument(max_iterations > 0, fn, "max_iterations", "must be positive");
  check_argument(relative_residual > 0 || absolute_energy_change > 0, fn,
                 "relative_residual, absolute_energy_change", "must not both be 0");
}

std::string ConjugateGradientSummary::brief_report() const {
  static constexpr const char* kStatus[] = {"converged", "iteration limit", "breakdown"};
  std::ostringstream out;
  out << "CG " << kStatus[static_cast<int>(status)] << " after " << iterations
      << " iterations, relative residual " << relative_residual;
  if (!message.empty()) out << " (" << message << ")";
  return out.str();
}

ConjugateGradientSummary conjugate_gradient(const LinearOperator& A, ConstVectorRef b, VectorRef x,
                                            const ConjugateGradientOptions& options) {
  constexpr std::string_view fn = "conjugate_gradient";
  options.validate();
  check_argument(A.domain() == A.target(), fn, "A",
                 "must map a space to itself, got " + A.domain().to_string() + " -> " +
                     A.target().to_string());
  check_argument(b.size() == A.domain().size(), fn, "b", "has the wrong size");
  check_argument(x.size() == A.domain().size(), fn, "x", "has the wrong size");
  check_finite(b, fn, "b");
  check_finite(x, fn, "x");

  ConjugateGradientSummary summary;
  const double b_norm = b.norm();
  if (b_norm == 0.0) {  // the solution is 0
    x.setZero();
    return summary;
  }
  Eigen::VectorXd r(x.size()), q(x.size());
  A.apply_times(x, q);
  r = b - q;
  Eigen::VectorXd p = r;
  double rr = r.squaredNorm();
  double energy = -0.5 * x.dot(b + r);
  const double threshold = options.relative_residual * b_norm;

  for (summary.iterations = 0;; ++summary.iterations) {
    summary.relative_residual = std::sqrt(rr) / b_norm;
    summary.energy = energy;
    if (std::sqrt(rr) <= threshold) return summary;
    if (summary.iterations >= options.max_iterations) {
      summary.status = ConjugateGradientStatus::kIterationLimit;
      return summary;
    }
    A.apply_times(p, q);
    const double pq = p.dot(q);
    if (!(pq > 0.0)) {
      summary.status = ConjugateGradientStatus::kBreakdown;
      summary.message = "p^T A p = " + std::to_string(pq) + ": A is not positive definite";
      return summary;
    }
    const double alpha = rr / pq;
    x += alpha * p;
    r -= alpha * q;
    const double rr_new = r.squaredNorm();
    const double new_energy = energy - 0.5 * alpha * rr;  // exact decrease along p
    const bool small_change = options.absolute_energy_change > 0 &&
                              energy - new_energy < options.absolute_energy_change;
    energy = new_energy;
    p = r + (rr_new / rr) * p;
    rr = rr_new;
    if (small_change) {
      ++summary.iterations;
      summary.relative_residual = std::sqrt(rr) / b_norm;
      summary.energy = energy;
      summary.message = "energy change below absolute_energy_change";
      return summary;
    }
  }
}

namespace {

class InverseByCG final : public LinearOperator {
 public:
  InverseByCG(LinearOperatorPtr a, ConjugateGradientOptions options, std::shared_ptr<CGLog> log)
      : LinearOperator(a->domain(), a->target()),
        a_(std::move(a)),
        options_(options),
        log_(std::move(log)) {}
  unsigned capabilities() const override {
    return kTimes | kAdjointTimes | kInverseTimes | kAdjointInverseTimes;
  }
  std::string name() const override { return "InverseByCG(" + a_->name() + ")"; }
  void apply_times(ConstVectorRef y, VectorRef out) const override { solve(y, out); }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override { solve(y, out); }
  void apply_inverse(ConstVectorRef x, VectorRef out) const override { a_->apply_times(x, out); }
  void apply_adjoint_inverse(ConstVectorRef x, VectorRef out) const override {
    a_->apply_times(x, out);
  }

 private:
  void solve(ConstVectorRef y, VectorRef out) const {
    out.setZero();
    const ConjugateGradientSummary summary = conjugate_gradient(*a_, y, out, options_);
    if (!log_) return;
    log_->solves.fetch_add(1, std::memory_order_relaxed);
    log_->iterations.fetch_add(summary.iterations, std::memory_order_relaxed);
    if (!summary.converged()) log_->not_converged.fetch_add(1, std::memory_order_relaxed);
  }

  LinearOperatorPtr a_;
  ConjugateGradientOptions options_;
  std::shared_ptr<CGLog> log_;
};

}  // namespace

LinearOperatorPtr inverse_by_cg(LinearOperatorPtr A, ConjugateGradientOptions options,
                                std::shared_ptr<CGLog> log) {
  constexpr std::string_view fn = "inverse_by_cg";
  check_argument(A != nullptr, fn, "A", "must not be null");
  check_same_space(A->domain(), A->target(), fn,
                   "A's target vs its domain (A must be symmetric positive definite):");
  options.validate();
  return std::make_shared<InverseByCG>(std::move(A), options, std::move(log));
}

}  // namespace infield

#include "infield/inference/minimizer.h"

#include <cmath>
#include <algorithm>
#include <deque>
#include <optional>
#include <limits>
#include <sstream>

#include "infield/error.h"

namespace infield {

void LineSearchOptions::validate() const {
  constexpr std::string_view fn = "LineSearchOptions";
  check_argument(c1 > 0 && c1 < c2 && c2 < 1, fn, "c1, c2", "must satisfy 0 < c1 < c2 < 1");
  check_argument(max_evaluations >= 2, fn, "max_evaluations", "must be at least 2");
  check_argument(max_step > 0, fn, "max_step", "must be positive");
}

void NewtonCGOptions::validate() const {
  constexpr std::string_view fn = "NewtonCGOptions";
  check_argument(max_iterations > 0, fn, "max_iterations", "must be positive");
  check_argument(gradient_tolerance >= 0, fn, "gradient_tolerance", "must be >= 0");
  check_argument(absolute_energy_change >= 0, fn, "absolute_energy_change", "must be >= 0");
  check_argument(energy_reduction_factor >= 0 && std::isfinite(energy_reduction_factor), fn,
                 "energy_reduction_factor", "must be finite and >= 0");
  check_argument(first_step_cg_iterations >= 1, fn, "first_step_cg_iterations",
                 "must be at least 1");
  check_argument(convergence_level >= 1, fn, "convergence_level", "must be at least 1");
  cg.validate();
  line_search.validate();
}

void LbfgsOptions::validate() const {
  constexpr std::string_view fn = "LbfgsOptions";
  check_argument(max_iterations > 0, fn, "max_iterations", "must be positive");
  check_argument(memory > 0, fn, "memory", "must be positive");
  check_argument(gradient_tolerance >= 0, fn, "gradient_tolerance", "must be >= 0");
  check_argument(absolute_energy_change >= 0, fn, "absolute_energy_change", "must be >= 0");
  line_search.validate();
}

std::string to_string(MinimizerStatus status) {
  static constexpr const char* kStatus[] = {"converged", "iteration limit", "line search failed",
                                            "numerical error"};
  return kStatus[static_cast<int>(status)];
}

std::string MinimizerSummary::brief_report() const {
  std::ostringstream out;
  out << to_string(status) << " after " << iterations << " iterations ("
      << energy_evaluations << " evaluations";
  if (cg_iterations > 0) out << ", " << cg_iterations << " CG iterations";
  out << "): energy " << initial_value << " -> " << final_value << ", |grad| " << gradient_norm;
  if (!message.empty()) out << "; " << message;
  return out.str();
}

namespace {

struct Point {
  Eigen::VectorXd x;
  EnergyEvaluation eval;
};

/// Strong Wolfe line search along p from `start`; returns the accepted point or nothing.
class WolfeLineSearch {
 public:
  WolfeLineSearch(const Energy& energy, unsigned request, const LineSearchOptions& options,
                  int* evaluations)
      : energy_(energy), request_(request | kGradient), options_(options),
        evaluations_(evaluations) {}

  std::optional<Point> search(const Point& start, const Eigen::VectorXd& p, double initial_step) {
    start_ = &start;
    p_ = &p;
    phi0_ = start.eval.value;
    dphi0_ = start.eval.gradient.dot(p);
    if (!(dphi0_ < 0)) return std::nullopt;  // not a descent direction
    double a_prev = 0.0, phi_prev = phi0_, dphi_prev = dphi0_;
    double a = std::min(initial_step, options_.max_step);
    for (int i = 0; remaining() > 0; ++i) {
      Point trial = at(a);
      const double phi = trial.eval.value;
      if (!std::isfinite(phi) || phi > phi0_ + options_.c1 * a * dphi0_ || (i > 0 && phi >= phi_prev))
        return zoom(a_prev, phi_prev, dphi_prev, a, phi, finite_slope(trial));
      const double dphi = trial.eval.gradient.dot(p);
      if (std::abs(dphi) <= -options_.c2 * dphi0_) return trial;
      if (dphi >= 0) return zoom(a, phi, dphi, a_prev, phi_prev, dphi_prev);
      if (a >= options_.max_step) return trial;  // sufficient decrease holds; cannot go further
      a_prev = a;
      phi_prev = phi;
      dphi_prev = dphi;
      a = std::min(2.0 * a, options_.max_step);
    }
    return std::nullopt;
  }

 private:
  int remaining() const { return options_.max_evaluations - used_; }

  Point at(double a) {
    ++used_;
    ++*evaluations_;
    Point pt{start_->x + a * *p_, {}};
    pt.eval = energy_.evaluate(pt.x, request_);
    return pt;
  }

  double finite_slope(const Point& pt) const {
    const double d = pt.eval.gradient.size() ? pt.eval.gradient.dot(*p_) : NAN;
    return std::isfinite(d) ? d : NAN;
  }

  // Interpolates a minimiser of the cubic through (lo, phi_lo, d_lo), (hi, phi_hi, d_hi), safeguarded
  // to the middle 80% of the interval; bisection when the data are not usable.
  static double interpolate(double lo, double phi_lo, double d_lo, double hi, double phi_hi,
                            double d_hi) {
    const double left = std::min(lo, hi), right = std::max(lo, hi), width = right - left;
    double a = 0.5 * (lo + hi);
    if (std::isfinite(phi_hi) && std::isfinite(d_hi) && std::isfinite(d_lo)) {
      const double d1 = d_lo + d_hi - 3 * (phi_lo - phi_hi) / (lo - hi);
      const double disc = d1 * d1 - d_lo * d_hi;
      if (disc >= 0) {
        const double d2 = std::copysign(std::sqrt(disc), hi - lo);
        const double cubic = hi - (hi - lo) * (d_hi + d2 - d1) / (d_hi - d_lo + 2 * d2);
        if (std::isfinite(cubic)) a = cubic;
      }
    }
    return std::clamp(a, left + 0.1 * width, right - 0.1 * width);
  }

  std::optional<Point> zoom(double lo, double phi_lo, double d_lo, double hi, double phi_hi,
                            double d_hi) {
    while (remaining() > 0) {
      const double a = interpolate(lo, phi_lo, d_lo, hi, phi_hi, d_hi);
      Point trial = at(a);
      const double phi = trial.eval.value;
      if (!std::isfinite(phi) || phi > phi0_ + options_.c1 * a * dphi0_ || phi >= phi_lo) {
        hi = a;
        phi_hi = phi;
        d_hi = finite_slope(trial);
        continue;
      }
      const double dphi = trial.eval.gradient.dot(*p_);
      if (std::abs(dphi) <= -options_.c2 * dphi0_) return trial;
      if (dphi * (hi - lo) >= 0) {
        hi = lo;
        phi_hi = phi_lo;
        d_hi = d_lo;
      }
      lo = a;
      phi_lo = phi;
      d_lo = dphi;
      if (std::abs(hi - lo) <= 1e-14 * std::max(1.0, std::abs(lo))) break;
    }
    return std::nullopt;
  }

  const Energy& energy_;
  unsigned request_;
  LineSearchOptions options_;
  int* evaluations_;
  int used_ = 0;
  const Point* start_ = nullptr;
  const Eigen::VectorXd* p_ = nullptr;
  double phi0_ = 0, dphi0_ = 0;
};

void check_start(const Energy& energy, ConstVectorRef x, std::string_view fn) {
  check_argument(x.size() == energy.domain().size(), fn, "x",
                 "has " + std::to_string(x.size()) + " entries, the energy's domain " +
                     std::to_string(energy.domain().size()));
  check_finite(x, fn, "x");
}

/// Shared iteration bookkeeping of the native minimizers.
/// With `small_changes`, the energy criterion counts as NIFTy's AbsDeltaEnergyController does: up
/// by one for a change below the tolerance, down by one (to 0) otherwise, converged at
/// `convergence_level`.
bool finished(MinimizerSummary& summary, const Point& current, double previous_value,
              double gradient_tolerance, double absolute_energy_change,
              int convergence_level = 1, int* small_changes = nullptr) {
  summary.final_value = current.eval.value;
  summary.gradient_norm = current.eval.gradient.norm();
  if (!std::isfinite(summary.final_value) || !std::isfinite(summary.gradient_norm)) {
    summary.status = MinimizerStatus::kNumericalError;
    summary.message = "energy or gradient not finite";
    return true;
  }
  if (summary.gradient_norm <= gradient_tolerance) {
    summary.status = MinimizerStatus::kConverged;
    summary.message = "gradient norm below tolerance";
    return true;
  }
  const bool small =
      absolute_energy_change > 0 && previous_value - current.eval.value < absolute_energy_change;
  if (small_changes != nullptr && absolute_energy_change > 0) {
    *small_changes = small ? *small_changes + 1 : std::max(0, *small_changes - 1);
    if (*small_changes < convergence_level) return false;
  }
  if (small) {
    summary.status = MinimizerStatus::kConverged;
    summary.message = "energy change below tolerance";
    return true;
  }
  return false;
}

/// The next point along p: a strong-Wolfe line search, except when the decrease a step can
/// achieve, about 0.5 |g^T p|, is below the rounding error of the energy (16 eps |E|). No line
/// search can then tell better from worse, so the full step is taken if it lowers the gradient
/// norm without raising the energy beyond that rounding error, and otherwise the point is as converged as double precision allows. On failure the
/// summary's status and message say why.
std::optional<Point> next_point(const Energy& energy, unsigned request,
                                const LineSearchOptions& options, const Point& current,
                                const Eigen::VectorXd& p, double initial_step,
                                MinimizerSummary& summary) {
  const double expected = 0.5 * std::abs(current.eval.gradient.dot(p));
  const double rounding =
      16 * std::numeric_limits<double>::epsilon() * std::abs(current.eval.value);
  if (expected <= rounding) {
    Point full{current.x + p, energy.evaluate(current.x + p, request | kGradient)};
    ++summary.energy_evaluations;
    if (std::isfinite(full.eval.value) && full.eval.gradient.allFinite() &&
        full.eval.value <= current.eval.value + rounding &&
        full.eval.gradient.norm() < current.eval.gradient.norm())
      return full;
    summary.status = MinimizerStatus::kConverged;
    summary.message = "expected decrease below the energy's rounding error";
    return std::nullopt;
  }
  WolfeLineSearch search(energy, request, options, &summary.energy_evaluations);
  std::optional<Point> next = search.search(current, p, initial_step);
  if (!next) {
    summary.status = MinimizerStatus::kLineSearchFailed;
    summary.message = "no step satisfied the Wolfe conditions";
  }
  return next;
}

class NewtonCG final : public Minimizer {
 public:
  explicit NewtonCG(NewtonCGOptions options) : options_(std::move(options)) { options_.validate(); }
  std::string name() const override { return "NewtonCG"; }

  MinimizerSummary minimize(const Energy& energy, VectorRef x) const override {
    check_start(energy, x, "NewtonCG::minimize");
    check_argument(energy.has_metric(), "NewtonCG::minimize", "energy", "must provide a metric");
    const unsigned request = kValue | kGradient | kMetric;
    MinimizerSummary summary;
    Point current{x, energy.evaluate(x, request)};
    summary.energy_evaluations = 1;
    summary.initial_value = current.eval.value;
    if (finished(summary, current, std::numeric_limits<double>::infinity(),
                 options_.gradient_tolerance, 0.0)) {
      summary.message = summary.status == MinimizerStatus::kConverged ? "start point is optimal"
                                                                      : summary.message;
      return summary;
    }
    double last_decrease = std::numeric_limits<double>::quiet_NaN();
    int small_changes = 0;
    for (summary.iterations = 0; summary.iterations < options_.max_iterations;) {
      Eigen::VectorXd step = Eigen::VectorXd::Zero(x.size());
      Eigen::VectorXd rhs = -current.eval.gradient;
      ConjugateGradientOptions cg_options = options_.cg;
      if (options_.energy_reduction_factor > 0) {
        // Inexact Newton (NIFTy's NewtonCG): a few CG iterations for the first step, then solve
        // only as far as the last step's progress warrants.
        if (std::isnan(last_decrease))
          cg_options.max_iterations = std::min(cg_options.max_iterations,
                                               options_.first_step_cg_iterations);
        else
          cg_options.absolute_energy_change =
              std::max(cg_options.absolute_energy_change,
                       options_.energy_reduction_factor * last_decrease);
      }
      ConjugateGradientSummary cg = conjugate_gradient(*current.eval.metric, rhs, step, cg_options);
      summary.cg_iterations += cg.iterations;
      if (!cg.converged()) ++summary.cg_not_converged;
      if (!(step.dot(current.eval.gradient) < 0)) step = rhs;  // CG broke down at once: descend
      std::optional<Point> next =
          next_point(energy, request, options_.line_search, current, step, 1.0, summary);
      if (!next) break;
      ++summary.iterations;
      const double previous = current.eval.value;
      current = std::move(*next);
      last_decrease = previous - current.eval.value;
      if (finished(summary, current, previous, options_.gradient_tolerance,
                   options_.absolute_energy_change, options_.convergence_level, &small_changes))
        break;
      summary.status = MinimizerStatus::kIterationLimit;
    }
    x = current.x;
    summary.final_value = current.eval.value;
    summary.gradient_norm = current.eval.gradient.norm();
    return summary;
  }

 private:
  NewtonCGOptions options_;
};

class Lbfgs final : public Minimizer {
 public:
  explicit Lbfgs(LbfgsOptions options) : options_(std::move(options)) { options_.validate(); }
  std::string name() const override { return "LBFGS"; }

  MinimizerSummary minimize(const Energy& energy, VectorRef x) const override {
    check_start(energy, x, "LBFGS::minimize");
    const unsigned request = kValue | kGradient;
    MinimizerSummary summary;
    Point current{x, energy.evaluate(x, request)};
    summary.energy_evaluations = 1;
    summary.initial_value = current.eval.value;
    if (finished(summary, current, std::numeric_limits<double>::infinity(),
                 options_.gradient_tolerance, 0.0)) {
      return summary;
    }
    std::deque<Eigen::VectorXd> s_hist, y_hist;
    std::deque<double> rho_hist;
    for (summary.iterations = 0; summary.iterations < options_.max_iterations;) {
      // Two-loop recursion: direction = -H grad with H the L-BFGS inverse Hessian.
      Eigen::VectorXd q = current.eval.gradient;
      std::vector<double> alpha(s_hist.size());
      for (std::size_t i = s_hist.size(); i-- > 0;) {
        alpha[i] = rho_hist[i] * s_hist[i].dot(q);
        q -= alpha[i] * y_hist[i];
      }
      if (!s_hist.empty()) q *= s_hist.back().dot(y_hist.back()) / y_hist.back().squaredNorm();
      for (std::size_t i = 0; i < s_hist.size(); ++i) {
        const double beta = rho_hist[i] * y_hist[i].dot(q);
        q += (alpha[i] - beta) * s_hist[i];
      }
      Eigen::VectorXd direction = -q;
      // Without curvature information, a first step of unit length.
      const double initial_step =
          s_hist.empty() ? std::min(1.0, 1.0 / current.eval.gradient.norm()) : 1.0;
      std::optional<Point> next = next_point(energy, request, options_.line_search, current,
                                             initial_step * direction, 1.0, summary);
      if (!next) break;
      ++summary.iterations;
      Eigen::VectorXd s = next->x - current.x;
      Eigen::VectorXd y = next->eval.gradient - current.eval.gradient;
      const double sy = s.dot(y);
      if (sy > 1e-12 * s.norm() * y.norm()) {  // keep H positive definite
        s_hist.push_back(std::move(s));
        y_hist.push_back(std::move(y));
        rho_hist.push_back(1.0 / sy);
        if (static_cast<int>(s_hist.size()) > options_.memory) {
          s_hist.pop_front();
          y_hist.pop_front();
          rho_hist.pop_front();
        }
      }
      const double previous = current.eval.value;
      current = std::move(*next);
      if (finished(summary, current, previous, options_.gradient_tolerance,
                   options_.absolute_energy_change))
        break;
      summary.status = MinimizerStatus::kIterationLimit;
    }
    x = current.x;
    summary.final_value = current.eval.value;
    summary.gradient_norm = current.eval.gradient.norm();
    return summary;
  }

 private:
  LbfgsOptions options_;
};

}  // namespace

MinimizerPtr newton_cg(NewtonCGOptions options) {
  return std::make_shared<NewtonCG>(std::move(options));
}

MinimizerPtr lbfgs(LbfgsOptions options) { return std::make_shared<Lbfgs>(std::move(options)); }

}  // namespace infield

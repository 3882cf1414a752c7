// Ceres-backed minimizers. Ceres 2.1 headers include glog and define CHECK/LOG macros, so they are
// included here only, never in a public header.
#include <ceres/ceres.h>
#include <cxxabi.h>
#include <glog/logging.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <iterator>
#include <limits>
#include <mutex>
#include <typeinfo>

#include "infield/error.h"
#include "infield/inference/least_squares.h"
#include "infield/inference/minimizer.h"

namespace infield {

void CeresLbfgsOptions::validate() const {
  constexpr std::string_view fn = "CeresLbfgsOptions";
  check_argument(max_iterations > 0, fn, "max_iterations", "must be positive");
  check_argument(memory > 0, fn, "memory", "must be positive");
  check_argument(gradient_tolerance >= 0 && std::isfinite(gradient_tolerance), fn,
                 "gradient_tolerance", "must be finite and >= 0");
  check_argument(function_tolerance >= 0 && std::isfinite(function_tolerance), fn,
                 "function_tolerance", "must be finite and >= 0");
}

void CeresLMOptions::validate() const {
  constexpr std::string_view fn = "CeresLMOptions";
  check_argument(max_iterations > 0, fn, "max_iterations", "must be positive");
  check_argument(function_tolerance >= 0 && std::isfinite(function_tolerance), fn,
                 "function_tolerance", "must be finite and >= 0");
  check_argument(gradient_tolerance >= 0 && std::isfinite(gradient_tolerance), fn,
                 "gradient_tolerance", "must be finite and >= 0");
  check_argument(parameter_tolerance >= 0 && std::isfinite(parameter_tolerance), fn,
                 "parameter_tolerance", "must be finite and >= 0");
}

namespace {

// Ceres logs through glog; a program that never initialised glog gets its warnings on stderr
// ("Logging before InitGoogleLogging() is written to STDERR"). Infield reports outcomes in the
// Summary, so unless the program set glog up itself, only errors and worse get through.
void quiet_glog() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (!google::IsGoogleLoggingInitialized())
      FLAGS_minloglevel = std::max<int>(FLAGS_minloglevel, google::GLOG_ERROR);
  });
}

// The dynamic type of `energy`, demangled, to name it in error messages.
std::string type_name(const Energy& energy) {
  const char* mangled = typeid(energy).name();
  int status = 0;
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = status == 0 && demangled ? demangled : mangled;
  std::free(demangled);
  return name;
}

void check_start(const Energy& energy, ConstVectorRef x, std::string_view fn) {
  check_argument(x.size() == energy.domain().size(), fn, "x",
                 "has " + std::to_string(x.size()) + " entries, the energy's domain " +
                     std::to_string(energy.domain().size()));
  check_finite(x, fn, "x");
}

// What both adapters record about the evaluations Ceres asked for. An exception thrown by the
// energy cannot cross Ceres' frames safely: it is kept, every later evaluation fails at once, and
// minimize() rethrows it after Ceres returns.
struct EvaluationLog {
  int evaluations = 0;
  /// Evaluations that returned a non-finite value (Ceres then rejects the point).
  int failed_evaluations = 0;
  double first_value = std::numeric_limits<double>::quiet_NaN();
  double first_gradient_norm = std::numeric_limits<double>::quiet_NaN();
  std::exception_ptr error;

  template <typename F>
  bool guarded(F&& f) {
    if (error) return false;
    try {
      const bool ok = f();
      if (!ok) ++failed_evaluations;
      return ok;
    } catch (...) {
      error = std::current_exception();
      return false;
    }
  }
};

MinimizerStatus map_termination(ceres::TerminationType type, const std::string& message) {
  switch (type) {
    case ceres::CONVERGENCE:
    case ceres::USER_SUCCESS:
      return MinimizerStatus::kConverged;
    case ceres::NO_CONVERGENCE:
      return MinimizerStatus::kIterationLimit;
    default: {
      std::string lower = message;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      return lower.find("line search") != std::string::npos ? MinimizerStatus::kLineSearchFailed
                                                            : MinimizerStatus::kNumericalError;
    }
  }
}

// Fills `summary` from Ceres' summary and the evaluation log. `moved` says whether the returned
// point differs from the start; `stuck` is the status for a run that never left the start point
// because every trial there had a non-finite energy (Ceres calls that convergence: its steps
// shrink until they no longer change x, and the change of the cost is then 0).
template <typename CeresSummary>
void fill_summary(const CeresSummary& ceres_summary, const EvaluationLog& log, bool moved,
                  MinimizerStatus stuck, MinimizerSummary& summary) {
  summary.status = map_termination(ceres_summary.termination_type, ceres_summary.message);
  summary.message = "Ceres: " + ceres_summary.message;
  summary.energy_evaluations = log.evaluations;
  summary.initial_value = log.first_value;
  const auto& iterations = ceres_summary.iterations;
  if (iterations.empty()) {  // the start point could not be evaluated
    summary.iterations = 0;
    summary.final_value = log.first_value;
    summary.gradient_norm = log.first_gradient_norm;
    summary.status = MinimizerStatus::kNumericalError;
    return;
  }
  // Ceres records iteration 0 (the start point) in `iterations`; the value and gradient of the
  // returned point are those of the last successful iteration (a rejected trust-region step
  // records the trial's cost).
  summary.iterations = static_cast<int>(iterations.size()) - 1;
  auto accepted =
      std::find_if(iterations.rbegin(), iterations.rend(),
                   [](const ceres::IterationSummary& it) { return it.step_is_successful; });
  if (accepted == iterations.rend()) accepted = std::prev(iterations.rend());
  summary.final_value = accepted->cost;
  summary.gradient_norm = accepted->gradient_norm;
  if (summary.status == MinimizerStatus::kConverged && !moved && log.failed_evaluations > 0) {
    summary.status = stuck;
    summary.message = "no step from the start point had a finite energy (" + summary.message + ")";
  }
  if (summary.status != MinimizerStatus::kNumericalError &&
      (!std::isfinite(summary.final_value) || !std::isfinite(summary.gradient_norm)))
    summary.status = MinimizerStatus::kNumericalError;
}

// ---- L-BFGS (ceres::GradientProblemSolver) ----------------------------------------------------

class EnergyFunction final : public ceres::FirstOrderFunction {
 public:
  EnergyFunction(const Energy& energy, EvaluationLog& log) : energy_(energy), log_(log) {}
  int NumParameters() const override { return static_cast<int>(energy_.domain().size()); }

  // Returning false makes Ceres' line search backtrack.
  bool Evaluate(const double* parameters, double* cost, double* gradient) const override {
    return log_.guarded([&] {
      const Eigen::Map<const Eigen::VectorXd> x(parameters, NumParameters());
      EnergyEvaluation eval = energy_.evaluate(x, gradient ? (kValue | kGradient) : kValue);
      if (log_.evaluations++ == 0) {
        log_.first_value = eval.value;
        if (gradient) log_.first_gradient_norm = eval.gradient.norm();
      }
      if (!std::isfinite(eval.value)) return false;
      *cost = eval.value;
      if (gradient) {
        if (!eval.gradient.allFinite()) return false;
        Eigen::Map<Eigen::VectorXd>(gradient, NumParameters()) = eval.gradient;
      }
      return true;
    });
  }

 private:
  const Energy& energy_;
  EvaluationLog& log_;
};

class CeresLbfgs final : public Minimizer {
 public:
  explicit CeresLbfgs(CeresLbfgsOptions options) : options_(options) { options_.validate(); }
  std::string name() const override { return "CeresLBFGS"; }

  MinimizerSummary minimize(const Energy& energy, VectorRef x) const override {
    check_start(energy, x, "CeresLBFGS::minimize");
    quiet_glog();
    ceres::GradientProblemSolver::Options options;
    options.line_search_direction_type = ceres::LBFGS;
    options.line_search_type = ceres::WOLFE;
    options.max_lbfgs_rank = options_.memory;
    options.max_num_iterations = options_.max_iterations;
    options.gradient_tolerance = options_.gradient_tolerance;
    options.function_tolerance = options_.function_tolerance;
    // Ceres' default (1e-8 relative) stops L-BFGS before the gradient and function tolerances do.
    options.parameter_tolerance = 1e-14;
    options.logging_type = ceres::SILENT;
    options.minimizer_progress_to_stdout = false;
    // Keeps the last accepted point in `position` also when Ceres reports FAILURE.
    options.update_state_every_iteration = true;

    EvaluationLog log;
    ceres::GradientProblem problem(new EnergyFunction(energy, log));
    Eigen::VectorXd position = x;
    ceres::GradientProblemSolver::Summary ceres_summary;
    ceres::Solve(options, problem, position.data(), &ceres_summary);
    if (log.error) std::rethrow_exception(log.error);

    MinimizerSummary summary;
    fill_summary(ceres_summary, log, position != x, MinimizerStatus::kLineSearchFailed, summary);
    x = position;
    return summary;
  }

 private:
  CeresLbfgsOptions options_;
};

// ---- Levenberg-Marquardt (ceres::Problem) -----------------------------------------------------

class ResidualBlock final : public ceres::DynamicCostFunction {
 public:
  ResidualBlock(const LeastSquaresEnergy& energy, EvaluationLog& log)
      : energy_(energy), log_(log), n_(energy.domain().size()), m_(energy.num_residuals()) {
    AddParameterBlock(static_cast<int>(n_));
    SetNumResiduals(static_cast<int>(m_));
  }

  bool Evaluate(double const* const* parameters, double* residuals,
                double** jacobians) const override {
    return log_.guarded([&] {
      const Eigen::Map<const Eigen::VectorXd> x(parameters[0], n_);
      Eigen::Map<Eigen::VectorXd> r(residuals, m_);
      const Operator& op = *energy_.residuals();
      const bool want_jacobian = jacobians != nullptr && jacobians[0] != nullptr;
      if (!want_jacobian) {
        r = op.evaluate(x);
        record(r, nullptr);
        return r.allFinite();
      }
      FlatLinearization lin = op.linearize_flat(x);
      r = lin.value;
      // Ceres' Jacobian is row-major m x n. Assemble it column by column (J e_j) or row by row
      // (J^T e_i), whichever takes fewer products.
      Eigen::Map<RowMajorMatrix> jac(jacobians[0], m_, n_);
      if (n_ <= m_) {
        Eigen::VectorXd e = Eigen::VectorXd::Zero(n_), column(m_);
        for (Eigen::Index j = 0; j < n_; ++j) {
          e[j] = 1.0;
          lin.jacobian->apply_times(e, column);
          jac.col(j) = column;
          e[j] = 0.0;
        }
      } else {
        Eigen::VectorXd e = Eigen::VectorXd::Zero(m_), row(n_);
        for (Eigen::Index i = 0; i < m_; ++i) {
          e[i] = 1.0;
          lin.jacobian->apply_adjoint(e, row);
          jac.row(i) = row.transpose();
          e[i] = 0.0;
        }
      }
      record(r, &jac);
      return r.allFinite() && jac.allFinite();
    });
  }

 private:
  void record(const Eigen::Map<Eigen::VectorXd>& r, const Eigen::Map<RowMajorMatrix>* jac) const {
    if (log_.evaluations++ > 0) return;
    log_.first_value = 0.5 * r.squaredNorm();
    if (jac) log_.first_gradient_norm = (jac->transpose() * r).norm();
  }

  const LeastSquaresEnergy& energy_;
  EvaluationLog& log_;
  Eigen::Index n_, m_;
};

class CeresLevenbergMarquardt final : public Minimizer {
 public:
  explicit CeresLevenbergMarquardt(CeresLMOptions options) : options_(options) {
    options_.validate();
  }
  std::string name() const override { return "CeresLevenbergMarquardt"; }

  MinimizerSummary minimize(const Energy& energy, VectorRef x) const override {
    constexpr std::string_view fn = "CeresLevenbergMarquardt::minimize";
    const auto* least_squares = dynamic_cast<const LeastSquaresEnergy*>(&energy);
    check_argument(least_squares != nullptr, fn, "energy",
                   "must be a LeastSquaresEnergy (see least_squares_energy(), "
                   "gaussian_least_squares()), got " +
                       type_name(energy));
    check_start(energy, x, fn);
    quiet_glog();

    ceres::Solver::Options options;
    options.minimizer_type = ceres::TRUST_REGION;
    options.trust_region_strategy_type = ceres::LEVENBERG_MARQUARDT;
    options.linear_solver_type = ceres::DENSE_QR;
    options.max_num_iterations = options_.max_iterations;
    options.function_tolerance = options_.function_tolerance;
    options.gradient_tolerance = options_.gradient_tolerance;
    options.parameter_tolerance = options_.parameter_tolerance;
    options.num_threads = 1;
    options.logging_type = ceres::SILENT;
    options.minimizer_progress_to_stdout = false;
    options.update_state_every_iteration = true;

    EvaluationLog log;
    Eigen::VectorXd position = x;
    ceres::Problem problem;  // owns the cost function
    problem.AddResidualBlock(new ResidualBlock(*least_squares, log), nullptr, position.data());
    ceres::Solver::Summary ceres_summary;
    ceres::Solve(options, &problem, &ceres_summary);
    if (log.error) std::rethrow_exception(log.error);

    MinimizerSummary summary;
    fill_summary(ceres_summary, log, position != x, MinimizerStatus::kNumericalError, summary);
    x = position;
    return summary;
  }

 private:
  CeresLMOptions options_;
};

}  // namespace

MinimizerPtr ceres_lbfgs(CeresLbfgsOptions options) {
  return std::make_shared<CeresLbfgs>(options);
}

MinimizerPtr ceres_levenberg_marquardt(CeresLMOptions options) {
  return std::make_shared<CeresLevenbergMarquardt>(options);
}

}  // namespace infield

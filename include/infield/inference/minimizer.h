#pragma once
/// @file inference/minimizer.h
/// @brief Minimizers of an Energy behind one interface: native Newton-CG (with the energy's
/// metric) and L-BFGS, both with a line search satisfying the strong Wolfe conditions, and
/// Ceres-backed variants (Ceres headers stay inside inference/*.cpp).
///
/// A minimizer's outcome is a status in its Summary, never an exception; misuse (invalid options,
/// a start point of the wrong size or not finite) throws InvalidArgument.

#include <memory>
#include <string>
#include <vector>

#include "infield/energy.h"
#include "infield/inference/conjugate_gradient.h"

namespace infield {

/// Strong Wolfe line search (Nocedal & Wright, algorithms 3.5 and 3.6): accepts a step a with
///   E(x + a p) <= E(x) + c1 a g^T p   and   |g(x + a p)^T p| <= c2 |g^T p|.
struct LineSearchOptions {
  double c1 = 1e-4;
  double c2 = 0.9;
  /// Energy evaluations allowed per line search.
  int max_evaluations = 20;
  /// Upper bound of the step length along p.
  double max_step = 1e6;
  void validate() const;
};

enum class MinimizerStatus {
  kConverged,         ///< Gradient norm or energy change below tolerance.
  kIterationLimit,    ///< max_iterations reached.
  kLineSearchFailed,  ///< No step satisfying the Wolfe conditions was found.
  kNumericalError,    ///< The energy or gradient became NaN at an accepted point.
};

std::string to_string(MinimizerStatus status);

struct MinimizerSummary {
  MinimizerStatus status = MinimizerStatus::kIterationLimit;
  int iterations = 0;
  int energy_evaluations = 0;
  /// Total conjugate-gradient iterations (Newton-CG only).
  int cg_iterations = 0;
  /// Newton steps whose CG did not reach its tolerance (the step is still used).
  int cg_not_converged = 0;
  double initial_value = 0.0;
  double final_value = 0.0;
  double gradient_norm = 0.0;
  std::string message;
  bool converged() const { return status == MinimizerStatus::kConverged; }
  std::string brief_report() const;
};

/// The interface the MGVI driver uses; implementations are immutable and thread-compatible.
class Minimizer {
 public:
  virtual ~Minimizer() = default;
  virtual std::string name() const = 0;
  /// Minimizes `energy` starting from `x`; on return x is the best point found.
  virtual MinimizerSummary minimize(const Energy& energy, VectorRef x) const = 0;
};

using MinimizerPtr = std::shared_ptr<const Minimizer>;

struct NewtonCGOptions {
  int max_iterations = 10;
  /// Converged when |grad| <= gradient_tolerance.
  double gradient_tolerance = 1e-8;
  /// Converged when iterations lower the energy by less than this (0 disables), counted as set by
  /// convergence_level.
  double absolute_energy_change = 0.0;
  /// How many small energy changes it takes to stop: a small change counts up by one, a larger
  /// one down by one (not below 0), converged when the count reaches this level (NIFTy's
  /// AbsDeltaEnergyController). 1 stops at the first small change.
  int convergence_level = 1;
  /// CG for the Newton system M p = -grad.
  ConjugateGradientOptions cg = {1e-6, 0.0, 200};
  /// Inexact Newton when > 0 (NIFTy's NewtonCG): the first step's CG runs at most
  /// first_step_cg_iterations, and every later one stops as soon as an iteration lowers the CG
  /// energy by less than energy_reduction_factor times the energy decrease of the previous Newton
  /// step (or by cg's own criteria, whichever comes first). Far from the minimum this saves most
  /// CG iterations; near it, it solves as accurately as the progress warrants. 0 disables.
  double energy_reduction_factor = 0.0;
  int first_step_cg_iterations = 5;
  LineSearchOptions line_search = {};
  void validate() const;
};

struct LbfgsOptions {
  int max_iterations = 200;
  /// Number of correction pairs kept.
  int memory = 10;
  double gradient_tolerance = 1e-8;
  double absolute_energy_change = 0.0;
  LineSearchOptions line_search = {};
  void validate() const;
};

/// Newton's method with the energy's metric, the step from CG, globalised by the line search.
MinimizerPtr newton_cg(NewtonCGOptions options = {});
/// Limited-memory BFGS (two-loop recursion).
MinimizerPtr lbfgs(LbfgsOptions options = {});

struct CeresLbfgsOptions {
  int max_iterations = 200;
  int memory = 10;
  /// Ceres' gradient_tolerance: converged when the max-norm of the gradient is below it
  /// (absolute, in Ceres 2.1).
  double gradient_tolerance = 1e-10;
  /// Ceres' function_tolerance: relative change of the value.
  double function_tolerance = 1e-12;
  void validate() const;
};

/// L-BFGS of ceres::GradientProblemSolver on a general energy.
MinimizerPtr ceres_lbfgs(CeresLbfgsOptions options = {});

}  // namespace infield

#pragma once
/// @file inference/conjugate_gradient.h
/// @brief Conjugate gradient for A x = b with A symmetric positive definite.
///
/// Numerical outcomes (convergence, iteration limit, breakdown) are a status in the Summary, never
/// an exception; misuse (wrong sizes, NaN in b, invalid options) throws InvalidArgument.

#include <string>

#include "infield/operator.h"

namespace infield {

struct ConjugateGradientOptions {
  /// Stop when |b - A x| <= relative_residual * |b|.
  double relative_residual = 1e-8;
  /// Stop when the energy E(x) = 0.5 x^T A x - b^T x decreased by less than this in one iteration
  /// (NIFTy's AbsDeltaEnergyController); 0 disables the criterion.
  double absolute_energy_change = 0.0;
  /// Stop (status kIterationLimit) after this many iterations.
  int max_iterations = 1000;
  /// Throws InvalidArgument naming the violated constraint.
  void validate() const;
};

enum class ConjugateGradientStatus {
  kConverged,       ///< A stopping criterion on the residual or the energy was met.
  kIterationLimit,  ///< max_iterations reached first.
  kBreakdown,       ///< p^T A p <= 0: A is not positive definite along a search direction.
};

struct ConjugateGradientSummary {
  ConjugateGradientStatus status = ConjugateGradientStatus::kConverged;
  int iterations = 0;
  /// |b - A x| / |b| at the end (0 for b = 0).
  double relative_residual = 0.0;
  /// E(x) = 0.5 x^T A x - b^T x at the end.
  double energy = 0.0;
  std::string message;
  bool converged() const { return status == ConjugateGradientStatus::kConverged; }
  /// One line: status, iterations, residual.
  std::string brief_report() const;
};

/// Solves A x = b; `x` holds the starting point on entry and the solution on exit.
ConjugateGradientSummary conjugate_gradient(const LinearOperator& A, ConstVectorRef b, VectorRef x,
                                            const ConjugateGradientOptions& options = {});

}  // namespace infield

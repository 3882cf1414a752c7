#pragma once
/// @file inference/conjugate_gradient.h
/// @brief Conjugate gradient for A x = b with A symmetric positive definite.
///
/// Numerical outcomes (convergence, iteration limit, breakdown) are a status in the Summary, never
/// an exception; misuse (wrong sizes, NaN in b, invalid options) throws InvalidArgument.

#include <atomic>
#include <memory>
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

/// Counters of the CG solves run by an inverse_by_cg() operator. They are atomic, so one log may
/// be shared by operators applied from several threads; read them after the work is done.
struct CGLog {
  /// Solves run (each times / adjoint_times application is one).
  std::atomic<int> solves{0};
  /// Solves that stopped without meeting a criterion (iteration limit or breakdown).
  std::atomic<int> not_converged{0};
  /// CG iterations over all solves.
  std::atomic<int> iterations{0};
};

/// A^{-1} as a linear operator, for A symmetric positive definite: times and adjoint_times
/// (equal, as A is symmetric) both solve A x = y by conjugate gradient from x = 0 with `options`;
/// inverse_times and adjoint_inverse_times apply A. The result is A^{-1} y only to the CG
/// tolerance, so linearity and adjointness hold to about relative_residual times the condition
/// number of A. Non-convergence (iteration limit, breakdown) is a numerical outcome, not an
/// exception: the best iterate is returned and, when `log` is given, every solve is counted in it.
/// Throws InvalidArgument if A is null, invalid options, or DomainMismatch (an InvalidArgument) if
/// A->domain() != A->target(); applying it to a vector that is not finite throws InvalidArgument.
LinearOperatorPtr inverse_by_cg(LinearOperatorPtr A, ConjugateGradientOptions options = {},
                                std::shared_ptr<CGLog> log = nullptr);

}  // namespace infield

#pragma once
/// @file checks.h
/// @brief Consistency checks for linear operators and Jacobians, for users' own operators as much
/// as for the library's. gtest matchers for them are in <infield/testing/matchers.h>.
///
/// Tolerances are relative: a comparison of a and b passes when
///   |a - b| <= tolerance * max(|a|, |b|, scale_floor),
/// with norms for vectors. The defaults suit double precision: adjointness and linearity are exact
/// up to rounding (1e-10); central finite differences with step h have a truncation error O(h^2)
/// and a rounding error O(eps / h), so with the default h = 1e-5 (relative to |x|) a correct
/// Jacobian agrees to about 1e-8, and the default tolerance is 1e-6.

#include <cstdint>
#include <string>
#include <vector>

#include "infield/likelihood.h"
#include "infield/operator.h"

namespace infield {

/// Outcome of a consistency check: passed or a list of failures with measured errors.
struct CheckReport {
  bool passed = true;
  std::vector<std::string> failures;
  /// One line per check performed, with the measured relative error.
  std::vector<std::string> details;
  std::string summary() const;
};

struct LinearCheckOptions {
  /// Relative tolerance for linearity, adjointness and inverse consistency.
  double tolerance = 1e-10;
  /// Number of random vector pairs tried.
  int trials = 3;
  std::uint64_t seed = 42;
};

/// Checks, with random standard-normal vectors x (domain) and y (target):
///  - linearity: A(a x1 + b x2) = a A x1 + b A x2 (and the same for every supported mode),
///  - adjointness: <A x, y> = <x, A^T y>,
///  - inverse consistency where supported: A^{-1} A x = x, A^{-T} A^T y = y,
///  - that each mode returns a vector of the output space's size and all values are finite.
CheckReport check_linear_operator(const LinearOperator& op, const LinearCheckOptions& options = {});

struct JacobianCheckOptions {
  /// Relative tolerance for JVP against finite differences.
  double tolerance = 1e-6;
  /// Finite-difference step, relative: h = step * max(1, |x|_inf).
  double step = 1e-5;
  int trials = 3;
  std::uint64_t seed = 42;
  /// Options for the checks of the Jacobian as a linear operator (adjointness: VJP vs JVP).
  LinearCheckOptions linear = {};
};

/// Checks the operator at `x` (which must be on op.domain() and finite):
///  - apply(x) equals linearize(x).value,
///  - JVP J v equals the central difference (f(x + h v) - f(x - h v)) / 2h for random v,
///  - the Jacobian passes check_linear_operator, so the VJP is the adjoint of the checked JVP.
/// Throws DomainMismatch or InvalidArgument (NaN/Inf in x) for a bad x.
CheckReport check_jacobian(const Operator& op, const Field& x,
                           const JacobianCheckOptions& options = {});

/// Checks a likelihood's coordinate transformation f (Likelihood::transformation()) at the model
/// output `s`:
///  - f exists and maps the likelihood's domain,
///  - check_jacobian(f, s) with `options`,
///  - where the likelihood says it is exact, the metric's square root: J_f^T J_f v = F(s) v for
///    random v, to options.linear.tolerance.
CheckReport check_likelihood_transformation(const Likelihood& likelihood, const Field& s,
                                            const JacobianCheckOptions& options = {});

}  // namespace infield

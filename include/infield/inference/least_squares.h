#pragma once
/// @file inference/least_squares.h
/// @brief Nonlinear least squares on standardized residuals r(x):
///   E(x) = 0.5 |r(x)|^2,  grad E = J^T r,  metric M = J^T J  (Gauss-Newton),
/// with J the Jacobian of r at x; the residuals of a Gaussian problem with a standard-normal
/// prior; and Levenberg-Marquardt of Ceres on them (Ceres headers stay inside
/// inference/ceres_minimizers.cpp).
///
/// Any Minimizer works on a LeastSquaresEnergy (Newton-CG uses the Gauss-Newton metric);
/// ceres_levenberg_marquardt() requires one.

#include <memory>

#include "infield/energy.h"
#include "infield/field.h"
#include "infield/inference/minimizer.h"
#include "infield/operator.h"

namespace infield {

/// E(x) = 0.5 |r(x)|^2 for an operator r (the standardized residuals) from any space to a target
/// of m entries. evaluate() linearises r once when the gradient or the metric is requested; the
/// metric J^T J reuses that Jacobian (positive semi-definite; definite when J has full column
/// rank, e.g. when r contains the prior residuals xi).
class LeastSquaresEnergy final : public Energy {
 public:
  /// Throws InvalidArgument if `residuals` is null.
  explicit LeastSquaresEnergy(OperatorPtr residuals);
  bool has_metric() const override { return true; }
  EnergyEvaluation evaluate(ConstVectorRef x, unsigned request) const override;

  /// The residual operator r.
  const OperatorPtr& residuals() const { return residuals_; }
  /// m, the size of r's target.
  Eigen::Index num_residuals() const { return residuals_->target().size(); }

 private:
  OperatorPtr residuals_;
};

/// The least-squares energy of `residuals`; throws InvalidArgument if it is null.
std::shared_ptr<const LeastSquaresEnergy> least_squares_energy(OperatorPtr residuals);

/// The standardized residuals of Gaussian data with a standard-normal prior,
///   r(xi) = [ (model(xi) - d) / sigma ; xi ]   (target: Unstructured(m + n)),
/// so that 0.5 |r|^2 = 0.5 |model(xi) - d|^2 / sigma^2 + 0.5 |xi|^2 equals the StandardHamiltonian
/// of gaussian_likelihood(data, noise_std) and `model` exactly (no constant), and the Gauss-Newton
/// metric J^T J = J_model^T J_model / sigma^2 + 1 equals its metric. The model is linearised once
/// per evaluation. Throws InvalidArgument for a null model, data not on model->target()
/// (DomainMismatch), data not finite, or noise_std not positive and finite.
std::shared_ptr<const LeastSquaresEnergy> gaussian_least_squares(OperatorPtr model,
                                                                 const Field& data,
                                                                 double noise_std);

/// Options of ceres_levenberg_marquardt(); the tolerances are Ceres' (ceres::Solver::Options).
struct CeresLMOptions {
  /// Maximum number of trust-region iterations (successful and unsuccessful steps).
  int max_iterations = 100;
  /// Converged when |E_old - E_new| <= function_tolerance * E_old.
  double function_tolerance = 1e-14;
  /// Converged when max_i |grad_i| <= gradient_tolerance (absolute).
  double gradient_tolerance = 1e-12;
  /// Converged when |step| <= parameter_tolerance * (|x| + parameter_tolerance).
  double parameter_tolerance = 1e-12;
  /// Throws InvalidArgument naming the violated constraint (max_iterations > 0, tolerances finite
  /// and >= 0).
  void validate() const;
};

/// Levenberg-Marquardt (ceres::Problem with one residual block, LEVENBERG_MARQUARDT trust region,
/// DENSE_QR) on a LeastSquaresEnergy. The m x n Jacobian is assembled densely at every evaluation
/// by applying the linearisation's Jacobian to min(m, n) unit vectors (J e_j, or J^T e_i when
/// m < n), and factorised densely: meant for small problems (n up to a few hundred). minimize()
/// throws InvalidArgument if the energy is not a LeastSquaresEnergy, and, like every minimizer, for
/// a start point of the wrong size or not finite. Ceres' termination maps to MinimizerStatus:
/// CONVERGENCE -> kConverged, NO_CONVERGENCE -> kIterationLimit, FAILURE -> kNumericalError, with
/// Ceres' message in MinimizerSummary::message. A run that never left the start point because every
/// trial had non-finite residuals is kNumericalError (Ceres calls it convergence: its steps shrink
/// until they no longer change x). Ceres runs silently; unless the program initialised glog itself,
/// the first Ceres-backed minimize() raises glog's minloglevel to ERROR so that Ceres' warnings do
/// not reach stderr (the same holds for ceres_lbfgs()).
MinimizerPtr ceres_levenberg_marquardt(CeresLMOptions options = {});

}  // namespace infield

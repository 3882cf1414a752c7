#pragma once
/// @file inference/geovi.h
/// @brief Geometric variational inference (geoVI; Frank, Leike, Enßlin, Entropy 2021): the
/// coordinate transformation expanded at a point, and the non-linear refinement of MGVI's samples.
///
/// With f the likelihood's coordinate transformation after the model
/// (StandardHamiltonian::transformation(), J_f^T J_f = F) and J̄ its Jacobian at the expansion
/// point xi_bar, geoVI's approximate coordinate transformation is
///   g(xi) = xi + J̄^T f(xi),   with Jacobian J_g(xi) = 1 + J̄^T J_f(xi) and J_g(xi_bar) = M̄,
/// M̄ = 1 + J̄^T J̄ the metric at xi_bar. A linear sample y ~ N(0, M̄) (y = J̄^T eps + eta,
/// eps and eta standard normal) gives the geoVI sample xi* with g(xi*) = g(xi_bar) + y, found by
/// minimising
///   E(xi) = 0.5 |g(xi) - g(xi_bar) - y|^2   (metric J_g^T J_g)
/// from the MGVI sample xi_bar + M̄^{-1} y; the mirrored sample solves the same with -y from
/// xi_bar - M̄^{-1} y. This is NIFTy 8's `draw_samples` with a `minimizer`. For a linear model and
/// a Gaussian likelihood g is affine, E is minimal at the MGVI sample, and geoVI is MGVI.
///
/// Point-estimated entries are held at xi_bar: everything here lives on the sampled entries only
/// (P the projection onto them), g(delta) = delta + P J̄^T f(xi_bar + P^T delta).

#include <memory>
#include <random>
#include <vector>

#include "infield/energy.h"
#include "infield/inference/minimizer.h"

namespace infield {

namespace detail {
struct GeoVIState;
}

/// geoVI's coordinate transformation expanded at one point; immutable and thread-compatible, so
/// one expansion serves all samples of a global iteration in parallel.
class GeoVIExpansion {
 public:
  /// `sampled[i]` is false for point-estimated entries of the position (empty: all sampled).
  /// Throws InvalidArgument if the Hamiltonian's likelihood has no transformation.
  GeoVIExpansion(const StandardHamiltonian& hamiltonian, const Field& position,
                 std::vector<bool> sampled = {});

  /// The space of the sampled entries (the position's space when nothing is point-estimated).
  const Space& sampled_space() const { return sampled_space_; }
  /// M̄ = 1 + P J̄^T J̄ P^T on the sampled entries.
  const LinearOperatorPtr& metric() const { return metric_; }
  /// y = P (J̄^T eps + eta) ~ N(0, M̄); when `prior_part` is not null it receives P eta (where
  /// the CG for M̄^{-1} y starts, as in MGVI).
  Eigen::VectorXd draw_metric_sample(std::mt19937_64& rng,
                                     Eigen::VectorXd* prior_part = nullptr) const;
  /// E(delta) = 0.5 |g(delta) - g(0) - y|^2 over residuals delta on the sampled entries, with
  /// gradient J_g^T (g - g(0) - y) and metric J_g^T J_g. Non-finite values (a model output
  /// outside the likelihood's support) count as +inf, so line searches back away from them.
  std::shared_ptr<const Energy> sample_energy(Eigen::VectorXd y) const;
  /// Refines one sample: `residual` (on the sampled entries) comes in as the linear residual
  /// +-M̄^{-1} y and leaves as the minimiser of sample_energy(+-y) found by `minimizer`.
  MinimizerSummary refine(Eigen::VectorXd y, Eigen::VectorXd& residual,
                          const Minimizer& minimizer) const;
  /// log |det J_g| at xi_bar + P^T residual, from a dense LU factorisation (n Jacobian
  /// products): the change of the sample density under g^{-1}, for the KL's entropy term.
  double log_abs_det_jacobian(const Eigen::VectorXd& residual) const;
  /// The residual on the sampled entries as a vector on the whole position (zeros elsewhere).
  Eigen::VectorXd embed(const Eigen::VectorXd& residual) const;

 private:
  std::shared_ptr<const detail::GeoVIState> state_;
  Space sampled_space_;
  LinearOperatorPtr metric_;
};

/// The default geoVI sample minimiser, NIFTy's NewtonCG: Newton steps with the sample energy's
/// metric, stopping after `max_iterations` steps or when two successive steps lower the energy by
/// less than `absolute_energy_change` (NIFTy's AbsDeltaEnergyController(deltaE,
/// convergence_level=2)), or at |grad| <= 1e-8. Each step's CG is inexact as NIFTy's
/// (energy_reduction_factor 0.1, at most 200 iterations): the metric J_g^T J_g squares the
/// conditioning of M̄, and on the cf2d benchmark solving every step to a relative residual of
/// 1e-6 took 6x the time for the same 15 steps (30.6 s against 5.3 s). On small, well-conditioned
/// problems full steps need fewer of them (3 against 15-19 per sample on the MGVI tests'
/// log-normal Poisson problem, for the same CG work): pass newton_cg() options of your own there.
MinimizerPtr geovi_sample_minimizer(int max_iterations = 20, double absolute_energy_change = 1e-8);

}  // namespace infield

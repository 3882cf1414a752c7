#pragma once
/// @file models/fishernet.h
/// @brief FisherNet (Zacherl, Frank, Enßlin, Entropy 2021), its core in the toolkit's terms: the
/// encoder g_phi gives the latent mean mu_i, the decoder f_theta maps latents to data, the noise is
/// N = exp(zeta_N) 1 with a standard-normal zeta_N, and each datum's latent posterior is
/// approximated by N(mu_i, M_i^{-1}) with the metric
///
///     M_i = J_i^T N^{-1} J_i + 1,     J_i = df/dz at mu_i (k x D),
///
/// sampled as in MGVI: delta_i = M_i^{-1} (J_i^T N^{-1/2} n_i + eta_i) with n_i ~ N(0, 1_k),
/// eta_i ~ N(0, 1_D), so Cov(delta_i) = M_i^{-1}; z_i* = mu_i + delta_i. The loss (Eq. 25,
/// constants dropped) with delta_i held fixed, for a batch of B data out of p:
///
///     L = 0.5 sum_i [ |z_i*|^2 + zeta^2 / p + k zeta + exp(-zeta) |d_i - f(z_i*)|^2 ].
///
/// Training (with the VAE baseline), checkpoints and the latent outputs are in autoencoder.h.

#include <Eigen/Core>
#include <random>
#include <vector>

#include "infield/models/neural.h"

namespace infield::neural {

/// Per-datum Jacobians of the decoder at a batch of latents z (B x D): J[b] is k x D, computed as
/// D tangents per datum in one batched JVP.
template <typename T>
std::vector<Matrix<T>> decoder_jacobians(const Mlp<T>& decoder, const typename Mlp<T>::ParamsRef& params,
                                         const Matrix<T>& z);

/// M_b = J_b^T J_b / noise_variance + 1 for every datum.
template <typename T>
std::vector<Matrix<T>> latent_metrics(const std::vector<Matrix<T>>& jacobians, T noise_variance);

/// A datum's latent uncertainty from its metric M_i (paper section 2.6): the eigenvalues of M_i in
/// increasing order with their eigenvectors as columns. The posterior standard deviation along
/// eigenvector j is 1 / sqrt(eigenvalue j): the smallest eigenvalue is the least constrained
/// direction (never below 1, the prior's).
template <typename T>
struct LatentUncertainty {
  Vector<T> eigenvalues;
  Matrix<T> eigenvectors;
};
template <typename T>
LatentUncertainty<T> latent_uncertainty(const Matrix<T>& metric);

/// delta_b = M_b^{-1} (J_b^T n_b / sigma + eta_b) by a Cholesky factorisation of M_b (the explicit
/// way, cheapest for small D): n is B x k, eta is B x D (standard normal), sigma = sqrt(noise
/// variance). Returns B x D.
template <typename T>
Matrix<T> latent_residuals_explicit(const std::vector<Matrix<T>>& jacobians, T noise_variance,
                                    const Matrix<T>& n, const Matrix<T>& eta);

/// The same residuals without forming J_b (the matrix-free way, for large D): per datum, the
/// toolkit's conjugate gradient on M_b v = J_b^T (J_b v) / noise_variance + v, with J_b applied by
/// the decoder's JVP and VJP at z_b; theta_b from the same n and eta. Solves to
/// `relative_residual`; throws std::runtime_error naming the datum if a solve does not converge.
template <typename T>
Matrix<T> latent_residuals_cg(const Mlp<T>& decoder, const typename Mlp<T>::ParamsRef& params, const Matrix<T>& z,
                              T noise_variance, const Matrix<T>& n, const Matrix<T>& eta,
                              double relative_residual = 1e-10);

/// The per-datum linear systems of the explicit sampler, M_b delta_b = theta_b with
/// theta_b = J_b^T n_b / sigma + eta_b, formed without per-datum copies of J_b and by the
/// cheapest of four routes for the shapes:
/// - kJacobians: D tangents per datum through every layer (J stacked for the batch), then
///   M_b = J_b^T J_b / s^2 + 1;
/// - kLastLayerGram (a linear last layer f = W h + c only): the tangents stop at the last hidden
///   layer, H_b (h x D), and J_b = W H_b gives M_b = H_b^T (W^T W) H_b / s^2 + 1 and
///   J_b^T n_b = H_b^T (W^T n_b). One Gram matrix W^T W = L L^T per batch (h^2 k / 2
///   multiply-adds, its Cholesky factor h^3 / 6) and M_b = (L^T H_b)^T (L^T H_b) / s^2 + 1 (a
///   triangular product, D B h^2 / 2) replace the D B products by W (D B h k): cheaper for large
///   D. Where W^T W is singular to working precision, W^T W H_b is formed instead.
/// - kActiveUnitsJacobians, kActiveUnitsGram: the same two, with the tangents carried per datum
///   through its active units only. A datum's tangent is zero wherever a hidden unit's activation
///   has zero derivative (a ReLU that is off), so each layer's product needs only the rows of
///   W_l^T at the previous layer's active units, read in place (detail::times_selected_rows):
///   with half the units active, half the multiply-adds of the stacked tangents, and every datum
///   is independent work for the threads. Needs a hidden layer.
/// All compute the same matrices up to float rounding; kAuto takes latent_system_route's choice
/// for the active fractions at z.
enum class LatentSystemRoute {
  kAuto,
  kJacobians,
  kLastLayerGram,
  kActiveUnitsJacobians,
  kActiveUnitsGram
};
template <typename T>
struct LatentSystems {
  std::vector<Matrix<T>> metrics;  ///< M_b, D x D
  Matrix<T> rhs;                   ///< theta, B x D (empty when n and eta are)
  LatentSystemRoute route = LatentSystemRoute::kAuto;  ///< the route taken
};
/// For each hidden layer of the decoder (all but the last), the fraction of its units whose
/// activation has a non-zero derivative at the latents z (B x D), over the batch: the active
/// units of a ReLU layer (1 for tanh or sigmoid). The active-unit routes' work scales with it.
template <typename T>
std::vector<double> decoder_active_fractions(const Mlp<T>& decoder,
                                             const typename Mlp<T>::ParamsRef& params,
                                             const Matrix<T>& z);
/// Multiply-adds of forming the systems of a batch by `route` (not kAuto), from the decoder's
/// forward pass at z on; `active_fractions` (one per hidden layer, as decoder_active_fractions
/// gives) is needed for the active-unit routes.
template <typename T>
double latent_system_multiply_adds(const Mlp<T>& decoder, Eigen::Index batch, bool with_rhs,
                                   LatentSystemRoute route,
                                   const std::vector<double>& active_fractions = {});
/// The route kAuto takes for a batch of `batch` latents (with_rhs: theta is formed too): the one
/// expected to take least time, by its multiply-adds with the Cholesky factorisation counted at a
/// third of the GEMM rate and the active-unit kernel's at 1 / kActiveUnitsKernelCost of it.
/// The Gram routes need a linear last layer with at least as many outputs as hidden units (else
/// W^T W is singular); the active-unit routes a hidden layer and `active_fractions` (without
/// them only kJacobians and kLastLayerGram are considered).
template <typename T>
LatentSystemRoute latent_system_route(const Mlp<T>& decoder, Eigen::Index batch, bool with_rhs,
                                      const std::vector<double>& active_fractions = {});
/// The active-unit kernel's time per multiply-add relative to Eigen's GEMM of the stacked
/// tangents (measured with AVX-512 at the paper's widths, all units active: 1.5 / 0.9 / 0.8 / 1.2
/// at D = 2 / 5 / 10 / 20; see docs/performance.md).
constexpr double kActiveUnitsKernelCost = 1.25;
/// n (B x k) and eta (B x D) may both be empty: then only the metrics are formed.
template <typename T>
LatentSystems<T> latent_systems(const Mlp<T>& decoder, const typename Mlp<T>::ParamsRef& params,
                                const Matrix<T>& z, T noise_variance, const Matrix<T>& n,
                                const Matrix<T>& eta,
                                LatentSystemRoute route = LatentSystemRoute::kAuto);

/// Latent dimension above which `latent_residuals` uses CG instead of explicit Jacobians: forming
/// J_b costs D decoder JVPs and the Cholesky D^3 / 3, a CG solve about 2 products per iteration.
constexpr Eigen::Index kExplicitSamplingMaxLatent = 32;

/// For D <= kExplicitSamplingMaxLatent a Cholesky solve of latent_systems (the same residuals
/// as latent_residuals_explicit up to rounding), latent_residuals_cg above.
template <typename T>
Matrix<T> latent_residuals(const Mlp<T>& decoder, const typename Mlp<T>::ParamsRef& params, const Matrix<T>& z,
                           T noise_variance, const Matrix<T>& n, const Matrix<T>& eta);

/// The FisherNet loss of Eq. 25 for a batch and its gradient: params = [encoder parameters,
/// decoder parameters, zeta_N]; data is B x k; residuals (B x D) are held fixed.
template <typename T>
struct FisherNetLoss {
  double value = 0.0;
  Vector<T> gradient;
  double reconstruction_error = 0.0;  ///< sum_i |d_i - f(z_i*)|^2 / (B k)

  /// Where a loss writes its gradient of `size` entries: `storage` if given (`gradient` then
  /// stays empty), else `gradient`, sized.
  Eigen::Map<Vector<T>> gradient_destination(T* storage, Eigen::Index size) {
    if (storage == nullptr) {
      gradient.resize(size);
      storage = gradient.data();
    }
    return Eigen::Map<Vector<T>>(storage, size);
  }
};
template <typename T>
FisherNetLoss<T> fishernet_loss(const Mlp<T>& encoder, const Mlp<T>& decoder, const Vector<T>& params,
                             const Matrix<T>& data, const Matrix<T>& residuals,
                             Eigen::Index dataset_size);

/// One training step's loss and gradient: the encoder's mean mu, the residuals drawn at mu from the
/// standard-normal n (B x k) and eta (B x D) by `latent_residuals`, then Eq. 25 as in
/// fishernet_loss, reusing the encoder's forward pass. `ready`, when given, is called with every
/// layer's block of the gradient (offsets in params) as the backward pass finishes it; zeta_N's
/// entry is not reported. `gradient_storage`, when given (params.size() values), receives the
/// gradient instead of the result's `gradient`, which is then left empty: data-parallel training
/// has the backward pass write straight into memory that the other ranks read.
template <typename T>
FisherNetLoss<T> fishernet_step(const Mlp<T>& encoder, const Mlp<T>& decoder,
                                const Vector<T>& params, const Matrix<T>& data, const Matrix<T>& n,
                                const Matrix<T>& eta, Eigen::Index dataset_size,
                                const GradientBlockReady<T>& ready = {},
                                T* gradient_storage = nullptr);

}  // namespace infield::neural

#pragma once
/// @file models/latent_inference.h
/// @brief Full MGVI per datum with a trained decoder: what the framework gives beyond FisherNet's
/// amortised encoder. For each image d_i the posterior of its latent z_i under
///
///     d_i = f(z_i) + n,  n ~ N(0, sigma^2 1),  z_i ~ N(0, 1_D),
///
/// with f the decoder as an operator (network_operators.h) and sigma the learned noise, is
/// approximated by optimize_kl on standard_hamiltonian(gaussian_likelihood(d_i, sigma), f),
/// starting at the encoder's mean. The difference between the encoder's means and the refined
/// means is the amortisation gap (`infield fishernet infer`, docs/fishernet.md).

#include <Eigen/Core>
#include <cstdint>
#include <functional>

#include "infield/models/network_operators.h"

namespace infield::neural {

struct LatentInferenceOptions {
  /// Samples per datum (mirrored pairs: an even number, at least 2).
  int samples = 8;
  /// Global iterations of optimize_kl per datum.
  int iterations = 3;
  /// Newton steps per global iteration (the sampled KL's minimiser).
  int newton_steps = 10;
  int threads = 1;
  /// Datum i draws its samples from the streams of (seed, i): results depend on neither the
  /// thread count nor which other data are inferred alongside.
  std::uint64_t seed = 0;
  /// Called after each datum with the number done so far (from any thread, serialised).
  std::function<void(Eigen::Index done, Eigen::Index total)> progress;
  /// Throws InvalidArgument naming the bad setting.
  void validate() const;
};

struct LatentPosteriors {
  Matrix<double> mean;        ///< N x D, the final expansion points (the samples' mean).
  Matrix<double> covariance;  ///< N x (D * D), row-major D x D: the samples' covariance (n - 1).
  /// Per datum: every sampling CG and every minimisation converged.
  std::vector<bool> converged;
  Eigen::Index not_converged() const;
};

/// MGVI on each row of `images` (N x k) with `decoder` (D -> k) and noise standard deviation
/// `noise_std`, starting at the rows of `start` (N x D, the encoder's means). Data run in
/// parallel over options.threads. Throws InvalidArgument for shapes that do not match the
/// decoder, non-finite inputs or a non-positive noise.
LatentPosteriors infer_latents(const DenseNetwork& decoder, double noise_std,
                               const Matrix<double>& images, const Matrix<double>& start,
                               const LatentInferenceOptions& options);

}  // namespace infield::neural

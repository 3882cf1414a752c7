#pragma once
// Random matrices and learnable images shared by the network tests (neural layers, convolution,
// autoencoders, network operators).

#include <Eigen/Core>
#include <cstdint>
#include <random>

#include "infield/models/neural.h"

namespace infield::test {

/// An r x c matrix of standard-normal entries (drawn in double, row by row of the storage).
template <typename T>
neural::Matrix<T> normal_matrix(Eigen::Index r, Eigen::Index c, std::mt19937_64& rng) {
  std::normal_distribution<double> g;
  neural::Matrix<T> m(r, c);
  for (auto& v : m.reshaped()) v = static_cast<T>(g(rng));
  return m;
}

/// `count` images of `pixels` values in [0, 1] that an autoencoder can learn: mixes of 3 random
/// patterns through a sigmoid.
inline neural::Matrix<float> pattern_images(Eigen::Index count, Eigen::Index pixels,
                                            std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const neural::Matrix<float> basis = normal_matrix<float>(3, pixels, rng);
  const neural::Matrix<float> x = normal_matrix<float>(count, 3, rng) * basis;
  return (1.0F / (1.0F + (-x.array()).exp())).matrix();
}

}  // namespace infield::test

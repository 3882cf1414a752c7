#pragma once
// Small synthetic image data sets in the IDX format for the command-line tests.

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "infield/models/idx.h"

namespace infield::testing {

/// Images of `side` x `side` pixels: a bright square whose position depends on the class.
inline void write_square_images(const std::filesystem::path& dir, const std::string& split, int count, int side,
                 std::uint64_t seed) {
  std::filesystem::create_directories(dir);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> noise(0, 40);
  std::vector<std::uint8_t> images, labels;
  for (int i = 0; i < count; ++i) {
    const int label = i % 10;
    labels.push_back(static_cast<std::uint8_t>(label));
    for (int r = 0; r < side; ++r)
      for (int c = 0; c < side; ++c) {
        const bool on = r / 3 == label % 3 && c / 3 == label / 3 % 3;
        images.push_back(static_cast<std::uint8_t>((on ? 200 : 0) + noise(rng)));
      }
  }
  write_idx(dir / (split + "-images-idx3-ubyte"), {count, side, side}, images);
  write_idx(dir / (split + "-labels-idx1-ubyte"), {count}, labels);
}

}  // namespace infield::testing

#pragma once
// Seeding generators from several integers (internal to the models library): training streams
// per (seed, epoch) or (seed, step, block) that do not depend on threads or on other streams.

#include <cstdint>

namespace infield::neural::detail {

/// A 64-bit mix (splitmix64's finaliser) of a seed with up to two more integers.
inline std::uint64_t mix(std::uint64_t a, std::uint64_t b, std::uint64_t c = 0) {
  std::uint64_t x = a;
  for (std::uint64_t v : {b, c}) {
    x ^= v + 0x9e3779b97f4a7c15ULL + (x << 6) + (x >> 2);
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
  }
  return x;
}

}  // namespace infield::neural::detail

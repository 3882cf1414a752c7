#pragma once
// Matrices as .npy files for the command-line programs, and the fingerprint of a run's inputs.

#include <Eigen/Core>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace infield::apps {

/// A 2-D .npy (C order) as a matrix; throws InvalidArgument naming `command` and `flag` if it is
/// not 2-D (`what` describes the expected axes) or holds NaN/Inf, FileError if unreadable.
Eigen::MatrixXd read_npy_matrix(const std::string& path, std::string_view command,
                                std::string_view flag, std::string_view what);

/// Writes a matrix as a 2-D float64 .npy in C order (atomically).
void write_npy_rows(const std::filesystem::path& path, const Eigen::MatrixXd& m);

/// FNV-1a, for checkpoint run ids: fold `n` bytes at `p` into `hash`.
inline std::uint64_t fnv1a(std::uint64_t hash, const void* p, std::size_t n) {
  const auto* bytes = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
  return hash;
}
/// FNV-1a's offset basis: the hash of nothing.
constexpr std::uint64_t kFnv1aBasis = 1469598103934665603ull;

}  // namespace infield::apps

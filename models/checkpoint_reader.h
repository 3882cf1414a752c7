#pragma once
// Reading a checkpoint stored as one .npy vector of numbers in a fixed order (the autoencoders'
// and the classifier's): every read is checked, and every failure is a FileError that names the
// file and what was being read. Private to models/.

#include <Eigen/Core>
#include <cmath>
#include <filesystem>
#include <string>
#include <system_error>

#include "infield/error.h"
#include "infield/models/neural.h"
#include "infield/npy.h"

namespace infield::neural::detail {

class CheckpointReader {
 public:
  /// Reads the file; `prefix` starts every error message ("load_checkpoint: PATH:").
  CheckpointReader(const std::filesystem::path& path, std::string prefix)
      : prefix_(std::move(prefix)) {
    std::error_code unreadable;
    if (!std::filesystem::exists(path, unreadable)) fail("does not exist or cannot be read");
    NpyArray a = read_npy(path);
    if (a.shape.size() != 1) fail("is not a checkpoint (not a vector)");
    values_ = std::move(a.values);
  }

  [[noreturn]] void fail(const std::string& why) const { throw FileError(prefix_ + " " + why); }

  /// The values not read yet.
  Eigen::Index remaining() const { return values_.size() - at_; }

  /// The next value; it must exist and be finite.
  double next(const char* what) {
    if (at_ >= values_.size()) fail(std::string("is truncated (at ") + what + ")");
    const double x = values_[at_++];
    if (!std::isfinite(x)) fail(std::string("has a non-finite ") + what);
    return x;
  }

  /// The next value as a count: a whole number in [0, max].
  Eigen::Index count(const char* what, double max) {
    const double x = next(what);
    if (!(x >= 0 && x <= max && x == std::floor(x))) fail(std::string("has an invalid ") + what);
    return static_cast<Eigen::Index>(x);
  }

  /// The next n values as floats (parameters, moments); all must be finite.
  Vector<float> floats(Eigen::Index n, const char* what) {
    if (remaining() < n) fail(std::string("is truncated (in the ") + what + ")");
    Vector<float> out = values_.segment(at_, n).cast<float>();
    if (!out.allFinite()) fail(std::string("has non-finite ") + what);
    at_ += n;
    return out;
  }

  /// Everything must have been read.
  void expect_end() const {
    if (at_ != values_.size()) fail("has trailing values");
  }

 private:
  std::string prefix_;
  Eigen::VectorXd values_;
  Eigen::Index at_ = 0;
};

}  // namespace infield::neural::detail

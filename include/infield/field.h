#pragma once
/// @file field.h
/// @brief Field: a Space plus contiguous double values. A MultiField is a Field over a MultiDomain.
///
/// A MultiField stores its parts contiguously, key after key in sorted key order, so every
/// vector-space operation, solver and minimizer works on it unchanged; `part(key)` views one part
/// without a copy. Fields are moved, not copied, through operator chains.

#include <Eigen/Core>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "infield/domain.h"

namespace infield {

using ConstVectorRef = Eigen::Ref<const Eigen::VectorXd>;
using VectorRef = Eigen::Ref<Eigen::VectorXd>;
using RowMajorMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

class Field {
 public:
  /// An empty field on the scalar space, for default construction only.
  Field();
  /// Takes ownership of `values` (moved, not copied); throws InvalidArgument if the size differs
  /// from `space.size()`.
  Field(Space space, Eigen::VectorXd values);

  static Field zeros(const Space& space);
  static Field full(const Space& space, double value);
  /// Independent standard-normal values.
  static Field normal(const Space& space, std::mt19937_64& rng);
  /// A MultiField from named fields over DomainTuples (copies each into contiguous storage).
  static Field multi(const std::vector<std::pair<std::string, Field>>& parts);

  const Space& space() const { return space_; }
  Eigen::Index size() const { return values_.size(); }
  bool is_multi() const { return space_.is_multi(); }

  const Eigen::VectorXd& values() const& { return values_; }
  Eigen::VectorXd& values() & { return values_; }
  /// Moves the values out of a temporary field.
  Eigen::VectorXd values() && { return std::move(values_); }
  const double* data() const { return values_.data(); }
  double* data() { return values_.data(); }

  /// A view of the values as a row-major rows x cols matrix (no copy); rows * cols == size().
  Eigen::Map<const RowMajorMatrix> matrix(Eigen::Index rows, Eigen::Index cols) const;
  Eigen::Map<RowMajorMatrix> matrix(Eigen::Index rows, Eigen::Index cols);

  /// View of the part `key` of a MultiField (no copy); throws if not a MultiField or key absent.
  Eigen::Map<const Eigen::VectorXd> part(const std::string& key) const;
  Eigen::Map<Eigen::VectorXd> part(const std::string& key);
  /// The part `key` as a Field over its DomainTuple (a copy).
  Field extract(const std::string& key) const;

  // Vector-space operations; the spaces must be equal (else DomainMismatch).
  Field& operator+=(const Field& other);
  Field& operator-=(const Field& other);
  /// Pointwise product.
  Field& operator*=(const Field& other);
  /// Pointwise quotient.
  Field& operator/=(const Field& other);
  Field& operator*=(double factor);
  Field& operator+=(double offset);
  Field operator-() const&;
  Field operator-() &&;

  /// Scalar product sum_i a_i b_i (no volume factors).
  double vdot(const Field& other) const;
  /// Euclidean norm sqrt(vdot(*this, *this)).
  double norm() const;
  double sum() const;
  /// Volume-weighted integral: sum_i value_i * cell volume (per part for a MultiField).
  double integrate() const;
  bool all_finite() const { return values_.allFinite(); }

 private:
  Space space_;
  Eigen::VectorXd values_;
};

inline Field operator+(Field a, const Field& b) { return std::move(a += b); }
inline Field operator-(Field a, const Field& b) { return std::move(a -= b); }
inline Field operator*(Field a, const Field& b) { return std::move(a *= b); }
inline Field operator/(Field a, const Field& b) { return std::move(a /= b); }
inline Field operator*(double c, Field a) { return std::move(a *= c); }
inline Field operator*(Field a, double c) { return std::move(a *= c); }
inline double vdot(const Field& a, const Field& b) { return a.vdot(b); }

/// n independent standard-normal values from `rng`.
Eigen::VectorXd standard_normal_vector(Eigen::Index n, std::mt19937_64& rng);

/// Fills out[0, n) with independent standard-normal floats from `rng`: the Box-Muller transform
/// evaluated vectorised, several times faster than std::normal_distribution (for training noise,
/// tens of thousands of values per step). Each 64-bit draw gives one pair, 32 bits for the radius
/// and 24 for the angle, so |values| stay below 6.7 (a tail mass of 2e-11 is cut off).
void fill_standard_normal(float* out, Eigen::Index n, std::mt19937_64& rng);

/// A MultiField is a Field whose space is a MultiDomain.
using MultiField = Field;

}  // namespace infield

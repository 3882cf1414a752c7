#include "infield/field.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

#include "infield/error.h"

namespace infield {

Field::Field() : values_(Eigen::VectorXd::Zero(1)) {}

Field::Field(Space space, Eigen::VectorXd values) : space_(std::move(space)), values_(std::move(values)) {
  check_argument(values_.size() == space_.size(), "Field", "values",
                 "has " + std::to_string(values_.size()) + " entries but the space " +
                     space_.to_string() + " has " + std::to_string(space_.size()));
}

Field Field::zeros(const Space& space) { return Field(space, Eigen::VectorXd::Zero(space.size())); }

Field Field::full(const Space& space, double value) {
  return Field(space, Eigen::VectorXd::Constant(space.size(), value));
}

Eigen::VectorXd standard_normal_vector(Eigen::Index n, std::mt19937_64& rng) {
  std::normal_distribution<double> gauss;
  Eigen::VectorXd v(n);
  for (Eigen::Index i = 0; i < n; ++i) v[i] = gauss(rng);
  return v;
}

void fill_standard_normal(float* out, Eigen::Index n, std::mt19937_64& rng) {
  check_argument(n >= 0 && (out != nullptr || n == 0), "fill_standard_normal", "out, n",
                 "need n >= 0 values of storage");
  constexpr Eigen::Index kChunk = 256;  // pairs per vectorised pass, kept in L1
  Eigen::ArrayXd uniform(kChunk);
  Eigen::ArrayXf angle(kChunk), radius(kChunk), values(2 * kChunk);
  const Eigen::Index pairs = (n + 1) / 2;
  for (Eigen::Index start = 0; start < pairs; start += kChunk) {
    const Eigen::Index m = std::min(kChunk, pairs - start);
    for (Eigen::Index i = 0; i < m; ++i) {
      const std::uint64_t bits = rng();
      // In (0, 1): the log is finite. The angle in [0, 2 pi).
      uniform[i] = (static_cast<double>(bits >> 32) + 0.5) * 0x1p-32;
      angle[i] = static_cast<float>(bits & 0xFFFFFFu) * static_cast<float>(0x1p-24 * 2 * std::numbers::pi);
    }
    // Evaluated in the aligned local arrays: Eigen peels unaligned leading elements off to a
    // scalar path that rounds differently, so `out`'s alignment would change the values.
    radius.head(m) = (-2.0 * uniform.head(m).log()).sqrt().cast<float>();
    values.head(m) = radius.head(m) * angle.head(m).cos();
    values.segment(m, m) = radius.head(m) * angle.head(m).sin();
    // The first m values of this chunk's 2m are the cosines, the next m the sines.
    const Eigen::Index first = 2 * start, count = std::min(2 * m, n - first);
    std::copy(values.data(), values.data() + count, out + first);
  }
}

Field Field::normal(const Space& space, std::mt19937_64& rng) {
  return Field(space, standard_normal_vector(space.size(), rng));
}

Field Field::multi(const std::vector<std::pair<std::string, Field>>& parts) {
  std::vector<std::pair<std::string, DomainTuple>> domains;
  for (const auto& [key, field] : parts) domains.emplace_back(key, field.space().tuple());
  MultiDomain md(std::move(domains));
  Eigen::VectorXd values(md.size());
  for (const auto& [key, field] : parts) {
    const auto& entry = md.at(key);
    values.segment(entry.offset, entry.domain.size()) = field.values();
  }
  return Field(std::move(md), std::move(values));
}

Eigen::Map<const RowMajorMatrix> Field::matrix(Eigen::Index rows, Eigen::Index cols) const {
  check_argument(rows >= 0 && cols >= 0 && rows * cols == size(), "Field::matrix", "rows, cols",
                 "must multiply to the size " + std::to_string(size()));
  return {values_.data(), rows, cols};
}

Eigen::Map<RowMajorMatrix> Field::matrix(Eigen::Index rows, Eigen::Index cols) {
  check_argument(rows >= 0 && cols >= 0 && rows * cols == size(), "Field::matrix", "rows, cols",
                 "must multiply to the size " + std::to_string(size()));
  return {values_.data(), rows, cols};
}

Eigen::Map<const Eigen::VectorXd> Field::part(const std::string& key) const {
  const auto& entry = space_.multi().at(key);
  return {values_.data() + entry.offset, entry.domain.size()};
}

Eigen::Map<Eigen::VectorXd> Field::part(const std::string& key) {
  const auto& entry = space_.multi().at(key);
  return {values_.data() + entry.offset, entry.domain.size()};
}

Field Field::extract(const std::string& key) const {
  const auto& entry = space_.multi().at(key);
  return Field(entry.domain, values_.segment(entry.offset, entry.domain.size()));
}

Field& Field::operator+=(const Field& other) {
  check_same_space(space_, other.space_, "Field::operator+=", "right-hand side");
  values_ += other.values_;
  return *this;
}

Field& Field::operator-=(const Field& other) {
  check_same_space(space_, other.space_, "Field::operator-=", "right-hand side");
  values_ -= other.values_;
  return *this;
}

Field& Field::operator*=(const Field& other) {
  check_same_space(space_, other.space_, "Field::operator*=", "right-hand side");
  values_.array() *= other.values_.array();
  return *this;
}

Field& Field::operator/=(const Field& other) {
  check_same_space(space_, other.space_, "Field::operator/=", "right-hand side");
  values_.array() /= other.values_.array();
  return *this;
}

Field& Field::operator*=(double factor) {
  values_ *= factor;
  return *this;
}

Field& Field::operator+=(double offset) {
  values_.array() += offset;
  return *this;
}

Field Field::operator-() const& { return Field(space_, -values_); }

Field Field::operator-() && {
  values_ = -values_;
  return std::move(*this);
}

double Field::vdot(const Field& other) const {
  check_same_space(space_, other.space_, "Field::vdot", "other");
  return values_.dot(other.values_);
}

double Field::norm() const { return values_.norm(); }

double Field::sum() const { return values_.sum(); }

double Field::integrate() const {
  if (!space_.is_multi()) return values_.sum() * space_.tuple().cell_volume();
  double total = 0.0;
  for (const auto& e : space_.multi().entries())
    total += values_.segment(e.offset, e.domain.size()).sum() * e.domain.cell_volume();
  return total;
}

}  // namespace infield

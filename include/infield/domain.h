#pragma once
/// @file domain.h
/// @brief Index spaces and geometry of fields: single domains, domain tuples, multi-domains.
///
/// A Domain is one factor (a regular grid, an unstructured set of points). A DomainTuple is a
/// product of domains (e.g. batch x pixels) whose values are laid out in C order, the last domain
/// varying fastest. A MultiDomain maps names to DomainTuples. A Space is either of the latter two:
/// it is what operators map between. All of them are cheap handles (shared, immutable), so copying
/// them costs a reference count.

#include <Eigen/Core>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace infield {

/// One factor of a DomainTuple. Immutable and shared via DomainPtr.
class Domain {
 public:
  virtual ~Domain() = default;
  Domain() = default;
  Domain(const Domain&) = delete;
  Domain& operator=(const Domain&) = delete;

  /// Extent along each axis of this domain (one entry for unstructured domains).
  virtual std::vector<Eigen::Index> shape() const = 0;
  /// Number of values: the product of shape().
  Eigen::Index size() const;
  /// Volume of one cell; all cells of a domain have the same volume (1 for unstructured points).
  virtual double cell_volume() const = 0;
  /// size() * cell_volume().
  double total_volume() const { return static_cast<double>(size()) * cell_volume(); }
  /// Human-readable description used in error messages, e.g. `RegularGrid(shape=[4, 4], ...)`.
  virtual std::string to_string() const = 0;
  /// Structural equality: same kind, shape and geometry.
  virtual bool equals(const Domain& other) const = 0;
};

using DomainPtr = std::shared_ptr<const Domain>;

/// A regular Cartesian grid with given pixel distances (periodic where harmonic transforms apply).
class RegularGrid final : public Domain {
 public:
  RegularGrid(std::vector<Eigen::Index> shape, std::vector<double> distances);
  std::vector<Eigen::Index> shape() const override { return shape_; }
  const std::vector<double>& distances() const { return distances_; }
  double cell_volume() const override;
  std::string to_string() const override;
  bool equals(const Domain& other) const override;

 private:
  std::vector<Eigen::Index> shape_;
  std::vector<double> distances_;
};

/// n points without geometry (data points, a batch index); each has volume 1.
class UnstructuredDomain final : public Domain {
 public:
  explicit UnstructuredDomain(Eigen::Index n);
  std::vector<Eigen::Index> shape() const override { return {n_}; }
  double cell_volume() const override { return 1.0; }
  std::string to_string() const override;
  bool equals(const Domain& other) const override;

 private:
  Eigen::Index n_;
};

/// A regular grid; distances default to 1/shape per axis (the unit box), as in NIFTy.
DomainPtr regular_grid(std::vector<Eigen::Index> shape, std::vector<double> distances = {});
/// An unstructured domain of n points.
DomainPtr unstructured(Eigen::Index n);

/// A product of domains; values are laid out in C order (last domain fastest). The empty tuple is
/// the scalar space of size 1.
class DomainTuple {
 public:
  DomainTuple();
  DomainTuple(std::vector<DomainPtr> domains);  // NOLINT: implicit by design
  DomainTuple(std::initializer_list<DomainPtr> domains);
  DomainTuple(DomainPtr domain);  // NOLINT: a single domain is a tuple of one

  std::size_t rank() const { return domains_->size(); }
  const DomainPtr& operator[](std::size_t i) const { return (*domains_)[i]; }
  const std::vector<DomainPtr>& domains() const { return *domains_; }
  Eigen::Index size() const { return size_; }
  /// Concatenated shapes of all domains.
  std::vector<Eigen::Index> shape() const;
  /// Volume of one cell: the product of the domains' cell volumes.
  double cell_volume() const;
  /// The tuple without domain `index` (used by contractions).
  DomainTuple without(std::size_t index) const;
  std::string to_string() const;
  bool operator==(const DomainTuple& other) const;

 private:
  std::shared_ptr<const std::vector<DomainPtr>> domains_;
  Eigen::Index size_ = 1;
};

/// Names mapped to DomainTuples, sorted by name; a MultiField stores its parts contiguously in this
/// order.
class MultiDomain {
 public:
  struct Entry {
    std::string key;
    DomainTuple domain;
    Eigen::Index offset;  ///< Position of this part in the contiguous storage.
  };
  MultiDomain();
  MultiDomain(std::vector<std::pair<std::string, DomainTuple>> parts);  // NOLINT
  MultiDomain(std::initializer_list<std::pair<std::string, DomainTuple>> parts);

  const std::vector<Entry>& entries() const { return *entries_; }
  std::vector<std::string> keys() const;
  bool contains(const std::string& key) const;
  /// The entry for `key`; throws InvalidArgument naming the known keys if absent.
  const Entry& at(const std::string& key) const;
  Eigen::Index size() const { return size_; }
  std::string to_string() const;
  bool operator==(const MultiDomain& other) const;

 private:
  std::shared_ptr<const std::vector<Entry>> entries_;
  Eigen::Index size_ = 0;
};

/// What an operator maps between: a DomainTuple (a plain field) or a MultiDomain (a MultiField).
class Space {
 public:
  Space() = default;
  Space(DomainTuple tuple) : v_(std::move(tuple)) {}       // NOLINT
  Space(MultiDomain multi) : v_(std::move(multi)) {}       // NOLINT
  Space(DomainPtr domain) : v_(DomainTuple(std::move(domain))) {}  // NOLINT

  bool is_multi() const { return std::holds_alternative<MultiDomain>(v_); }
  /// The DomainTuple; throws InvalidArgument if this is a MultiDomain.
  const DomainTuple& tuple() const;
  /// The MultiDomain; throws InvalidArgument if this is a DomainTuple.
  const MultiDomain& multi() const;
  Eigen::Index size() const;
  std::string to_string() const;
  bool operator==(const Space& other) const;

 private:
  std::variant<DomainTuple, MultiDomain> v_;
};

}  // namespace infield

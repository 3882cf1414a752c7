#include "infield/domain.h"

#include <algorithm>
#include <sstream>

#include "infield/error.h"

namespace infield {
namespace {

template <typename T>
std::string join(const std::vector<T>& values) {
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < values.size(); ++i) out << (i ? ", " : "") << values[i];
  out << "]";
  return out.str();
}

}  // namespace

Eigen::Index Domain::size() const {
  Eigen::Index n = 1;
  for (Eigen::Index extent : shape()) n *= extent;
  return n;
}

RegularGrid::RegularGrid(std::vector<Eigen::Index> shape, std::vector<double> distances)
    : shape_(std::move(shape)), distances_(std::move(distances)) {
  constexpr std::string_view fn = "RegularGrid";
  check_argument(!shape_.empty(), fn, "shape", "must have at least one axis");
  for (Eigen::Index extent : shape_)
    check_argument(extent > 0, fn, "shape", "must have positive extents, got " + join(shape_));
  if (distances_.empty())
    for (Eigen::Index extent : shape_) distances_.push_back(1.0 / static_cast<double>(extent));
  check_argument(distances_.size() == shape_.size(), fn, "distances",
                 "must have one entry per axis (" + std::to_string(shape_.size()) + "), got " +
                     std::to_string(distances_.size()));
  for (double d : distances_) check_positive(d, fn, "distances");
}

double RegularGrid::cell_volume() const {
  double v = 1.0;
  for (double d : distances_) v *= d;
  return v;
}

std::string RegularGrid::to_string() const {
  return "RegularGrid(shape=" + join(shape_) + ", distances=" + join(distances_) + ")";
}

bool RegularGrid::equals(const Domain& other) const {
  const auto* grid = dynamic_cast<const RegularGrid*>(&other);
  return grid != nullptr && grid->shape_ == shape_ && grid->distances_ == distances_;
}

UnstructuredDomain::UnstructuredDomain(Eigen::Index n) : n_(n) {
  check_argument(n > 0, "UnstructuredDomain", "n", "must be positive, got " + std::to_string(n));
}

std::string UnstructuredDomain::to_string() const {
  return "Unstructured(" + std::to_string(n_) + ")";
}

bool UnstructuredDomain::equals(const Domain& other) const {
  const auto* u = dynamic_cast<const UnstructuredDomain*>(&other);
  return u != nullptr && u->n_ == n_;
}

DomainPtr regular_grid(std::vector<Eigen::Index> shape, std::vector<double> distances) {
  return std::make_shared<RegularGrid>(std::move(shape), std::move(distances));
}

DomainPtr unstructured(Eigen::Index n) { return std::make_shared<UnstructuredDomain>(n); }

// ---------------------------------------------------------------------------------------------
DomainTuple::DomainTuple() : domains_(std::make_shared<const std::vector<DomainPtr>>()) {}

DomainTuple::DomainTuple(std::vector<DomainPtr> domains) {
  for (const auto& d : domains) {
    check_argument(d != nullptr, "DomainTuple", "domains", "must not contain null domains");
    size_ *= d->size();
  }
  domains_ = std::make_shared<const std::vector<DomainPtr>>(std::move(domains));
}

DomainTuple::DomainTuple(std::initializer_list<DomainPtr> domains)
    : DomainTuple(std::vector<DomainPtr>(domains)) {}

DomainTuple::DomainTuple(DomainPtr domain) : DomainTuple(std::vector<DomainPtr>{std::move(domain)}) {}

std::vector<Eigen::Index> DomainTuple::shape() const {
  std::vector<Eigen::Index> out;
  for (const auto& d : *domains_) {
    auto s = d->shape();
    out.insert(out.end(), s.begin(), s.end());
  }
  return out;
}

double DomainTuple::cell_volume() const {
  double v = 1.0;
  for (const auto& d : *domains_) v *= d->cell_volume();
  return v;
}

DomainTuple DomainTuple::without(std::size_t index) const {
  check_argument(index < rank(), "DomainTuple::without", "index",
                 "must be below the rank " + std::to_string(rank()) + " of " + to_string());
  std::vector<DomainPtr> rest;
  for (std::size_t i = 0; i < rank(); ++i)
    if (i != index) rest.push_back((*domains_)[i]);
  return DomainTuple(std::move(rest));
}

std::string DomainTuple::to_string() const {
  std::string out = "DomainTuple(";
  for (std::size_t i = 0; i < rank(); ++i) out += (i ? ", " : "") + (*domains_)[i]->to_string();
  return out + ")";
}

bool DomainTuple::operator==(const DomainTuple& other) const {
  if (domains_ == other.domains_) return true;
  if (rank() != other.rank()) return false;
  for (std::size_t i = 0; i < rank(); ++i) {
    const auto& a = (*domains_)[i];
    const auto& b = (*other.domains_)[i];
    if (a != b && !a->equals(*b)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
MultiDomain::MultiDomain() : entries_(std::make_shared<const std::vector<Entry>>()) {}

MultiDomain::MultiDomain(std::vector<std::pair<std::string, DomainTuple>> parts) {
  std::sort(parts.begin(), parts.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Entry> entries;
  for (auto& [key, domain] : parts) {
    check_argument(!key.empty(), "MultiDomain", "keys", "must not be empty");
    check_argument(entries.empty() || entries.back().key != key, "MultiDomain", "keys",
                   "must be unique, '" + key + "' appears twice");
    entries.push_back({key, std::move(domain), size_});
    size_ += entries.back().domain.size();
  }
  entries_ = std::make_shared<const std::vector<Entry>>(std::move(entries));
}

MultiDomain::MultiDomain(std::initializer_list<std::pair<std::string, DomainTuple>> parts)
    : MultiDomain(std::vector<std::pair<std::string, DomainTuple>>(parts)) {}

std::vector<std::string> MultiDomain::keys() const {
  std::vector<std::string> out;
  for (const auto& e : *entries_) out.push_back(e.key);
  return out;
}

bool MultiDomain::contains(const std::string& key) const {
  return std::any_of(entries_->begin(), entries_->end(),
                     [&](const Entry& e) { return e.key == key; });
}

const MultiDomain::Entry& MultiDomain::at(const std::string& key) const {
  for (const auto& e : *entries_)
    if (e.key == key) return e;
  detail::throw_invalid_argument("MultiDomain::at", "key",
                                 "'" + key + "' is not one of " + join(keys()));
}

std::string MultiDomain::to_string() const {
  std::string out = "MultiDomain(";
  for (std::size_t i = 0; i < entries_->size(); ++i)
    out += (i ? ", " : "") + (*entries_)[i].key + ": " + (*entries_)[i].domain.to_string();
  return out + ")";
}

bool MultiDomain::operator==(const MultiDomain& other) const {
  if (entries_ == other.entries_) return true;
  if (entries_->size() != other.entries_->size()) return false;
  for (std::size_t i = 0; i < entries_->size(); ++i) {
    const auto& a = (*entries_)[i];
    const auto& b = (*other.entries_)[i];
    if (a.key != b.key || !(a.domain == b.domain)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
const DomainTuple& Space::tuple() const {
  if (const auto* t = std::get_if<DomainTuple>(&v_)) return *t;
  detail::throw_invalid_argument("Space::tuple", "space",
                                 "is a MultiDomain, not a DomainTuple: " + to_string());
}

const MultiDomain& Space::multi() const {
  if (const auto* m = std::get_if<MultiDomain>(&v_)) return *m;
  detail::throw_invalid_argument("Space::multi", "space",
                                 "is a DomainTuple, not a MultiDomain: " + to_string());
}

Eigen::Index Space::size() const {
  return std::visit([](const auto& s) { return s.size(); }, v_);
}

std::string Space::to_string() const {
  return std::visit([](const auto& s) { return s.to_string(); }, v_);
}

bool Space::operator==(const Space& other) const { return v_ == other.v_; }

}  // namespace infield

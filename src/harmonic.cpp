#include "infield/harmonic.h"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
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

/// FFTW's planner (plan creation and destruction) is not thread-safe; execution is.
std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

void check_grid_shape(const std::vector<Eigen::Index>& shape, const std::vector<double>& distances,
                      std::string_view fn, std::string_view argument) {
  check_argument(!shape.empty(), fn, "shape", "must have at least one axis");
  for (Eigen::Index extent : shape)
    check_argument(extent > 0, fn, "shape", "must have positive extents, got " + join(shape));
  check_argument(distances.size() == shape.size(), fn, argument,
                 "must have one entry per axis (" + std::to_string(shape.size()) + "), got " +
                     std::to_string(distances.size()));
  for (double d : distances) check_positive(d, fn, argument);
}

std::vector<double> reciprocal_distances(const std::vector<Eigen::Index>& shape,
                                         const std::vector<double>& distances) {
  std::vector<double> out(shape.size());
  for (std::size_t i = 0; i < shape.size(); ++i)
    out[i] = 1.0 / (static_cast<double>(shape[i]) * distances[i]);
  return out;
}

const HarmonicGrid& as_harmonic(const DomainPtr& domain, std::string_view fn,
                                std::string_view argument) {
  check_argument(domain != nullptr, fn, argument, "must not be null");
  const auto* grid = dynamic_cast<const HarmonicGrid*>(domain.get());
  if (grid == nullptr)
    detail::throw_invalid_argument(fn, argument,
                                   "must be a HarmonicGrid, got " + domain->to_string());
  return *grid;
}

std::string describe_index(std::size_t index, const DomainTuple& domain) {
  return "is " + std::to_string(index) + " but " + domain.to_string() + " has rank " +
         std::to_string(domain.rank());
}

/// Product of the sizes of the domains before / after `index`.
std::pair<Eigen::Index, Eigen::Index> outer_inner(const DomainTuple& domain, std::size_t index) {
  Eigen::Index outer = 1, inner = 1;
  for (std::size_t i = 0; i < index; ++i) outer *= domain[i]->size();
  for (std::size_t i = index + 1; i < domain.rank(); ++i) inner *= domain[i]->size();
  return {outer, inner};
}

DomainTuple replaced(const DomainTuple& domain, std::size_t index, DomainPtr factor) {
  std::vector<DomainPtr> domains = domain.domains();
  domains[index] = std::move(factor);
  return DomainTuple(std::move(domains));
}

/// An FFTW plan, destroyed under the planner mutex.
class R2CPlan {
 public:
  explicit R2CPlan(fftw_plan plan) : plan_(plan) {}
  ~R2CPlan() {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    fftw_destroy_plan(plan_);
  }
  R2CPlan(const R2CPlan&) = delete;
  R2CPlan& operator=(const R2CPlan&) = delete;
  fftw_plan get() const { return plan_; }

 private:
  fftw_plan plan_;
};

/// Plans are cached per (dims, inner) for the life of the process and shared by every operator of
/// that geometry, so building operators repeatedly (one model per sample, per test) plans once.
std::shared_ptr<const R2CPlan> cached_r2c_plan(const std::vector<int>& dims, Eigen::Index inner,
                                               std::string_view fn, const DomainTuple& domain) {
  // The mutex is constructed before the cache, so it outlives the plans destroyed at exit.
  std::mutex& planner = fftw_planner_mutex();
  static std::map<std::pair<std::vector<int>, Eigen::Index>, std::shared_ptr<const R2CPlan>> cache;
  std::unique_lock<std::mutex> lock(planner);
  auto key = std::make_pair(dims, inner);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  Eigen::Index n = 1;
  for (int d : dims) n *= d;
  const Eigen::Index complex_size = n / dims.back() * (dims.back() / 2 + 1);
  // FFTW_ESTIMATE does not touch the arrays; plans are executed with new arrays, so
  // FFTW_UNALIGNED since callers' vectors may have any alignment.
  double* in = fftw_alloc_real(static_cast<std::size_t>(n * inner));
  fftw_complex* out = fftw_alloc_complex(static_cast<std::size_t>(complex_size * inner));
  const int stride = static_cast<int>(inner);
  fftw_plan plan = fftw_plan_many_dft_r2c(
      static_cast<int>(dims.size()), dims.data(), stride, in, nullptr, stride, 1, out, nullptr,
      stride, 1, FFTW_ESTIMATE | FFTW_UNALIGNED | FFTW_PRESERVE_INPUT);
  fftw_free(in);
  fftw_free(out);
  check_argument(plan != nullptr, fn, "domain",
                 "FFTW could not plan a transform for " + domain.to_string());
  auto shared = std::make_shared<const R2CPlan>(plan);
  cache.emplace(std::move(key), shared);
  return shared;
}

/// The Hartley transform of the middle factor of (outer, grid, inner), as Re F + Im F of an r2c
/// DFT over the grid's axes (strided by inner, `inner` transforms per plan execution), filling the
/// second half of the spectrum from Hermitian symmetry. Every mode is the cas matrix times a
/// volume: times and adjoint the domain factor's cell volume, the inverses the target's.
class HartleyOperator final : public LinearOperator {
 public:
  /// Transforms the domains first .. first + count - 1 of the tuple as one grid.
  HartleyOperator(const DomainTuple& domain, const DomainTuple& target, std::size_t first,
                  std::size_t count = 1)
      : LinearOperator(domain, target) {
    constexpr std::string_view fn = "hartley_transform";
    std::vector<Eigen::Index> shape;
    n_ = 1;
    outer_ = 1;
    inner_ = 1;
    for (std::size_t i = 0; i < domain.rank(); ++i) {
      if (i < first) {
        outer_ *= domain[i]->size();
      } else if (i >= first + count) {
        inner_ *= domain[i]->size();
      } else {
        const auto s = domain[i]->shape();
        shape.insert(shape.end(), s.begin(), s.end());
        n_ *= domain[i]->size();
        forward_volume_ *= domain[i]->cell_volume();
        backward_volume_ *= target[i]->cell_volume();
      }
    }
    constexpr auto int_max = static_cast<Eigen::Index>(std::numeric_limits<int>::max());
    check_argument(n_ <= int_max / inner_, fn, "domain",
                   "is too large for FFTW's int interface: " + domain.to_string());
    std::vector<int> dims(shape.begin(), shape.end());
    const Eigen::Index last = shape.back();
    const Eigen::Index half_last = last / 2 + 1;
    complex_size_ = n_ / last * half_last;

    // For each entry c of the half spectrum: its index in the full spectrum and that of -c.
    full_index_.resize(static_cast<std::size_t>(complex_size_));
    mirror_index_.resize(static_cast<std::size_t>(complex_size_));
    std::vector<Eigen::Index> multi(shape.size(), 0);
    for (Eigen::Index c = 0; c < complex_size_; ++c) {
      Eigen::Index rest = c;
      for (std::size_t a = shape.size(); a-- > 0;) {
        const Eigen::Index extent = a + 1 == shape.size() ? half_last : shape[a];
        multi[a] = rest % extent;
        rest /= extent;
      }
      Eigen::Index full = 0, mirror = 0;
      for (std::size_t a = 0; a < shape.size(); ++a) {
        full = full * shape[a] + multi[a];
        mirror = mirror * shape[a] + (shape[a] - multi[a]) % shape[a];
      }
      full_index_[static_cast<std::size_t>(c)] = full;
      mirror_index_[static_cast<std::size_t>(c)] = mirror;
    }

    rows_ = complex_size_ / half_last;
    last_ = last;
    for (Eigen::Index r = 0; r < rows_; ++r) {
      row_full_.push_back(full_index_[static_cast<std::size_t>(r * half_last)]);
      row_mirror_.push_back(mirror_index_[static_cast<std::size_t>(r * half_last)]);
    }
    plan_ = cached_r2c_plan(dims, inner_, fn, domain);
  }

  unsigned capabilities() const override {
    return kTimes | kAdjointTimes | kInverseTimes | kAdjointInverseTimes;
  }
  std::string name() const override { return "HartleyOperator"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    transform(x, out, forward_volume_);
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    transform(y, out, forward_volume_);
  }
  void apply_inverse(ConstVectorRef y, VectorRef out) const override {
    transform(y, out, backward_volume_);
  }
  void apply_adjoint_inverse(ConstVectorRef x, VectorRef out) const override {
    transform(x, out, backward_volume_);
  }

 private:
  void transform(ConstVectorRef x, VectorRef out, double factor) const {
    // One buffer per thread, reused: transforms run inside CG loops.
    thread_local std::vector<std::complex<double>> spectrum;
    spectrum.resize(static_cast<std::size_t>(complex_size_ * inner_));
    auto* spec = reinterpret_cast<fftw_complex*>(spectrum.data());
    const Eigen::Index block = n_ * inner_;
    for (Eigen::Index o = 0; o < outer_; ++o) {
      // r2c with FFTW_PRESERVE_INPUT reads its input only.
      fftw_execute_dft_r2c(plan_->get(), const_cast<double*>(x.data() + o * block), spec);
      double* y = out.data() + o * block;
      if (inner_ == 1) {
        // Row by row over the half spectrum: row r's entries go forward into their row of the
        // full spectrum and backward into the mirrored row (the last axis folds as n - j).
        const Eigen::Index half = complex_size_ / rows_;
        for (Eigen::Index r = 0; r < rows_; ++r) {
          const std::complex<double>* f = spectrum.data() + r * half;
          double* yf = y + row_full_[static_cast<std::size_t>(r)];
          double* ym = y + row_mirror_[static_cast<std::size_t>(r)];
          yf[0] = factor * (f[0].real() + f[0].imag());
          ym[0] = factor * (f[0].real() - f[0].imag());
          for (Eigen::Index j = 1; j < half; ++j) {
            yf[j] = factor * (f[j].real() + f[j].imag());
            ym[last_ - j] = factor * (f[j].real() - f[j].imag());
          }
        }
        continue;
      }
      for (Eigen::Index c = 0; c < complex_size_; ++c) {
        const Eigen::Index full = full_index_[static_cast<std::size_t>(c)] * inner_;
        const Eigen::Index mirror = mirror_index_[static_cast<std::size_t>(c)] * inner_;
        const std::complex<double>* f = spectrum.data() + c * inner_;
        for (Eigen::Index i = 0; i < inner_; ++i) {
          y[full + i] = factor * (f[i].real() + f[i].imag());
          y[mirror + i] = factor * (f[i].real() - f[i].imag());
        }
      }
    }
  }

  double forward_volume_ = 1.0;
  double backward_volume_ = 1.0;
  Eigen::Index outer_ = 1, inner_ = 1, n_ = 1, complex_size_ = 1;
  std::vector<Eigen::Index> full_index_;
  std::vector<Eigen::Index> mirror_index_;
  // Rows of the half spectrum (all axes but the last): where each row and its mirror start.
  Eigen::Index rows_ = 1, last_ = 1;
  std::vector<Eigen::Index> row_full_, row_mirror_;
  std::shared_ptr<const R2CPlan> plan_;
};

/// Plans of separable multi-dimensional DHTs (FFTW_DHT along every axis), cached as the r2c ones.
std::shared_ptr<const R2CPlan> cached_dht_plan(const std::vector<int>& dims, Eigen::Index inner,
                                               std::string_view fn, const DomainTuple& domain) {
  std::mutex& planner = fftw_planner_mutex();
  static std::map<std::pair<std::vector<int>, Eigen::Index>, std::shared_ptr<const R2CPlan>> cache;
  std::unique_lock<std::mutex> lock(planner);
  auto key = std::make_pair(dims, inner);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  Eigen::Index n = 1;
  for (int d : dims) n *= d;
  double* in = fftw_alloc_real(static_cast<std::size_t>(n * inner));
  double* out = fftw_alloc_real(static_cast<std::size_t>(n * inner));
  const int stride = static_cast<int>(inner);
  const std::vector<fftw_r2r_kind> kinds(dims.size(), FFTW_DHT);
  fftw_plan plan = fftw_plan_many_r2r(static_cast<int>(dims.size()), dims.data(), stride, in,
                                      nullptr, stride, 1, out, nullptr, stride, 1, kinds.data(),
                                      FFTW_ESTIMATE | FFTW_UNALIGNED | FFTW_PRESERVE_INPUT);
  fftw_free(in);
  fftw_free(out);
  check_argument(plan != nullptr, fn, "domain",
                 "FFTW could not plan a transform for " + domain.to_string());
  auto shared = std::make_shared<const R2CPlan>(plan);
  cache.emplace(std::move(key), shared);
  return shared;
}

/// The composition of the Hartley transforms of consecutive one-dimensional domains
/// first .. first + count - 1 (a separable product of cas matrices, cas(a) cas(b), as the
/// per-domain transforms give), by one FFTW plan over all their axes: FFTW's multi-dimensional DHT
/// is this separable product with cas = cos + sin, so the result is read at the mirrored index
/// (k_i -> -k_i on every axis) for cos - sin. One plan instead of one strided pass per domain.
class SeparableHartleyOperator final : public LinearOperator {
 public:
  SeparableHartleyOperator(const DomainTuple& domain, const DomainTuple& target, std::size_t first,
                           std::size_t count)
      : LinearOperator(domain, target) {
    constexpr std::string_view fn = "hartley_transform";
    std::vector<int> dims;
    for (std::size_t i = 0; i < domain.rank(); ++i) {
      if (i < first) {
        outer_ *= domain[i]->size();
      } else if (i >= first + count) {
        inner_ *= domain[i]->size();
      } else {
        dims.push_back(static_cast<int>(domain[i]->size()));
        n_ *= domain[i]->size();
        forward_volume_ *= domain[i]->cell_volume();
        backward_volume_ *= target[i]->cell_volume();
      }
    }
    constexpr auto int_max = static_cast<Eigen::Index>(std::numeric_limits<int>::max());
    check_argument(n_ <= int_max / inner_, fn, "domain",
                   "is too large for FFTW's int interface: " + domain.to_string());
    mirror_.resize(static_cast<std::size_t>(n_));
    for (Eigen::Index p = 0; p < n_; ++p) {
      Eigen::Index rest = p, mirror = 0, scale = 1;
      for (std::size_t a = dims.size(); a-- > 0;) {
        const Eigen::Index extent = dims[a], j = rest % extent;
        rest /= extent;
        mirror += ((extent - j) % extent) * scale;
        scale *= extent;
      }
      mirror_[static_cast<std::size_t>(p)] = mirror;
    }
    plan_ = cached_dht_plan(dims, inner_, fn, domain);
  }

  unsigned capabilities() const override {
    return kTimes | kAdjointTimes | kInverseTimes | kAdjointInverseTimes;
  }
  std::string name() const override { return "SeparableHartleyOperator"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    transform(x, out, forward_volume_);
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    transform(y, out, forward_volume_);
  }
  void apply_inverse(ConstVectorRef y, VectorRef out) const override {
    transform(y, out, backward_volume_);
  }
  void apply_adjoint_inverse(ConstVectorRef x, VectorRef out) const override {
    transform(x, out, backward_volume_);
  }

 private:
  void transform(ConstVectorRef x, VectorRef out, double factor) const {
    thread_local std::vector<double> buffer;
    const Eigen::Index block = n_ * inner_;
    buffer.resize(static_cast<std::size_t>(block));
    for (Eigen::Index o = 0; o < outer_; ++o) {
      fftw_execute_r2r(plan_->get(), const_cast<double*>(x.data() + o * block), buffer.data());
      double* y = out.data() + o * block;
      for (Eigen::Index p = 0; p < n_; ++p) {
        const double* from = buffer.data() + mirror_[static_cast<std::size_t>(p)] * inner_;
        for (Eigen::Index i = 0; i < inner_; ++i) y[p * inner_ + i] = factor * from[i];
      }
    }
  }

  double forward_volume_ = 1.0;
  double backward_volume_ = 1.0;
  Eigen::Index outer_ = 1, inner_ = 1, n_ = 1;
  std::vector<Eigen::Index> mirror_;
  std::shared_ptr<const R2CPlan> plan_;
};

/// (outer, bins, inner) -> (outer, pixels, inner): every pixel gets its bin's value.
class PowerDistributor final : public LinearOperator {
 public:
  PowerDistributor(const DomainTuple& domain, const DomainTuple& target, std::size_t index,
                   const PowerSpace& power)
      : LinearOperator(domain, target), bins_(power.pixel_bins()),
        nbins_(power.size()), npix_(static_cast<Eigen::Index>(bins_.size())) {
    std::tie(outer_, inner_) = outer_inner(domain, index);
  }
  std::string name() const override { return "PowerDistributor"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    for (Eigen::Index o = 0; o < outer_; ++o)
      for (Eigen::Index p = 0; p < npix_; ++p)
        out.segment((o * npix_ + p) * inner_, inner_) =
            x.segment((o * nbins_ + bins_[static_cast<std::size_t>(p)]) * inner_, inner_);
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    out.setZero();
    for (Eigen::Index o = 0; o < outer_; ++o)
      for (Eigen::Index p = 0; p < npix_; ++p)
        out.segment((o * nbins_ + bins_[static_cast<std::size_t>(p)]) * inner_, inner_) +=
            y.segment((o * npix_ + p) * inner_, inner_);
  }

 private:
  std::vector<Eigen::Index> bins_;
  Eigen::Index nbins_, npix_;
  Eigen::Index outer_ = 1, inner_ = 1;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
HarmonicGrid::HarmonicGrid(std::vector<Eigen::Index> shape, std::vector<double> distances)
    : HarmonicGrid(std::move(shape), std::move(distances), {}) {}

HarmonicGrid::HarmonicGrid(std::vector<Eigen::Index> shape, std::vector<double> distances,
                           std::vector<double> partner_distances)
    : shape_(std::move(shape)), distances_(std::move(distances)),
      partner_distances_(std::move(partner_distances)) {
  constexpr std::string_view fn = "HarmonicGrid";
  check_grid_shape(shape_, distances_, fn, "distances");
  if (partner_distances_.empty()) partner_distances_ = reciprocal_distances(shape_, distances_);
  check_grid_shape(shape_, partner_distances_, fn, "partner_distances");
}

double HarmonicGrid::cell_volume() const {
  double v = 1.0;
  for (double d : distances_) v *= d;
  return v;
}

std::string HarmonicGrid::to_string() const {
  return "HarmonicGrid(shape=" + join(shape_) + ", distances=" + join(distances_) + ")";
}

bool HarmonicGrid::equals(const Domain& other) const {
  const auto* grid = dynamic_cast<const HarmonicGrid*>(&other);
  return grid != nullptr && grid->shape_ == shape_ && grid->distances_ == distances_;
}

DomainPtr harmonic_grid(std::vector<Eigen::Index> shape, std::vector<double> distances) {
  return std::make_shared<HarmonicGrid>(std::move(shape), std::move(distances));
}

DomainPtr harmonic_partner(const DomainPtr& grid) {
  constexpr std::string_view fn = "harmonic_partner";
  check_argument(grid != nullptr, fn, "grid", "must not be null");
  if (const auto* regular = dynamic_cast<const RegularGrid*>(grid.get())) {
    const auto shape = regular->shape();
    return std::make_shared<HarmonicGrid>(
        shape, reciprocal_distances(shape, regular->distances()), regular->distances());
  }
  if (const auto* harmonic = dynamic_cast<const HarmonicGrid*>(grid.get()))
    return regular_grid(harmonic->shape(), harmonic->partner_distances());
  detail::throw_invalid_argument(
      fn, "grid", "must be a RegularGrid or a HarmonicGrid, got " + grid->to_string());
}

Eigen::VectorXd k_lengths(const DomainPtr& harmonic_grid) {
  const HarmonicGrid& grid = as_harmonic(harmonic_grid, "k_lengths", "harmonic_grid");
  const std::vector<Eigen::Index> shape = grid.shape();
  const std::vector<double>& dk = grid.distances();
  Eigen::VectorXd k2 = Eigen::VectorXd::Zero(grid.size());
  // C order: axis a has stride prod(shape[a+1:]).
  Eigen::Index stride = grid.size();
  for (std::size_t a = 0; a < shape.size(); ++a) {
    const Eigen::Index n = shape[a];
    stride /= n;
    for (Eigen::Index p = 0; p < grid.size(); ++p) {
      const Eigen::Index j = (p / stride) % n;
      const Eigen::Index folded = j < (n + 1) / 2 ? j : j - n;
      const double k = static_cast<double>(folded) * dk[a];
      k2[p] += k * k;
    }
  }
  return k2.cwiseSqrt();
}

namespace {
/// Throws unless domain[index] is a RegularGrid or a HarmonicGrid.
void check_transformable(const DomainTuple& domain, std::size_t index, std::string_view fn) {
  const DomainPtr& factor = domain[index];
  const bool transformable = dynamic_cast<const RegularGrid*>(factor.get()) != nullptr ||
                             dynamic_cast<const HarmonicGrid*>(factor.get()) != nullptr;
  check_argument(transformable, fn, "domain",
                 "factor " + std::to_string(index) +
                     " must be a RegularGrid or a HarmonicGrid, got " + factor->to_string());
}
}  // namespace

LinearOperatorPtr hartley_transform(const DomainTuple& domain, std::size_t index) {
  constexpr std::string_view fn = "hartley_transform";
  check_argument(index < domain.rank(), fn, "index", describe_index(index, domain));
  check_transformable(domain, index, fn);
  return std::make_shared<HartleyOperator>(
      domain, replaced(domain, index, harmonic_partner(domain[index])), index);
}

LinearOperatorPtr joint_hartley_transform(const DomainTuple& domain, std::size_t first,
                                          std::size_t count) {
  constexpr std::string_view fn = "joint_hartley_transform";
  check_argument(count >= 1 && first < domain.rank() && count <= domain.rank() - first, fn,
                 "first, count",
                 "must name consecutive domains of " + domain.to_string() + ", got " +
                     std::to_string(first) + ", " + std::to_string(count));
  std::vector<DomainPtr> partners = domain.domains();
  for (std::size_t i = first; i < first + count; ++i) {
    check_transformable(domain, i, fn);
    partners[i] = harmonic_partner(domain[i]);
  }
  return std::make_shared<HartleyOperator>(domain, DomainTuple(partners), first, count);
}

LinearOperatorPtr hartley_transform(const DomainTuple& domain, std::vector<std::size_t> indices) {
  constexpr std::string_view fn = "hartley_transform";
  check_argument(!indices.empty(), fn, "indices", "must name at least one domain");
  std::vector<std::size_t> sorted = indices;
  std::sort(sorted.begin(), sorted.end());
  check_argument(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(), fn, "indices",
                 "must not repeat a domain");
  // Consecutive one-dimensional grids: the separable product in one FFTW plan.
  const bool consecutive = sorted.back() - sorted.front() + 1 == sorted.size();
  bool one_dimensional = sorted.size() >= 2 && sorted.back() < domain.rank();
  for (std::size_t i : sorted)
    one_dimensional = one_dimensional && i < domain.rank() && domain[i]->shape().size() == 1;
  if (consecutive && one_dimensional) {
    std::vector<DomainPtr> partners = domain.domains();
    for (std::size_t i : sorted) {
      check_transformable(domain, i, fn);
      partners[i] = harmonic_partner(domain[i]);
    }
    return std::make_shared<SeparableHartleyOperator>(domain, DomainTuple(partners), sorted.front(),
                                                      sorted.size());
  }
  LinearOperatorPtr result = hartley_transform(domain, indices[0]);
  for (std::size_t i = 1; i < indices.size(); ++i)
    result = compose(hartley_transform(result->target().tuple(), indices[i]), result);
  return result;
}

namespace {

/// (outer, grid, inner) -> (outer, padded grid, inner): copies the grid into the low corner of the
/// padded grid, zeros elsewhere; the adjoint slices the low corner back out.
class ZeroPadding final : public LinearOperator {
 public:
  ZeroPadding(const DomainTuple& domain, const DomainTuple& target, std::size_t index)
      : LinearOperator(domain, target), shape_(domain[index]->shape()),
        padded_(target[index]->shape()) {
    std::tie(outer_, inner_) = outer_inner(domain, index);
    // Source pixel p of the grid -> its position in the padded grid (C order).
    const Eigen::Index n = domain[index]->size();
    positions_.resize(static_cast<std::size_t>(n));
    std::vector<Eigen::Index> multi(shape_.size(), 0);
    for (Eigen::Index p = 0; p < n; ++p) {
      Eigen::Index rest = p, position = 0;
      for (std::size_t a = shape_.size(); a-- > 0;) {
        multi[a] = rest % shape_[a];
        rest /= shape_[a];
      }
      for (std::size_t a = 0; a < shape_.size(); ++a) position = position * padded_[a] + multi[a];
      positions_[static_cast<std::size_t>(p)] = position;
    }
    n_ = n;
    padded_n_ = target[index]->size();
  }
  std::string name() const override { return "ZeroPadding"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    out.setZero();
    for (Eigen::Index o = 0; o < outer_; ++o)
      for (Eigen::Index p = 0; p < n_; ++p)
        out.segment((o * padded_n_ + positions_[static_cast<std::size_t>(p)]) * inner_, inner_) =
            x.segment((o * n_ + p) * inner_, inner_);
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    for (Eigen::Index o = 0; o < outer_; ++o)
      for (Eigen::Index p = 0; p < n_; ++p)
        out.segment((o * n_ + p) * inner_, inner_) =
            y.segment((o * padded_n_ + positions_[static_cast<std::size_t>(p)]) * inner_, inner_);
  }

 private:
  std::vector<Eigen::Index> shape_, padded_;
  std::vector<Eigen::Index> positions_;
  Eigen::Index outer_ = 1, inner_ = 1, n_ = 1, padded_n_ = 1;
};

}  // namespace

LinearOperatorPtr zero_padding(const DomainTuple& domain, std::size_t index,
                               std::vector<Eigen::Index> padded_shape) {
  constexpr std::string_view fn = "zero_padding";
  check_argument(index < domain.rank(), fn, "index", describe_index(index, domain));
  const auto* grid = dynamic_cast<const RegularGrid*>(domain[index].get());
  check_argument(grid != nullptr, fn, "domain",
                 "factor " + std::to_string(index) + " must be a RegularGrid, got " +
                     domain[index]->to_string());
  const std::vector<Eigen::Index> shape = grid->shape();
  check_argument(padded_shape.size() == shape.size(), fn, "padded_shape",
                 "must have one entry per axis (" + std::to_string(shape.size()) + "), got " +
                     join(padded_shape));
  for (std::size_t a = 0; a < shape.size(); ++a)
    check_argument(padded_shape[a] >= shape[a], fn, "padded_shape",
                   "must be at least the grid's shape " + join(shape) + " on every axis, got " +
                       join(padded_shape));
  DomainTuple target = replaced(domain, index, regular_grid(padded_shape, grid->distances()));
  return std::make_shared<ZeroPadding>(domain, target, index);
}

LinearOperatorPtr slicing(const DomainTuple& padded, std::size_t index,
                          std::vector<Eigen::Index> shape) {
  constexpr std::string_view fn = "slicing";
  check_argument(index < padded.rank(), fn, "index", describe_index(index, padded));
  const auto* grid = dynamic_cast<const RegularGrid*>(padded[index].get());
  check_argument(grid != nullptr, fn, "padded",
                 "factor " + std::to_string(index) + " must be a RegularGrid, got " +
                     padded[index]->to_string());
  DomainTuple small = replaced(padded, index, regular_grid(std::move(shape), grid->distances()));
  LinearOperatorPtr pad = zero_padding(small, index, grid->shape());
  return adjoint(pad);
}

// ---------------------------------------------------------------------------------------------
PowerSpace::PowerSpace(DomainPtr harmonic_grid) : harmonic_(std::move(harmonic_grid)) {
  const Eigen::VectorXd lengths = k_lengths(harmonic_);  // throws for a non-harmonic domain
  const Eigen::Index n = lengths.size();
  std::vector<Eigen::Index> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), Eigen::Index{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](Eigen::Index a, Eigen::Index b) { return lengths[a] < lengths[b]; });
  pixel_bins_.assign(static_cast<std::size_t>(n), 0);
  std::vector<double> centres;
  std::vector<double> counts;
  for (Eigen::Index p : order) {
    const double k = lengths[p];
    if (centres.empty() || k > centres.back() * (1.0 + 1e-10)) {
      centres.push_back(k);
      counts.push_back(0.0);
    }
    pixel_bins_[static_cast<std::size_t>(p)] = static_cast<Eigen::Index>(centres.size()) - 1;
    counts.back() += 1.0;
  }
  k_ = Eigen::Map<const Eigen::VectorXd>(centres.data(), static_cast<Eigen::Index>(centres.size()));
  counts_ = Eigen::Map<const Eigen::VectorXd>(counts.data(), static_cast<Eigen::Index>(counts.size()));
}

std::string PowerSpace::to_string() const {
  return "PowerSpace(bins=" + std::to_string(k_.size()) + ", of " + harmonic_->to_string() + ")";
}

bool PowerSpace::equals(const Domain& other) const {
  const auto* power = dynamic_cast<const PowerSpace*>(&other);
  return power != nullptr &&
         (power->harmonic_ == harmonic_ || power->harmonic_->equals(*harmonic_));
}

DomainPtr power_space(const DomainPtr& harmonic_grid) {
  as_harmonic(harmonic_grid, "power_space", "harmonic_grid");
  return std::make_shared<PowerSpace>(harmonic_grid);
}

LinearOperatorPtr power_distributor(const DomainTuple& harmonic_tuple, std::size_t index) {
  constexpr std::string_view fn = "power_distributor";
  check_argument(index < harmonic_tuple.rank(), fn, "index", describe_index(index, harmonic_tuple));
  as_harmonic(harmonic_tuple[index], fn, "harmonic_tuple");
  auto power = std::make_shared<PowerSpace>(harmonic_tuple[index]);
  const PowerSpace& ref = *power;
  return std::make_shared<PowerDistributor>(replaced(harmonic_tuple, index, power),
                                            harmonic_tuple, index, ref);
}

LinearOperatorPtr power_projection(const DomainTuple& harmonic_tuple, std::size_t index) {
  return adjoint(power_distributor(harmonic_tuple, index));
}

}  // namespace infield

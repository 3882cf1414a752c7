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
#include <tuple>

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

/// Plans are cached per (dims, outer, inner) for the life of the process and shared by every
/// operator of that geometry, so building operators repeatedly (one model per sample, per test)
/// plans once. One plan transforms all `outer` x `inner` batches (FFTW's guru interface), so a
/// transform over the last axes of a tuple is one execution, not one per outer index.
std::shared_ptr<const R2CPlan> cached_r2c_plan(const std::vector<int>& dims, Eigen::Index outer,
                                               Eigen::Index inner, std::string_view fn,
                                               const DomainTuple& domain) {
  // The mutex is constructed before the cache, so it outlives the plans destroyed at exit.
  std::mutex& planner = fftw_planner_mutex();
  using Key = std::tuple<std::vector<int>, Eigen::Index, Eigen::Index>;
  static std::map<Key, std::shared_ptr<const R2CPlan>> cache;
  std::unique_lock<std::mutex> lock(planner);
  Key key{dims, outer, inner};
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  Eigen::Index n = 1;
  for (int d : dims) n *= d;
  const Eigen::Index half = dims.back() / 2 + 1;
  const Eigen::Index complex_size = n / dims.back() * half;
  // Axis strides: the real input in C order, the half spectrum likewise with `half` on the last
  // axis; both times inner (the batch inside).
  const int rank = static_cast<int>(dims.size());
  std::vector<fftw_iodim> axes(dims.size());
  Eigen::Index in_stride = inner, out_stride = inner;
  for (int a = rank; a-- > 0;) {
    const auto extent = static_cast<Eigen::Index>(dims[static_cast<std::size_t>(a)]);
    axes[static_cast<std::size_t>(a)] = {static_cast<int>(extent), static_cast<int>(in_stride),
                                         static_cast<int>(out_stride)};
    in_stride *= extent;
    out_stride *= a == rank - 1 ? half : extent;
  }
  const fftw_iodim batches[2] = {
      {static_cast<int>(outer), static_cast<int>(n * inner), static_cast<int>(complex_size * inner)},
      {static_cast<int>(inner), 1, 1}};
  // FFTW_ESTIMATE does not touch the arrays; plans are executed with new arrays, so
  // FFTW_UNALIGNED since callers' vectors may have any alignment.
  double* in = fftw_alloc_real(static_cast<std::size_t>(n * inner * outer));
  fftw_complex* out = fftw_alloc_complex(static_cast<std::size_t>(complex_size * inner * outer));
  fftw_plan plan = fftw_plan_guru_dft_r2c(rank, axes.data(), 2, batches, in, out,
                                          FFTW_ESTIMATE | FFTW_UNALIGNED | FFTW_PRESERVE_INPUT);
  fftw_free(in);
  fftw_free(out);
  check_argument(plan != nullptr, fn, "domain",
                 "FFTW could not plan a transform for " + domain.to_string());
  auto shared = std::make_shared<const R2CPlan>(plan);
  cache.emplace(std::move(key), shared);
  return shared;
}

/// The half spectrum of x by an r2c plan, in a buffer per thread (transforms run inside CG
/// loops, so it is reused); `size` complex values. FFTW_PRESERVE_INPUT plans only read x.
const std::complex<double>* r2c_spectrum(const R2CPlan& plan, ConstVectorRef x, Eigen::Index size) {
  thread_local std::vector<std::complex<double>> spectrum;
  spectrum.resize(static_cast<std::size_t>(size));
  fftw_execute_dft_r2c(plan.get(), const_cast<double*>(x.data()),
                       reinterpret_cast<fftw_complex*>(spectrum.data()));
  return spectrum.data();
}

/// A Hartley-type transform: a symmetric matrix C (its own adjoint up to volumes) with
/// C^2 = n, applied as `volume * C x`: times and adjoint with the domain side's cell volume, the
/// inverses with the target side's. Subclasses provide C x.
class SymmetricTransform : public LinearOperator {
 public:
  using LinearOperator::LinearOperator;
  unsigned capabilities() const override {
    return kTimes | kAdjointTimes | kInverseTimes | kAdjointInverseTimes;
  }
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

 protected:
  /// out = factor * C x.
  virtual void transform(ConstVectorRef x, VectorRef out, double factor) const = 0;
  double forward_volume_ = 1.0;
  double backward_volume_ = 1.0;
};

/// The Hartley transform of the middle factor of (outer, grid, inner), as Re F + Im F of an r2c
/// DFT over the grid's axes (strided by inner, `inner` transforms per plan execution), filling the
/// second half of the spectrum from Hermitian symmetry. Every mode is the cas matrix times a
/// volume: times and adjoint the domain factor's cell volume, the inverses the target's.
class HartleyOperator final : public SymmetricTransform {
 public:
  /// Transforms the domains first .. first + count - 1 of the tuple as one grid.
  HartleyOperator(const DomainTuple& domain, const DomainTuple& target, std::size_t first,
                  std::size_t count = 1)
      : SymmetricTransform(domain, target) {
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
    check_argument(n_ * inner_ <= int_max / outer_, fn, "domain",
                   "is too large for FFTW's int interface: " + domain.to_string());
    plan_ = cached_r2c_plan(dims, outer_, inner_, fn, domain);
  }

  std::string name() const override { return "HartleyOperator"; }

 private:
  void transform(ConstVectorRef x, VectorRef out, double factor) const override {
    // One execution for all batches.
    const std::complex<double>* spectrum = r2c_spectrum(*plan_, x, complex_size_ * inner_ * outer_);
    const Eigen::Index block = n_ * inner_;
    for (Eigen::Index o = 0; o < outer_; ++o) {
      const std::complex<double>* block_spectrum = spectrum + o * complex_size_ * inner_;
      double* y = out.data() + o * block;
      if (inner_ == 1) {
        // Row by row over the half spectrum: row r's entries go forward into their row of the
        // full spectrum and backward into the mirrored row (the last axis folds as n - j).
        const Eigen::Index half = complex_size_ / rows_;
        for (Eigen::Index r = 0; r < rows_; ++r) {
          const std::complex<double>* f = block_spectrum + r * half;
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
        const std::complex<double>* f = block_spectrum + c * inner_;
        for (Eigen::Index i = 0; i < inner_; ++i) {
          y[full + i] = factor * (f[i].real() + f[i].imag());
          y[mirror + i] = factor * (f[i].real() - f[i].imag());
        }
      }
    }
  }

  Eigen::Index outer_ = 1, inner_ = 1, n_ = 1, complex_size_ = 1;
  std::vector<Eigen::Index> full_index_;
  std::vector<Eigen::Index> mirror_index_;
  // Rows of the half spectrum (all axes but the last): where each row and its mirror start.
  Eigen::Index rows_ = 1, last_ = 1;
  std::vector<Eigen::Index> row_full_, row_mirror_;
  std::shared_ptr<const R2CPlan> plan_;
};

/// The composition of the Hartley transforms of two consecutive domains (the separable product
/// cas(a) cas(b) of their cas matrices, as the per-domain transforms give) from one r2c transform
/// over the axes of both: with F the DFT, a the first domain's phase and b the second's,
/// cas(a) cas(b) = cos(a - b) - sin(a + b), so the result at (k1, k2) is
/// Re F(k1, -k2) + Im F(k1, k2) = Re F(-k1, k2) + Im F(k1, k2), and at (k1, -k2)
/// Re F(k1, k2) - Im F(-k1, k2): both from the half spectrum. Half the time of two strided passes.
class PairHartleyOperator final : public SymmetricTransform {
 public:
  PairHartleyOperator(const DomainTuple& domain, const DomainTuple& target, std::size_t first)
      : SymmetricTransform(domain, target) {
    constexpr std::string_view fn = "hartley_transform";
    std::tie(outer_, std::ignore) = outer_inner(domain, first);
    std::tie(std::ignore, inner_) = outer_inner(domain, first + 1);
    const std::vector<Eigen::Index> s1 = domain[first]->shape(), s2 = domain[first + 1]->shape();
    std::vector<Eigen::Index> shape = s1;
    shape.insert(shape.end(), s2.begin(), s2.end());
    n_ = domain[first]->size() * domain[first + 1]->size();
    forward_volume_ = domain[first]->cell_volume() * domain[first + 1]->cell_volume();
    backward_volume_ = target[first]->cell_volume() * target[first + 1]->cell_volume();
    constexpr auto int_max = static_cast<Eigen::Index>(std::numeric_limits<int>::max());
    check_argument(n_ * inner_ <= int_max / outer_, fn, "domain",
                   "is too large for FFTW's int interface: " + domain.to_string());
    const Eigen::Index last = shape.back(), half = last / 2 + 1;
    complex_size_ = n_ / last * half;
    const std::size_t axes = shape.size(), axes1 = s1.size();
    std::vector<Eigen::Index> multi(axes);
    auto flat = [&](const std::vector<Eigen::Index>& m, bool half_last) {
      Eigen::Index index = 0;
      for (std::size_t a = 0; a < axes; ++a)
        index = index * (half_last && a + 1 == axes ? half : shape[a]) + m[a];
      return index;
    };
    for (Eigen::Index c = 0; c < complex_size_; ++c) {
      Eigen::Index rest = c;
      for (std::size_t a = axes; a-- > 0;) {
        const Eigen::Index extent = a + 1 == axes ? half : shape[a];
        multi[a] = rest % extent;
        rest /= extent;
      }
      std::vector<Eigen::Index> neg1 = multi, neg2 = multi;
      for (std::size_t a = 0; a < axes; ++a) {
        const Eigen::Index mirrored = (shape[a] - multi[a]) % shape[a];
        (a < axes1 ? neg1 : neg2)[a] = mirrored;
      }
      entries_.push_back({flat(neg1, true), flat(multi, false), flat(neg2, false)});
    }
    std::vector<int> dims(shape.begin(), shape.end());
    plan_ = cached_r2c_plan(dims, outer_, inner_, fn, domain);
  }

  std::string name() const override { return "PairHartleyOperator"; }

 private:
  struct Entry {
    Eigen::Index minus_first;  // half-spectrum index of (-k1, k2)
    Eigen::Index out;          // full index of (k1, k2)
    Eigen::Index out_minus_second;  // full index of (k1, -k2)
  };

  void transform(ConstVectorRef x, VectorRef out, double factor) const override {
    const std::complex<double>* spectrum = r2c_spectrum(*plan_, x, complex_size_ * inner_ * outer_);
    const Eigen::Index block = n_ * inner_;
    for (Eigen::Index o = 0; o < outer_; ++o) {
      const std::complex<double>* f = spectrum + o * complex_size_ * inner_;
      double* y = out.data() + o * block;
      for (Eigen::Index c = 0; c < complex_size_; ++c) {
        const Entry& e = entries_[static_cast<std::size_t>(c)];
        const std::complex<double>* here = f + c * inner_;
        const std::complex<double>* minus = f + e.minus_first * inner_;
        for (Eigen::Index i = 0; i < inner_; ++i) {
          y[e.out * inner_ + i] = factor * (minus[i].real() + here[i].imag());
          y[e.out_minus_second * inner_ + i] = factor * (here[i].real() - minus[i].imag());
        }
      }
    }
  }

  Eigen::Index outer_ = 1, inner_ = 1, n_ = 1, complex_size_ = 1;
  std::vector<Entry> entries_;
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
  // Two consecutive grids: their separable product from one r2c transform.
  if (sorted.size() == 2 && sorted[1] == sorted[0] + 1 && sorted[1] < domain.rank()) {
    std::vector<DomainPtr> partners = domain.domains();
    for (std::size_t i : sorted) {
      check_transformable(domain, i, fn);
      partners[i] = harmonic_partner(domain[i]);
    }
    return std::make_shared<PairHartleyOperator>(domain, DomainTuple(partners), sorted[0]);
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

#include "infield/models/mkde.h"

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>

#include "infield/energy.h"
#include "infield/error.h"
#include "infield/inference/mgvi.h"
#include "infield/likelihood.h"
#include "infield/linear_operators.h"
#include "infield/npy.h"
#include "infield/pointwise.h"

namespace infield {
namespace {

constexpr double kFormatTag = 1836213349.0;  // a fixed tag (0x6d726465) marking the format
constexpr double kFormatVersion = 1.0;
constexpr int kMaxDimensions = 5;

void check_points(const Eigen::MatrixXd& points, std::string_view fn) {
  check_argument(points.cols() >= 1 && points.cols() <= kMaxDimensions, fn, "points",
                 "must have 1 to 5 columns (dimensions), got " + std::to_string(points.cols()));
  check_argument(points.rows() >= 2, fn, "points",
                 "must hold at least 2 points, got " + std::to_string(points.rows()));
  check_finite(points, fn, "points");
}

std::string axis_name(int i) { return "axis" + std::to_string(i) + " "; }

/// Flat C-order index of a multi-index.
Eigen::Index flat_index(const std::vector<Eigen::Index>& multi,
                        const std::vector<Eigen::Index>& shape) {
  Eigen::Index flat = 0;
  for (std::size_t a = 0; a < shape.size(); ++a) flat = flat * shape[a] + multi[a];
  return flat;
}

Eigen::Index total_cells(const std::vector<Eigen::Index>& cells) {
  Eigen::Index n = 1;
  for (Eigen::Index c : cells) n *= c;
  return n;
}

}  // namespace

void MkdeOptions::validate() const {
  constexpr std::string_view fn = "MkdeOptions";
  check_argument(!cells.empty(), fn, "cells", "must not be empty");
  for (Eigen::Index c : cells)
    check_argument(c >= 2, fn, "cells", "must be at least 2 per axis, got " + std::to_string(c));
  if (padding)
    check_argument(*padding >= 0 && std::isfinite(*padding), fn, "padding",
                   "must be finite and >= 0");
  check_argument(margin >= 0 && std::isfinite(margin), fn, "margin", "must be finite and >= 0");
  check_positive(log_density_std, fn, "log_density_std");
  for (const auto& m : matern) m.validate();
  check_positive(zero_mode_std.mean, fn, "zero_mode_std.mean");
  check_positive(zero_mode_std.std, fn, "zero_mode_std.std");
  check_argument(global_iterations >= 1, fn, "global_iterations", "must be at least 1");
  check_argument(sample_pairs >= 1, fn, "sample_pairs", "must be at least 1");
  check_argument(newton_steps >= 1, fn, "newton_steps", "must be at least 1");
  for (const auto& [lo, hi] : bounds)
    check_argument(std::isfinite(lo) && std::isfinite(hi) && lo < hi, fn, "bounds",
                   "must be finite with lower < upper on every axis");
}

double Mkde::cell_volume() const {
  double v = 1.0;
  for (std::size_t a = 0; a < cells_.size(); ++a)
    v *= (bounds_[a].second - bounds_[a].first) / static_cast<double>(cells_[a]);
  return v;
}

Eigen::MatrixXd Mkde::cell_centres() const {
  const Eigen::Index n = total_cells(cells_);
  const int d = dimensions();
  Eigen::MatrixXd centres(n, d);
  for (Eigen::Index c = 0; c < n; ++c) {
    Eigen::Index rest = c;
    for (int a = d; a-- > 0;) {
      const Eigen::Index j = rest % cells_[a];
      rest /= cells_[a];
      const double w = (bounds_[a].second - bounds_[a].first) / static_cast<double>(cells_[a]);
      centres(c, a) = bounds_[a].first + (static_cast<double>(j) + 0.5) * w;
    }
  }
  return centres;
}

Mkde Mkde::fit(const Eigen::MatrixXd& points, const MkdeOptions& options) {
  constexpr std::string_view fn = "Mkde::fit";
  check_points(points, fn);
  options.validate();
  const int d = static_cast<int>(points.cols());
  Mkde model;

  // Geometry of the box.
  check_argument(options.cells.size() == 1 || static_cast<int>(options.cells.size()) == d, fn,
                 "cells", "must have one entry or one per axis (" + std::to_string(d) + ")");
  model.cells_.assign(static_cast<std::size_t>(d), options.cells[0]);
  if (options.cells.size() > 1) model.cells_ = options.cells;
  if (options.bounds.empty()) {
    for (int a = 0; a < d; ++a) {
      const double lo = points.col(a).minCoeff(), hi = points.col(a).maxCoeff();
      check_argument(hi > lo, fn, "points",
                     "all lie at " + std::to_string(lo) + " on axis " + std::to_string(a) +
                         "; a density needs spread on every axis (or give bounds)");
      const double pad = options.margin * (hi - lo);
      model.bounds_.emplace_back(lo - pad, hi + pad);
    }
  } else {
    check_argument(static_cast<int>(options.bounds.size()) == d, fn, "bounds",
                   "must have one (lower, upper) per axis (" + std::to_string(d) + ")");
    model.bounds_ = options.bounds;
    for (Eigen::Index p = 0; p < points.rows(); ++p)
      for (int a = 0; a < d; ++a)
        check_argument(points(p, a) >= model.bounds_[a].first &&
                           points(p, a) <= model.bounds_[a].second,
                       fn, "points",
                       "point " + std::to_string(p) + " lies outside the bounds on axis " +
                           std::to_string(a));
  }

  // Counts per cell (a point on the upper bound belongs to the last cell).
  const Eigen::Index n_cells = total_cells(model.cells_);
  Eigen::VectorXd counts = Eigen::VectorXd::Zero(n_cells);
  std::vector<Eigen::Index> multi(static_cast<std::size_t>(d));
  for (Eigen::Index p = 0; p < points.rows(); ++p) {
    for (int a = 0; a < d; ++a) {
      const double w = (model.bounds_[a].second - model.bounds_[a].first) /
                       static_cast<double>(model.cells_[a]);
      const auto j = static_cast<Eigen::Index>(std::floor((points(p, a) - model.bounds_[a].first) / w));
      multi[a] = std::clamp<Eigen::Index>(j, 0, model.cells_[a] - 1);
    }
    counts[flat_index(multi, model.cells_)] += 1.0;
  }

  // The log-density: a product of 1D Matérn spectra on the padded periodic grid; each axis of the
  // box has unit length for the spectra.
  check_argument(options.matern.empty() || static_cast<int>(options.matern.size()) == d, fn,
                 "matern", "must be empty (defaults) or have one entry per axis");
  const double per_axis_scale =
      std::sqrt(std::pow(1.0 + options.log_density_std * options.log_density_std, 1.0 / d) - 1.0);
  CorrelatedFieldMaker maker;
  std::vector<Eigen::Index> padded(static_cast<std::size_t>(d));
  const double padding = options.padding.value_or(d <= 2 ? 0.5 : 0.25);
  for (int a = 0; a < d; ++a) {
    MaternSettings m;
    m.scale = {per_axis_scale, 0.5 * per_axis_scale};
    m.cutoff = {3.0, 2.0};
    m.loglogslope = {-4.0, 1.0};
    m.normalization = MaternNormalization::kFluctuationStd;
    if (!options.matern.empty()) m = options.matern[static_cast<std::size_t>(a)];
    const Eigen::Index n = model.cells_[a];
    padded[a] = n + static_cast<Eigen::Index>(std::ceil(padding * static_cast<double>(n)));
    maker.add_matern_fluctuations(regular_grid({padded[a]}, {1.0 / static_cast<double>(n)}), m,
                                  axis_name(a));
  }
  maker.set_offset(std::log(static_cast<double>(points.rows()) / static_cast<double>(n_cells)),
                   options.zero_mode_std);
  const CorrelatedField cf = maker.finalize();
  std::vector<bool> inside(static_cast<std::size_t>(total_cells(padded)));
  for (std::size_t c = 0; c < inside.size(); ++c) {
    Eigen::Index rest = static_cast<Eigen::Index>(c);
    bool in = true;
    for (int a = d; a-- > 0;) {
      in = in && rest % padded[a] < model.cells_[a];
      rest /= padded[a];
    }
    inside[c] = in;
  }
  const OperatorPtr log_rate = compose(mask_operator(cf.target(), inside), cf.field());
  const OperatorPtr rate = exp(log_rate);
  auto hamiltonian =
      standard_hamiltonian(poisson_likelihood(Field(rate->target(), counts)), rate);

  OptimizeKLOptions kl;
  kl.global_iterations = options.global_iterations;
  kl.settings.sample_pairs = options.sample_pairs;
  kl.settings.sampling_cg = {1e-12, 0.05, 100};  // NIFTy's sampling controller, as reconstruct
  NewtonCGOptions newton;
  newton.max_iterations = options.newton_steps;
  newton.absolute_energy_change = 0.5;
  newton.convergence_level = 2;
  newton.gradient_tolerance = 1e-7;
  newton.cg = {1e-6, 0.0, 200};
  newton.energy_reduction_factor = 0.1;
  kl.settings.minimizer = newton_cg(newton);
  kl.settings.nonlinear_sampling_minimizer = options.nonlinear_sampling_minimizer;
  kl.seed = options.seed;
  kl.progress = options.progress;
  kl.communicator = options.communicator;
  kl.dense_entropy_limit = 0;
  std::mt19937_64 rng(options.seed ^ 0x6d6b6465ULL);
  Field start = Field::normal(cf.excitations(), rng);
  start *= 0.1;
  const OptimizeKLSummary result = optimize_kl(hamiltonian, std::move(start), kl);
  for (const auto& it : result.iterations) model.fit_log_.push_back(it.progress_line());

  // Normalised densities of the posterior samples.
  const double volume = model.cell_volume();
  for (int k = 0; k < result.samples.size(); ++k) {
    Eigen::VectorXd s = log_rate->evaluate(result.samples.sample(k).values());
    Eigen::VectorXd rho = (s.array() - s.maxCoeff()).exp().matrix();
    rho /= rho.sum() * volume;
    model.samples_.push_back(std::move(rho));
  }
  model.finish_statistics();
  return model;
}

void Mkde::finish_statistics() {
  const auto k = static_cast<double>(samples_.size());
  mean_ = Eigen::VectorXd::Zero(samples_.front().size());
  for (const auto& s : samples_) mean_ += s;
  mean_ /= k;
  std_ = Eigen::VectorXd::Zero(mean_.size());
  if (samples_.size() > 1) {
    for (const auto& s : samples_) std_.array() += (s - mean_).array().square();
    std_ = (std_ / (k - 1.0)).cwiseSqrt();
  }
  cumulative_.clear();
  for (const auto& s : samples_) {
    Eigen::VectorXd c(s.size());
    double acc = 0.0;
    for (Eigen::Index i = 0; i < s.size(); ++i) c[i] = acc += s[i];
    cumulative_.push_back(std::move(c));
  }
}

Eigen::VectorXd Mkde::log_density(const Eigen::MatrixXd& points) const {
  constexpr std::string_view fn = "Mkde::log_density";
  const int d = dimensions();
  check_argument(points.cols() == d, fn, "points",
                 "must have " + std::to_string(d) + " columns, got " + std::to_string(points.cols()));
  check_finite(points, fn, "points");
  Eigen::VectorXd out(points.rows());
  std::vector<Eigen::Index> base(static_cast<std::size_t>(d)), corner(static_cast<std::size_t>(d));
  std::vector<double> frac(static_cast<std::size_t>(d));
  for (Eigen::Index p = 0; p < points.rows(); ++p) {
    bool inside = true;
    for (int a = 0; a < d; ++a) {
      const auto [lo, hi] = bounds_[a];
      const double x = points(p, a);
      if (x < lo || x > hi) {
        inside = false;
        break;
      }
      // Coordinates in units of cells, 0 at the first centre; clamped to the outermost centres.
      const double n = static_cast<double>(cells_[a]);
      const double u = std::clamp((x - lo) / (hi - lo) * n - 0.5, 0.0, n - 1.0);
      base[a] = std::min(static_cast<Eigen::Index>(u), cells_[a] - 2);
      frac[a] = u - static_cast<double>(base[a]);
    }
    if (!inside) {
      out[p] = -std::numeric_limits<double>::infinity();
      continue;
    }
    double value = 0.0;
    for (int bits = 0; bits < (1 << d); ++bits) {
      double weight = 1.0;
      for (int a = 0; a < d; ++a) {
        const bool upper = (bits >> a) & 1;
        corner[a] = base[a] + (upper ? 1 : 0);
        weight *= upper ? frac[a] : 1.0 - frac[a];
      }
      if (weight != 0.0) value += weight * mean_[flat_index(corner, cells_)];
    }
    out[p] = std::log(value);
  }
  return out;
}

Eigen::MatrixXd Mkde::sample(Eigen::Index n, std::mt19937_64& rng) const {
  check_argument(n >= 0, "Mkde::sample", "n", "must be >= 0");
  const int d = dimensions();
  Eigen::MatrixXd out(n, d);
  std::uniform_int_distribution<std::size_t> pick(0, samples_.size() - 1);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (Eigen::Index p = 0; p < n; ++p) {
    const Eigen::VectorXd& cum = cumulative_[pick(rng)];
    const double u = unit(rng) * cum[cum.size() - 1];
    const Eigen::Index cell = std::min<Eigen::Index>(
        std::upper_bound(cum.data(), cum.data() + cum.size(), u) - cum.data(), cum.size() - 1);
    Eigen::Index rest = cell;
    for (int a = d; a-- > 0;) {
      const Eigen::Index j = rest % cells_[a];
      rest /= cells_[a];
      const double w = (bounds_[a].second - bounds_[a].first) / static_cast<double>(cells_[a]);
      out(p, a) = bounds_[a].first + (static_cast<double>(j) + unit(rng)) * w;
    }
  }
  return out;
}

void Mkde::save(const std::filesystem::path& directory) const {
  std::filesystem::create_directories(directory);
  const int d = dimensions();
  Eigen::VectorXd meta(3 + 3 * d);
  meta << kFormatTag, kFormatVersion, d, Eigen::VectorXd::Zero(3 * d);
  for (int a = 0; a < d; ++a) {
    meta[3 + a] = static_cast<double>(cells_[a]);
    meta[3 + d + 2 * a] = bounds_[a].first;
    meta[3 + d + 2 * a + 1] = bounds_[a].second;
  }
  write_npy(directory / "mkde_meta.npy", {meta.size()}, meta);
  const Eigen::Index k = static_cast<Eigen::Index>(samples_.size());
  const Eigen::Index n = mean_.size();
  Eigen::VectorXd all(k * n);
  for (Eigen::Index i = 0; i < k; ++i) all.segment(i * n, n) = samples_[static_cast<std::size_t>(i)];
  write_npy(directory / "density_samples.npy", {k, n}, all);
}

Mkde Mkde::load(const std::filesystem::path& directory) {
  const std::string where = "Mkde::load: " + directory.string();
  auto fail = [&](const std::string& what) { throw FileError(where + ": " + what); };
  const NpyArray meta = read_npy(directory / "mkde_meta.npy");
  if (meta.shape.size() != 1 || meta.values.size() < 3 || meta.values[0] != kFormatTag)
    fail("mkde_meta.npy is not an MKDE model description");
  if (meta.values[1] != kFormatVersion)
    fail("mkde_meta.npy has format version " + std::to_string(meta.values[1]) +
         ", this build reads version 1");
  const double dd = meta.values[2];
  if (!(dd >= 1 && dd <= kMaxDimensions && dd == std::floor(dd)))
    fail("mkde_meta.npy has an invalid dimension count");
  const int d = static_cast<int>(dd);
  if (meta.values.size() != 3 + 3 * d) fail("mkde_meta.npy has the wrong length for D = " + std::to_string(d));
  Mkde model;
  for (int a = 0; a < d; ++a) {
    const double c = meta.values[3 + a];
    const double lo = meta.values[3 + d + 2 * a], hi = meta.values[3 + d + 2 * a + 1];
    if (!(c >= 2 && c == std::floor(c) && c < 1e9)) fail("mkde_meta.npy has an invalid cell count");
    if (!(std::isfinite(lo) && std::isfinite(hi) && lo < hi)) fail("mkde_meta.npy has invalid bounds");
    model.cells_.push_back(static_cast<Eigen::Index>(c));
    model.bounds_.emplace_back(lo, hi);
  }
  double cells_total = 1.0;
  for (Eigen::Index c : model.cells_) cells_total *= static_cast<double>(c);
  if (cells_total > 1e11) fail("mkde_meta.npy has an implausible number of cells");
  const NpyArray samples = read_npy(directory / "density_samples.npy");
  const Eigen::Index n = total_cells(model.cells_);
  if (samples.shape.size() != 2 || samples.shape[1] != n || samples.shape[0] < 1)
    fail("density_samples.npy must have shape (samples, " + std::to_string(n) +
         ") to match mkde_meta.npy");
  const double volume = model.cell_volume();
  for (Eigen::Index k = 0; k < samples.shape[0]; ++k) {
    Eigen::VectorXd s = samples.values.segment(k * n, n);
    if (!s.allFinite() || (s.array() < 0).any())
      fail("density sample " + std::to_string(k) + " has negative or non-finite values");
    if (std::abs(s.sum() * volume - 1.0) > 1e-6)
      fail("density sample " + std::to_string(k) + " does not integrate to 1 over the box");
    model.samples_.push_back(std::move(s));
  }
  model.finish_statistics();
  return model;
}

// ---- Gaussian KDE ----------------------------------------------------------------------------

GaussianKde::GaussianKde(const Eigen::MatrixXd& points, Bandwidth bandwidth) : points_(points) {
  constexpr std::string_view fn = "GaussianKde";
  check_points(points, fn);
  const auto n = static_cast<double>(points.rows());
  const auto d = static_cast<double>(points.cols());
  h_ = bandwidth == Bandwidth::kScott ? std::pow(n, -1.0 / (d + 4.0))
                                      : std::pow(n * (d + 2.0) / 4.0, -1.0 / (d + 4.0));
  const Eigen::RowVectorXd mean = points.colwise().mean();
  const Eigen::MatrixXd centred = points.rowwise() - mean;
  const Eigen::MatrixXd cov = centred.transpose() * centred / (n - 1.0);
  Eigen::LLT<Eigen::MatrixXd> llt(h_ * h_ * cov);
  check_argument(llt.info() == Eigen::Success && llt.matrixLLT().diagonal().minCoeff() > 0, fn,
                 "points", "have a singular covariance (they lie in a lower-dimensional subspace)");
  cholesky_ = llt.matrixL();
  whitening_ = cholesky_.triangularView<Eigen::Lower>().solve(
      Eigen::MatrixXd::Identity(points.cols(), points.cols()));
  log_normaliser_ = -0.5 * d * std::log(2.0 * std::numbers::pi) -
                    cholesky_.diagonal().array().log().sum() - std::log(n);
}

Eigen::VectorXd GaussianKde::log_density(const Eigen::MatrixXd& queries) const {
  constexpr std::string_view fn = "GaussianKde::log_density";
  check_argument(queries.cols() == points_.cols(), fn, "points",
                 "must have " + std::to_string(points_.cols()) + " columns, got " +
                     std::to_string(queries.cols()));
  check_finite(queries, fn, "points");
  const Eigen::MatrixXd w = points_ * whitening_.transpose();  // whitened data, N x D
  const Eigen::VectorXd w2 = w.rowwise().squaredNorm();
  Eigen::VectorXd out(queries.rows());
  constexpr Eigen::Index kBlock = 512;
  for (Eigen::Index start = 0; start < queries.rows(); start += kBlock) {
    const Eigen::Index m = std::min(kBlock, queries.rows() - start);
    const Eigen::MatrixXd q = queries.middleRows(start, m) * whitening_.transpose();
    // Squared distances |q_i - w_j|^2 = |q_i|^2 + |w_j|^2 - 2 q_i . w_j, one GEMM per block.
    Eigen::MatrixXd dist = (-2.0 * q * w.transpose()).rowwise() + w2.transpose();
    dist.colwise() += q.rowwise().squaredNorm();
    for (Eigen::Index i = 0; i < m; ++i) {
      const double lowest = dist.row(i).minCoeff();
      const double sum = (-0.5 * (dist.row(i).array() - lowest)).exp().sum();
      out[start + i] = log_normaliser_ - 0.5 * lowest + std::log(sum);
    }
  }
  return out;
}

Eigen::MatrixXd GaussianKde::sample(Eigen::Index n, std::mt19937_64& rng) const {
  check_argument(n >= 0, "GaussianKde::sample", "n", "must be >= 0");
  std::uniform_int_distribution<Eigen::Index> pick(0, points_.rows() - 1);
  std::normal_distribution<double> gauss;
  Eigen::MatrixXd out(n, points_.cols());
  Eigen::VectorXd z(points_.cols());
  for (Eigen::Index p = 0; p < n; ++p) {
    for (auto& v : z) v = gauss(rng);
    out.row(p) = points_.row(pick(rng)) + (cholesky_ * z).transpose();
  }
  return out;
}

double hellinger_distance(const Eigen::VectorXd& p, const Eigen::VectorXd& q) {
  constexpr std::string_view fn = "hellinger_distance";
  check_argument(p.size() == q.size() && p.size() > 0, fn, "p, q",
                 "must have the same positive size, got " + std::to_string(p.size()) + " and " +
                     std::to_string(q.size()));
  check_finite(p, fn, "p");
  check_finite(q, fn, "q");
  check_argument((p.array() >= 0).all() && p.sum() > 0, fn, "p", "must be >= 0, not all zero");
  check_argument((q.array() >= 0).all() && q.sum() > 0, fn, "q", "must be >= 0, not all zero");
  const double bc = (p / p.sum()).cwiseProduct(q / q.sum()).cwiseSqrt().sum();
  return std::sqrt(std::max(0.0, 1.0 - bc));
}

}  // namespace infield

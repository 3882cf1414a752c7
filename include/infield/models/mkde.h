#pragma once
/// @file models/mkde.h
/// @brief MKDE: a Matérn kernel density estimator inferred with MGVI, for point clouds in 1 to 5
/// dimensions, and a Gaussian KDE baseline with the same interface.
///
/// Model. The bounding box of the points (or given bounds) is cut into `cells` per axis. The
/// log-density s is a correlated field with a separable product of one-dimensional Matérn spectra,
/// one per axis (models/correlated_field.h), on a grid padded by `padding` times the box on every
/// axis so that the periodic field does not wrap density from one face to the opposite one. The
/// counts per cell of the box are Poisson with rates exp(s):
///
///     counts_c ~ Poisson(exp(s_c)),   s = offset + correlated field,
///     offset = log(points / cells in the box)   (the mean count per cell),
///
/// and MGVI approximates the posterior of the excitations. The normalised density of a posterior
/// sample is rho_c = exp(s_c) / (V sum_c' exp(s_c')) with V the cell volume in the data's units,
/// so it integrates to 1 over the box.
///
/// Units: each axis of the box is the unit interval for the spectra (k in cycles per box length),
/// so the Matérn cutoff's prior does not depend on the data's scale.
///
/// Priors (per axis, documented defaults in MkdeOptions): the Matérn scale, cutoff and slope of
/// every axis, and the zero mode's standard deviation. With D axes and the zero mode's std at 1
/// (the default) the field's variance around its mean is prod_i (1 + scale_i^2) - 1 (see
/// correlated_field.h), so the default per-axis scale
/// is chosen to give a total standard deviation of the log-density of `log_density_std` whatever D.

#include <Eigen/Core>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "infield/inference/communicator.h"
#include "infield/inference/minimizer.h"
#include "infield/models/correlated_field.h"

namespace infield {

struct MkdeOptions {
  /// Cells per axis of the box: one entry for every axis, or one per axis. Each >= 2.
  std::vector<Eigen::Index> cells = {64};
  /// Padding of the periodic grid, as a fraction of the box per axis (>= 0). Unset: 0.5 for
  /// D <= 2, 0.25 for D >= 3, where the padded grid's size grows as (1 + padding)^D (7.6x at 0.5
  /// in 5D, 3.1x at 0.25; the 5D accuracy figure in docs/mkde.md is the same with either).
  std::optional<double> padding;
  /// Box per axis as (lower, upper); empty: the points' range widened by `margin` of it on both
  /// sides.
  std::vector<std::pair<double, double>> bounds;
  double margin = 0.1;
  /// Prior mean of the total standard deviation of the log-density around its mean; sets the
  /// default Matérn scale per axis (mean sqrt((1 + log_density_std^2)^(1/D) - 1), std half that).
  double log_density_std = 2.0;
  /// Per-axis Matérn priors (set `normalization` too: MaternSettings' own default is NIFTy's
  /// kSpectralDensity, where `scale` is not the axis's std); when empty, the defaults: scale from
  /// log_density_std (normalised as the fluctuations' standard deviation,
  /// MaternNormalization::kFluctuationStd), cutoff
  /// (mean 3, std 2) cycles per box, loglogslope (mean -4, std 1), i.e. a power spectrum that
  /// falls as k^-4 above the cutoff (Matérn smoothness 3/2 in 1D).
  std::vector<MaternSettings> matern;
  /// Zero mode's standard deviation around the offset log(points / cells). In a product of
  /// spectra (D >= 2) the modes that vary along several axes scale with powers of 1 / azm
  /// (correlated_field.h), so the default pins azm at 1: the variance of the log-density around
  /// its mean is then prod_i (1 + scale_i^2) - 1, and the mean itself is offset plus a N(0, 1) shift.
  PriorMoments zero_mode_std{1.0, 0.01};
  /// MGVI schedule.
  int global_iterations = 5;
  int sample_pairs = 5;
  int newton_steps = 10;
  /// geoVI's sample minimiser (e.g. geovi_sample_minimizer()) to refine every sample through the
  /// Poisson likelihood's coordinate transformation; null: MGVI's linear samples.
  MinimizerPtr nonlinear_sampling_minimizer;
  std::uint64_t seed = 42;
  /// Progress lines (one per global iteration, from the root rank); null silences them.
  std::ostream* progress = nullptr;
  /// The ranks sharing the MGVI samples (OptimizeKLOptions::communicator); every rank ends with
  /// the whole fitted model.
  Communicator communicator;
  void validate() const;
};

/// Common interface of the density estimators, so that users and benchmarks compare them on equal
/// terms.
class DensityEstimator {
 public:
  virtual ~DensityEstimator() = default;
  virtual int dimensions() const = 0;
  /// log of the normalised density at each row of `points` (N x D).
  virtual Eigen::VectorXd log_density(const Eigen::MatrixXd& points) const = 0;
  /// n new points (n x D).
  virtual Eigen::MatrixXd sample(Eigen::Index n, std::mt19937_64& rng) const = 0;
};

/// A fitted MKDE.
class Mkde final : public DensityEstimator {
 public:
  /// Fits the model to `points` (N x D, N >= 2, 1 <= D <= 5, finite). Throws InvalidArgument for
  /// bad input and options.
  static Mkde fit(const Eigen::MatrixXd& points, const MkdeOptions& options = {});

  int dimensions() const override { return static_cast<int>(cells_.size()); }
  const std::vector<Eigen::Index>& cells() const { return cells_; }
  const std::vector<std::pair<double, double>>& bounds() const { return bounds_; }
  /// Volume of one cell in the data's units.
  double cell_volume() const;
  /// Centre of every cell (cells x D, C order over the axes).
  Eigen::MatrixXd cell_centres() const;

  /// Posterior mean and standard deviation of the normalised density per cell (C order).
  const Eigen::VectorXd& density_mean() const { return mean_; }
  const Eigen::VectorXd& density_std() const { return std_; }
  /// The posterior samples of the normalised density, one vector per sample.
  const std::vector<Eigen::VectorXd>& density_samples() const { return samples_; }

  /// log of the posterior-mean density, multilinearly interpolated between cell centres (constant
  /// beyond the outermost centres, inside the box); -infinity outside the box.
  Eigen::VectorXd log_density(const Eigen::MatrixXd& points) const override;
  /// Points from the posterior predictive density: for each point a posterior density sample is
  /// chosen uniformly, a cell by its probability under it, and a uniform position in that cell.
  /// The draws therefore follow density_mean() cell by cell.
  Eigen::MatrixXd sample(Eigen::Index n, std::mt19937_64& rng) const override;

  /// Writes DIR/mkde_meta.npy (a format tag and version, the shape and the bounds, as float64) and
  /// DIR/density_samples.npy (samples x cells), each atomically.
  void save(const std::filesystem::path& directory) const;
  /// Reads a saved model; throws FileError for a missing, corrupt or inconsistent directory.
  static Mkde load(const std::filesystem::path& directory);

  /// Per global iteration: the MGVI progress line.
  const std::vector<std::string>& fit_log() const { return fit_log_; }

 private:
  Mkde() = default;
  void finish_statistics();
  std::vector<Eigen::Index> cells_;
  std::vector<std::pair<double, double>> bounds_;
  std::vector<Eigen::VectorXd> samples_;
  std::vector<Eigen::VectorXd> cumulative_;  ///< Per sample: cumulative cell probabilities.
  Eigen::VectorXd mean_, std_;
  std::vector<std::string> fit_log_;
};

/// Gaussian kernel density estimate with a full covariance bandwidth H = h^2 Sigma (Sigma the
/// points' covariance): Scott's h = N^(-1/(D+4)) or Silverman's h = (N (D + 2) / 4)^(-1/(D+4)).
class GaussianKde final : public DensityEstimator {
 public:
  enum class Bandwidth { kScott, kSilverman };
  /// Throws InvalidArgument for bad input (as Mkde::fit) or a singular covariance.
  GaussianKde(const Eigen::MatrixXd& points, Bandwidth bandwidth = Bandwidth::kScott);
  int dimensions() const override { return static_cast<int>(points_.cols()); }
  double bandwidth_factor() const { return h_; }
  Eigen::VectorXd log_density(const Eigen::MatrixXd& points) const override;
  Eigen::MatrixXd sample(Eigen::Index n, std::mt19937_64& rng) const override;

 private:
  Eigen::MatrixXd points_;
  Eigen::MatrixXd whitening_;  ///< L^{-1} with L L^T = H: whitened offsets are standard normal.
  Eigen::MatrixXd cholesky_;   ///< L.
  double log_normaliser_ = 0.0;
  double h_ = 1.0;
};

/// Hellinger distance between two densities given on the same cells: sqrt(1 - sum sqrt(p q)) with
/// p and q normalised to probabilities over the cells. Throws for negative or non-finite input.
double hellinger_distance(const Eigen::VectorXd& p, const Eigen::VectorXd& q);

}  // namespace infield

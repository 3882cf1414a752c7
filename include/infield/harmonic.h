#pragma once
/// @file harmonic.h
/// @brief Harmonic (Fourier) partners of regular grids, the Hartley transform between them, power
/// spaces (bins of |k|) and the power distributor.
///
/// Conventions
/// -----------
/// A RegularGrid with shape (n_1, ..., n_d) and pixel distances (dx_1, ..., dx_d) is periodic; its
/// harmonic partner is a HarmonicGrid with the same shape and distances dk_i = 1 / (n_i dx_i) in
/// k-space, so k is a frequency (cycles per unit length, no factor 2 pi). Pixel j_i of axis i of a
/// HarmonicGrid has k_i = f(j_i) dk_i with the index folded to [-n_i/2, n_i/2):
/// f(j) = j for j < (n + 1) / 2, j - n otherwise (as numpy's fftfreq).
///
/// The harmonic transform is the real-to-real Hartley transform. With vol the cell volume of the
/// side transformed *from*,
///
///     (H x)(k) = vol * sum_j x_j cas(2 pi sum_i k_i j_i / n_i),   cas(t) = cos(t) - sin(t),
///
/// i.e. H x = Re(F x) + Im(F x) with F the unnormalised multi-dimensional DFT (exp(-i ...)): NIFTy
/// 8's default ("non_canonical_hartley"; the canonical cos + sin is its mirror k -> -k). From
/// the position side vol = vol_x = prod dx_i, so H approximates the continuous integral
/// int x(r) cas(2 pi k r) dr; from the harmonic side vol = vol_k = prod dk_i. Since
/// vol_x vol_k n = 1 (n the number of pixels) and C^2 = n with C the cas matrix, the transform back
/// is exactly the inverse, H_k H_x = 1. C is symmetric, so the adjoint of H_x is (vol_x / vol_k)
/// H_k, and Parseval reads sum_j |x_j|^2 vol_x = sum_k |(H x)_k|^2 vol_k.

#include <Eigen/Core>
#include <cstddef>
#include <string>
#include <vector>

#include "infield/domain.h"
#include "infield/operator.h"

namespace infield {

/// The harmonic partner of a RegularGrid: the same shape, k-space distances dk_i = 1/(n_i dx_i),
/// cell volume prod dk_i.
class HarmonicGrid final : public Domain {
 public:
  /// A harmonic grid with the given k-space distances (all positive).
  HarmonicGrid(std::vector<Eigen::Index> shape, std::vector<double> distances);
  std::vector<Eigen::Index> shape() const override { return shape_; }
  /// k-space distances dk_i.
  const std::vector<double>& distances() const { return distances_; }
  /// Distances dx_i of the position-space partner (exactly those of the grid this was made from by
  /// harmonic_partner, otherwise 1/(n_i dk_i)).
  const std::vector<double>& partner_distances() const { return partner_distances_; }
  double cell_volume() const override;
  std::string to_string() const override;
  /// Same shape and k-space distances.
  bool equals(const Domain& other) const override;

  /// Used by harmonic_partner to keep the position-space distances exactly (round trips compare
  /// equal); partner_distances must have one positive entry per axis.
  HarmonicGrid(std::vector<Eigen::Index> shape, std::vector<double> distances,
               std::vector<double> partner_distances);

 private:
  std::vector<Eigen::Index> shape_;
  std::vector<double> distances_;
  std::vector<double> partner_distances_;
};

/// A HarmonicGrid (shape, k-space distances dk_i); see HarmonicGrid.
DomainPtr harmonic_grid(std::vector<Eigen::Index> shape, std::vector<double> distances);

/// RegularGrid -> its HarmonicGrid and HarmonicGrid -> its RegularGrid (a round trip gives a grid
/// equal to the original). Throws InvalidArgument for any other domain.
DomainPtr harmonic_partner(const DomainPtr& grid);

/// |k| of every pixel of a HarmonicGrid, in C order (see the folding convention above). Throws
/// InvalidArgument if `harmonic_grid` is not a HarmonicGrid.
Eigen::VectorXd k_lengths(const DomainPtr& harmonic_grid);

/// The Hartley transform over domain number `index` of `domain` (the other domains are batch
/// dimensions). Domain `index` must be a RegularGrid or a HarmonicGrid; the target is `domain` with
/// that factor replaced by its harmonic_partner. Normalisation as documented at the top of this
/// file; supports times, adjoint, inverse and adjoint inverse. Backed by FFTW (r2c), with the plan
/// made once per geometry and cached; applying the operator is thread-safe.
LinearOperatorPtr hartley_transform(const DomainTuple& domain, std::size_t index);

/// The Hartley transforms over several domains of `domain` (any subset, in the given order; the
/// result does not depend on it), composed. Throws InvalidArgument for an empty or repeating list.
///
/// Threads: a transform runs on the calling thread. FFTW plans are made once per geometry and
/// cached for the process, and execution is thread-safe, so parallel callers (MGVI samples on
/// oneTBB) each run their own transforms without contention.
LinearOperatorPtr hartley_transform(const DomainTuple& domain, std::vector<std::size_t> indices);

/// The multi-dimensional Hartley transform over the consecutive domains first .. first + count - 1
/// taken as one grid (one FFTW plan over all their axes), with the volume factors of all of them.
/// It is not the composition of the per-domain transforms (cas does not factorise), but it is
/// equally a real orthogonal transform up to volumes, with the same inverse and Parseval rules;
/// for a Gaussian field whose spectrum is symmetric under k_i -> -k_i in every domain separately
/// (e.g. any function of the |k_i|), both give the same distribution of fields, and this one is
/// cheaper.
LinearOperatorPtr joint_hartley_transform(const DomainTuple& domain, std::size_t first,
                                          std::size_t count);

/// Zero padding for non-periodic boxes: embeds a field on the RegularGrid domain[index] into the
/// low corner of a grid of shape `padded_shape` (>= the grid's shape on every axis) with the same
/// pixel distances; zeros elsewhere. A periodic model on the padded grid, sliced back with the
/// adjoint, has no wrap-around correlations across the original box when the padding is wider
/// than the correlation length.
LinearOperatorPtr zero_padding(const DomainTuple& domain, std::size_t index,
                               std::vector<Eigen::Index> padded_shape);

/// The adjoint of zero_padding: keeps the low corner of shape `shape` of the RegularGrid
/// padded[index].
LinearOperatorPtr slicing(const DomainTuple& padded, std::size_t index,
                          std::vector<Eigen::Index> shape);

/// Bins of |k| of a HarmonicGrid: one bin per distinct |k| (values within 1e-10 relative are one
/// bin), sorted increasingly; bin 0 is k = 0. Each bin has volume 1.
class PowerSpace final : public Domain {
 public:
  /// The power space of `harmonic_grid` (a HarmonicGrid; throws InvalidArgument otherwise).
  explicit PowerSpace(DomainPtr harmonic_grid);
  std::vector<Eigen::Index> shape() const override {
    return {static_cast<Eigen::Index>(k_.size())};
  }
  double cell_volume() const override { return 1.0; }
  std::string to_string() const override;
  /// Power spaces of equal harmonic grids are equal.
  bool equals(const Domain& other) const override;

  /// The harmonic grid this space bins.
  const DomainPtr& harmonic_grid() const { return harmonic_; }
  /// Bin centres |k| (the |k| of the bin's first pixel), increasing.
  const Eigen::VectorXd& k() const { return k_; }
  /// The bin of every pixel of the harmonic grid, in C order.
  const std::vector<Eigen::Index>& pixel_bins() const { return pixel_bins_; }
  /// Number of pixels per bin.
  const Eigen::VectorXd& bin_counts() const { return counts_; }

 private:
  DomainPtr harmonic_;
  Eigen::VectorXd k_;
  std::vector<Eigen::Index> pixel_bins_;
  Eigen::VectorXd counts_;
};

/// The PowerSpace of a HarmonicGrid; throws InvalidArgument for other domains.
DomainPtr power_space(const DomainPtr& harmonic_grid);

/// Spreads a field on the power space of harmonic_tuple[index] (a HarmonicGrid) over that grid:
/// every pixel gets the value of its |k| bin. The domain is harmonic_tuple with the PowerSpace at
/// `index`, the target is harmonic_tuple. Its adjoint is the power projection (the sum over the
/// pixels of each bin).
LinearOperatorPtr power_distributor(const DomainTuple& harmonic_tuple, std::size_t index);

/// adjoint(power_distributor(harmonic_tuple, index)): sums over the pixels of each |k| bin.
LinearOperatorPtr power_projection(const DomainTuple& harmonic_tuple, std::size_t index);

}  // namespace infield

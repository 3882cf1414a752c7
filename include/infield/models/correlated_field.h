#pragma once
/// @file models/correlated_field.h
/// @brief Correlated fields: Gaussian random fields on periodic regular grids whose power spectrum
/// is itself inferred, built from standard-normal excitations. The model is NIFTy 8's
/// `CorrelatedFieldMaker` (nifty8/library/correlated_fields.py, v8.5.7), written anew for
/// Infield's operators: the same excitation keys and shapes give the same field and the same power
/// spectrum (tests/models/correlated_field_nifty_test.cpp checks NIFTy's own outputs to 1e-10).
///
/// Generative story, for sub-domains (regular grids) g_1, ..., g_m of total volumes V_i with
/// harmonic partners h_i (cell volumes 1 / V_i):
///
///     s = offset_mean + H_1 ... H_m (A .* xi),
///
/// with xi ~ N(0, 1) on the harmonic tuple (h_1, ..., h_m), H_i the Hartley transform of sub-domain
/// i from its harmonic side (harmonic.h: 1 / V_i times the cas matrix, cas = cos - sin as NIFTy's;
/// the transforms act per sub-domain, so across sub-domains they factorise), and
///
///     A(k_1, ..., k_m) = azm * n_1(|k_1|) ... n_m(|k_m|),
///     n_i(0) = V_i,   n_i(k) = a_i(k) / azm  for k != 0    (NIFTy's normalised amplitudes),
///
/// where azm (the zero mode's standard deviation) has a log-normal prior and a_i is sub-domain i's
/// amplitude on its PowerSpace. For one sub-domain this is A(0) = V azm, A(k) = a(k): the field is
/// offset + azm xi_0 plus fluctuations of amplitude a(k) / V per mode. For a product, modes with
/// j >= 2 non-zero k_i carry a factor azm^(1 - j): the amplitudes are relative to the zero mode
/// (so a product's fluctuations grow as the zero mode's prior std shrinks; see
/// docs/correlated-fields.md for choosing priors).
///
/// Amplitude models per sub-domain (a(0) = V, unused by the field):
///  - non-parametric (add_fluctuations, NIFTy's `add_fluctuations`): the log power spectrum
///        x(k) = loglogavgslope * (log k - log k_1) + w(log k),
///    w an integrated Wiener process of strength `flexibility` (a random walk of the slope,
///    integrated) plus, scaled by `asperity`, a random walk of x itself, its linear trend removed;
///    then a(k) = V fluctuations sqrt(e^{x(k)} / sum_{k' != 0} e^{x(k')}) (the sum over harmonic
///    pixels). So `loglogavgslope` is the slope of the power spectrum, and for one sub-domain the
///    field's variance around its mean, averaged over the box, is fluctuations^2.
///  - Matérn (add_matern_fluctuations, NIFTy's `add_fluctuations_matern`):
///        a(k) = sqrt(V) scale (1 + (k / cutoff)^2)^(loglogslope / 4),
///    i.e. a continuous power spectral density scale^2 (1 + (k / cutoff)^2)^(loglogslope / 2)
///    (`loglogslope` is its spectral index) discretised with the harmonic cell volume 1 / V;
///    with adjust_for_volume = false, V = 1 in these formulas (as NIFTy). The variant
///    MaternNormalization::kFluctuationStd (Infield's, not NIFTy's) renormalises the same shape as
///    the non-parametric model, so that `scale` is the fluctuations' standard deviation.
///
/// Every parameter has a prior given as the (mean, std) of the parameter itself and realised by the
/// prior transforms from a standard-normal excitation (log-normal for positive parameters, normal
/// for slopes; NIFTy's LognormalTransform and NormalTransform), so MGVI sees a white N(0, 1) prior
/// on every input.
///
/// Excitation keys (a MultiDomain, sorted by name): prefix + "xi" (the harmonic tuple),
/// prefix + "zeromode"; per sub-domain with name N: prefix + N + "fluctuations",
/// "flexibility", "asperity", "loglogavgslope", "spectrum" (non-parametric; shape (2, bins - 2))
/// or prefix + N + "scale", "cutoff", "loglogslope" (Matérn).

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "infield/harmonic.h"
#include "infield/operator.h"

namespace infield {

/// A prior given by the mean and standard deviation of the parameter itself.
struct PriorMoments {
  double mean = 0.0;
  double std = 1.0;
};

/// The non-parametric amplitude (NIFTy's `add_fluctuations`). Defaults are NIFTy's
/// getting_started_3 values (the cf2d benchmark).
struct FluctuationSettings {
  /// Standard deviation of the field's fluctuations (log-normal).
  PriorMoments fluctuations{1.0, 0.8};
  /// Strength of the integrated-Wiener-process deviations of the log power spectrum from a power
  /// law (log-normal); nullopt gives a pure power law (then asperity must be nullopt too).
  std::optional<PriorMoments> flexibility = PriorMoments{2.0, 1.0};
  /// Roughness (random-walk part) of those deviations (log-normal); nullopt disables it.
  std::optional<PriorMoments> asperity = PriorMoments{0.5, 0.4};
  /// Average slope of the log power spectrum over log k (normal): -3 is a power falling as k^-3.
  PriorMoments loglogavgslope{-3.0, 1.0};
  /// Throws InvalidArgument naming a bad entry.
  void validate() const;
};

/// How a Matérn spectrum's `scale` is read.
enum class MaternNormalization {
  /// NIFTy's `add_fluctuations_matern`: scale^2 (1 + (k / cutoff)^2)^(loglogslope / 2) is a
  /// continuous power spectral density, discretised with the harmonic cell volume.
  kSpectralDensity,
  /// Infield's variant: the same shape renormalised over the modes k != 0 (as the non-parametric
  /// model), so that `scale` is the standard deviation of the field's fluctuations whatever the
  /// grid and the cutoff.
  kFluctuationStd,
};

/// The Matérn amplitude a(k) = scale (1 + (k / cutoff)^2)^(loglogslope / 4) (see the file comment).
struct MaternSettings {
  /// Amplitude scale (log-normal); see `normalization`.
  PriorMoments scale{1.0, 0.5};
  /// Cutoff frequency in k units (cycles per unit length, log-normal): below it the spectrum is
  /// flat, above it a power law.
  PriorMoments cutoff{4.0, 2.0};
  /// Spectral index of the power spectrum well above the cutoff (normal): -4 is a power falling
  /// as k^-4.
  PriorMoments loglogslope{-4.0, 1.0};
  MaternNormalization normalization = MaternNormalization::kSpectralDensity;
  /// NIFTy's `adjust_for_volume` (kSpectralDensity only): the spectrum's parameters are relative to
  /// the unit box whatever the grid's volume V; false takes them as already adjusted (V = 1 in the
  /// formulas of the file comment).
  bool adjust_for_volume = true;
  void validate() const;
};

/// The finalised model and its parts. All operators share the domain excitations().
class CorrelatedField {
 public:
  /// Excitations -> the field on target().
  const OperatorPtr& field() const { return field_; }
  const MultiDomain& excitations() const { return excitations_; }
  /// The tuple of the sub-domain grids.
  const DomainTuple& target() const { return target_; }
  std::size_t subdomains() const { return normalized_amplitudes_.size(); }
  /// Excitations -> n_i on PowerSpace i, NIFTy's `get_normalized_amplitudes()[i]`: bin 0 holds the
  /// sub-domain's volume V_i, the others a_i(k) / azm (see the file comment).
  const OperatorPtr& normalized_amplitude(std::size_t i) const;
  /// Excitations -> NIFTy's `amplitude` of a field with one sub-domain: azm n_1, i.e. V azm at
  /// k = 0 and a(k) elsewhere. Throws InvalidArgument for a product (as NIFTy: only the relative
  /// scales of a product's amplitudes are defined).
  OperatorPtr amplitude() const;
  /// Excitations -> amplitude()^2 (NIFTy's `power_spectrum`), one sub-domain only.
  OperatorPtr power_spectrum() const;
  /// The PowerSpace of sub-domain i.
  const DomainPtr& power_space(std::size_t i) const;
  /// Excitations -> azm (scalar), the zero mode's standard deviation.
  const OperatorPtr& zero_mode_std() const { return zero_mode_std_; }

 private:
  friend class CorrelatedFieldMaker;
  OperatorPtr field_;
  MultiDomain excitations_;
  DomainTuple target_;
  std::vector<OperatorPtr> normalized_amplitudes_;
  OperatorPtr amplitude_;  // one sub-domain only
  std::vector<DomainPtr> power_spaces_;
  OperatorPtr zero_mode_std_;
};

/// Builds a CorrelatedField the way the generative story reads:
///
///     CorrelatedField cf = CorrelatedFieldMaker("sky ")
///         .add_fluctuations(regular_grid({128, 128}), {})
///         .set_offset(0.0, {1e-3, 1e-6})
///         .finalize();
class CorrelatedFieldMaker {
 public:
  explicit CorrelatedFieldMaker(std::string prefix = "");
  /// Adds a sub-domain (a RegularGrid, periodic) with the non-parametric amplitude. `name`
  /// prefixes its parameter keys and must differ between sub-domains.
  CorrelatedFieldMaker& add_fluctuations(DomainPtr grid, const FluctuationSettings& settings,
                                         std::string name = "");
  /// Adds a sub-domain with the Matérn amplitude (NIFTy's add_fluctuations_matern).
  CorrelatedFieldMaker& add_matern_fluctuations(DomainPtr grid, const MaternSettings& settings,
                                                std::string name = "");
  /// The field's mean and the log-normal prior of the zero mode's standard deviation.
  CorrelatedFieldMaker& set_offset(double mean, PriorMoments zero_mode_std);
  /// Builds the model; throws InvalidArgument if no sub-domain was added, the offset was not set,
  /// or names collide.
  CorrelatedField finalize() const;

 private:
  struct Subdomain {
    DomainPtr grid;
    std::string name;
    std::optional<FluctuationSettings> fluctuations;
    std::optional<MaternSettings> matern;
  };
  std::string prefix_;
  std::vector<Subdomain> subdomains_;
  std::optional<double> offset_mean_;
  PriorMoments zero_mode_std_{};
};

}  // namespace infield

#pragma once
/// @file models/correlated_field.h
/// @brief Correlated fields: Gaussian random fields on periodic regular grids whose power spectrum
/// is itself inferred, built from standard-normal excitations (the model of NIFTy's
/// CorrelatedFieldMaker, written for Infield).
///
/// Generative story, for sub-domains (regular grids) g_1, ..., g_m with harmonic partners h_i:
///
///     s = offset_mean + C (A .* xi),
///
/// with xi ~ N(0, 1) on the harmonic tuple (h_1, ..., h_m), C the unnormalised Hartley (cas)
/// matrix of the tuple taken as one grid (C = joint_hartley_transform / vol_k, see harmonic.h;
/// the amplitude below is symmetric in every k_i, so this gives the fields of per-sub-domain
/// transforms in distribution, with one FFT), and the amplitude
///
///     A(k_1, ..., k_m) = azm                        if every k_i = 0 (the zero mode),
///     A(k_1, ..., k_m) = r_1(|k_1|) ... r_m(|k_m|)  otherwise,
///
/// where azm (the zero mode's standard deviation) has a log-normal prior and every sub-domain's
/// amplitude spectrum r_i lives on its PowerSpace with r_i(0) = 1. Because C is unnormalised, the
/// spatial average of the field's variance is sum_k A(k)^2 whatever the pixel volumes, and a
/// renormalised spectrum (below) with fluctuations sigma gives sum_{k != 0} r(k)^2 = sigma^2 for
/// one sub-domain: `fluctuations` is the standard deviation of the field around its mean.
///
/// Two amplitude models are offered per sub-domain:
///  - non-parametric (add_fluctuations): log r(k) = slope * log(k / k_1) + w(log k) with w an
///    integrated Wiener process (a random walk of the slope, integrated; strength flexibility)
///    plus a random walk of log r itself (roughness; asperity), its linear trend removed, then renormalised: r = fluctuations * e^{log r} / sqrt(sum_{k != 0}
///    e^{2 log r}). `loglogavgslope` is the slope of log r (of the amplitude; the power spectrum
///    r^2 falls with twice that slope). This is the model of NIFTy 8's CorrelatedFieldMaker (for
///    one sub-domain; products are normalised as described above).
///  - Matérn (add_matern_fluctuations): r(k) = scale * (1 + (k / cutoff)^2)^(loglogslope / 2),
///    either renormalised as above (scale is then the fluctuations' standard deviation) or, with
///    renormalize = false, read as a continuous power spectral density P(k) = r(k)^2 and discretised
///    as r(k) sqrt(vol_k) so that sum_k r^2 vol_k approximates the integral of P (one sub-domain
///    only: in a product the r_i(0) = 1 convention would not fit a density, so finalize() rejects
///    it).
///
/// Every parameter has a prior given as the (mean, std) of the parameter itself and realised by the
/// prior transforms from a standard-normal excitation (log-normal for positive parameters, normal
/// for slopes), so MGVI sees a white N(0, 1) prior on every input.
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

/// The non-parametric amplitude (NIFTy's correlated-field spectrum). Defaults are NIFTy's demo
/// values (the cf2d benchmark).
struct FluctuationSettings {
  /// Standard deviation of the field's fluctuations (log-normal).
  PriorMoments fluctuations{1.0, 0.8};
  /// Strength of the integrated-Wiener-process deviations from a power law (log-normal); nullopt
  /// gives a pure power law (then asperity must be nullopt too).
  std::optional<PriorMoments> flexibility = PriorMoments{2.0, 1.0};
  /// Roughness (random-walk part) of those deviations (log-normal); nullopt disables it.
  std::optional<PriorMoments> asperity = PriorMoments{0.5, 0.4};
  /// Average slope of log r over log k (normal).
  PriorMoments loglogavgslope{-3.0, 1.0};
  /// Throws InvalidArgument naming a bad entry.
  void validate() const;
};

/// The Matérn amplitude r(k) = scale (1 + (k / cutoff)^2)^(loglogslope / 2).
struct MaternSettings {
  /// Amplitude scale (log-normal); with renormalize, the fluctuations' standard deviation.
  PriorMoments scale{1.0, 0.5};
  /// Cutoff frequency in k units (cycles per unit length, log-normal): below it the spectrum is
  /// flat, above it a power law.
  PriorMoments cutoff{4.0, 2.0};
  /// Slope of log r over log k well above the cutoff (normal).
  PriorMoments loglogslope{-2.0, 0.5};
  /// See the file comment.
  bool renormalize = true;
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
  std::size_t subdomains() const { return amplitudes_.size(); }
  /// Excitations -> r_i on PowerSpace i (r_i(0) = 1; see the file comment).
  const OperatorPtr& amplitude(std::size_t i) const;
  /// Excitations -> r_i^2 on PowerSpace i.
  OperatorPtr power_spectrum(std::size_t i) const;
  /// The PowerSpace of sub-domain i.
  const DomainPtr& power_space(std::size_t i) const;
  /// Excitations -> azm (scalar), the zero mode's standard deviation.
  const OperatorPtr& zero_mode_std() const { return zero_mode_std_; }

 private:
  friend class CorrelatedFieldMaker;
  OperatorPtr field_;
  MultiDomain excitations_;
  DomainTuple target_;
  std::vector<OperatorPtr> amplitudes_;
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
  /// Adds a sub-domain with the Matérn amplitude.
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

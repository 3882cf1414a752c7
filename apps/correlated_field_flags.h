#pragma once
// The correlated-field prior's command-line flags, shared by `infield reconstruct` and
// `infield prior`, in NIFTy 8's meaning (models/correlated_field.h): every (mean, std) pair is the
// prior of the parameter itself, `--slope` is the power spectrum's log-log average slope.
//
// Products of sub-domains: `--shape 64/48` is a product of a 64-pixel and a 48-pixel grid (each
// the unit box), and every per-sub-domain flag then takes one entry per sub-domain separated by
// '/' (or a single entry for all), e.g. `--fluctuations 1.0,0.5/0.7,0.3`.

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "infield/models/correlated_field.h"

namespace infield::apps {

struct CorrelatedFieldFlags {
  std::string shape = "128,128";
  // Non-parametric spectrum (NIFTy's add_fluctuations; defaults: getting_started_3's).
  std::string fluctuations = "1.0,0.8";
  std::string flexibility = "2.0,1.0";
  std::string asperity = "0.5,0.4";
  std::string slope = "-3.0,1.0";
  // Matérn spectrum instead (NIFTy's add_fluctuations_matern): SCALE CUTOFF SLOPE, each MEAN,STD.
  std::vector<std::string> matern;
  std::string matern_normalization = "spectral-density";
  bool matern_unadjusted_volume = false;
  double offset_mean = 0.0;
  std::string offset_std = "1e-3,1e-6";
  // Excitation keys: prefix + sub-domain name + parameter.
  std::string prefix;
  std::string names;  // one per sub-domain separated by '/'; default "" for one, a/b/c... else

  /// Registers the flags on `cmd`.
  void add_to(CLI::App* cmd);
  /// The grid shapes, one per sub-domain; throws InvalidArgument naming `command` and the flag.
  std::vector<std::vector<Eigen::Index>> subdomain_shapes(std::string_view command) const;
  /// Sub-domain i's settings (of `count`) from the per-sub-domain flags.
  FluctuationSettings fluctuation_settings(std::size_t i, std::size_t count,
                                           std::string_view command) const;
  MaternSettings matern_settings(std::size_t i, std::size_t count, std::string_view command) const;
  /// The maker with every sub-domain added and the offset set (not finalised).
  CorrelatedFieldMaker maker(std::string_view command) const;
  /// The flags' values as text, for run fingerprints.
  std::vector<std::string> fingerprint() const;
};

/// Comma-separated numbers; throws InvalidArgument naming `command` and `flag` for bad ones.
std::vector<double> parse_number_list(const std::string& text, std::string_view command,
                                      std::string_view flag);
/// MEAN,STD.
PriorMoments parse_moments(const std::string& text, std::string_view command,
                           std::string_view flag);

}  // namespace infield::apps

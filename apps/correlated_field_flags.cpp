#include "correlated_field_flags.h"

#include <cmath>
#include <sstream>

#include "infield/error.h"

namespace infield::apps {
namespace {

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, separator)) out.push_back(item);
  if (!text.empty() && text.back() == separator) out.emplace_back();
  return out;
}

/// The entry of sub-domain i of a '/'-separated flag: one entry for all, or one per sub-domain.
std::string entry(const std::string& text, std::size_t i, std::size_t count,
                  std::string_view command, std::string_view flag) {
  const std::vector<std::string> parts = split(text, '/');
  check_argument(parts.size() == 1 || parts.size() == count, command, flag,
                 "has " + std::to_string(parts.size()) + " '/'-separated entries in '" + text +
                     "', the shape has " + std::to_string(count) + " sub-domains (give one or " +
                     std::to_string(count) + ")");
  return parts.size() == 1 ? parts[0] : parts[i];
}

std::optional<PriorMoments> parse_optional_moments(const std::string& text,
                                                   std::string_view command,
                                                   std::string_view flag) {
  if (text == "none") return std::nullopt;
  return parse_moments(text, command, flag);
}

}  // namespace

std::vector<double> parse_number_list(const std::string& text, std::string_view command,
                                      std::string_view flag) {
  std::vector<double> out;
  for (const std::string& item : split(text, ',')) {
    try {
      std::size_t used = 0;
      out.push_back(std::stod(item, &used));
      check_argument(used == item.size(), command, flag, "has a malformed number '" + item + "'");
    } catch (const std::logic_error&) {
      detail::throw_invalid_argument(command, flag, "has a malformed number '" + item + "' in '" +
                                                        text + "'");
    }
  }
  return out;
}

PriorMoments parse_moments(const std::string& text, std::string_view command,
                           std::string_view flag) {
  const std::vector<double> v = parse_number_list(text, command, flag);
  check_argument(v.size() == 2, command, flag, "must be MEAN,STD, got '" + text + "'");
  return {v[0], v[1]};
}

void CorrelatedFieldFlags::add_to(CLI::App* cmd) {
  cmd->add_option("--shape", shape,
                  "grid shape, e.g. 128,128 (the unit box); 64/48 is a product of sub-domains")
      ->capture_default_str();
  cmd->add_option("--fluctuations", fluctuations,
                  "prior MEAN,STD of the fluctuations' standard deviation")
      ->capture_default_str();
  cmd->add_option("--flexibility", flexibility,
                  "prior MEAN,STD of the flexibility (deviations from a power law), or none")
      ->capture_default_str();
  cmd->add_option("--asperity", asperity, "prior MEAN,STD of the asperity (roughness), or none")
      ->capture_default_str();
  cmd->add_option("--slope", slope,
                  "prior MEAN,STD of the power spectrum's log-log average slope (NIFTy's "
                  "loglogavgslope: -3 is a power falling as k^-3)")
      ->capture_default_str();
  cmd->add_option("--matern", matern,
                  "a Matérn spectrum instead (NIFTy's add_fluctuations_matern): SCALE CUTOFF "
                  "SLOPE, each MEAN,STD; SLOPE is the power spectrum's index")
      ->expected(3);
  cmd->add_option("--matern-normalization", matern_normalization,
                  "spectral-density (NIFTy's) or fluctuation-std (SCALE is the fluctuations' std)")
      ->capture_default_str();
  cmd->add_flag("--matern-unadjusted-volume", matern_unadjusted_volume,
                "NIFTy's adjust_for_volume=False");
  cmd->add_option("--offset-mean", offset_mean, "mean of the field")->capture_default_str();
  cmd->add_option("--offset-std", offset_std, "prior MEAN,STD of the zero mode's std")
      ->capture_default_str();
  cmd->add_option("--prefix", prefix, "prefix of the excitation keys (NIFTy's maker prefix)")
      ->capture_default_str();
  cmd->add_option("--names", names,
                  "the sub-domains' key prefixes separated by '/' (default: a/b/... for a "
                  "product, none for one grid)");
}

std::vector<std::vector<Eigen::Index>> CorrelatedFieldFlags::subdomain_shapes(
    std::string_view command) const {
  std::vector<std::vector<Eigen::Index>> out;
  for (const std::string& part : split(shape, '/')) {
    std::vector<Eigen::Index> s;
    for (double v : parse_number_list(part, command, "--shape")) {
      check_argument(v >= 1 && v == std::floor(v) && v < 1e9, command, "--shape",
                     "must be positive integers separated by commas (and '/' between "
                     "sub-domains), got '" + shape + "'");
      s.push_back(static_cast<Eigen::Index>(v));
    }
    check_argument(!s.empty(), command, "--shape",
                   "has an empty sub-domain in '" + shape + "'");
    out.push_back(std::move(s));
  }
  check_argument(!out.empty(), command, "--shape", "must name at least one axis");
  // FFTW's interface counts in int; a larger grid would only fail later, after allocating.
  double cells = 1.0;
  for (const auto& sub : out)
    for (Eigen::Index n : sub) cells *= static_cast<double>(n);
  check_argument(cells <= 2147483647.0, command, "--shape",
                 "has " + std::to_string(cells) + " cells, more than a transform can take (2^31 - 1)");
  return out;
}

FluctuationSettings CorrelatedFieldFlags::fluctuation_settings(std::size_t i, std::size_t count,
                                                              std::string_view command) const {
  FluctuationSettings s;
  s.fluctuations = parse_moments(entry(fluctuations, i, count, command, "--fluctuations"), command,
                                 "--fluctuations");
  s.flexibility = parse_optional_moments(entry(flexibility, i, count, command, "--flexibility"),
                                         command, "--flexibility");
  s.asperity = parse_optional_moments(entry(asperity, i, count, command, "--asperity"), command,
                                      "--asperity");
  check_argument(s.flexibility || !s.asperity, command, "--asperity",
                 "must be none when --flexibility is none (asperity roughens the flexible part of "
                 "the spectrum)");
  s.loglogavgslope = parse_moments(entry(slope, i, count, command, "--slope"), command, "--slope");
  return s;
}

MaternSettings CorrelatedFieldFlags::matern_settings(std::size_t i, std::size_t count,
                                                     std::string_view command) const {
  check_argument(matern.size() == 3, command, "--matern", "needs SCALE CUTOFF SLOPE");
  MaternSettings s;
  s.scale = parse_moments(entry(matern[0], i, count, command, "--matern"), command,
                          "--matern (scale)");
  s.cutoff = parse_moments(entry(matern[1], i, count, command, "--matern"), command,
                           "--matern (cutoff)");
  s.loglogslope = parse_moments(entry(matern[2], i, count, command, "--matern"), command,
                                "--matern (slope)");
  s.normalization = matern_normalization == "fluctuation-std"
                        ? MaternNormalization::kFluctuationStd
                        : MaternNormalization::kSpectralDensity;
  s.adjust_for_volume = !matern_unadjusted_volume;
  return s;
}

CorrelatedFieldMaker CorrelatedFieldFlags::maker(std::string_view command) const {
  const auto shapes = subdomain_shapes(command);
  const std::size_t m = shapes.size();
  check_argument(matern_normalization == "spectral-density" ||
                     matern_normalization == "fluctuation-std",
                 command, "--matern-normalization",
                 "must be spectral-density or fluctuation-std, got '" + matern_normalization + "'");
  std::vector<std::string> sub_names;
  if (!names.empty()) {
    sub_names = split(names, '/');
    check_argument(sub_names.size() == m, command, "--names",
                   "has " + std::to_string(sub_names.size()) + " entries, the shape has " +
                       std::to_string(m) + " sub-domains");
  } else {
    check_argument(m <= 26, command, "--names",
                   "is needed for more than 26 sub-domains (the defaults are a to z)");
    for (std::size_t i = 0; i < m; ++i)
      sub_names.push_back(m == 1 ? std::string() : std::string(1, static_cast<char>('a' + i)));
  }
  check_argument(!matern_unadjusted_volume || (!matern.empty() &&
                                               matern_normalization == "spectral-density"),
                 command, "--matern-unadjusted-volume",
                 "applies to --matern with --matern-normalization spectral-density only");
  CorrelatedFieldMaker maker(prefix);
  for (std::size_t i = 0; i < m; ++i) {
    DomainPtr grid = regular_grid(shapes[i]);  // the unit box, as NIFTy's RGSpace default
    if (!matern.empty())
      maker.add_matern_fluctuations(std::move(grid), matern_settings(i, m, command), sub_names[i]);
    else
      maker.add_fluctuations(std::move(grid), fluctuation_settings(i, m, command), sub_names[i]);
  }
  check_finite(offset_mean, command, "--offset-mean");
  maker.set_offset(offset_mean, parse_moments(offset_std, command, "--offset-std"));
  return maker;
}

std::vector<std::string> CorrelatedFieldFlags::fingerprint() const {
  std::vector<std::string> out = {shape,  fluctuations, flexibility, asperity,
                                  slope,  offset_std,   prefix,      names,
                                  matern_normalization, matern_unadjusted_volume ? "u" : "a"};
  out.insert(out.end(), matern.begin(), matern.end());
  return out;
}

}  // namespace infield::apps

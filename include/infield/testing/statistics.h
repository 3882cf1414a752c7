#pragma once
/// @file testing/statistics.h
/// @brief Statistics for tests of random draws: the Kolmogorov-Smirnov statistic and its
/// critical value.

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

namespace infield::testing {

/// Kolmogorov-Smirnov statistic of samples against a continuous CDF.
template <typename Cdf>
double ks_statistic(Eigen::VectorXd samples, Cdf cdf) {
  std::sort(samples.data(), samples.data() + samples.size());
  const double n = static_cast<double>(samples.size());
  double d = 0;
  for (Eigen::Index i = 0; i < samples.size(); ++i) {
    const double f = cdf(samples[i]);
    d = std::max({d, f - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - f});
  }
  return d;
}

/// Critical value of the KS statistic for n draws at significance 1e-3 (asymptotic:
/// sqrt(-log(5e-4) / 2) / sqrt(n)).
inline double ks_critical_1e3(Eigen::Index n) {
  return 1.95 / std::sqrt(static_cast<double>(n));
}

}  // namespace infield::testing

// Correlated fields: Jacobians, the amplitude models against their closed forms, and prior samples
// against the model's own power spectrum (chi-square per |k| bin).
#include "infield/models/correlated_field.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/math/distributions/chi_squared.hpp>
#include <cmath>
#include <random>

#include "infield/error.h"
#include "infield/testing/matchers.h"

namespace infield {
namespace {

using testing::HasConsistentJacobianAtWith;

Field random_excitations(const MultiDomain& multi, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  Field x = Field::normal(multi, rng);
  x *= scale;
  return x;
}

/// Excitations zero except xi, so that every parameter sits at the median of its prior.
Field median_parameters(const MultiDomain& multi, const std::string& xi_key, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  Field x = Field::zeros(multi);
  x.part(xi_key) = standard_normal_vector(x.part(xi_key).size(), rng);
  return x;
}

double lognormal_median(const PriorMoments& m) {
  const double cv = m.std / m.mean;
  return m.mean / std::sqrt(1.0 + cv * cv);
}

struct ModelCase {
  std::string name;
  std::function<CorrelatedField()> make;
};

std::vector<ModelCase> model_cases() {
  return {
      {"nonparametric_1d",
       [] {
         return CorrelatedFieldMaker().add_fluctuations(regular_grid({32}), {}).set_offset(
                    0.5, {1.0, 0.5})
             .finalize();
       }},
      {"nonparametric_2d_non_unit_volume",
       [] {
         return CorrelatedFieldMaker("sky ")
             .add_fluctuations(regular_grid({12, 10}, {0.3, 0.7}), {})
             .set_offset(0.0, {1e-3, 1e-6})
             .finalize();
       }},
      {"no_asperity",
       [] {
         FluctuationSettings s;
         s.asperity.reset();
         return CorrelatedFieldMaker().add_fluctuations(regular_grid({24}), s).set_offset(
                    0.0, {0.5, 0.1})
             .finalize();
       }},
      {"power_law",
       [] {
         FluctuationSettings s;
         s.asperity.reset();
         s.flexibility.reset();
         return CorrelatedFieldMaker().add_fluctuations(regular_grid({16, 16}), s).set_offset(
                    0.0, {0.5, 0.1})
             .finalize();
       }},
      {"matern_density",
       [] {
         MaternSettings m;
         m.renormalize = false;
         return CorrelatedFieldMaker()
             .add_matern_fluctuations(regular_grid({30}, {0.1}), m)
             .set_offset(0.0, {0.5, 0.1})
             .finalize();
       }},
      {"matern_renormalized",
       [] {
         return CorrelatedFieldMaker()
             .add_matern_fluctuations(regular_grid({40}), {})
             .set_offset(1.0, {0.5, 0.1})
             .finalize();
       }},
      {"product_matern_nonparametric",
       [] {
         MaternSettings m;
         m.scale = {0.8, 0.3};
         return CorrelatedFieldMaker()
             .add_matern_fluctuations(regular_grid({10}, {0.2}), m, "x ")
             .add_fluctuations(regular_grid({8}), {}, "y ")
             .set_offset(0.0, {0.5, 0.2})
             .finalize();
       }},
  };
}

class CorrelatedFieldModels : public ::testing::TestWithParam<ModelCase> {};

TEST_P(CorrelatedFieldModels, JacobiansMatchFiniteDifferences) {
  const CorrelatedField cf = GetParam().make();
  JacobianCheckOptions options;
  options.tolerance = 1e-6;
  options.linear.tolerance = 1e-9;
  for (std::uint64_t seed : {1u, 2u}) {
    // Moderate excitations keep exp() in the amplitude away from overflow in the differences.
    const Field x = random_excitations(cf.excitations(), seed, 0.7);
    EXPECT_THAT(*cf.field(), HasConsistentJacobianAtWith(x, options));
    for (std::size_t i = 0; i < cf.subdomains(); ++i) {
      EXPECT_THAT(*cf.amplitude(i), HasConsistentJacobianAtWith(x, options));
      EXPECT_THAT(*cf.power_spectrum(i), HasConsistentJacobianAtWith(x, options));
    }
    EXPECT_THAT(*cf.zero_mode_std(), HasConsistentJacobianAtWith(x, options));
  }
}

TEST_P(CorrelatedFieldModels, SpacesAreTheGeneratorsStory) {
  const CorrelatedField cf = GetParam().make();
  EXPECT_EQ(cf.field()->domain(), Space(cf.excitations()));
  EXPECT_EQ(cf.field()->target(), Space(cf.target()));
  for (std::size_t i = 0; i < cf.subdomains(); ++i) {
    EXPECT_EQ(cf.amplitude(i)->target(), Space(cf.power_space(i)));
    // r_i(0) = 1 by convention: the zero mode is set by zero_mode_std alone.
    const Field r = cf.amplitude(i)->apply(random_excitations(cf.excitations(), 3));
    EXPECT_DOUBLE_EQ(r.values()[0], 1.0);
    EXPECT_TRUE((r.values().array() > 0).all());
  }
}

INSTANTIATE_TEST_SUITE_P(Models, CorrelatedFieldModels, ::testing::ValuesIn(model_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(NonParametricAmplitude, RenormalisedToFluctuations) {
  const CorrelatedField cf =
      CorrelatedFieldMaker().add_fluctuations(regular_grid({20, 16}, {0.1, 0.4}), {}).set_offset(
          0.0, {1.0, 0.5})
          .finalize();
  const auto& ps = dynamic_cast<const PowerSpace&>(*cf.power_space(0));
  for (std::uint64_t seed : {4u, 5u, 6u}) {
    const Field x = random_excitations(cf.excitations(), seed);
    const Eigen::VectorXd r = cf.amplitude(0)->apply(x).values();
    // fluctuations = lognormal(1.0, 0.8) of its excitation.
    const double xi = x.part("fluctuations")[0];
    const double sigma = std::sqrt(std::log1p(0.8 * 0.8));
    const double fluct = std::exp(std::log(1.0) - 0.5 * sigma * sigma + sigma * xi);
    const double total = ps.bin_counts().tail(ps.size() - 1).dot(r.tail(ps.size() - 1).cwiseAbs2());
    EXPECT_NEAR(total, fluct * fluct, 1e-12 * fluct * fluct);
  }
}

TEST(NonParametricAmplitude, AverageSlopeIsLogLogAvgSlope) {
  // The slope remover pins the deviations to zero at the first and last bin k != 0, so between
  // them log r rises by exactly slope * (log k_last - log k_1), with or without flexibility.
  for (bool flexible : {false, true}) {
    FluctuationSettings s;
    if (!flexible) {
      s.asperity.reset();
      s.flexibility.reset();
    }
    const CorrelatedField cf =
        CorrelatedFieldMaker().add_fluctuations(regular_grid({64}), s).set_offset(0.0, {1.0, 0.5})
            .finalize();
    const auto& ps = dynamic_cast<const PowerSpace&>(*cf.power_space(0));
    const Field x = random_excitations(cf.excitations(), 11);
    const Eigen::VectorXd r = cf.amplitude(0)->apply(x).values();
    const double slope = -3.0 + 1.0 * x.part("loglogavgslope")[0];
    const Eigen::Index last = ps.size() - 1;
    const double expected = slope * (std::log(ps.k()[last]) - std::log(ps.k()[1]));
    EXPECT_NEAR(std::log(r[last]) - std::log(r[1]), expected, 1e-10) << "flexible " << flexible;
    if (!flexible) {
      for (Eigen::Index j = 2; j < last; ++j)
        EXPECT_NEAR(std::log(r[j]) - std::log(r[1]),
                    slope * (std::log(ps.k()[j]) - std::log(ps.k()[1])), 1e-10);
    }
  }
}

TEST(MaternAmplitude, MatchesClosedForm) {
  for (bool renormalize : {false, true}) {
    MaternSettings s;
    s.scale = {2.0, 0.5};
    s.cutoff = {3.0, 1.0};
    s.loglogslope = {-2.5, 0.5};
    s.renormalize = renormalize;
    const DomainPtr grid = regular_grid({48}, {0.05});
    const CorrelatedField cf =
        CorrelatedFieldMaker().add_matern_fluctuations(grid, s).set_offset(0.0, {1.0, 0.5})
            .finalize();
    const auto& ps = dynamic_cast<const PowerSpace&>(*cf.power_space(0));
    const Field x = median_parameters(cf.excitations(), "xi", 1);
    const Eigen::VectorXd r = cf.amplitude(0)->apply(x).values();
    const double scale = lognormal_median(s.scale), cutoff = lognormal_median(s.cutoff);
    const double slope = s.loglogslope.mean;
    const double vol_k = harmonic_partner(grid)->cell_volume();
    Eigen::VectorXd shape(ps.size());
    for (Eigen::Index j = 0; j < ps.size(); ++j)
      shape[j] = std::pow(1.0 + std::pow(ps.k()[j] / cutoff, 2), slope / 2);
    double norm = 0.0;
    for (Eigen::Index j = 1; j < ps.size(); ++j) norm += ps.bin_counts()[j] * shape[j] * shape[j];
    EXPECT_DOUBLE_EQ(r[0], 1.0);
    for (Eigen::Index j = 1; j < ps.size(); ++j) {
      const double expected = renormalize ? scale * shape[j] / std::sqrt(norm)
                                          : scale * shape[j] * std::sqrt(vol_k);
      EXPECT_NEAR(r[j], expected, 1e-12 * expected) << "bin " << j << " renormalize " << renormalize;
    }
  }
}

/// Prior samples with fixed amplitude parameters: the field's harmonic coefficients per |k| bin,
/// summed over samples and divided by the model's power, are chi-square with (samples x pixels of
/// the bin) degrees of freedom. Checks the transform's volume factors and the distributor.
TEST(CorrelatedFieldSamples, ReproduceThePowerSpectrum) {
  const DomainPtr grid = regular_grid({24, 20}, {0.3, 0.7});
  const CorrelatedField cf =
      CorrelatedFieldMaker().add_fluctuations(grid, {}).set_offset(2.0, {0.7, 0.2}).finalize();
  const auto& ps = dynamic_cast<const PowerSpace&>(*cf.power_space(0));
  const Field base = random_excitations(cf.excitations(), 21, 0.5);
  Eigen::VectorXd power = cf.power_spectrum(0)->apply(base).values();
  power[0] = std::pow(cf.zero_mode_std()->apply(base).values()[0], 2);

  const int samples = 200;
  const auto to_harmonic = hartley_transform(DomainTuple{grid}, 0);
  const double n = static_cast<double>(grid->size());
  const double vol_x = grid->cell_volume();
  std::mt19937_64 rng(22);
  Eigen::VectorXd sums = Eigen::VectorXd::Zero(ps.size());
  for (int s = 0; s < samples; ++s) {
    Field x = base;
    x.part("xi") = standard_normal_vector(x.part("xi").size(), rng);
    Field field = cf.field()->apply(x);
    field += -2.0;
    // C s = n A xi with C = H / vol_x the unnormalised cas matrix: A xi = H s / (n vol_x).
    const Eigen::VectorXd coeff = to_harmonic->times(field).values() / (n * vol_x);
    for (Eigen::Index p = 0; p < coeff.size(); ++p)
      sums[ps.pixel_bins()[static_cast<std::size_t>(p)]] += coeff[p] * coeff[p];
  }
  const double alpha = 1e-3 / static_cast<double>(ps.size());  // Bonferroni over the bins
  for (Eigen::Index b = 0; b < ps.size(); ++b) {
    const double dof = samples * ps.bin_counts()[b];
    const boost::math::chi_squared chi2(dof);
    const double t = sums[b] / power[b];
    EXPECT_GT(t, boost::math::quantile(chi2, alpha / 2)) << "bin " << b;
    EXPECT_LT(t, boost::math::quantile(boost::math::complement(chi2, alpha / 2))) << "bin " << b;
  }
}

/// The same for a product of two sub-domains: every harmonic coefficient of a prior sample,
/// divided by prod_i r_i(|k_i|) (azm for the zero mode), is standard normal; the sum of squares
/// over all pixels and samples is chi-square.
TEST(CorrelatedFieldSamples, ProductReproducesTheSeparableSpectrum) {
  const DomainPtr gx = regular_grid({12}, {0.3}), gy = regular_grid({10}, {0.7});
  MaternSettings matern;
  matern.scale = {0.8, 0.3};
  const CorrelatedField cf = CorrelatedFieldMaker()
                                 .add_matern_fluctuations(gx, matern, "x ")
                                 .add_fluctuations(gy, {}, "y ")
                                 .set_offset(-1.0, {0.7, 0.2})
                                 .finalize();
  const Field base = random_excitations(cf.excitations(), 23, 0.5);
  const Eigen::VectorXd rx = cf.amplitude(0)->apply(base).values();
  const Eigen::VectorXd ry = cf.amplitude(1)->apply(base).values();
  const double azm = cf.zero_mode_std()->apply(base).values()[0];
  const auto& px = dynamic_cast<const PowerSpace&>(*cf.power_space(0));
  const auto& py = dynamic_cast<const PowerSpace&>(*cf.power_space(1));
  const DomainTuple grids{gx, gy};
  const auto to_harmonic = joint_hartley_transform(grids, 0, 2);
  const double n = static_cast<double>(grids.size());
  const double vol_x = gx->cell_volume() * gy->cell_volume();
  const int samples = 100;
  std::mt19937_64 rng(24);
  double total = 0.0;
  for (int s = 0; s < samples; ++s) {
    Field x = base;
    x.part("xi") = standard_normal_vector(x.part("xi").size(), rng);
    Field field = cf.field()->apply(x);
    field += 1.0;
    const Eigen::VectorXd coeff = to_harmonic->times(field).values() / (n * vol_x);
    for (Eigen::Index i = 0; i < 12; ++i)
      for (Eigen::Index j = 0; j < 10; ++j) {
        const double a = i == 0 && j == 0
                             ? azm
                             : rx[px.pixel_bins()[static_cast<std::size_t>(i)]] *
                                   ry[py.pixel_bins()[static_cast<std::size_t>(j)]];
        total += std::pow(coeff[i * 10 + j] / a, 2);
      }
  }
  const boost::math::chi_squared chi2(samples * n);
  EXPECT_GT(total, boost::math::quantile(chi2, 5e-4));
  EXPECT_LT(total, boost::math::quantile(boost::math::complement(chi2, 5e-4)));
}

TEST(CorrelatedFieldMaker, BadInputsThrow) {
  EXPECT_THROW(CorrelatedFieldMaker().finalize(), InvalidArgument);
  EXPECT_THROW(CorrelatedFieldMaker().add_fluctuations(regular_grid({16}), {}).finalize(),
               InvalidArgument);  // no offset
  EXPECT_THROW(CorrelatedFieldMaker().add_fluctuations(unstructured(16), {}), InvalidArgument);
  EXPECT_THROW(CorrelatedFieldMaker().add_fluctuations(regular_grid({3}), {}), InvalidArgument);
  FluctuationSettings bad;
  bad.fluctuations = {-1.0, 0.5};
  EXPECT_THROW(CorrelatedFieldMaker().add_fluctuations(regular_grid({16}), bad), InvalidArgument);
  FluctuationSettings asperity_alone;
  asperity_alone.flexibility.reset();
  EXPECT_THROW(CorrelatedFieldMaker().add_fluctuations(regular_grid({16}), asperity_alone),
               InvalidArgument);
  MaternSettings bad_matern;
  bad_matern.cutoff = {0.0, 1.0};
  EXPECT_THROW(CorrelatedFieldMaker().add_matern_fluctuations(regular_grid({16}), bad_matern),
               InvalidArgument);
  EXPECT_THROW(CorrelatedFieldMaker().set_offset(std::nan(""), {1.0, 0.5}), InvalidArgument);
  EXPECT_THROW(CorrelatedFieldMaker()
                   .add_fluctuations(regular_grid({16}), {}, "a")
                   .add_fluctuations(regular_grid({16}), {}, "a")
                   .set_offset(0.0, {1.0, 0.5})
                   .finalize(),
               InvalidArgument);
  MaternSettings density;
  density.renormalize = false;
  EXPECT_THROW(CorrelatedFieldMaker()
                   .add_matern_fluctuations(regular_grid({16}), density, "x ")
                   .add_fluctuations(regular_grid({16}), {}, "y ")
                   .set_offset(0.0, {1.0, 0.5})
                   .finalize(),
               InvalidArgument);  // a density-mode spectrum has no k = 0 value for a product
  const CorrelatedField cf =
      CorrelatedFieldMaker().add_fluctuations(regular_grid({16}), {}).set_offset(0.0, {1.0, 0.5})
          .finalize();
  EXPECT_THROW(cf.amplitude(1), InvalidArgument);
}

}  // namespace
}  // namespace infield

// Correlated fields: Jacobians, the amplitude models against their closed forms, and prior samples
// against the model's own power spectrum (chi-square per |k| bin). NIFTy's own outputs are checked
// value by value in correlated_field_nifty_test.cpp.
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
      {"matern_spectral_density",
       [] {
         return CorrelatedFieldMaker()
             .add_matern_fluctuations(regular_grid({30}, {0.1}), {})
             .set_offset(0.0, {0.5, 0.1})
             .finalize();
       }},
      {"matern_unadjusted_volume",
       [] {
         MaternSettings m;
         m.adjust_for_volume = false;
         return CorrelatedFieldMaker()
             .add_matern_fluctuations(regular_grid({30}, {0.1}), m)
             .set_offset(0.0, {0.5, 0.1})
             .finalize();
       }},
      {"matern_fluctuation_std",
       [] {
         MaternSettings m;
         m.normalization = MaternNormalization::kFluctuationStd;
         return CorrelatedFieldMaker()
             .add_matern_fluctuations(regular_grid({40}), m)
             .set_offset(1.0, {0.5, 0.1})
             .finalize();
       }},
      {"product_of_three",
       [] {
         MaternSettings m;
         m.normalization = MaternNormalization::kFluctuationStd;
         return CorrelatedFieldMaker()
             .add_matern_fluctuations(regular_grid({6}, {0.2}), {}, "x ")
             .add_fluctuations(regular_grid({8}), {}, "y ")
             .add_matern_fluctuations(regular_grid({5}), m, "z ")
             .set_offset(0.0, {0.5, 0.2})
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
    for (std::size_t i = 0; i < cf.subdomains(); ++i)
      EXPECT_THAT(*cf.normalized_amplitude(i), HasConsistentJacobianAtWith(x, options));
    if (cf.subdomains() == 1) {
      EXPECT_THAT(*cf.amplitude(), HasConsistentJacobianAtWith(x, options));
      EXPECT_THAT(*cf.power_spectrum(), HasConsistentJacobianAtWith(x, options));
    }
    EXPECT_THAT(*cf.zero_mode_std(), HasConsistentJacobianAtWith(x, options));
  }
}

TEST_P(CorrelatedFieldModels, SpacesAreTheGeneratorsStory) {
  const CorrelatedField cf = GetParam().make();
  EXPECT_EQ(cf.field()->domain(), Space(cf.excitations()));
  EXPECT_EQ(cf.field()->target(), Space(cf.target()));
  const Field x = random_excitations(cf.excitations(), 3);
  const double azm = cf.zero_mode_std()->apply(x).values()[0];
  for (std::size_t i = 0; i < cf.subdomains(); ++i) {
    EXPECT_EQ(cf.normalized_amplitude(i)->target(), Space(cf.power_space(i)));
    // NIFTy's convention: bin 0 of a normalised amplitude is the sub-domain's volume (1 for a
    // Matérn spectrum without adjust_for_volume).
    const Field n = cf.normalized_amplitude(i)->apply(x);
    const DomainPtr& grid = cf.target().domains()[i];
    const double volume = static_cast<double>(grid->size()) * grid->cell_volume();
    const std::string& name = GetParam().name;
    EXPECT_DOUBLE_EQ(n.values()[0], name == "matern_unadjusted_volume" ? 1.0 : volume);
    EXPECT_TRUE((n.values().array() > 0).all());
  }
  if (cf.subdomains() == 1) {
    // amplitude() = azm * normalized_amplitude(0).
    const Eigen::VectorXd a = cf.amplitude()->apply(x).values();
    const Eigen::VectorXd n = cf.normalized_amplitude(0)->apply(x).values();
    EXPECT_LE((a - azm * n).cwiseAbs().maxCoeff(), 1e-12 * a.cwiseAbs().maxCoeff());
  } else {
    EXPECT_THROW(cf.amplitude(), InvalidArgument);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, CorrelatedFieldModels, ::testing::ValuesIn(model_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(NonParametricAmplitude, RenormalisedToFluctuations) {
  // a(k) = V fluctuations sqrt(p(k) / sum p): the modes k != 0 of the field (a / V each) carry a
  // variance of fluctuations^2 whatever the grid's volume V.
  const DomainPtr grid = regular_grid({20, 16}, {0.1, 0.4});
  const double volume = 20 * 0.1 * 16 * 0.4;
  const CorrelatedField cf =
      CorrelatedFieldMaker().add_fluctuations(grid, {}).set_offset(0.0, {1.0, 0.5}).finalize();
  const auto& ps = dynamic_cast<const PowerSpace&>(*cf.power_space(0));
  for (std::uint64_t seed : {4u, 5u, 6u}) {
    const Field x = random_excitations(cf.excitations(), seed);
    const Eigen::VectorXd a = cf.amplitude()->apply(x).values() / volume;
    // fluctuations = lognormal(1.0, 0.8) of its excitation.
    const double xi = x.part("fluctuations")[0];
    const double sigma = std::sqrt(std::log1p(0.8 * 0.8));
    const double fluct = std::exp(std::log(1.0) - 0.5 * sigma * sigma + sigma * xi);
    const double total = ps.bin_counts().tail(ps.size() - 1).dot(a.tail(ps.size() - 1).cwiseAbs2());
    EXPECT_NEAR(total, fluct * fluct, 1e-12 * fluct * fluct);
    // Bin 0: the zero mode's std times the volume.
    EXPECT_NEAR(a[0], cf.zero_mode_std()->apply(x).values()[0], 1e-14);
  }
}

TEST(NonParametricAmplitude, AverageSlopeIsThePowerSpectrumsLogLogAvgSlope) {
  // The slope remover pins the deviations to zero at the first and last bin k != 0, so between
  // them the log power spectrum rises by exactly slope * (log k_last - log k_1), with or without
  // flexibility: loglogavgslope is the power spectrum's slope (NIFTy's), not the amplitude's.
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
    const Eigen::VectorXd p = cf.power_spectrum()->apply(x).values();
    const double slope = -3.0 + 1.0 * x.part("loglogavgslope")[0];
    const Eigen::Index last = ps.size() - 1;
    const double expected = slope * (std::log(ps.k()[last]) - std::log(ps.k()[1]));
    EXPECT_NEAR(std::log(p[last]) - std::log(p[1]), expected, 1e-10) << "flexible " << flexible;
    if (!flexible) {
      for (Eigen::Index j = 2; j < last; ++j)
        EXPECT_NEAR(std::log(p[j]) - std::log(p[1]),
                    slope * (std::log(ps.k()[j]) - std::log(ps.k()[1])), 1e-10);
    }
  }
}

TEST(MaternAmplitude, MatchesClosedForm) {
  // NIFTy: a(k) = sqrt(V) scale (1 + (k / cutoff)^2)^(slope / 4) (V = 1 without
  // adjust_for_volume); Infield's kFluctuationStd: V scale shape / sqrt(sum_{k != 0} shape^2).
  struct Variant {
    MaternNormalization normalization;
    bool adjust_for_volume;
  };
  for (const Variant v : {Variant{MaternNormalization::kSpectralDensity, true},
                          Variant{MaternNormalization::kSpectralDensity, false},
                          Variant{MaternNormalization::kFluctuationStd, true}}) {
    MaternSettings s;
    s.scale = {2.0, 0.5};
    s.cutoff = {3.0, 1.0};
    s.loglogslope = {-5.0, 1.0};
    s.normalization = v.normalization;
    s.adjust_for_volume = v.adjust_for_volume;
    const DomainPtr grid = regular_grid({48}, {0.05});
    const double volume = 48 * 0.05;
    const CorrelatedField cf =
        CorrelatedFieldMaker().add_matern_fluctuations(grid, s).set_offset(0.0, {1.0, 0.5})
            .finalize();
    const auto& ps = dynamic_cast<const PowerSpace&>(*cf.power_space(0));
    const Field x = median_parameters(cf.excitations(), "xi", 1);
    const Eigen::VectorXd a = cf.amplitude()->apply(x).values();
    const double scale = lognormal_median(s.scale), cutoff = lognormal_median(s.cutoff);
    const double azm = lognormal_median({1.0, 0.5});
    const double slope = s.loglogslope.mean;
    Eigen::VectorXd shape(ps.size());
    for (Eigen::Index j = 0; j < ps.size(); ++j)
      shape[j] = std::pow(1.0 + std::pow(ps.k()[j] / cutoff, 2), slope / 4);
    double norm = 0.0;
    for (Eigen::Index j = 1; j < ps.size(); ++j) norm += ps.bin_counts()[j] * shape[j] * shape[j];
    const bool renormalised = v.normalization == MaternNormalization::kFluctuationStd;
    const double v_used = v.adjust_for_volume ? volume : 1.0;
    EXPECT_NEAR(a[0], v_used * azm, 1e-12 * v_used * azm);
    for (Eigen::Index j = 1; j < ps.size(); ++j) {
      const double expected = renormalised ? volume * scale * shape[j] / std::sqrt(norm)
                                           : std::sqrt(v_used) * scale * shape[j];
      EXPECT_NEAR(a[j], expected, 1e-12 * expected)
          << "bin " << j << " renormalised " << renormalised << " adjust " << v.adjust_for_volume;
    }
  }
}

/// Prior samples with fixed amplitude parameters: the field's harmonic coefficients (H s with the
/// position-space Hartley transform, which gives A .* xi exactly) per |k| bin, summed over samples
/// and divided by the model's power, are chi-square with (samples x pixels of the bin) degrees of
/// freedom. Checks the transform's volume factors and the distributor.
TEST(CorrelatedFieldSamples, ReproduceThePowerSpectrum) {
  const DomainPtr grid = regular_grid({24, 20}, {0.3, 0.7});
  const CorrelatedField cf =
      CorrelatedFieldMaker().add_fluctuations(grid, {}).set_offset(2.0, {0.7, 0.2}).finalize();
  const auto& ps = dynamic_cast<const PowerSpace&>(*cf.power_space(0));
  const Field base = random_excitations(cf.excitations(), 21, 0.5);
  const Eigen::VectorXd power = cf.power_spectrum()->apply(base).values();

  const int samples = 200;
  const auto to_harmonic = hartley_transform(DomainTuple{grid}, 0);
  std::mt19937_64 rng(22);
  Eigen::VectorXd sums = Eigen::VectorXd::Zero(ps.size());
  for (int s = 0; s < samples; ++s) {
    Field x = base;
    x.part("xi") = standard_normal_vector(x.part("xi").size(), rng);
    Field field = cf.field()->apply(x);
    field += -2.0;
    const Eigen::VectorXd coeff = to_harmonic->times(field).values();
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

/// The same for a product of two sub-domains: every harmonic coefficient of a prior sample (per
/// sub-domain Hartley transforms), divided by azm n_x(|k_x|) n_y(|k_y|), is standard normal; the
/// sum of squares over all pixels and samples is chi-square. Modes with both k != 0 carry 1 / azm.
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
  const Eigen::VectorXd nx = cf.normalized_amplitude(0)->apply(base).values();
  const Eigen::VectorXd ny = cf.normalized_amplitude(1)->apply(base).values();
  const double azm = cf.zero_mode_std()->apply(base).values()[0];
  const auto& px = dynamic_cast<const PowerSpace&>(*cf.power_space(0));
  const auto& py = dynamic_cast<const PowerSpace&>(*cf.power_space(1));
  const DomainTuple grids{gx, gy};
  // Back by the per-domain transforms composed, not the model's own two-domain transform (any
  // symmetric C with C^2 = n would give A .* xi back through itself).
  const LinearOperatorPtr first = hartley_transform(grids, 0);
  const LinearOperatorPtr to_harmonic =
      compose(hartley_transform(first->target().tuple(), 1), first);
  const int samples = 100;
  std::mt19937_64 rng(24);
  double total = 0.0;
  for (int s = 0; s < samples; ++s) {
    Field x = base;
    x.part("xi") = standard_normal_vector(x.part("xi").size(), rng);
    Field field = cf.field()->apply(x);
    field += 1.0;
    const Eigen::VectorXd coeff = to_harmonic->times(field).values();
    for (Eigen::Index i = 0; i < 12; ++i)
      for (Eigen::Index j = 0; j < 10; ++j) {
        const double a = azm * nx[px.pixel_bins()[static_cast<std::size_t>(i)]] *
                         ny[py.pixel_bins()[static_cast<std::size_t>(j)]];
        total += std::pow(coeff[i * 10 + j] / a, 2);
      }
  }
  const double n = static_cast<double>(grids.size());
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
  const CorrelatedField cf =
      CorrelatedFieldMaker().add_fluctuations(regular_grid({16}), {}).set_offset(0.0, {1.0, 0.5})
          .finalize();
  EXPECT_THROW(cf.normalized_amplitude(1), InvalidArgument);
}

}  // namespace
}  // namespace infield

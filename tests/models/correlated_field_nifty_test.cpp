// The correlated field against NIFTy 8.5.7's own outputs (../shared/benchmarks/cf-forward, made by
// make_reference.py there): at NIFTy's excitations our field and power spectrum must equal NIFTy's
// to 1e-10 relative. The small cases are copied into tests/data/cf-forward; the large ones are read
// from ../shared when it is present and skipped otherwise. Those are all unit boxes, so
// tests/data/cf-forward-volumes (made by its make_reference.py with NIFTy 8.5.7) adds grids with
// other volumes, Matérn without adjust_for_volume and products with a free zero mode.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>

#include "infield/models/correlated_field.h"
#include "infield/npy.h"
#include "infield/pointwise.h"

namespace infield {
namespace {

namespace fs = std::filesystem;

struct ForwardCase {
  std::string name;
  bool in_tests_data;  // copied into tests/data; otherwise read from ../shared
  std::function<CorrelatedFieldMaker()> make;
  std::string folder = "cf-forward";
};

/// NIFTy's RGSpace(shape, distances = 1 / shape): the unit box.
DomainPtr unit_box(std::vector<Eigen::Index> shape) { return regular_grid(std::move(shape)); }

/// getting_started_3's priors, as make_reference.py.
CorrelatedFieldMaker fluctuations_case(std::vector<Eigen::Index> shape) {
  CorrelatedFieldMaker maker("cf");
  maker.add_fluctuations(unit_box(std::move(shape)), FluctuationSettings{});
  maker.set_offset(0.0, {1e-3, 1e-6});
  return maker;
}

CorrelatedFieldMaker matern_case(std::vector<Eigen::Index> shape) {
  MaternSettings m;
  m.scale = {1.0, 0.5};
  m.cutoff = {8.0, 3.0};
  m.loglogslope = {-4.0, 0.5};
  CorrelatedFieldMaker maker("cf");
  maker.add_matern_fluctuations(unit_box(std::move(shape)), m);
  maker.set_offset(0.0, {1e-3, 1e-6});
  return maker;
}

/// The two sub-domains' priors of make_reference.py's product (a, b).
std::pair<FluctuationSettings, FluctuationSettings> product_settings() {
  FluctuationSettings a, b;
  a.fluctuations = {1.0, 0.5};
  a.flexibility = PriorMoments{1.0, 0.5};
  a.asperity = PriorMoments{0.3, 0.2};
  a.loglogavgslope = {-3.0, 0.5};
  b.fluctuations = {0.7, 0.3};
  b.flexibility = PriorMoments{0.5, 0.2};
  b.asperity = PriorMoments{0.2, 0.1};
  b.loglogavgslope = {-2.0, 0.5};
  return {a, b};
}

CorrelatedFieldMaker product_case() {
  const auto [a, b] = product_settings();
  CorrelatedFieldMaker maker("cf");
  maker.add_fluctuations(unit_box({64}), a, "a");
  maker.add_fluctuations(unit_box({48}), b, "b");
  maker.set_offset(0.0, {1e-3, 1e-6});
  return maker;
}

/// tests/data/cf-forward-volumes: offset 1.0, zero mode (0.7, 0.2).
CorrelatedFieldMaker volume_case(const std::string& name) {
  CorrelatedFieldMaker maker("cf");
  MaternSettings m;
  m.scale = {1.0, 0.5};
  m.cutoff = {3.0, 1.0};
  m.loglogslope = {-4.0, 0.5};
  if (name == "rect24x20_volume") {
    maker.add_fluctuations(regular_grid({24, 20}, {0.3, 0.7}), FluctuationSettings{});
  } else if (name == "matern40_volume" || name == "matern40_unadjusted") {
    m.adjust_for_volume = name == "matern40_volume";
    maker.add_matern_fluctuations(regular_grid({40}, {0.05}), m);
  } else if (name == "product12x10_volume") {
    const auto [a, b] = product_settings();
    maker.add_fluctuations(regular_grid({12}, {0.3}), a, "a");
    maker.add_fluctuations(regular_grid({10}, {0.7}), b, "b");
  } else {  // product_matern12x10_volume
    maker.add_matern_fluctuations(regular_grid({12}, {0.3}), m, "a");
    maker.add_fluctuations(regular_grid({10}, {0.7}), FluctuationSettings{}, "b");
  }
  maker.set_offset(1.0, {0.7, 0.2});
  return maker;
}

std::vector<ForwardCase> forward_cases() {
  std::vector<ForwardCase> cases = {
      {"sq64", true, [] { return fluctuations_case({64, 64}); }},
      {"line4096", true, [] { return fluctuations_case({4096}); }},
      {"cube32", true, [] { return fluctuations_case({32, 32, 32}); }},
      {"matern_line1024", true, [] { return matern_case({1024}); }},
      {"matern_sq128", true, [] { return matern_case({128, 128}); }},
      {"product64x48", true, product_case},
      {"sq256", false, [] { return fluctuations_case({256, 256}); }},
      {"rect192x320", false, [] { return fluctuations_case({192, 320}); }},
      {"sq512", false, [] { return fluctuations_case({512, 512}); }},
  };
  for (const std::string name : {"rect24x20_volume", "matern40_volume", "matern40_unadjusted",
                                  "product12x10_volume", "product_matern12x10_volume"})
    cases.push_back({name, true, [name] { return volume_case(name); }, "cf-forward-volumes"});
  return cases;
}

fs::path case_directory(const ForwardCase& c) {
  if (c.in_tests_data) return fs::path(INFIELD_SOURCE_DIR) / "tests/data" / c.folder / c.name;
  return fs::path(INFIELD_SHARED_DIR) / "benchmarks/cf-forward" / c.name;
}

/// max |ours - theirs| / max |theirs|.
double relative_error(const Eigen::VectorXd& ours, const Eigen::VectorXd& theirs) {
  return (ours - theirs).cwiseAbs().maxCoeff() / theirs.cwiseAbs().maxCoeff();
}

std::string fmt_error(double e) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", e);
  return buf;
}

class NiftyForward : public ::testing::TestWithParam<ForwardCase> {};

TEST_P(NiftyForward, FieldAndPowerSpectrumEqualNiftys) {
  const ForwardCase& c = GetParam();
  const fs::path dir = case_directory(c);
  if (!fs::exists(dir / "field.npy")) {
    ASSERT_FALSE(c.in_tests_data) << dir << " is part of the repository and missing";
    GTEST_SKIP() << dir << " not present (../shared holds the large cases)";
  }
  const CorrelatedField cf = c.make().finalize();

  // NIFTy's excitations, one file per key of our MultiDomain: same keys, same shapes.
  Field xi = Field::zeros(cf.excitations());
  for (const MultiDomain::Entry& entry : cf.excitations().entries()) {
    const std::string& key = entry.key;
    const NpyArray a = read_npy(dir / (key + ".npy"));
    ASSERT_EQ(a.values.size(), entry.domain.size()) << key;
    EXPECT_EQ(a.shape, entry.domain.shape()) << key;
    xi.part(key) = a.values;
  }

  const Eigen::VectorXd field = cf.field()->apply(xi).values();
  const NpyArray nifty_field = read_npy(dir / "field.npy");
  ASSERT_EQ(field.size(), nifty_field.values.size());
  const double field_error = relative_error(field, nifty_field.values);
  RecordProperty("field_relative_error", fmt_error(field_error));
  EXPECT_LE(field_error, 1e-10);

  // NIFTy's power_spectrum; for the product the first sub-domain's normalised amplitude squared.
  const OperatorPtr spectrum_op = cf.subdomains() == 1
                                ? cf.power_spectrum()
                                : power(cf.normalized_amplitude(0), 2.0);
  const Eigen::VectorXd spectrum = spectrum_op->apply(xi).values();
  const NpyArray nifty_power = read_npy(dir / "power.npy");
  ASSERT_EQ(spectrum.size(), nifty_power.values.size());
  EXPECT_LE(relative_error(spectrum, nifty_power.values), 1e-10);
  // Relative per bin too: the spectrum spans many decades.
  const Eigen::VectorXd per_bin =
      (spectrum - nifty_power.values).cwiseAbs().cwiseQuotient(nifty_power.values.cwiseAbs());
  RecordProperty("power_relative_error_per_bin", fmt_error(per_bin.maxCoeff()));
  EXPECT_LE(per_bin.maxCoeff(), 1e-10);

  const auto& ps = dynamic_cast<const PowerSpace&>(*cf.power_space(0));
  const NpyArray k = read_npy(dir / "k.npy");
  ASSERT_EQ(ps.k().size(), k.values.size());
  EXPECT_LE((ps.k() - k.values).cwiseAbs().maxCoeff(), 1e-10 * k.values.maxCoeff());
}

INSTANTIATE_TEST_SUITE_P(CfForward, NiftyForward, ::testing::ValuesIn(forward_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace infield

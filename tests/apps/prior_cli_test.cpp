// `infield prior`: reproduces NIFTy 8.5.7's correlated field (../shared/benchmarks/cf-forward) at its
// excitations to 1e-10 for every case, draws prior samples whose excitations it writes back
// (and reads again to the same fields), and rejects bad input with a clear message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "cli_run.h"
#include "infield/npy.h"

namespace infield {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct PriorCase {
  std::string name;
  bool in_tests_data;
  std::string flags;  // the model in `infield prior`'s flags (make_reference.py's hyperparameters)
};

const std::string kMatern = " --matern 1.0,0.5 8.0,3.0 -4.0,0.5";

std::vector<PriorCase> prior_cases() {
  return {
      {"sq64", true, "--shape 64,64"},
      {"line4096", true, "--shape 4096"},
      {"cube32", true, "--shape 32,32,32"},
      {"matern_line1024", true, "--shape 1024" + kMatern},
      {"matern_sq128", true, "--shape 128,128" + kMatern},
      {"product64x48", true,
       "--shape 64/48 --names a/b --fluctuations 1.0,0.5/0.7,0.3 --flexibility 1.0,0.5/0.5,0.2 "
       "--asperity 0.3,0.2/0.2,0.1 --slope -3.0,0.5/-2.0,0.5"},
      {"sq256", false, "--shape 256,256"},
      {"rect192x320", false, "--shape 192,320"},
      {"sq512", false, "--shape 512,512"},
  };
}

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("infield_prior_" + std::to_string(::getpid()) + "_" +
                                              name);
  fs::remove_all(dir);
  return dir;
}

double relative_error(const Eigen::VectorXd& ours, const Eigen::VectorXd& theirs) {
  return (ours - theirs).cwiseAbs().maxCoeff() / theirs.cwiseAbs().maxCoeff();
}

class PriorCli : public ::testing::TestWithParam<PriorCase> {};

TEST_P(PriorCli, ReproducesNiftysFieldAtItsExcitations) {
  const PriorCase& c = GetParam();
  const fs::path dir = c.in_tests_data
                           ? fs::path(INFIELD_SOURCE_DIR) / "tests/data/cf-forward" / c.name
                           : fs::path(INFIELD_SHARED_DIR) / "benchmarks/cf-forward" / c.name;
  if (!fs::exists(dir / "field.npy")) {
    ASSERT_FALSE(c.in_tests_data) << dir << " is part of the repository and missing";
    GTEST_SKIP() << dir << " not present (../shared holds the large cases)";
  }
  const fs::path out = temp_dir(c.name);
  const auto r = testing::run_cli("prior " + c.flags + " --prefix cf --excitations " +
                                  dir.string() + " --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  const NpyArray field = read_npy(out / "field.npy");
  const NpyArray nifty = read_npy(dir / "field.npy");
  EXPECT_EQ(field.shape, nifty.shape);
  ASSERT_EQ(field.values.size(), nifty.values.size());
  EXPECT_LE(relative_error(field.values, nifty.values), 1e-10);
  const NpyArray power = read_npy(out / "power.npy");
  const NpyArray nifty_power = read_npy(dir / "power.npy");
  ASSERT_EQ(power.values.size(), nifty_power.values.size());
  EXPECT_LE(relative_error(power.values, nifty_power.values), 1e-10);
  EXPECT_EQ(fs::exists(out / "prior.png"), field.shape.size() <= 2);
  fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(CfForward, PriorCli, ::testing::ValuesIn(prior_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(PriorCliSamples, WritesExcitationsThatGiveTheSameFields) {
  const fs::path out = temp_dir("samples"), again = temp_dir("again");
  const std::string model = "--shape 32,24 --slope -4,0.5 --offset-mean 1.5 ";
  auto r = testing::run_cli("prior " + model + "--seed 7 --n 3 --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  const NpyArray fields = read_npy(out / "field.npy");
  EXPECT_EQ(fields.shape, (std::vector<Eigen::Index>{3, 32, 24}));
  EXPECT_TRUE(fs::exists(out / "prior.png"));
  EXPECT_EQ(read_npy(out / "excitations" / "xi.npy").shape,
            (std::vector<Eigen::Index>{3, 32, 24}));
  EXPECT_EQ(read_npy(out / "power.npy").shape[0], 3);
  // Three different prior samples around the offset mean.
  EXPECT_GT((fields.values.segment(0, 768) - fields.values.segment(768, 768)).norm(), 1.0);
  EXPECT_NEAR(fields.values.mean(), 1.5, 0.1);  // the zero mode's std is 1e-3

  r = testing::run_cli("prior " + model + "--excitations " + (out / "excitations").string() +
                       " --out " + again.string());
  ASSERT_EQ(r.status, 0) << r.output;
  const NpyArray same = read_npy(again / "field.npy");
  EXPECT_EQ(same.shape, fields.shape);
  EXPECT_EQ(same.values, fields.values);
  fs::remove_all(out);
  fs::remove_all(again);
}

TEST(PriorCliSamples, NarrowGridsGetAFigure) {
  // One column: the figure's colour bar is at its narrowest.
  const fs::path out = temp_dir("narrow");
  const auto r = testing::run_cli("prior --shape 200,1 --flexibility none --asperity none "
                                  "--seed 2 --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(out / "prior.png"));
  fs::remove_all(out);
}

TEST(PriorCliSamples, OneDimensionalSamplesGetAFigure) {
  const fs::path out = temp_dir("line");
  const auto r = testing::run_cli("prior --shape 256 --seed 1 --n 4 --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_npy(out / "field.npy").shape, (std::vector<Eigen::Index>{4, 256}));
  EXPECT_TRUE(fs::exists(out / "prior.png"));
  fs::remove_all(out);
}

TEST(PriorCliErrors, BadInputFailsWithAClearMessage) {
  const fs::path out = temp_dir("errors");
  const fs::path sq64 = fs::path(INFIELD_SOURCE_DIR) / "tests/data/cf-forward/sq64";
  // Without --prefix cf the keys are xi, zeromode, ...: the message names them and the files.
  auto r = testing::run_cli("prior --shape 64,64 --excitations " + sq64.string() + " --out " +
                            out.string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("has no asperity.npy"));
  EXPECT_THAT(r.output, HasSubstr("cfxi.npy"));
  // The excitations of another grid.
  r = testing::run_cli("prior --shape 32,32 --prefix cf --excitations " + sq64.string() +
                       " --out " + out.string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("cfspectrum.npy has shape (2, 455), the key needs (2, 133)"));
  // Neither or both of --excitations and --seed.
  r = testing::run_cli("prior --shape 16 --out " + out.string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("give exactly one"));
  r = testing::run_cli("prior --shape 16 --seed 1 --excitations " + sq64.string() + " --out " +
                       out.string());
  EXPECT_NE(r.status, 0);
  // Malformed priors and shapes.
  r = testing::run_cli("prior --shape 16 --seed 1 --fluctuations 1.0 --out " + out.string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("MEAN,STD"));
  r = testing::run_cli("prior --shape 16/8 --seed 1 --slope -3,1/-2,1/-1,1 --out " + out.string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("sub-domains"));
  r = testing::run_cli("prior --shape 16,x --seed 1 --out " + out.string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("--shape"));
  r = testing::run_cli("prior --shape 16/8 --names a/b/c --seed 1 --out " + out.string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("--names"));
  r = testing::run_cli("prior --shape 16 --matern 1,0.5 3,x -4,1 --seed 1 --out " + out.string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("--matern"));
  r = testing::run_cli("prior --shape 16 --flexibility none --seed 1 --out " + out.string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("--asperity"));
  r = testing::run_cli("prior --shape 100000,100000 --seed 1 --out " + out.string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("cells"));
  r = testing::run_cli("prior --shape 16 --n 3 --excitations " + sq64.string() + " --out " +
                       out.string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("--n"));
  // Files that disagree on N: one key with two fields, the others with one.
  const fs::path mixed = temp_dir("mixed");
  fs::create_directories(mixed);
  for (const auto& f : fs::directory_iterator(sq64))
    if (f.path().extension() == ".npy") fs::copy_file(f.path(), mixed / f.path().filename());
  const NpyArray slope = read_npy(sq64 / "cfloglogavgslope.npy");
  Eigen::VectorXd two(2);
  two << slope.values[0], slope.values[0];
  fs::remove(mixed / "cfloglogavgslope.npy");
  write_npy(mixed / "cfloglogavgslope.npy", {2}, two);
  r = testing::run_cli("prior --shape 64,64 --prefix cf --excitations " + mixed.string() +
                       " --out " + out.string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("holds 2 fields"));
  fs::remove_all(mixed);
  fs::remove_all(out);
}

}  // namespace
}  // namespace infield

// Runs `infield mkde fit | sample | logpdf` and checks what they write and how they fail.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "cli_run.h"
#include "infield/npy.h"

namespace infield {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using testing::CliRun;

CliRun run(const std::string& args) { return testing::run_cli("mkde " + args); }

class MkdeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("infield_mkde_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    std::mt19937_64 rng(8);
    std::normal_distribution<double> g;
    Eigen::VectorXd pts(2 * 800);
    for (Eigen::Index p = 0; p < 800; ++p) {
      const double side = p % 2 ? 1.0 : -1.0;
      pts[2 * p] = side + 0.3 * g(rng);
      pts[2 * p + 1] = 0.5 * side + 0.4 * g(rng);
    }
    write_npy(dir_ / "points.npy", {800, 2}, pts);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(MkdeCli, FitSampleLogpdf) {
  const CliRun fit = run("fit --points " + path("points.npy") +
                         " --cells 24 --samples 4 --iterations 2 --seed 3 --threads 1 --out " +
                         path("model"));
  ASSERT_EQ(fit.status, 0) << fit.output;
  EXPECT_THAT(fit.output, HasSubstr("KL iteration 2"));
  const NpyArray mean = read_npy(dir_ / "model" / "density_mean.npy");
  const NpyArray std = read_npy(dir_ / "model" / "density_std.npy");
  EXPECT_EQ(mean.shape, (std::vector<Eigen::Index>{24, 24}));
  EXPECT_EQ(std.shape, mean.shape);
  const auto grid = nlohmann::json::parse(std::ifstream(dir_ / "model" / "grid.json"));
  EXPECT_EQ(grid["shape"], nlohmann::json({24, 24}));
  const double volume = grid["cell_volume"].get<double>();
  EXPECT_NEAR(mean.values.sum() * volume, 1.0, 1e-9);
  std::ifstream png(dir_ / "model" / "density.png", std::ios::binary);
  char magic[4] = {};
  png.read(magic, 4);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");

  const CliRun sample =
      run("sample --model " + path("model") + " --n 500 --seed 1 --out " + path("draws.npy"));
  ASSERT_EQ(sample.status, 0) << sample.output;
  const NpyArray draws = read_npy(dir_ / "draws.npy");
  ASSERT_EQ(draws.shape, (std::vector<Eigen::Index>{500, 2}));
  for (Eigen::Index p = 0; p < 500; ++p)
    for (int a = 0; a < 2; ++a) {
      EXPECT_GE(draws.values[2 * p + a], grid["bounds"][a][0].get<double>());
      EXPECT_LE(draws.values[2 * p + a], grid["bounds"][a][1].get<double>());
    }

  Eigen::VectorXd queries(4);
  queries << -1.0, -0.5, 100.0, 0.0;
  write_npy(dir_ / "queries.npy", {2, 2}, queries);
  const CliRun logpdf = run("logpdf --model " + path("model") + " --points " + path("queries.npy") +
                            " --out " + path("logpdf.npy"));
  ASSERT_EQ(logpdf.status, 0) << logpdf.output;
  const NpyArray l = read_npy(dir_ / "logpdf.npy");
  ASSERT_EQ(l.values.size(), 2);
  EXPECT_TRUE(std::isfinite(l.values[0]));
  EXPECT_GT(l.values[0], std::log(0.05));  // at a mode of the mixture
  EXPECT_EQ(l.values[1], -std::numeric_limits<double>::infinity());
}

TEST_F(MkdeCli, FitWithGeoVI) {
  const CliRun fit = run("fit --points " + path("points.npy") +
                         " --cells 24 --samples 4 --iterations 2 --seed 3 --threads 1 --method "
                         "geovi --geovi-steps 10 --out " + path("model"));
  ASSERT_EQ(fit.status, 0) << fit.output;
  EXPECT_THAT(fit.output, HasSubstr("geoVI"));
  const auto grid = nlohmann::json::parse(std::ifstream(dir_ / "model" / "grid.json"));
  EXPECT_EQ(grid["method"], "geovi");
  const NpyArray mean = read_npy(dir_ / "model" / "density_mean.npy");
  EXPECT_NEAR(mean.values.sum() * grid["cell_volume"].get<double>(), 1.0, 1e-9);
  const CliRun bad = run("fit --points " + path("points.npy") + " --method mcmc --out " +
                         path("bad"));
  EXPECT_NE(bad.status, 0);
  EXPECT_THAT(bad.output, HasSubstr("--method"));
}

TEST_F(MkdeCli, BadInputFailsWithAClearMessage) {
  write_npy(dir_ / "nan.npy", {3, 2}, Eigen::VectorXd::Constant(6, std::nan("")));
  write_npy(dir_ / "flat.npy", {6}, Eigen::VectorXd::Ones(6));
  write_npy(dir_ / "six.npy", {4, 6}, Eigen::VectorXd::LinSpaced(24, 0, 1));
  write_npy(dir_ / "one.npy", {1, 2}, Eigen::VectorXd::Ones(2));
  struct Case {
    std::string args, expected;
  };
  const std::string fit = "fit --out " + path("bad") + " --points ";
  const std::vector<Case> cases = {
      {fit + path("nan.npy"), "--points"},
      {fit + path("flat.npy"), "2-D"},
      {fit + path("six.npy"), "1 to 5"},
      {fit + path("one.npy"), "at least 2 points"},
      {fit + path("points.npy") + " --cells 0", "--cells"},
      {fit + path("points.npy") + " --samples 3", "--samples"},
      {fit + path("points.npy") + " --pad -0.5", "padding"},
      {fit + path("missing.npy"), "missing.npy"},
      {"sample --model " + path("nowhere") + " --out " + path("x.npy"), "nowhere"},
  };
  for (const Case& c : cases) {
    const CliRun r = run(c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_THAT(r.output, HasSubstr(c.expected)) << c.args << "\n" << r.output;
  }
}

}  // namespace
}  // namespace infield

// Runs `infield reconstruct` on a small synthetic problem and checks what it writes, that a
// resumed run repeats the finished one, and that bad input fails with a clear message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "cli_run.h"
#include "infield/npy.h"

namespace infield {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using testing::CliRun;

CliRun run(const std::string& args) { return testing::run_cli("reconstruct " + args); }

constexpr int kN = 32;

/// Unobserved block where the field crosses zero, so the sigmoid response is not saturated and
/// the missing data show up as posterior uncertainty.
bool in_hole(int r, int c) { return r >= 13 && r < 20 && c >= 10 && c < 18; }

class ReconstructCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("infield_reconstruct_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    // A smooth field through the sigmoid response, half the pixels observed outside a hole.
    std::mt19937_64 rng(5);
    std::normal_distribution<double> noise(0.0, 0.05);
    std::bernoulli_distribution coin(0.6);
    truth_.resize(kN * kN);
    Eigen::VectorXd mask(kN * kN);
    std::vector<double> data;
    for (int r = 0; r < kN; ++r)
      for (int c = 0; c < kN; ++c) {
        const double f = 1.5 * std::sin(2 * M_PI * r / kN) * std::cos(4 * M_PI * c / kN);
        const double s = 0.5 + 0.5 * std::tanh(f);
        truth_[r * kN + c] = s;
        const bool hole = in_hole(r, c);
        const bool seen = !hole && coin(rng);
        mask[r * kN + c] = seen;
        if (seen) data.push_back(s + noise(rng));
      }
    data_ = Eigen::Map<Eigen::VectorXd>(data.data(), static_cast<Eigen::Index>(data.size()));
    write_npy(dir_ / "truth.npy", {kN, kN}, truth_);
    write_npy(dir_ / "mask.npy", {kN, kN}, mask);
    write_npy(dir_ / "data.npy", {data_.size()}, data_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// The command line with the test's defaults, each replaced by an entry of `overrides` (flag ->
  /// value; an empty value gives a bare flag).
  std::string args(const std::string& out,
                   const std::map<std::string, std::string>& overrides = {}) const {
    std::map<std::string, std::string> flags = {
        {"--data", (dir_ / "data.npy").string()}, {"--mask", (dir_ / "mask.npy").string()},
        {"--truth", (dir_ / "truth.npy").string()}, {"--noise-std", "0.05"},
        {"--shape", "32,32"}, {"--samples", "4"}, {"--iterations", "3"}, {"--seed", "7"},
        {"--threads", "1"}, {"--out", (dir_ / out).string()}};
    for (const auto& [flag, value] : overrides) flags[flag] = value;
    std::string line;
    for (const auto& [flag, value] : flags) line += " " + flag + (value.empty() ? "" : " " + value);
    return line;
  }

  fs::path dir_;
  Eigen::VectorXd truth_, data_;
};

TEST_F(ReconstructCli, WritesPosteriorFiguresAndSummary) {
  const CliRun r = run(args("run"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("KL iteration 3"));
  const NpyArray mean = read_npy(dir_ / "run" / "mean.npy");
  const NpyArray std = read_npy(dir_ / "run" / "std.npy");
  EXPECT_EQ(mean.shape, (std::vector<Eigen::Index>{kN, kN}));
  EXPECT_EQ(std.shape, (std::vector<Eigen::Index>{kN, kN}));
  EXPECT_TRUE((mean.values.array() > 0 && mean.values.array() < 1).all());
  EXPECT_TRUE((std.values.array() >= 0).all());
  const NpyArray power = read_npy(dir_ / "run" / "power_mean.npy");
  const NpyArray k = read_npy(dir_ / "run" / "power_k.npy");
  EXPECT_EQ(power.shape, k.shape);
  EXPECT_TRUE((power.values.array() > 0).all());
  for (const char* png : {"mean.png", "std.png", "data.png", "truth.png"}) {
    std::ifstream file(dir_ / "run" / png, std::ios::binary);
    char magic[4] = {};
    file.read(magic, 4);
    EXPECT_EQ(std::string(magic + 1, 3), "PNG") << png;
  }
  const auto summary = nlohmann::json::parse(std::ifstream(dir_ / "run" / "summary.json"));
  ASSERT_EQ(summary["iterations"].size(), 3u);
  for (const auto& it : summary["iterations"]) {
    EXPECT_GT(it["seconds_sampling"].get<double>(), 0.0);
    EXPECT_GE(it["sampling_cg_iterations"].get<int>(), 1);
  }
  EXPECT_GT(summary["seconds_per_jvp"].get<double>(), 0.0);
  // The reconstruction learned the field: its error is far below the truth's own spread, and
  // the posterior std is larger in the hole than where data were taken.
  const double spread = std::sqrt((truth_.array() - truth_.mean()).square().mean());
  EXPECT_LT(summary["rms_error"]["all"].get<double>(), 0.35 * spread);
  EXPECT_LT(summary["rms_error"]["observed"].get<double>(), 0.05);
  double hole_std = 0.0, seen_std = 0.0;
  const NpyArray mask = read_npy(dir_ / "mask.npy");
  int hole = 0, seen = 0;
  for (int r = 0; r < kN; ++r)
    for (int c = 0; c < kN; ++c) {
      const int i = r * kN + c;
      if (in_hole(r, c)) hole_std += std.values[i], ++hole;
      else if (mask.values[i] == 1.0) seen_std += std.values[i], ++seen;
    }
  EXPECT_GT(hole_std / hole, 1.5 * seen_std / seen);
}

TEST_F(ReconstructCli, GeoVIRunReportsItsSamplesAndCalibration) {
  const CliRun r = run(args("geovi", {{"--method", "geovi"}, {"--geovi-steps", "10"}}));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("geoVI"));
  EXPECT_THAT(r.output, HasSubstr("truth within one posterior std"));
  const auto summary = nlohmann::json::parse(std::ifstream(dir_ / "geovi" / "summary.json"));
  EXPECT_EQ(summary["method"], "geovi");
  for (const auto& it : summary["iterations"]) {
    EXPECT_EQ(it["method"], "geovi");
    EXPECT_GT(it["geovi_newton_steps"].get<int>(), 0);  // the sigmoid makes g non-linear
    EXPECT_GE(it["geovi_not_converged"].get<int>(), 0);
  }
  const double within = summary["truth_within_one_std"].get<double>();
  EXPECT_GT(within, 0.0);
  EXPECT_LE(within, 1.0);
  const double spread = std::sqrt((truth_.array() - truth_.mean()).square().mean());
  EXPECT_LT(summary["rms_error"]["all"].get<double>(), 0.35 * spread);
  // The MGVI run's checkpoint is not resumed as geoVI's.
  ASSERT_EQ(run(args("mgvi")).status, 0);
  const CliRun switched = run(args("mgvi", {{"--resume", ""}, {"--method", "geovi"}}));
  EXPECT_NE(switched.status, 0);
  EXPECT_THAT(switched.output, HasSubstr("belongs to another run"));
}

TEST_F(ReconstructCli, ResumedRunRepeatsTheFinishedOne) {
  ASSERT_EQ(run(args("run")).status, 0);
  const NpyArray first = read_npy(dir_ / "run" / "mean.npy");
  const CliRun again = run(args("run", {{"--resume", ""}}));
  ASSERT_EQ(again.status, 0) << again.output;
  const auto summary = nlohmann::json::parse(std::ifstream(dir_ / "run" / "summary.json"));
  EXPECT_EQ(summary["resumed_iterations"].get<int>(), 3);
  EXPECT_EQ(read_npy(dir_ / "run" / "mean.npy").values, first.values);
  // A checkpoint of other inputs is refused.
  const CliRun other = run(args("run", {{"--resume", ""}, {"--noise-std", "0.1"}}));
  EXPECT_NE(other.status, 0);
}

TEST_F(ReconstructCli, BadInputFailsWithAClearMessage) {
  struct Case {
    std::string flag, value, expected;
  };
  write_npy(dir_ / "nan.npy", {data_.size()},
            Eigen::VectorXd::Constant(data_.size(), std::nan("")));
  write_npy(dir_ / "short.npy", {3}, Eigen::VectorXd::Ones(3));
  Eigen::VectorXd bad_mask = Eigen::VectorXd::Constant(kN * kN, 2.0);
  write_npy(dir_ / "bad_mask.npy", {kN, kN}, bad_mask);
  const std::vector<Case> cases = {
      {"--shape", "32,31", "--mask"},
      {"--shape", "32,x", "--shape"},
      {"--shape", "32/32", "must be one grid"},
      {"--slope", "-3,1/-2,1", "--slope"},
      {"--response", "cube", "--response"},
      {"--samples", "3", "--samples"},
      {"--noise-std", "0", "--noise-std"},
      {"--fluctuations", "1.0", "--fluctuations"},
      {"--fluctuations", "-1,0.5", "fluctuations"},
      {"--data", (dir_ / "nan.npy").string(), "--data"},
      {"--data", (dir_ / "short.npy").string(), "--data"},
      {"--mask", (dir_ / "bad_mask.npy").string(), "--mask"},
      {"--mask", (dir_ / "missing.npy").string(), "missing.npy"},
  };
  for (const Case& c : cases) {
    const CliRun r = run(args("bad", {{c.flag, c.value}}));
    EXPECT_NE(r.status, 0) << c.flag << " " << c.value;
    EXPECT_THAT(r.output, HasSubstr(c.expected)) << c.flag << " " << c.value << "\n" << r.output;
  }
}

}  // namespace
}  // namespace infield

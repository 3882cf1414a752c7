// Runs the `infield mgvi linear` program on files written here and checks what it writes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <array>
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

using testing::CliRun;

CliRun run(const std::string& args) { return testing::run_cli(args); }

void write_matrix(const fs::path& path, const Eigen::MatrixXd& m) {
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm = m;
  write_npy(path, {m.rows(), m.cols()}, Eigen::Map<const Eigen::VectorXd>(rm.data(), rm.size()));
}

class MgviCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("infield_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    std::mt19937_64 rng(3);
    std::normal_distribution<double> g;
    r_ = Eigen::MatrixXd(30, 40);
    a_ = Eigen::MatrixXd(40, 40);
    for (auto& x : r_.reshaped()) x = 0.3 * g(rng);
    for (auto& x : a_.reshaped()) x = 0.2 * g(rng);
    a_.diagonal().array() += 1.0;
    Eigen::VectorXd xi(40), noise(30);
    for (auto& x : xi) x = g(rng);
    for (auto& x : noise) x = sigma_ * g(rng);
    d_ = r_ * a_ * xi + noise;
    write_matrix(dir_ / "R.npy", r_);
    write_matrix(dir_ / "A.npy", a_);
    write_npy(dir_ / "d.npy", {30}, d_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string args(const std::string& extra = "", const std::string& samples = "6",
                   const std::string& noise_std = "") const {
    return "mgvi linear --response " + (dir_ / "R.npy").string() + " --prior-sqrt " +
           (dir_ / "A.npy").string() + " --noise-std " +
           (noise_std.empty() ? std::to_string(sigma_) : noise_std) + " --data " +
           (dir_ / "d.npy").string() + " --samples " + samples + " --iterations 2 --seed 1 --out " +
           (dir_ / "out").string() + " " + extra;
  }
  fs::path dir_;
  double sigma_ = 0.2;
  Eigen::MatrixXd r_, a_;
  Eigen::VectorXd d_;
};

TEST_F(MgviCli, WritesThePosteriorOfTheSignal) {
  CliRun result = run(args());
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_THAT(result.output, ::testing::HasSubstr("KL iteration 2"));
  // Analytic posterior mean of s = A xi.
  const double w = 1 / (sigma_ * sigma_);
  Eigen::MatrixXd j = r_ * a_;
  Eigen::MatrixXd precision = w * j.transpose() * j + Eigen::MatrixXd::Identity(40, 40);
  Eigen::VectorXd mean = a_ * precision.llt().solve(w * j.transpose() * d_);
  NpyArray m = read_npy(dir_ / "out/mean.npy");
  NpyArray samples = read_npy(dir_ / "out/samples.npy");
  NpyArray std = read_npy(dir_ / "out/std.npy");
  ASSERT_EQ(m.shape, std::vector<Eigen::Index>{40});
  EXPECT_EQ(samples.shape, (std::vector<Eigen::Index>{6, 40}));
  EXPECT_EQ(std.shape, std::vector<Eigen::Index>{40});
  // mean.npy is the sample mean, equal to A xi_bar since the samples are mirrored pairs.
  EXPECT_LT((m.values - mean).norm() / mean.norm(), 1e-8);
  EXPECT_TRUE((std.values.array() > 0).all());
  nlohmann::json summary = nlohmann::json::parse(std::ifstream(dir_ / "out/summary.json"));
  EXPECT_EQ(summary["iterations"].size(), 2u);
  EXPECT_TRUE(summary["all_converged"].get<bool>());
  EXPECT_TRUE(fs::exists(dir_ / "out/kl.ckpt"));

  // Resuming a finished run restores every iteration and writes the same result.
  CliRun resumed = run(args("--resume"));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_EQ(read_npy(dir_ / "out/mean.npy").values, m.values);

  // A checkpoint of other data is refused, not silently reused.
  write_npy(dir_ / "d.npy", {30}, Eigen::VectorXd(2.0 * d_));
  CliRun other = run(args("--resume"));
  EXPECT_NE(other.status, 0);
  EXPECT_THAT(other.output, ::testing::HasSubstr("belongs to another run"));
}

TEST_F(MgviCli, GeoVIGivesMGVIsSamplesOnThisLinearProblem) {
  CliRun mgvi = run(args());
  ASSERT_EQ(mgvi.status, 0) << mgvi.output;
  const NpyArray linear = read_npy(dir_ / "out/samples.npy");
  // A checkpoint of the other method belongs to another run.
  CliRun switched = run(args("--resume --method geovi"));
  EXPECT_NE(switched.status, 0);
  EXPECT_THAT(switched.output, ::testing::HasSubstr("belongs to another run"));
  fs::remove_all(dir_ / "out");

  CliRun geovi = run(args("--method geovi --geovi-steps 5"));
  ASSERT_EQ(geovi.status, 0) << geovi.output;
  EXPECT_THAT(geovi.output, ::testing::HasSubstr("geoVI"));  // the progress line
  const NpyArray refined = read_npy(dir_ / "out/samples.npy");
  ASSERT_EQ(refined.shape, linear.shape);
  // Same random numbers, an affine g: the refinement stops where MGVI's CG did.
  EXPECT_LT((refined.values - linear.values).norm(), 1e-6 * linear.values.norm());
  nlohmann::json summary = nlohmann::json::parse(std::ifstream(dir_ / "out/summary.json"));
  EXPECT_EQ(summary["method"], "geovi");
  for (const auto& it : summary["iterations"]) {
    EXPECT_EQ(it["method"], "geovi");
    EXPECT_EQ(it["geovi_not_converged"], 0);
    EXPECT_GE(it["geovi_newton_steps"].get<int>(), 0);
  }

  CliRun bad = run(args("--method newton"));
  EXPECT_NE(bad.status, 0);
  EXPECT_THAT(bad.output, ::testing::HasSubstr("--method"));
  CliRun steps = run(args("--method geovi --geovi-steps 0"));
  EXPECT_NE(steps.status, 0);
  EXPECT_THAT(steps.output, ::testing::HasSubstr("--geovi-steps"));
}

TEST_F(MgviCli, NonConvergenceExitsNonZeroWithTheReason) {
  CliRun result = run(args("--cg-max-iterations 2"));
  EXPECT_EQ(result.status, 3) << result.output;
  EXPECT_THAT(result.output, ::testing::HasSubstr("sampling CG solves did not converge"));
  EXPECT_THAT(result.output, ::testing::HasSubstr("NOT CONVERGED"));  // on the progress line
}

TEST_F(MgviCli, RejectsBadInputWithAClearMessage) {
  CliRun odd = run(args("", "5"));
  EXPECT_NE(odd.status, 0);
  EXPECT_THAT(odd.output, ::testing::HasSubstr("--samples must be an even number"));

  write_matrix(dir_ / "A.npy", Eigen::MatrixXd::Identity(39, 39));
  CliRun mismatch = run(args());
  EXPECT_NE(mismatch.status, 0);
  EXPECT_THAT(mismatch.output, ::testing::HasSubstr("do not chain"));
  write_matrix(dir_ / "A.npy", a_);

  Eigen::VectorXd nan_data = d_;
  nan_data[4] = std::nan("");
  write_npy(dir_ / "d.npy", {30}, nan_data);
  CliRun nan = run(args());
  EXPECT_NE(nan.status, 0);
  EXPECT_THAT(nan.output, ::testing::HasSubstr("--data must be finite, but entry 4 is nan"));

  std::ofstream(dir_ / "d.npy") << "not a numpy file";
  CliRun corrupt = run(args());
  EXPECT_NE(corrupt.status, 0);
  EXPECT_THAT(corrupt.output, ::testing::HasSubstr("d.npy"));

  write_npy(dir_ / "d.npy", {30}, d_);
  CliRun negative = run(args("", "6", "-1"));
  EXPECT_NE(negative.status, 0);
  EXPECT_THAT(negative.output, ::testing::HasSubstr("--noise-std must be positive"));
}

}  // namespace
}  // namespace infield

// `mpiexec -n K infield ...`: the command line over MPI ranks gives the one-process result, resumes
// a killed run, and ends every rank when one fails.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "cli_run.h"
#include "image_data.h"
#include "infield/npy.h"

extern char** environ;

namespace infield {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::CliRun;
using testing::run_shell;

constexpr int kN = 64;

/// `infield ARGS` on `ranks` ranks (1: the program alone, without mpiexec).
std::string command(int ranks, const std::string& args) {
  if (ranks == 1) return std::string(INFIELD_CLI) + " " + args;
  return std::string(INFIELD_MPIEXEC) + " -n " + std::to_string(ranks) + " --oversubscribe " +
         INFIELD_CLI + " " + args;
}

class DistributedCli : public ::testing::Test {
 protected:
  void SetUp() override {
    // Open MPI refuses to start as root (CI) unless told; only this test's children see it.
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 1);  // 2 cores, up to 3 ranks: do not spin
    dir_ = fs::temp_directory_path() /
           ("infield_distributed_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    // A smooth field through the sigmoid response, 60% of the pixels observed.
    std::mt19937_64 rng(11);
    std::normal_distribution<double> noise(0.0, 0.05);
    std::bernoulli_distribution coin(0.6);
    Eigen::VectorXd mask(kN * kN);
    std::vector<double> data;
    for (int r = 0; r < kN; ++r)
      for (int c = 0; c < kN; ++c) {
        const double f = 1.5 * std::sin(2 * M_PI * r / kN) * std::cos(4 * M_PI * c / kN);
        const bool seen = coin(rng);
        mask[r * kN + c] = seen;
        if (seen) data.push_back(0.5 + 0.5 * std::tanh(f) + noise(rng));
      }
    write_npy(dir_ / "mask.npy", {kN, kN}, mask);
    write_npy(dir_ / "data.npy", {static_cast<Eigen::Index>(data.size())},
              Eigen::Map<Eigen::VectorXd>(data.data(), static_cast<Eigen::Index>(data.size())));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string reconstruct(const std::string& out, int iterations, int samples = 6) const {
    return "reconstruct --data " + (dir_ / "data.npy").string() + " --mask " +
           (dir_ / "mask.npy").string() + " --noise-std 0.05 --shape 64,64 --samples " +
           std::to_string(samples) + " --iterations " + std::to_string(iterations) +
           " --seed 3 --threads 1 --out " + (dir_ / out).string();
  }
  fs::path dir_;
};

TEST_F(DistributedCli, ReconstructOnTwoAndThreeRanksIsTheOneProcessResult) {
  const CliRun one = run_shell(command(1, reconstruct("one", 2)));
  ASSERT_EQ(one.status, 0) << one.output;
  const CliRun two = run_shell(command(2, reconstruct("two", 2)));
  ASSERT_EQ(two.status, 0) << two.output;
  const CliRun three = run_shell(command(3, reconstruct("three", 2)));
  ASSERT_EQ(three.status, 0) << three.output;
  const NpyArray a = read_npy(dir_ / "one" / "mean.npy");
  for (const char* run : {"two", "three"}) {
    const NpyArray b = read_npy(dir_ / run / "mean.npy");
    // Sums over samples follow one fixed tree on any number of ranks: the same bits.
    EXPECT_EQ(b.values, a.values) << run;
    EXPECT_EQ(read_npy(dir_ / run / "std.npy").values, read_npy(dir_ / "one" / "std.npy").values);
  }
  // Progress lines once (from the root), not once per rank.
  auto count = [](const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(two.output, "KL iteration 1"), 1u) << two.output;
  EXPECT_EQ(count(two.output, "wrote "), 1u) << two.output;
  const auto summary = nlohmann::json::parse(std::ifstream(dir_ / "two" / "summary.json"));
  EXPECT_EQ(summary["ranks"], 2);
}

TEST_F(DistributedCli, KilledRunResumesToTheUninterruptedResult) {
  const CliRun full = run_shell(command(2, reconstruct("full", 6)));
  ASSERT_EQ(full.status, 0) << full.output;
  // Start the same run, kill every process of it once the first checkpoint is written.
  const std::string cmd = command(2, reconstruct("killed", 6)) + " > " +
                          (dir_ / "killed.log").string() + " 2>&1";
  pid_t pid = 0;
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);  // its own group: kill them all
  posix_spawnattr_setpgroup(&attr, 0);
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  ASSERT_EQ(posix_spawn(&pid, "/bin/sh", nullptr, &attr, const_cast<char**>(argv), environ), 0);
  posix_spawnattr_destroy(&attr);
  const fs::path checkpoint = dir_ / "killed" / "kl.ckpt";
  const auto start = std::chrono::steady_clock::now();
  while (!fs::exists(checkpoint) && std::chrono::steady_clock::now() - start < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(fs::exists(checkpoint));
  ::kill(-pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) || WEXITSTATUS(status) != 0) << "the run finished before the kill";
  const CliRun resumed = run_shell(command(2, reconstruct("killed", 6) + " --resume"));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  const auto summary = nlohmann::json::parse(std::ifstream(dir_ / "killed" / "summary.json"));
  EXPECT_GE(summary["resumed_iterations"].get<int>(), 1);
  EXPECT_LT(summary["resumed_iterations"].get<int>(), 6);
  EXPECT_EQ(read_npy(dir_ / "killed" / "mean.npy").values, read_npy(dir_ / "full" / "mean.npy").values);
}

TEST_F(DistributedCli, OneFailingRankEndsEveryRank) {
  // MPMD: rank 0 gets good data, rank 1 a corrupt file. Rank 0 would wait for rank 1 in the
  // first collective; rank 1's error must end both, quickly and with a non-zero status.
  std::ofstream(dir_ / "corrupt.npy") << "not a numpy file";
  const std::string good = reconstruct("fail", 2);
  std::string bad = good;
  bad.replace(bad.find((dir_ / "data.npy").string()), (dir_ / "data.npy").string().size(),
              (dir_ / "corrupt.npy").string());
  const std::string cmd = std::string(INFIELD_MPIEXEC) + " -n 1 " + INFIELD_CLI + " " + good +
                          " : -n 1 " + INFIELD_CLI + " " + bad;
  const auto start = std::chrono::steady_clock::now();
  const CliRun r = run_shell(cmd);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("error on rank 1 of 2"));
  EXPECT_THAT(r.output, HasSubstr("corrupt.npy"));
  EXPECT_LT(seconds, 30.0);
}

TEST_F(DistributedCli, CommandsThatAreNotDistributedRunOnRankZeroAlone) {
  const CliRun r = run_shell(command(2, "prior --shape 32,32 --seed 4 --n 2 --out " +
                                            (dir_ / "prior").string()));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("wrote"), r.output.rfind("wrote")) << r.output;  // once, not per rank
  EXPECT_TRUE(fs::exists(dir_ / "prior" / "field.npy"));
}

TEST_F(DistributedCli, MoreRanksThanSamplePairs) {
  const CliRun r = run_shell(command(3, reconstruct("few", 1, 2)));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("3 ranks for 1 sample pairs: ranks 1 to 2 have no samples"));
}

/// metrics.csv's rows as numbers (epoch, train_loss, test_mse, noise_std, seconds, images_per_s).
std::vector<std::vector<double>> read_metrics(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::stringstream fields(line);
    for (std::string field; std::getline(fields, field, ',');) row.push_back(std::stod(field));
    rows.push_back(row);
  }
  return rows;
}

TEST_F(DistributedCli, FisherNetTrainingOverRanksFollowsOneProcesssTrajectory) {
  testing::write_square_images(dir_ / "images", "train", 200, 9, 1);
  testing::write_square_images(dir_ / "images", "t10k", 50, 9, 2);
  auto train = [&](const std::string& model, const std::string& out, int epochs) {
    return "fishernet train --model " + model + " --latent 2 --hidden 32,32 --batch 16 " +
           "--lr 1e-3 --seed 3 --epochs " + std::to_string(epochs) + " --threads 1 --data " +
           (dir_ / "images").string() + " --out " + (dir_ / out).string() + " --quiet";
  };
  for (const std::string model : {"fishernet", "vae"}) {
    const CliRun one = run_shell(command(1, train(model, model + "-one", 2)));
    ASSERT_EQ(one.status, 0) << one.output;
    const CliRun two = run_shell(command(2, train(model, model + "-two", 2)));
    ASSERT_EQ(two.status, 0) << two.output;
    const auto a = read_metrics(dir_ / (model + "-one") / "metrics.csv");
    const auto b = read_metrics(dir_ / (model + "-two") / "metrics.csv");
    ASSERT_EQ(a.size(), 2u);
    ASSERT_EQ(b.size(), 2u);
    for (int e = 0; e < 2; ++e)
      for (int column : {1, 2, 3})  // train loss, test MSE, noise std
        EXPECT_NEAR(b[e][column], a[e][column], 1e-4 * std::abs(a[e][column]))
            << model << " epoch " << e + 1 << " column " << column;
    // Only the root writes: one line of output, one run directory's files.
    EXPECT_EQ(two.output.find("test MSE"), two.output.rfind("test MSE")) << two.output;
    const auto config = nlohmann::json::parse(std::ifstream(dir_ / (model + "-two") / "config.json"));
    EXPECT_EQ(config["ranks"], 2);
    // The test latents, computed in shares over the ranks and gathered on the root, are the
    // trained model's: one process encoding the test images with the run's checkpoint.
    const fs::path run = dir_ / (model + "-two");
    const CliRun encode = run_shell(command(
        1, "fishernet encode --run " + run.string() + " --images " +
               (dir_ / "images" / "t10k-images-idx3-ubyte").string() + " --out " +
               (run / "encoded.npy").string() + " --covariance " + (run / "encoded_cov.npy").string()));
    ASSERT_EQ(encode.status, 0) << encode.output;
    for (const auto& [gathered, encoded] : {std::pair{"latent_test_mean.npy", "encoded.npy"},
                                            std::pair{"latent_test_covariance.npy", "encoded_cov.npy"}}) {
      const NpyArray g = read_npy(run / gathered), e = read_npy(run / encoded);
      ASSERT_EQ(g.values.size(), e.values.size()) << gathered;
      EXPECT_LE((g.values - e.values).cwiseAbs().maxCoeff(), 1e-5 * e.values.cwiseAbs().maxCoeff())
          << gathered;
    }
  }
  // Three ranks (uneven shares of the batch and of the parameters) follow the same trajectory.
  const CliRun three = run_shell(command(3, train("fishernet", "fishernet-three", 2)));
  ASSERT_EQ(three.status, 0) << three.output;
  const auto a = read_metrics(dir_ / "fishernet-one" / "metrics.csv");
  const auto c = read_metrics(dir_ / "fishernet-three" / "metrics.csv");
  ASSERT_EQ(c.size(), 2u);
  for (int e = 0; e < 2; ++e)
    for (int column : {1, 2, 3})
      EXPECT_NEAR(c[e][column], a[e][column], 1e-4 * std::abs(a[e][column]))
          << "three ranks, epoch " << e + 1 << " column " << column;
  // Resumed under mpirun: one epoch, then the second, ends where the two-epoch run did.
  ASSERT_EQ(run_shell(command(2, train("fishernet", "resumed", 1))).status, 0);
  const CliRun resumed = run_shell(command(2, train("fishernet", "resumed", 2) + " --resume"));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  const auto full = read_metrics(dir_ / "fishernet-two" / "metrics.csv");
  const auto rest = read_metrics(dir_ / "resumed" / "metrics.csv");
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[1][1], full[1][1]);
  EXPECT_EQ(rest[1][2], full[1][2]);
}

}  // namespace
}  // namespace infield

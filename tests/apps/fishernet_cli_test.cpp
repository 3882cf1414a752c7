// Runs `infield fishernet train | evaluate | encode | sample | infer` on a tiny IDX data set and
// checks what they write, that a resumed run equals an uninterrupted one, and how bad input fails.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <fstream>
#include <random>
#include <sstream>

#include "cli_run.h"
#include "image_data.h"
#include "infield/models/idx.h"
#include "infield/npy.h"

namespace infield {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::CliRun;

CliRun run(const std::string& args) { return testing::run_cli("fishernet " + args); }

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class FisherNetCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("infield_fishernet_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    testing::write_square_images(dir_ / "data", "train", 200, 9, 1);
    testing::write_square_images(dir_ / "data", "t10k", 50, 9, 2);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string train_args(const std::string& out, int epochs, const std::string& more = "") const {
    return "train --model fishernet --latent 2 --hidden 32,32 --batch 16 --lr 1e-3 --seed 3 "
           "--epochs " + std::to_string(epochs) + " --data " + (dir_ / "data").string() +
           " --out " + (dir_ / out).string() + " --quiet " + more;
  }
  fs::path dir_;
};

TEST_F(FisherNetCli, TrainWritesMetricsLatentsAndFigures) {
  const CliRun r = run(train_args("run", 2));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("test MSE"));
  const fs::path run_dir = dir_ / "run";
  for (const char* f : {"checkpoint.npy", "config.json", "metrics.csv", "reconstructions.png",
                        "samples.png", "latent_scatter.png", "mse.png"})
    EXPECT_TRUE(fs::exists(run_dir / f)) << f;
  const std::string csv = read_text(run_dir / "metrics.csv");
  EXPECT_THAT(csv, HasSubstr("epoch,train_loss,test_mse,noise_std,seconds,images_per_s\n1,"));
  EXPECT_THAT(csv, HasSubstr("\n2,"));
  EXPECT_EQ(read_npy(run_dir / "latent_test_mean.npy").shape, (std::vector<Eigen::Index>{50, 2}));
  const NpyArray cov = read_npy(run_dir / "latent_test_covariance.npy");
  EXPECT_EQ(cov.shape, (std::vector<Eigen::Index>{50, 2, 2}));
  // Covariances M^-1 of FisherNet: symmetric, positive, below the prior's (M >= 1).
  EXPECT_NEAR(cov.values[1], cov.values[2], 1e-6);
  EXPECT_GT(cov.values[0], 0.0);
  EXPECT_LE(cov.values[0], 1.0 + 1e-6);
  const NpyArray labels = read_npy(run_dir / "latent_test_labels.npy");
  EXPECT_EQ(labels.values[13], 3.0);

  // The figures: matplotlib's (labelled, with an .svg beside) where Debian's python3 has it, the
  // plain PNGs with INFIELD_NO_MATPLOTLIB set or without it.
  const bool has_matplotlib =
      testing::run_shell("/usr/bin/python3 -c 'import matplotlib'").status == 0;
  EXPECT_EQ(fs::exists(run_dir / "mse.svg"), has_matplotlib);
  EXPECT_EQ(fs::exists(run_dir / "latent_scatter.svg"), has_matplotlib);
  if (has_matplotlib) {
    EXPECT_THAT(read_text(run_dir / "mse.png"), HasSubstr("Matplotlib"));
  }
  const CliRun plain = testing::run_shell("INFIELD_NO_MATPLOTLIB=1 " + std::string(INFIELD_CLI) +
                                          " fishernet " + train_args("plain", 1));
  ASSERT_EQ(plain.status, 0) << plain.output;
  EXPECT_TRUE(fs::exists(dir_ / "plain" / "mse.png"));
  EXPECT_FALSE(fs::exists(dir_ / "plain" / "mse.svg"));
  EXPECT_THAT(read_text(dir_ / "plain" / "mse.png"), ::testing::Not(HasSubstr("Matplotlib")));

  // evaluate gives the test MSE of the last epoch.
  const CliRun e = run("evaluate --run " + run_dir.string());
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_THAT(e.output, HasSubstr("test MSE"));
  EXPECT_TRUE(fs::exists(run_dir / "evaluation.json"));

  // report: a table and the plots of one or more runs; a directory without a run fails.
  const CliRun rep = run("report --runs " + run_dir.string() + " --out " + (dir_ / "rep").string());
  ASSERT_EQ(rep.status, 0) << rep.output;
  EXPECT_THAT(rep.output, HasSubstr("| blue | run | fishernet | 2 | 2 |"));
  EXPECT_TRUE(fs::exists(dir_ / "rep" / "curves.png"));
  EXPECT_TRUE(fs::exists(dir_ / "rep" / "mse_vs_latent.png"));
  EXPECT_EQ(fs::exists(dir_ / "rep" / "mse_vs_latent.svg"), has_matplotlib);
  EXPECT_NE(run("report --runs " + dir_.string() + " --out " + (dir_ / "rep2").string()).status, 0);

  // encode and sample.
  const CliRun enc = run("encode --run " + run_dir.string() + " --images " +
                         (dir_ / "data" / "t10k-images-idx3-ubyte").string() + " --out " +
                         (dir_ / "z.npy").string() + " --covariance " + (dir_ / "c.npy").string());
  ASSERT_EQ(enc.status, 0) << enc.output;
  EXPECT_EQ(read_npy(dir_ / "z.npy").values, read_npy(run_dir / "latent_test_mean.npy").values);
  for (const char* density : {"gaussian", "mkde"}) {
    const CliRun s = run("sample --run " + run_dir.string() + " --n 12 --latent-density " +
                         density + " --out " + (dir_ / density).string());
    ASSERT_EQ(s.status, 0) << s.output;
    EXPECT_EQ(read_npy(dir_ / density / "samples.npy").shape,
              (std::vector<Eigen::Index>{12, 81}));
    EXPECT_TRUE(fs::exists(dir_ / density / "samples.png"));
  }
}

TEST_F(FisherNetCli, CvaeTrainsOnImagesWithASideDivisibleByFour) {
  const std::string cvae = "train --model cvae --latent 2 --batch 16 --seed 3 --epochs 1 --quiet ";
  // 9 x 9 images do not fit the CVAE's two stride-2 layers.
  CliRun r = run(cvae + "--data " + (dir_ / "data").string() + " --out " + (dir_ / "c9").string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("side divisible by 4"));
  testing::write_square_images(dir_ / "data8", "train", 64, 8, 1);
  testing::write_square_images(dir_ / "data8", "t10k", 20, 8, 2);
  r = run(cvae + "--data " + (dir_ / "data8").string() + " --out " + (dir_ / "c8").string());
  ASSERT_EQ(r.status, 0) << r.output;
  const NpyArray cov = read_npy(dir_ / "c8" / "latent_test_covariance.npy");
  EXPECT_EQ(cov.shape, (std::vector<Eigen::Index>{20, 2, 2}));
  EXPECT_GT(cov.values[0], 0.0);
  EXPECT_EQ(cov.values[1], 0.0);  // diagonal, as the VAE's
}

TEST_F(FisherNetCli, ResumedRunEqualsUninterruptedRun) {
  ASSERT_EQ(run(train_args("whole", 3)).status, 0);
  ASSERT_EQ(run(train_args("parts", 1)).status, 0);
  const CliRun again = run(train_args("parts", 3));
  EXPECT_NE(again.status, 0);
  EXPECT_THAT(again.output, HasSubstr("--resume"));
  const CliRun resumed = run(train_args("parts", 3, "--resume"));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_EQ(read_npy(dir_ / "parts" / "latent_test_mean.npy").values,
            read_npy(dir_ / "whole" / "latent_test_mean.npy").values);
  // The same losses and test errors, epoch by epoch (times differ).
  auto columns = [&](const std::string& run_name) {
    std::istringstream in(read_text(dir_ / run_name / "metrics.csv"));
    std::string line, out;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string f[4];
      for (auto& x : f) std::getline(fields, x, ',');
      out += f[0] + f[1] + f[2] + f[3] + "\n";
    }
    return out;
  };
  EXPECT_EQ(columns("parts"), columns("whole"));
}

TEST_F(FisherNetCli, CheckpointsOfAnotherModelOrLatentSizeAreRejected) {
  ASSERT_EQ(run(train_args("run", 1)).status, 0);
  const std::string base = "train --latent 2 --hidden 32,32 --batch 16 --lr 1e-3 --seed 3 "
                           "--epochs 2 --quiet --resume --data " +
                           (dir_ / "data").string() + " --out " + (dir_ / "run").string();
  const CliRun vae = run(base + " --model vae");
  EXPECT_NE(vae.status, 0);
  EXPECT_THAT(vae.output, HasSubstr("model is fishernet, this run's is vae"));
  const CliRun latent = run("train --model fishernet --latent 3 --hidden 32,32 --batch 16 --lr "
                            "1e-3 --seed 3 --epochs 2 --quiet --resume --data " +
                            (dir_ / "data").string() + " --out " + (dir_ / "run").string());
  EXPECT_NE(latent.status, 0);
  EXPECT_THAT(latent.output, HasSubstr("latent size is 2"));
  // A damaged checkpoint.
  std::ofstream(dir_ / "run" / "checkpoint.npy", std::ios::trunc) << "garbage";
  const CliRun damaged = run(train_args("run", 2, "--resume"));
  EXPECT_NE(damaged.status, 0);
  EXPECT_THAT(damaged.output, HasSubstr("checkpoint.npy"));
}

TEST_F(FisherNetCli, BadDataFailsClearly) {
  // Truncated training images.
  const fs::path images = dir_ / "data" / "train-images-idx3-ubyte";
  fs::resize_file(images, fs::file_size(images) - 100);
  CliRun r = run(train_args("run", 1));
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("train-images-idx3-ubyte"));
  // Test images of another size than the training images.
  testing::write_square_images(dir_ / "data", "train", 200, 9, 1);
  testing::write_square_images(dir_ / "data", "t10k", 50, 7, 2);
  r = run(train_args("run2", 1));
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("7 x 7 = 49 pixels, the model's data size is 81"));
  // A missing data directory, a run directory without a run, encode of wrong-size images.
  r = run("train --data " + (dir_ / "none").string() + " --out " + (dir_ / "run3").string());
  EXPECT_NE(r.status, 0);
  r = run("evaluate --run " + (dir_ / "none").string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("holds no run"));
  testing::write_square_images(dir_ / "data", "t10k", 50, 9, 2);
  ASSERT_EQ(run(train_args("run4", 1)).status, 0);
  testing::write_square_images(dir_ / "small", "t10k", 5, 7, 2);
  r = run("encode --run " + (dir_ / "run4").string() + " --images " +
          (dir_ / "small" / "t10k-images-idx3-ubyte").string() + " --out " +
          (dir_ / "z.npy").string());
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("model's data size is 81"));
}

TEST_F(FisherNetCli, InferRefinesTheEncodersMeansByMgviPerImage) {
  ASSERT_EQ(run(train_args("run", 2)).status, 0);
  const std::string test_images = (dir_ / "data" / "t10k-images-idx3-ubyte").string();
  const std::string infer = "infer --run " + (dir_ / "run").string() + " --samples 4 --iterations 2 ";
  CliRun r = run(infer + "--images " + test_images + " --first 20 --threads 2 --out " +
                 (dir_ / "inf").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("refined means"));
  EXPECT_EQ(read_npy(dir_ / "inf" / "latent_mean.npy").shape, (std::vector<Eigen::Index>{20, 2}));
  const NpyArray cov = read_npy(dir_ / "inf" / "latent_covariance.npy");
  EXPECT_EQ(cov.shape, (std::vector<Eigen::Index>{20, 2, 2}));
  EXPECT_EQ(cov.values[1], cov.values[2]);
  EXPECT_GT(cov.values[0], 0.0);
  EXPECT_EQ(read_npy(dir_ / "inf" / "reconstructions.npy").shape,
            (std::vector<Eigen::Index>{20, 81}));
  const auto summary = nlohmann::json::parse(read_text(dir_ / "inf" / "summary.json"));
  for (const char* key : {"encoder_mse", "refined_mse", "images_per_s", "all_converged"})
    EXPECT_TRUE(summary.contains(key)) << key;
  // The refined means fit each image at least as well as the encoder's (they start there and
  // the posterior is dominated by the data at this noise level).
  EXPECT_LE(summary["refined_mse"].get<double>(), summary["encoder_mse"].get<double>());

  // The same images from a .npy file, and the result does not depend on the thread count.
  const NpyArray recon = read_npy(dir_ / "inf" / "reconstructions.npy");
  const IdxArray raw = read_idx(test_images);
  Eigen::VectorXd pixels(20 * 81);
  for (Eigen::Index i = 0; i < pixels.size(); ++i) pixels[i] = raw.values[i] / 255.0;
  write_npy(dir_ / "x.npy", {20, 81}, pixels);
  r = run(infer + "--images " + (dir_ / "x.npy").string() + " --threads 1 --out " +
          (dir_ / "inf1").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_npy(dir_ / "inf1" / "latent_mean.npy").values,
            read_npy(dir_ / "inf" / "latent_mean.npy").values);

  // Bad input: no run, a damaged run, images of another size, --first beyond the file, an odd
  // sample count, a CVAE run.
  const std::string out = " --out " + (dir_ / "bad").string();
  r = run("infer --run " + (dir_ / "none").string() + " --images " + test_images + out);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("holds no run"));
  r = run(infer + "--images " + test_images + " --first 51" + out);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("--first 51 is beyond the 50 images"));
  testing::write_square_images(dir_ / "small", "t10k", 5, 7, 2);
  r = run(infer + "--images " + (dir_ / "small" / "t10k-images-idx3-ubyte").string() + out);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("have 49 pixels, the model's data size is 81"));
  r = run("infer --run " + (dir_ / "run").string() + " --samples 3 --images " + test_images + out);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("must be even"));
  pixels[5] = std::nan("");
  write_npy(dir_ / "nan.npy", {20, 81}, pixels);
  r = run(infer + "--images " + (dir_ / "nan.npy").string() + out);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("not finite"));
  const fs::path checkpoint = dir_ / "run" / "checkpoint.npy";
  fs::resize_file(checkpoint, fs::file_size(checkpoint) / 2);
  r = run(infer + "--images " + test_images + out);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("checkpoint.npy"));
  testing::write_square_images(dir_ / "data8", "train", 32, 8, 1);
  testing::write_square_images(dir_ / "data8", "t10k", 8, 8, 2);
  ASSERT_EQ(run("train --model cvae --latent 2 --batch 16 --epochs 1 --quiet --data " +
                (dir_ / "data8").string() + " --out " + (dir_ / "cvae").string())
                .status,
            0);
  r = run("infer --run " + (dir_ / "cvae").string() + " --images " +
          (dir_ / "data8" / "t10k-images-idx3-ubyte").string() + out);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("convolutional"));
}

TEST_F(FisherNetCli, AWriteFailureIsAnErrorNotDivergence) {
  // metrics.csv's temporary file cannot be created (a directory is in the way): the run must
  // end with the file error, not report a diverged training.
  fs::create_directories(dir_ / "blocked" / "metrics.csv.tmp");
  const CliRun r = run(train_args("blocked", 1));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("cannot write"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("diverged")));
}

}  // namespace
}  // namespace infield

// Runs `infield classifier train` and `infield frechet` on a small synthetic IDX data set: the
// classifier learns it, a set's distance to itself is 0, noise makes it grow, bad input fails.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "cli_run.h"
#include "image_data.h"
#include "infield/models/idx.h"
#include "infield/npy.h"

namespace infield {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::CliRun;

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  return nlohmann::json::parse(f);
}

class ClassifierCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("infield_classifier_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    testing::write_square_images(dir_ / "data", "train", 300, 12, 1);
    testing::write_square_images(dir_ / "data", "t10k", 100, 12, 2);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

/// The test images as values in [0, 1] plus Gaussian noise of `sigma`, as a .npy file.
fs::path noisy_copy(const fs::path& dir, const fs::path& idx, double sigma, const std::string& name) {
  const IdxArray raw = read_idx(idx);
  std::mt19937_64 rng(9);
  std::normal_distribution<double> g(0.0, sigma);
  Eigen::VectorXd v(static_cast<Eigen::Index>(raw.values.size()));
  for (Eigen::Index i = 0; i < v.size(); ++i) v[i] = raw.values[i] / 255.0 + (sigma > 0 ? g(rng) : 0.0);
  const fs::path out = dir / name;
  write_npy(out, {raw.shape[0], raw.shape[1] * raw.shape[2]}, v);
  return out;
}

TEST_F(ClassifierCli, TrainsAndMeasuresDistances) {
  const std::string cls = (dir_ / "cls").string();
  CliRun r = testing::run_cli("classifier train --data " + (dir_ / "data").string() + " --out " +
                              cls + " --epochs 3 --batch 20 --seed 2 --quiet");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto metrics = read_json(dir_ / "cls" / "metrics.json");
  // Chance is 0.1; classes 0 and 9 of these images put their square at the same place (image_data.h),
  // so at most 0.95 is reachable.
  EXPECT_GT(metrics["test_accuracy"].get<double>(), 0.8);
  EXPECT_EQ(metrics["history"].size(), 3U);

  const fs::path test = dir_ / "data" / "t10k-images-idx3-ubyte";
  const std::string frechet = "frechet --classifier " + cls + " --reference " + test.string();
  r = testing::run_cli(frechet + " --images " + test.string() + " --out " + (dir_ / "self.json").string());
  ASSERT_EQ(r.status, 0) << r.output;
  const auto self = read_json(dir_ / "self.json");
  EXPECT_NEAR(self["frechet_distance"].get<double>(), 0.0, 1e-6);
  EXPECT_EQ(self["n_images"].get<int>(), 100);
  EXPECT_EQ(self["n_reference"].get<int>(), 100);
  // The same images as .npy are the same set; added noise makes the distance grow with it.
  std::vector<double> distances;
  for (double sigma : {0.0, 0.1, 0.3}) {
    const fs::path npy = noisy_copy(dir_, test, sigma, "noisy" + std::to_string(sigma) + ".npy");
    r = testing::run_cli(frechet + " --images " + npy.string() + " --out " + (dir_ / "fd.json").string());
    ASSERT_EQ(r.status, 0) << r.output;
    distances.push_back(read_json(dir_ / "fd.json")["frechet_distance"].get<double>());
  }
  EXPECT_NEAR(distances[0], 0.0, 1e-6);
  EXPECT_GT(distances[1], 1e-3);
  EXPECT_GT(distances[2], distances[1]);

  // Bad input: no classifier, images of another size, fewer than 2 images, a damaged classifier,
  // and --resume needed to continue.
  r = testing::run_cli("frechet --classifier " + (dir_ / "none").string() + " --images " +
                       test.string() + " --reference " + test.string() + " --out x.json");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("holds no classifier"));
  testing::write_square_images(dir_ / "small", "t10k", 5, 8, 2);
  r = testing::run_cli(frechet + " --images " + (dir_ / "small" / "t10k-images-idx3-ubyte").string() +
                       " --out x.json");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("have 64 pixels"));
  write_npy(dir_ / "one.npy", {1, 144}, Eigen::VectorXd::Zero(144));
  r = testing::run_cli(frechet + " --images " + (dir_ / "one.npy").string() + " --out x.json");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("at least 2"));
  r = testing::run_cli("classifier train --data " + (dir_ / "data").string() + " --out " + cls +
                       " --epochs 4 --batch 20 --seed 2 --quiet");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("--resume"));
  r = testing::run_cli("classifier train --data " + (dir_ / "data").string() + " --out " + cls +
                       " --epochs 4 --batch 20 --seed 2 --quiet --resume");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_json(dir_ / "cls" / "metrics.json")["history"].size(), 4U);
  fs::resize_file(dir_ / "cls" / "checkpoint.npy", 100);
  r = testing::run_cli(frechet + " --images " + test.string() + " --out x.json");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("checkpoint"));
}

}  // namespace
}  // namespace infield

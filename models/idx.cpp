#include "infield/models/idx.h"

#include <zlib.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>

#include "infield/error.h"

namespace infield {
namespace {

constexpr unsigned char kUnsignedByte = 0x08;

/// Reads the whole file, inflating it if it is gzip-compressed (zlib's gzread passes plain files
/// through unchanged).
std::vector<std::uint8_t> read_all(const std::filesystem::path& path, const std::string& where) {
  if (!std::filesystem::exists(path)) throw FileError(where + ": no such file");
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  if (!file) throw FileError(where + ": cannot open");
  std::vector<std::uint8_t> out;
  std::array<std::uint8_t, 1 << 16> buffer;
  for (;;) {
    const int n = gzread(file.get(), buffer.data(), static_cast<unsigned>(buffer.size()));
    if (n < 0) {
      int code = 0;
      const char* message = gzerror(file.get(), &code);
      throw FileError(where + ": corrupt compressed data (" + message + ")");
    }
    if (n == 0) break;
    out.insert(out.end(), buffer.begin(), buffer.begin() + n);
  }
  return out;
}

/// The product of the extents, or -1 beyond 2^40 values (no overflow).
Eigen::Index product(const std::vector<Eigen::Index>& shape) {
  Eigen::Index n = 1;
  for (Eigen::Index e : shape) {
    if (e <= 0 || n > (Eigen::Index{1} << 40) / e) return -1;
    n *= e;
  }
  return n;
}

}  // namespace

IdxArray read_idx(const std::filesystem::path& path) {
  const std::string where = "read_idx: " + path.string();
  const std::vector<std::uint8_t> bytes = read_all(path, where);
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0)
    throw FileError(where + ": bad magic number (not an IDX file)");
  if (bytes[2] != kUnsignedByte)
    throw FileError(where + ": unsupported value type 0x" +
                    [&] {
                      std::ostringstream s;
                      s << std::hex << static_cast<int>(bytes[2]);
                      return s.str();
                    }() +
                    " (only unsigned bytes, 0x08)");
  const int dims = bytes[3];
  if (dims < 1) throw FileError(where + ": has zero dimensions");
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(dims);
  if (bytes.size() < header) throw FileError(where + ": truncated header");
  IdxArray out;
  for (int d = 0; d < dims; ++d) {
    const std::uint8_t* p = bytes.data() + 4 + 4 * d;
    const std::uint32_t extent = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                                 (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
    if (extent == 0 || extent > (1u << 30))
      throw FileError(where + ": invalid extent " + std::to_string(extent) + " of dimension " +
                      std::to_string(d));
    out.shape.push_back(static_cast<Eigen::Index>(extent));
  }
  // The product of the extents, stopped as soon as it exceeds the data (no overflow).
  const std::size_t available = bytes.size() - header;
  std::size_t count = 1;
  for (Eigen::Index e : out.shape) {
    const auto extent = static_cast<std::size_t>(e);
    if (count > available / extent)
      throw FileError(where + ": truncated: the shape needs more values than the file's " +
                      std::to_string(available));
    count *= extent;
  }
  if (bytes.size() - header > count)
    throw FileError(where + ": " + std::to_string(bytes.size() - header - count) +
                    " trailing bytes after the data");
  out.values.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return out;
}

void write_idx(const std::filesystem::path& path, const std::vector<Eigen::Index>& shape,
               const std::vector<std::uint8_t>& values) {
  constexpr std::string_view fn = "write_idx";
  check_argument(!shape.empty() && shape.size() < 256, fn, "shape", "must have 1 to 255 axes");
  for (Eigen::Index e : shape)
    check_argument(e > 0 && e <= (Eigen::Index{1} << 30), fn, "shape",
                   "must have positive extents");
  check_argument(product(shape) > 0, fn, "shape", "has more than 2^40 values");
  check_argument(static_cast<Eigen::Index>(values.size()) == product(shape), fn, "values",
                 "has " + std::to_string(values.size()) + " entries, the shape needs " +
                     std::to_string(product(shape)));
  std::vector<std::uint8_t> bytes = {0, 0, kUnsignedByte, static_cast<std::uint8_t>(shape.size())};
  for (Eigen::Index e : shape)
    for (int shift : {24, 16, 8, 0}) bytes.push_back(static_cast<std::uint8_t>(e >> shift));
  bytes.insert(bytes.end(), values.begin(), values.end());
  const std::filesystem::path tmp = path.string() + ".tmp";
  const bool gzip = path.extension() == ".gz";
  if (gzip) {
    gzFile file = gzopen(tmp.c_str(), "wb6");
    const bool ok = file != nullptr &&
                    gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())) ==
                        static_cast<int>(bytes.size());
    if (file == nullptr || gzclose(file) != Z_OK || !ok)
      throw FileError("write_idx: cannot write " + tmp.string());
  } else {
    std::ofstream file(tmp, std::ios::binary);
    file.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    file.close();
    if (!file) throw FileError("write_idx: cannot write " + tmp.string());
  }
  std::filesystem::rename(tmp, path);
}

ImageDataset read_image_dataset(const std::filesystem::path& directory, const std::string& split) {
  check_argument(split == "train" || split == "t10k", "read_image_dataset", "split",
                 "must be train or t10k, got '" + split + "'");
  auto find = [&](const std::string& stem) {
    const std::filesystem::path plain = directory / stem;
    if (std::filesystem::exists(plain)) return plain;
    const std::filesystem::path gz = directory / (stem + ".gz");
    if (std::filesystem::exists(gz)) return gz;
    throw FileError("read_image_dataset: " + directory.string() + " has neither " + stem +
                    " nor " + stem + ".gz");
  };
  const std::filesystem::path image_path = find(split + "-images-idx3-ubyte");
  const std::filesystem::path label_path = find(split + "-labels-idx1-ubyte");
  const IdxArray images = read_idx(image_path);
  const IdxArray labels = read_idx(label_path);
  if (images.shape.size() != 3)
    throw FileError("read_image_dataset: " + image_path.string() + " must be 3-dimensional " +
                    "(images x rows x cols), it has " + std::to_string(images.shape.size()) +
                    " dimensions");
  if (labels.shape.size() != 1 || labels.shape[0] != images.shape[0])
    throw FileError("read_image_dataset: " + label_path.string() + " must hold one label per image (" +
                    std::to_string(images.shape[0]) + "), it has shape of " +
                    std::to_string(product(labels.shape)) + " values in " +
                    std::to_string(labels.shape.size()) + " dimensions");
  ImageDataset out;
  out.rows = images.shape[1];
  out.cols = images.shape[2];
  const Eigen::Index n = images.shape[0], pixels = out.rows * out.cols;
  out.images.resize(n, pixels);
  for (Eigen::Index i = 0; i < n * pixels; ++i)
    out.images.data()[i] = static_cast<float>(images.values[static_cast<std::size_t>(i)]) / 255.0f;
  out.labels.assign(labels.values.begin(), labels.values.end());
  for (std::size_t i = 0; i < out.labels.size(); ++i)
    if (out.labels[i] > 9)
      throw FileError("read_image_dataset: " + label_path.string() + " has label " +
                      std::to_string(out.labels[i]) + " at index " + std::to_string(i) +
                      " (expected 0 to 9)");
  return out;
}

namespace {

/// The images of one class file {"data": [[...], ...]}: a small strict parser (the files are
/// 15 MB of integers; a DOM would take gigabytes).
std::vector<std::array<std::uint8_t, 784>> parse_class_file(const std::filesystem::path& path) {
  const std::string where = "convert_fashion_mnist_json: " + path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError(where + ": cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t pos = text.find("\"data\"");
  if (pos == std::string::npos) throw FileError(where + ": no \"data\" key");
  pos = text.find('[', pos);
  if (pos == std::string::npos) throw FileError(where + ": \"data\" is not an array");
  ++pos;
  auto skip_space = [&] {
    while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
  };
  std::vector<std::array<std::uint8_t, 784>> images;
  for (;;) {
    skip_space();
    if (pos >= text.size()) throw FileError(where + ": truncated");
    if (text[pos] == ']') break;
    if (text[pos] == ',') {
      ++pos;
      continue;
    }
    if (text[pos] != '[') throw FileError(where + ": expected an image array at byte " + std::to_string(pos));
    ++pos;
    std::array<std::uint8_t, 784> image{};
    std::size_t count = 0;
    for (;;) {
      skip_space();
      if (pos >= text.size()) throw FileError(where + ": truncated");
      if (text[pos] == ']') {
        ++pos;
        break;
      }
      if (text[pos] == ',') {
        ++pos;
        continue;
      }
      const std::size_t start = pos;
      while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) ++pos;
      const std::size_t digits = pos - start;
      const bool leading_zero = digits > 1 && text[start] == '0';
      const int value = digits >= 1 && digits <= 3 ? std::stoi(text.substr(start, digits)) : 256;
      skip_space();
      const bool separated = pos < text.size() && (text[pos] == ',' || text[pos] == ']');
      if (digits == 0 || leading_zero || value > 255 || !separated)
        throw FileError(where + ": image " + std::to_string(images.size()) +
                        " has a value that is not an integer in 0..255 near byte " +
                        std::to_string(pos));
      if (count == 784)
        throw FileError(where + ": image " + std::to_string(images.size()) +
                        " has more than 784 values");
      image[count++] = static_cast<std::uint8_t>(value);
    }
    // The package holds two empty entries in class 0 (after its 1000th and 7000th image); they
    // are not images and are skipped. Anything else must be a whole 28 x 28 image.
    if (count == 0) continue;
    if (count != 784)
      throw FileError(where + ": image " + std::to_string(images.size()) + " has " +
                      std::to_string(count) + " values, expected 784 (28 x 28)");
    images.push_back(image);
  }
  return images;
}

/// Fisher-Yates with a portable draw (std::shuffle's algorithm is implementation-defined).
void shuffle(std::vector<std::size_t>& order, std::mt19937_64& rng) {
  for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
}

}  // namespace

void convert_fashion_mnist_json(const std::filesystem::path& json_directory,
                                const std::filesystem::path& out, std::uint64_t seed) {
  struct Item {
    const std::array<std::uint8_t, 784>* image;
    std::uint8_t label;
  };
  std::vector<std::vector<std::array<std::uint8_t, 784>>> classes;
  std::vector<Item> train, test;
  for (int c = 0; c < 10; ++c) {
    classes.push_back(parse_class_file(json_directory / (std::to_string(c) + ".json")));
    if (classes.back().size() < 1000)
      throw FileError("convert_fashion_mnist_json: class " + std::to_string(c) + " has only " +
                      std::to_string(classes.back().size()) + " images, expected at least 1000");
  }
  for (int c = 0; c < 10; ++c)
    for (std::size_t i = 0; i < classes[c].size(); ++i)
      (i < 1000 ? test : train).push_back({&classes[c][i], static_cast<std::uint8_t>(c)});
  std::filesystem::create_directories(out);
  std::mt19937_64 rng(seed);
  for (auto [items, split] : {std::pair{&train, "train"}, std::pair{&test, "t10k"}}) {
    std::vector<std::size_t> order(items->size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    shuffle(order, rng);
    std::vector<std::uint8_t> pixels, labels;
    pixels.reserve(order.size() * 784);
    for (std::size_t i : order) {
      const Item& item = (*items)[i];
      pixels.insert(pixels.end(), item.image->begin(), item.image->end());
      labels.push_back(item.label);
    }
    const auto n = static_cast<Eigen::Index>(order.size());
    write_idx(out / (std::string(split) + "-images-idx3-ubyte"), {n, 28, 28}, pixels);
    write_idx(out / (std::string(split) + "-labels-idx1-ubyte"), {n}, labels);
  }
}

}  // namespace infield

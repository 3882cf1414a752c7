#include "infield/npy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "infield/error.h"

namespace infield {
namespace {

namespace fs = std::filesystem;

// The benchmark data lives in ../shared beside the repository; the repository root is three levels
// up from this file (tests/core/npy_test.cpp).
fs::path shared_dir() {
  return fs::path(INFIELD_SHARED_DIR);
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

template <typename T>
std::string raw(const std::vector<T>& values) {
  std::string bytes(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// A .npy file written by hand: magic, version, header length, `dict` padded with spaces and '\n' to
// a multiple of 64 bytes, then `data`. Independent of the implementation under test.
std::string npy_file(std::string_view dict, std::string_view data, int major = 1, int minor = 0) {
  const std::size_t length_size = major == 1 ? 2 : 4;
  std::size_t spaces = 0;
  while ((8 + length_size + dict.size() + spaces + 1) % 64 != 0) ++spaces;
  const std::string header = std::string(dict) + std::string(spaces, ' ') + "\n";
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += static_cast<char>(minor);
  for (std::size_t i = 0; i < length_size; ++i)
    out += static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  return out + header + std::string(data);
}

// Bit-for-bit equality, so that NaN, -0.0 and denormals count.
void expect_same_bits(const Eigen::VectorXd& got, const Eigen::VectorXd& expected) {
  ASSERT_EQ(got.size(), expected.size());
  for (Eigen::Index i = 0; i < got.size(); ++i)
    EXPECT_EQ(std::memcmp(&got[i], &expected[i], sizeof(double)), 0)
        << "entry " << i << ": " << got[i] << " vs " << expected[i];
}

class Npy : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device device;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("infield_npy_test_" + std::string(info->name()) + "_" + std::to_string(device()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  fs::path file(const std::string& name) const { return dir_ / name; }

  // Writes `bytes` to a file, reads it back and returns the FileError message (checking that it
  // names the file); fails the test if read_npy does not throw FileError.
  std::string read_error(const std::string& name, std::string_view bytes) {
    const fs::path path = file(name);
    write_bytes(path, bytes);
    return read_error_at(path);
  }

  static std::string read_error_at(const fs::path& path) {
    try {
      read_npy(path);
    } catch (const FileError& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.rfind("read_npy: " + path.string() + " ", 0), 0u) << message;
      return message;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "read_npy threw something else than FileError: " << e.what();
      return {};
    }
    ADD_FAILURE() << "read_npy did not throw for " << path;
    return {};
  }

  fs::path dir_;
};

// ---- round trips ----

TEST_F(Npy, RoundTripFloat64KeepsEveryBit) {
  const double inf = std::numeric_limits<double>::infinity();
  Eigen::VectorXd v(12);
  v << 1.0, -2.5, 0.1, -0.0, 5e-324, std::numeric_limits<double>::max(), -inf, inf,
      std::numeric_limits<double>::quiet_NaN(), 1e-300, 3.141592653589793, 123456789.0;

  const std::vector<std::vector<Eigen::Index>> shapes = {{12}, {3, 4}, {2, 3, 2}, {1, 12, 1}};
  for (const auto& shape : shapes) {
    const fs::path path = file("f8.npy");
    write_npy(path, shape, v);
    const NpyArray a = read_npy(path);
    EXPECT_EQ(a.shape, shape);
    expect_same_bits(a.values, v);
  }
}

TEST_F(Npy, RoundTripFloat64Scalar) {
  const fs::path path = file("scalar.npy");
  write_npy(path, {}, Eigen::VectorXd::Constant(1, -7.25));
  const NpyArray a = read_npy(path);
  EXPECT_TRUE(a.shape.empty());
  ASSERT_EQ(a.values.size(), 1);
  EXPECT_EQ(a.values[0], -7.25);
  // A scalar header has shape () and 8 bytes of data.
  const std::string bytes = read_bytes(path);
  EXPECT_NE(bytes.find("'shape': (), }"), std::string::npos);
  EXPECT_EQ(bytes.size() % 64, 8u);
}

TEST_F(Npy, RoundTripEmptyArrays) {
  for (const std::vector<Eigen::Index>& shape :
       {std::vector<Eigen::Index>{0}, std::vector<Eigen::Index>{3, 0}}) {
    const fs::path path = file("empty.npy");
    write_npy(path, shape, Eigen::VectorXd(0), NpyDtype::kFloat32);
    const NpyArray a = read_npy(path);
    EXPECT_EQ(a.shape, shape);
    EXPECT_EQ(a.values.size(), 0);
    EXPECT_EQ(read_bytes(path).size() % 64, 0u);
  }
}

TEST_F(Npy, RoundTripFloat32RoundsToFloat) {
  Eigen::VectorXd v(6);
  v << 1.5, -0.25, 0.1, 1e-3, 65504.0, -3.0e38;
  for (const auto& shape : std::vector<std::vector<Eigen::Index>>{{6}, {2, 3}, {3, 1, 2}}) {
    const fs::path path = file("f4.npy");
    write_npy(path, shape, v, NpyDtype::kFloat32);
    const NpyArray a = read_npy(path);
    EXPECT_EQ(a.shape, shape);
    ASSERT_EQ(a.values.size(), v.size());
    for (Eigen::Index i = 0; i < v.size(); ++i)
      EXPECT_EQ(a.values[i], static_cast<double>(static_cast<float>(v[i]))) << i;
    EXPECT_EQ(a.values[0], 1.5);
    EXPECT_NE(a.values[2], 0.1);  // 0.1 is not a float
    EXPECT_NEAR(a.values[2], 0.1, 1e-8);
    // Four bytes per value after a 64-byte aligned header.
    const std::string bytes = read_bytes(path);
    EXPECT_EQ(bytes.size() % 64, 24u);
    EXPECT_NE(bytes.find("'descr': '<f4'"), std::string::npos);
  }
}

TEST_F(Npy, RoundTripFloat32Scalar) {
  const fs::path path = file("scalar32.npy");
  write_npy(path, {}, Eigen::VectorXd::Constant(1, 0.5), NpyDtype::kFloat32);
  const NpyArray a = read_npy(path);
  EXPECT_TRUE(a.shape.empty());
  ASSERT_EQ(a.values.size(), 1);
  EXPECT_EQ(a.values[0], 0.5);
  EXPECT_EQ(read_bytes(path).size() % 64, 4u);
}

TEST_F(Npy, WriterLaysOutTheHeaderAsNumpyDoes) {
  const fs::path path = file("layout.npy");
  write_npy(path, {2, 3}, Eigen::VectorXd::LinSpaced(6, 0, 5));
  const std::string bytes = read_bytes(path);
  // What np.save(np.arange(6.).reshape(2, 3)) writes: sorted keys, ", }", spare room for the first
  // axis to grow to 21 digits, spaces up to a multiple of 64 bytes, '\n'.
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  dict += std::string(20, ' ');
  std::string expected_header("\x93NUMPY\x01\x00\x76\x00", 10);
  expected_header += dict + std::string(128 - 10 - dict.size() - 1, ' ') + "\n";
  ASSERT_EQ(bytes.size(), 128u + 6 * 8);
  EXPECT_EQ(bytes.substr(0, 128), expected_header);
  std::vector<double> data(6);
  std::memcpy(data.data(), bytes.data() + 128, 48);
  EXPECT_EQ(data, (std::vector<double>{0, 1, 2, 3, 4, 5}));
}

TEST_F(Npy, WriterLeavesRoomForTheFirstAxisToGrowAsNumpyDoes) {
  // numpy.lib.format: after the dict come 21 - len(str(shape[0])) spaces, then 1 to 64 spaces and
  // '\n' up to a multiple of 64 bytes. With 16 axes of length 1 the dict alone would fit in 128
  // bytes, but the spare room pushes the header to 192. With 36 axes the dict, the spare room and
  // '\n' end exactly on 192 bytes, and NumPy still pads by a full 64 bytes.
  for (const auto& [axes, expected_size] :
       {std::pair<std::size_t, std::size_t>{16, 192}, {36, 256}}) {
    const std::vector<Eigen::Index> shape(axes, 1);
    const fs::path path = file("growth.npy");
    write_npy(path, shape, Eigen::VectorXd::Constant(1, 2.0));
    const std::string bytes = read_bytes(path);
    ASSERT_EQ(bytes.size(), expected_size + 8) << axes << " axes";
    std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (1";
    for (std::size_t i = 1; i < axes; ++i) dict += ", 1";
    dict += "), }";
    EXPECT_EQ(bytes.substr(10, expected_size - 10),
              dict + std::string(expected_size - 10 - dict.size() - 1, ' ') + "\n");
    EXPECT_EQ(static_cast<unsigned char>(bytes[8]) + 256 * static_cast<unsigned char>(bytes[9]),
              expected_size - 10);
    EXPECT_EQ(read_npy(path).shape, shape);
  }
}

TEST_F(Npy, WriterUsesFormat2ForHugeHeaders) {
  // 22000 axes of length 1: the shape alone is 66000 characters, too long for format 1.0.
  const std::vector<Eigen::Index> shape(22000, 1);
  const fs::path path = file("many_axes.npy");
  write_npy(path, shape, Eigen::VectorXd::Constant(1, 4.0));
  const std::string bytes = read_bytes(path);
  ASSERT_GT(bytes.size(), 12u);
  ASSERT_EQ(bytes[6], 2);
  EXPECT_EQ(bytes[7], 0);
  std::uint32_t header_len = 0;
  std::memcpy(&header_len, bytes.data() + 8, 4);
  EXPECT_GT(header_len, 65535u);
  EXPECT_EQ((12 + header_len) % 64, 0u);
  ASSERT_LE(12 + header_len, bytes.size());
  EXPECT_EQ(bytes[12 + header_len - 1], '\n');
  EXPECT_EQ(bytes.size(), 12 + header_len + 8);
  const NpyArray a = read_npy(path);
  EXPECT_EQ(a.shape, shape);
  ASSERT_EQ(a.values.size(), 1);
  EXPECT_EQ(a.values[0], 4.0);
}

TEST_F(Npy, WriteReplacesAnExistingFileAndLeavesNoTemporaryFile) {
  const fs::path path = file("replace.npy");
  write_bytes(path, "old contents");
  write_npy(path, {3}, Eigen::Vector3d(1, 2, 3));
  write_npy(path, {2}, Eigen::Vector2d(5, 6));
  const NpyArray a = read_npy(path);
  EXPECT_EQ(a.shape, std::vector<Eigen::Index>{2});
  EXPECT_EQ(a.values, Eigen::Vector2d(5, 6));
  std::vector<fs::path> entries;
  for (const auto& entry : fs::directory_iterator(dir_)) entries.push_back(entry.path());
  EXPECT_EQ(entries, std::vector<fs::path>{path});
}

// ---- other dtypes, versions and header spellings (files written by hand) ----

TEST_F(Npy, ReadsIntegerAndBoolDtypes) {
  {
    const fs::path path = file("i8.npy");
    write_bytes(path, npy_file("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }",
                               raw<std::int64_t>({-3, 0, std::int64_t{1} << 40, 7})));
    const NpyArray a = read_npy(path);
    EXPECT_EQ(a.shape, (std::vector<Eigen::Index>{2, 2}));
    EXPECT_EQ(a.values, Eigen::Vector4d(-3, 0, std::ldexp(1.0, 40), 7));
  }
  {
    const fs::path path = file("i4.npy");
    write_bytes(path, npy_file("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }",
                               raw<std::int32_t>({-7, 2147483647, -2147483647 - 1})));
    EXPECT_EQ(read_npy(path).values, Eigen::Vector3d(-7, 2147483647.0, -2147483648.0));
  }
  {
    const fs::path path = file("u1.npy");
    write_bytes(path, npy_file("{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }",
                               raw<std::uint8_t>({0, 255, 7})));
    EXPECT_EQ(read_npy(path).values, Eigen::Vector3d(0, 255, 7));
  }
  {
    const fs::path path = file("b1.npy");
    write_bytes(path, npy_file("{'descr': '|b1', 'fortran_order': False, 'shape': (2, 2), }",
                               raw<std::uint8_t>({0, 1, 2, 0})));
    const NpyArray a = read_npy(path);
    EXPECT_EQ(a.shape, (std::vector<Eigen::Index>{2, 2}));
    EXPECT_EQ(a.values, Eigen::Vector4d(0, 1, 1, 0));  // any non-zero byte is True
  }
}

TEST_F(Npy, ReadsFormatVersions2And3) {
  const std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
  const std::string data = raw<double>({1.25, -8});
  for (const int major : {1, 2, 3}) {
    const fs::path path = file("v" + std::to_string(major) + ".npy");
    write_bytes(path, npy_file(dict, data, major));
    const NpyArray a = read_npy(path);
    EXPECT_EQ(a.shape, std::vector<Eigen::Index>{2}) << major;
    EXPECT_EQ(a.values, Eigen::Vector2d(1.25, -8)) << major;
  }
}

TEST_F(Npy, ReadsOtherSpellingsOfTheHeader) {
  const std::string data = raw<float>({1, 2, 3, 4, 5, 6});
  // Key order, double quotes, no trailing comma, Python 2 longs, spaces.
  for (const std::string dict : {
           "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
           "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2L, 3L)}",
           "{ 'descr' : '<f4' , 'fortran_order' : False , 'shape' : ( 2 , 3 , ) , }",
       }) {
    const fs::path path = file("spelling.npy");
    write_bytes(path, npy_file(dict, data));
    const NpyArray a = read_npy(path);
    EXPECT_EQ(a.shape, (std::vector<Eigen::Index>{2, 3})) << dict;
    EXPECT_EQ(a.values, Eigen::VectorXd::LinSpaced(6, 1, 6)) << dict;
  }
}

// ---- the real benchmark files ----

TEST_F(Npy, ReadsWf1dData) {
  const fs::path path = shared_dir() / "benchmarks/wf1d/data.npy";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not found";
  const NpyArray a = read_npy(path);
  EXPECT_EQ(a.shape, std::vector<Eigen::Index>{618});
  ASSERT_EQ(a.values.size(), 618);
  EXPECT_TRUE(a.values.allFinite());
  EXPECT_GT(a.values.cwiseAbs().maxCoeff(), 0.0);
  // Writing it back as float64 gives the same bytes as NumPy wrote.
  const fs::path copy = file("wf1d.npy");
  write_npy(copy, a.shape, a.values);
  EXPECT_EQ(read_bytes(copy), read_bytes(path));
}

TEST_F(Npy, ReadsCf2dDataAndMask) {
  const fs::path data_path = shared_dir() / "benchmarks/cf2d/data.npy";
  const fs::path mask_path = shared_dir() / "benchmarks/cf2d/mask.npy";
  if (!fs::exists(data_path) || !fs::exists(mask_path))
    GTEST_SKIP() << data_path << " or " << mask_path << " not found";
  const NpyArray data = read_npy(data_path);
  EXPECT_EQ(data.shape, std::vector<Eigen::Index>{7505});
  ASSERT_EQ(data.values.size(), 7505);
  EXPECT_TRUE(data.values.allFinite());
  // float32 -> double -> float32 is exact: writing it back reproduces NumPy's file.
  const fs::path copy = file("cf2d.npy");
  write_npy(copy, data.shape, data.values, NpyDtype::kFloat32);
  EXPECT_EQ(read_bytes(copy), read_bytes(data_path));

  const NpyArray mask = read_npy(mask_path);
  EXPECT_EQ(mask.shape, (std::vector<Eigen::Index>{128, 128}));
  ASSERT_EQ(mask.values.size(), 128 * 128);
  EXPECT_TRUE((mask.values.array() == 0.0 || mask.values.array() == 1.0).all());
  EXPECT_EQ(mask.values.sum(), 7505.0);  // one datum per True pixel
}

// ---- corrupt and unsupported files ----

constexpr std::string_view kF8Dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";

TEST_F(Npy, RejectsMissingFileAndDirectory) {
  EXPECT_NE(read_error_at(file("does_not_exist.npy")).find("does not exist"), std::string::npos);
  EXPECT_NE(read_error_at(dir_).find("is a directory"), std::string::npos);
}

TEST_F(Npy, RejectsBadMagic) {
  std::string bytes = npy_file(kF8Dict, raw<double>({1, 2}));
  bytes[1] = 'n';
  EXPECT_NE(read_error("magic.npy", bytes).find("bad magic"), std::string::npos);
  EXPECT_NE(read_error("text.npy", "hello, world\n").find("bad magic"), std::string::npos);
  EXPECT_NE(read_error("empty.npy", "").find("bad magic"), std::string::npos);
  EXPECT_NE(read_error("short.npy", std::string("\x93NUMPY\x01", 7)).find("bad magic"),
            std::string::npos);
}

TEST_F(Npy, RejectsUnsupportedVersions) {
  const std::string data = raw<double>({1, 2});
  EXPECT_NE(read_error("v4.npy", npy_file(kF8Dict, data, 4)).find("version 4.0"),
            std::string::npos);
  EXPECT_NE(read_error("v11.npy", npy_file(kF8Dict, data, 1, 1)).find("version 1.1"),
            std::string::npos);
  EXPECT_NE(read_error("v0.npy", npy_file(kF8Dict, data, 0)).find("version 0.0"),
            std::string::npos);
}

TEST_F(Npy, RejectsTruncatedData) {
  const std::string good = npy_file(kF8Dict, raw<double>({1, 2}));
  EXPECT_NE(read_error("truncated.npy", good.substr(0, good.size() - 1)).find("truncated"),
            std::string::npos);
  EXPECT_NE(read_error("no_data.npy", good.substr(0, 64)).find("truncated"), std::string::npos);
  // The header itself cut short.
  EXPECT_NE(read_error("cut_header.npy", good.substr(0, 40)).find("truncated"), std::string::npos);
  EXPECT_NE(read_error("cut_length.npy", good.substr(0, 9)).find("truncated"), std::string::npos);
}

TEST_F(Npy, RejectsTrailingData) {
  const std::string message = read_error("trailing.npy", npy_file(kF8Dict, raw<double>({1, 2, 3})));
  EXPECT_NE(message.find("8 trailing bytes"), std::string::npos) << message;
  EXPECT_NE(
      read_error("one_byte.npy", npy_file(kF8Dict, raw<double>({1, 2}) + "x")).find("trailing"),
      std::string::npos);
}

TEST_F(Npy, RejectsBigEndian) {
  const std::string message = read_error(
      "big.npy",
      npy_file("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", raw<double>({1, 2})));
  EXPECT_NE(message.find("big-endian dtype '>f8'"), std::string::npos) << message;
  EXPECT_NE(read_error("big4.npy", npy_file("{'descr': '>i4', 'fortran_order': False, "
                                            "'shape': (2,), }",
                                            raw<std::int32_t>({1, 2})))
                .find("big-endian"),
            std::string::npos);
}

TEST_F(Npy, RejectsFortranOrder) {
  const std::string message = read_error(
      "fortran.npy", npy_file("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
                              raw<double>({1, 2, 3, 4, 5, 6})));
  EXPECT_NE(message.find("Fortran order"), std::string::npos) << message;
}

TEST_F(Npy, RejectsUnsupportedDtypes) {
  const std::string message = read_error(
      "complex.npy", npy_file("{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }",
                              raw<double>({1, 2, 3, 4})));
  EXPECT_NE(message.find("unsupported dtype '<c16'"), std::string::npos) << message;
  for (const std::string descr :
       {"'<f2'", "'|O'", "'<U3'", "'f8'", "[('x', '<f8'), ('y', '<f8')]"}) {
    const std::string m = read_error(
        "dtype.npy",
        npy_file("{'descr': " + descr + ", 'fortran_order': False, 'shape': (1,), }", "12345678"));
    EXPECT_NE(m.find("unsupported dtype"), std::string::npos) << descr << ": " << m;
  }
}

TEST_F(Npy, RejectsMalformedHeaders) {
  const std::string data = raw<double>({1, 2});
  for (const std::string dict : {
           "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), ",         // no '}'
           "{'descr': '<f8' 'fortran_order': False, 'shape': (2,)}",           // no ','
           "{'descr': '<f8', 'fortran_order': False}",                         // no shape
           "{'fortran_order': False, 'shape': (2,)}",                          // no descr
           "{'descr': '<f8', 'shape': (2,)}",                                  // no fortran_order
           "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': 1}",  // extra key
           "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2,)}",
           "{'descr': '<f8', 'fortran_order': 0, 'shape': (2,)}",
           "{'descr': '<f8, 'fortran_order': False, 'shape': (2,)}",  // unterminated string
           "{descr: '<f8', 'fortran_order': False, 'shape': (2,)}",
           "('<f8', False, (2,))",
           "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)} junk",
           "",
       }) {
    const std::string m = read_error("malformed.npy", npy_file(dict, data));
    EXPECT_NE(m.find("malformed header"), std::string::npos) << dict << ": " << m;
  }
}

TEST_F(Npy, RejectsInvalidShapes) {
  const std::string data = raw<double>({1, 2});
  for (const std::string shape :
       {"(-2,)", "(2.0,)", "(2, -1)", "2", "[2]", "('2',)", "(None,)", "(99999999999999999999,)"}) {
    const std::string m = read_error(
        "shape.npy",
        npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }", data));
    EXPECT_TRUE(m.find("invalid shape") != std::string::npos ||
                m.find("malformed header") != std::string::npos)
        << shape << ": " << m;
  }
  EXPECT_NE(read_error("negative.npy",
                       npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (-2,), }", data))
                .find("negative"),
            std::string::npos);
  EXPECT_NE(
      read_error("float.npy",
                 npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (2.0,), }", data))
          .find("not an integer"),
      std::string::npos);
  // A product that overflows 64 bits must not be taken for a small array.
  EXPECT_NE(read_error("overflow.npy", npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': "
                                                "(4294967296, 4294967296, 2), }",
                                                data))
                .find("too many values"),
            std::string::npos);
}

// ---- writer errors ----

TEST_F(Npy, WriteRejectsShapeThatDoesNotMatchTheValues) {
  const fs::path path = file("mismatch.npy");
  try {
    write_npy(path, {2, 3}, Eigen::VectorXd::Zero(5));
    FAIL() << "write_npy did not throw";
  } catch (const InvalidArgument& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("write_npy: shape (2, 3) has 6 values, but values has 5", 0), 0u)
        << message;
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  }
  EXPECT_THROW(write_npy(path, {}, Eigen::VectorXd::Zero(2)), InvalidArgument);
  EXPECT_THROW(write_npy(path, {-1, -2}, Eigen::VectorXd::Zero(2)), InvalidArgument);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(Npy, WriteFailuresThrowFileErrorNamingTheFile) {
  for (const fs::path& path : {file("no_such_dir") / "x.npy", dir_}) {
    try {
      write_npy(path, {1}, Eigen::VectorXd::Zero(1));
      ADD_FAILURE() << "write_npy did not throw for " << path;
    } catch (const FileError& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.rfind("write_npy: " + path.string() + " cannot be written", 0), 0u)
          << message;
    }
  }
  EXPECT_TRUE(fs::is_empty(dir_));
}

}  // namespace
}  // namespace infield

#include "infield/npy.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#if __has_include(<unistd.h>)
#include <unistd.h>
#define INFIELD_HAVE_FSYNC 1
#endif

#include "infield/error.h"

namespace infield {

// Values are read and written with memcpy in the host byte order; the .npy files we support are
// little endian.
static_assert(std::endian::native == std::endian::little,
              "infield's .npy reader and writer assume a little-endian host");

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMagic{"\x93NUMPY", 6};
constexpr std::size_t kMagicLen = 8;  // the magic string plus the two version bytes
constexpr std::size_t kArrayAlign = 64;
// NumPy leaves room for the first axis to grow to this many digits (numpy.lib.format).
constexpr std::size_t kGrowthAxisMaxDigits = 21;
// Deepest nesting of tuples, lists and dicts accepted in a header.
constexpr int kMaxNesting = 32;

[[noreturn]] void fail(std::string_view function, const fs::path& path, std::string_view what) {
  throw FileError(format_error(function, path.string(), what));
}

std::string shape_to_string(const std::vector<Eigen::Index>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

// ---- Header parsing: the subset of Python literals that NumPy writes (and a little more) ----

struct PyValue {
  enum class Kind { kString, kBool, kNone, kInt, kFloat, kTuple, kList, kDict };
  Kind kind = Kind::kNone;
  std::string string;              // kString
  std::int64_t integer = 0;        // kInt
  bool boolean = false;            // kBool
  std::vector<std::string> keys;   // kDict (string keys only), parallel to items
  std::vector<PyValue> items;      // kTuple, kList, kDict values
  std::size_t begin = 0, end = 0;  // source span, for error messages
};

struct ParseError {
  std::string what;
  std::size_t position;
};

class HeaderParser {
 public:
  explicit HeaderParser(std::string_view text) : s_(text) {}

  PyValue parse_document() {
    skip_space();
    PyValue value = parse_value(0);
    skip_space();
    if (pos_ != s_.size()) error("unexpected text after the dict");
    return value;
  }

 private:
  [[noreturn]] void error(std::string what) const { throw ParseError{std::move(what), pos_}; }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }

  void skip_space() {
    while (!at_end() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' ||
                         s_[pos_] == '\r' || s_[pos_] == '\f' || s_[pos_] == '\v'))
      ++pos_;
  }

  static bool is_identifier_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  }

  PyValue parse_value(int depth) {
    if (depth > kMaxNesting) error("nesting too deep");
    skip_space();
    if (at_end()) error("unexpected end of header");
    const std::size_t begin = pos_;
    PyValue value;
    const char c = peek();
    if (c == '{') {
      value = parse_dict(depth);
    } else if (c == '(') {
      value = parse_sequence(depth, ')');
    } else if (c == '[') {
      value = parse_sequence(depth, ']');
    } else if (c == '\'' || c == '"') {
      value = parse_string();
    } else if ((c == 'u' || c == 'b') && pos_ + 1 < s_.size() &&
               (s_[pos_ + 1] == '\'' || s_[pos_ + 1] == '"')) {
      ++pos_;  // Python 2 u'...' or b'...' prefix
      value = parse_string();
    } else if (c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9')) {
      value = parse_number();
    } else if (is_identifier_char(c)) {
      value = parse_name();
    } else {
      error(std::string("unexpected character '") + c + "'");
    }
    value.begin = begin;
    value.end = pos_;
    return value;
  }

  PyValue parse_dict(int depth) {
    PyValue dict;
    dict.kind = PyValue::Kind::kDict;
    ++pos_;  // '{'
    skip_space();
    if (peek() == '}') {
      ++pos_;
      return dict;
    }
    while (true) {
      PyValue key = parse_value(depth + 1);
      if (key.kind != PyValue::Kind::kString) error("dict keys must be strings");
      skip_space();
      if (peek() != ':') error("expected ':' after a dict key");
      ++pos_;
      PyValue item = parse_value(depth + 1);
      if (std::find(dict.keys.begin(), dict.keys.end(), key.string) != dict.keys.end())
        error("duplicate key '" + key.string + "'");
      dict.keys.push_back(std::move(key.string));
      dict.items.push_back(std::move(item));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        skip_space();
        if (peek() == '}') {
          ++pos_;
          return dict;
        }
      } else if (peek() == '}') {
        ++pos_;
        return dict;
      } else {
        error("expected ',' or '}' in the dict");
      }
    }
  }

  // A tuple `(...)` or a list `[...]`. As in Python, `(x)` without a comma is x itself.
  PyValue parse_sequence(int depth, char close) {
    PyValue seq;
    seq.kind = close == ')' ? PyValue::Kind::kTuple : PyValue::Kind::kList;
    ++pos_;  // '(' or '['
    skip_space();
    if (peek() == close) {
      ++pos_;
      return seq;
    }
    bool had_comma = false;
    while (true) {
      seq.items.push_back(parse_value(depth + 1));
      skip_space();
      if (peek() == ',') {
        had_comma = true;
        ++pos_;
        skip_space();
        if (peek() == close) {
          ++pos_;
          break;
        }
      } else if (peek() == close) {
        ++pos_;
        break;
      } else {
        error(std::string("expected ',' or '") + close + "'");
      }
    }
    if (close == ')' && !had_comma) return std::move(seq.items.front());
    return seq;
  }

  PyValue parse_string() {
    const char quote = s_[pos_++];
    PyValue value;
    value.kind = PyValue::Kind::kString;
    while (true) {
      if (at_end() || s_[pos_] == '\n') error("unterminated string");
      const char c = s_[pos_++];
      if (c == quote) break;
      if (c == '\\') {
        if (at_end()) error("unterminated string");
        value.string += s_[pos_++];
      } else {
        value.string += c;
      }
    }
    return value;
  }

  PyValue parse_number() {
    const std::size_t begin = pos_;
    if (peek() == '-' || peek() == '+') ++pos_;
    while (!at_end()) {
      const char c = s_[pos_];
      const bool exponent_sign =
          (c == '-' || c == '+') && (s_[pos_ - 1] == 'e' || s_[pos_ - 1] == 'E');
      if (!is_identifier_char(c) && c != '.' && !exponent_sign) break;
      ++pos_;
    }
    std::string_view token = s_.substr(begin, pos_ - begin);
    PyValue value;
    // Integers, with the 'L' suffix that Python 2 wrote for longs.
    std::string_view digits = token;
    bool negative = false;
    if (!digits.empty() && (digits.front() == '-' || digits.front() == '+')) {
      negative = digits.front() == '-';
      digits.remove_prefix(1);
    }
    if (!digits.empty() && (digits.back() == 'L' || digits.back() == 'l')) digits.remove_suffix(1);
    if (!digits.empty() &&
        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      std::uint64_t magnitude = 0;
      const auto [ptr, ec] =
          std::from_chars(digits.data(), digits.data() + digits.size(), magnitude);
      const std::uint64_t limit =
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + (negative ? 1 : 0);
      if (ec != std::errc() || magnitude > limit) error("integer out of range");
      value.kind = PyValue::Kind::kInt;
      value.integer = negative ? static_cast<std::int64_t>(0 - magnitude)
                               : static_cast<std::int64_t>(magnitude);
      return value;
    }
    // Anything else must be a float literal (or inf/nan spelled as a number: not in Python).
    const std::string text(token);
    char* parse_end = nullptr;
    std::strtod(text.c_str(), &parse_end);
    if (text.empty() || parse_end != text.c_str() + text.size())
      error("invalid number '" + text + "'");
    value.kind = PyValue::Kind::kFloat;
    return value;
  }

  PyValue parse_name() {
    const std::size_t begin = pos_;
    while (!at_end() && is_identifier_char(s_[pos_])) ++pos_;
    const std::string_view name = s_.substr(begin, pos_ - begin);
    PyValue value;
    if (name == "True" || name == "False") {
      value.kind = PyValue::Kind::kBool;
      value.boolean = name == "True";
    } else if (name == "None") {
      value.kind = PyValue::Kind::kNone;
    } else {
      pos_ = begin;
      error("unexpected name '" + std::string(name) + "'");
    }
    return value;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

// ---- dtypes ----

enum class Element { kF8, kF4, kI8, kI4, kU1, kB1 };

struct DtypeInfo {
  std::string_view descr;  // as NumPy writes it
  Element element;
  std::size_t itemsize;
};

constexpr std::array<DtypeInfo, 6> kSupported{{
    {"<f8", Element::kF8, 8},
    {"<f4", Element::kF4, 4},
    {"<i8", Element::kI8, 8},
    {"<i4", Element::kI4, 4},
    {"|u1", Element::kU1, 1},
    {"|b1", Element::kB1, 1},
}};

std::string supported_list() {
  std::string s;
  for (const auto& d : kSupported) {
    if (!s.empty()) s += ", ";
    s.append("'").append(d.descr).append("'");
  }
  return s;
}

// Finds the dtype for `descr`; "=" (native) counts as "<", and one-byte types accept any byte
// order character. Returns nullopt if unsupported; sets `big_endian` for a big-endian variant of a
// supported dtype.
std::optional<DtypeInfo> find_dtype(std::string_view descr, bool& big_endian) {
  big_endian = false;
  if (descr.size() < 2) return std::nullopt;
  const char order = descr.front();
  const std::string_view type = descr.substr(1);
  for (const auto& d : kSupported) {
    if (d.descr.substr(1) != type) continue;
    if (d.itemsize == 1) {
      if (order == '|' || order == '<' || order == '>' || order == '=') return d;
    } else if (order == '<' || order == '=') {
      return d;
    } else if (order == '>' || order == '!') {
      big_endian = true;
    }
  }
  return std::nullopt;
}

template <typename T, typename Convert>
void read_converted(std::ifstream& in, const fs::path& path, Eigen::VectorXd& out,
                    Convert convert) {
  constexpr Eigen::Index kChunk = Eigen::Index{1} << 16;
  std::vector<T> buffer(static_cast<std::size_t>(std::min(out.size(), kChunk)));
  for (Eigen::Index start = 0; start < out.size(); start += kChunk) {
    const Eigen::Index count = std::min(kChunk, out.size() - start);
    const auto bytes = static_cast<std::streamsize>(count * static_cast<Eigen::Index>(sizeof(T)));
    in.read(reinterpret_cast<char*>(buffer.data()), bytes);
    if (in.gcount() != bytes) fail("read_npy", path, "cannot be read: the data ends early");
    for (Eigen::Index i = 0; i < count; ++i)
      out[start + i] = convert(buffer[static_cast<std::size_t>(i)]);
  }
}

std::string excerpt(std::string_view header) {
  while (!header.empty() && (header.back() == ' ' || header.back() == '\n'))
    header.remove_suffix(1);
  constexpr std::size_t kMax = 200;
  std::string out(header.substr(0, kMax));
  if (header.size() > kMax) out += "...";
  return out;
}

[[noreturn]] void fail_malformed(const fs::path& path, std::string_view header,
                                 const std::string& what) {
  fail("read_npy", path, "has a malformed header (" + what + "): " + excerpt(header));
}

// ---- writing ----

std::string errno_text(int error) {
  return error != 0 ? std::string(": ") + std::strerror(error) : std::string();
}

std::string temporary_name(const fs::path& path) {
  static std::atomic<unsigned> counter{0};
  std::random_device device;
  const std::uint64_t token = (static_cast<std::uint64_t>(device()) << 32) ^ device() ^
                              counter.fetch_add(1, std::memory_order_relaxed);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(token));
  std::string name(1, '.');
  name.append(path.filename().string()).append(".tmp-").append(hex);
  return name;
}

// Removes the temporary file unless released.
class TemporaryFile {
 public:
  explicit TemporaryFile(fs::path path) : path_(std::move(path)) {}
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;
  ~TemporaryFile() {
    if (file_ != nullptr) std::fclose(file_);
    if (!released_) {
      std::error_code ignored;
      fs::remove(path_, ignored);
    }
  }
  const fs::path& path() const { return path_; }
  std::FILE*& file() { return file_; }
  void release() { released_ = true; }

 private:
  fs::path path_;
  std::FILE* file_ = nullptr;
  bool released_ = false;
};

std::string make_header(std::string_view descr, const std::vector<Eigen::Index>& shape) {
  // As numpy.lib.format._write_array_header: keys sorted, "'key': repr(value), " each, then "}",
  // spare room for the first axis to grow, then spaces and '\n' up to a multiple of 64 bytes.
  std::string dict = "{'descr': '" + std::string(descr) +
                     "', 'fortran_order': False, 'shape': " + shape_to_string(shape) + ", }";
  if (!shape.empty()) {
    const std::size_t digits = std::to_string(shape.front()).size();
    if (digits < kGrowthAxisMaxDigits) dict.append(kGrowthAxisMaxDigits - digits, ' ');
  }
  const std::size_t hlen = dict.size() + 1;  // with the final '\n'
  for (const std::size_t length_size : {std::size_t{2}, std::size_t{4}}) {
    const std::size_t padlen = kArrayAlign - (kMagicLen + length_size + hlen) % kArrayAlign;
    const std::size_t total = hlen + padlen;
    // Format 1.0 stores the header length in 2 bytes, 2.0 in 4.
    if (total > (length_size == 2 ? std::size_t{0xFFFF} : std::size_t{0xFFFFFFFF})) continue;
    std::string out(kMagic);
    out += static_cast<char>(length_size == 2 ? 1 : 2);
    out += '\0';
    for (std::size_t i = 0; i < length_size; ++i)
      out += static_cast<char>((total >> (8 * i)) & 0xFF);
    out += dict;
    out.append(padlen, ' ');
    out += '\n';
    return out;
  }
  // Only with hundreds of millions of axes.
  throw InvalidArgument(format_error("write_npy", "shape", "has too many axes for a .npy header"));
}

}  // namespace

NpyArray read_npy(const fs::path& path) {
  constexpr std::string_view kFn = "read_npy";
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) fail(kFn, path, "does not exist");
  if (ec) fail(kFn, path, "cannot be accessed: " + ec.message());
  if (fs::is_directory(status)) fail(kFn, path, "is a directory, not a .npy file");

  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(kFn, path, "cannot be opened" + errno_text(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff file_size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (file_size < 0 || !in) fail(kFn, path, "cannot be read");
  const auto size = static_cast<std::uint64_t>(file_size);

  // Magic string and version.
  std::array<unsigned char, kMagicLen + 4> prefix{};
  const std::size_t prefix_read =
      static_cast<std::size_t>(std::min<std::uint64_t>(size, prefix.size()));
  in.read(reinterpret_cast<char*>(prefix.data()), static_cast<std::streamsize>(prefix_read));
  if (static_cast<std::size_t>(in.gcount()) != prefix_read) fail(kFn, path, "cannot be read");
  if (prefix_read < kMagicLen || std::memcmp(prefix.data(), kMagic.data(), kMagic.size()) != 0)
    fail(kFn, path, "is not a .npy file (bad magic string; expected \\x93NUMPY)");
  const int major = prefix[6];
  const int minor = prefix[7];
  if (major < 1 || major > 3 || minor != 0)
    fail(kFn, path,
         "has unsupported .npy format version " + std::to_string(major) + "." +
             std::to_string(minor) + " (supported: 1.0, 2.0, 3.0)");
  const std::size_t length_size = major == 1 ? 2 : 4;
  if (prefix_read < kMagicLen + length_size)
    fail(kFn, path, "is truncated: it ends inside the header length");
  std::uint64_t header_len = 0;
  for (std::size_t i = 0; i < length_size; ++i)
    header_len |= static_cast<std::uint64_t>(prefix[kMagicLen + i]) << (8 * i);
  const std::uint64_t data_offset = kMagicLen + length_size + header_len;
  if (data_offset > size)
    fail(kFn, path,
         "is truncated: the header is " + std::to_string(header_len) +
             " bytes long, but the file has only " +
             std::to_string(size - kMagicLen - length_size) + " bytes after the header length");

  // Header.
  std::string header(static_cast<std::size_t>(header_len), '\0');
  in.seekg(static_cast<std::streamoff>(kMagicLen + length_size), std::ios::beg);
  in.read(header.data(), static_cast<std::streamsize>(header.size()));
  if (static_cast<std::uint64_t>(in.gcount()) != header_len) fail(kFn, path, "cannot be read");

  PyValue dict;
  try {
    dict = HeaderParser(header).parse_document();
  } catch (const ParseError& e) {
    fail_malformed(path, header, e.what + " at character " + std::to_string(e.position));
  }
  if (dict.kind != PyValue::Kind::kDict) fail_malformed(path, header, "not a dict");
  const PyValue* descr = nullptr;
  const PyValue* fortran_order = nullptr;
  const PyValue* shape_value = nullptr;
  for (std::size_t i = 0; i < dict.keys.size(); ++i) {
    if (dict.keys[i] == "descr") {
      descr = &dict.items[i];
    } else if (dict.keys[i] == "fortran_order") {
      fortran_order = &dict.items[i];
    } else if (dict.keys[i] == "shape") {
      shape_value = &dict.items[i];
    } else {
      fail_malformed(path, header, "unexpected key '" + dict.keys[i] + "'");
    }
  }
  if (descr == nullptr) fail_malformed(path, header, "no 'descr' key");
  if (fortran_order == nullptr) fail_malformed(path, header, "no 'fortran_order' key");
  if (shape_value == nullptr) fail_malformed(path, header, "no 'shape' key");

  // dtype.
  const std::string descr_text(header.substr(descr->begin, descr->end - descr->begin));
  if (descr->kind != PyValue::Kind::kString)
    fail(kFn, path,
         "has unsupported dtype " + excerpt(descr_text) +
             " (structured dtypes are not supported; supported: " + supported_list() + ")");
  bool big_endian = false;
  const std::optional<DtypeInfo> dtype = find_dtype(descr->string, big_endian);
  if (!dtype) {
    if (big_endian)
      fail(kFn, path,
           "has big-endian dtype '" + descr->string +
               "', which is not supported (save it little endian, e.g. with "
               "a.astype(a.dtype.newbyteorder('<')))");
    fail(kFn, path,
         "has unsupported dtype '" + descr->string + "' (supported: " + supported_list() + ")");
  }

  // Order.
  if (fortran_order->kind != PyValue::Kind::kBool)
    fail_malformed(path, header, "'fortran_order' must be True or False");
  if (fortran_order->boolean)
    fail(kFn, path,
         "is stored in Fortran order (fortran_order True), which is not supported; save a "
         "C-ordered array (numpy.ascontiguousarray)");

  // Shape.
  const std::string shape_text(
      header.substr(shape_value->begin, shape_value->end - shape_value->begin));
  if (shape_value->kind != PyValue::Kind::kTuple)
    fail(kFn, path, "has an invalid shape " + excerpt(shape_text) + ": it must be a tuple");
  NpyArray result;
  std::int64_t count = 1;
  for (std::size_t i = 0; i < shape_value->items.size(); ++i) {
    const PyValue& entry = shape_value->items[i];
    if (entry.kind != PyValue::Kind::kInt)
      fail(kFn, path,
           "has an invalid shape " + excerpt(shape_text) + ": entry " + std::to_string(i) +
               " is not an integer");
    if (entry.integer < 0)
      fail(kFn, path,
           "has an invalid shape " + excerpt(shape_text) + ": entry " + std::to_string(i) +
               " is negative");
    if (__builtin_mul_overflow(count, entry.integer, &count))
      fail(kFn, path, "has an invalid shape " + excerpt(shape_text) + ": too many values");
    result.shape.push_back(static_cast<Eigen::Index>(entry.integer));
  }

  // Data size.
  std::int64_t data_bytes = 0;
  if (__builtin_mul_overflow(count, static_cast<std::int64_t>(dtype->itemsize), &data_bytes))
    fail(kFn, path, "has an invalid shape " + excerpt(shape_text) + ": too many values");
  const std::uint64_t available = size - data_offset;
  const std::string expectation = "shape " + shape_to_string(result.shape) + " of dtype '" +
                                  descr->string + "' needs " + std::to_string(data_bytes) +
                                  " bytes of data";
  if (available < static_cast<std::uint64_t>(data_bytes))
    fail(kFn, path,
         "is truncated: " + expectation + ", but only " + std::to_string(available) +
             " follow the header");
  if (available > static_cast<std::uint64_t>(data_bytes))
    fail(kFn, path,
         "has " + std::to_string(available - static_cast<std::uint64_t>(data_bytes)) +
             " trailing bytes: " + expectation + ", but " + std::to_string(available) +
             " follow the header");

  // Data.
  in.seekg(static_cast<std::streamoff>(data_offset), std::ios::beg);
  result.values.resize(static_cast<Eigen::Index>(count));
  switch (dtype->element) {
    case Element::kF8: {
      const auto bytes = static_cast<std::streamsize>(data_bytes);
      in.read(reinterpret_cast<char*>(result.values.data()), bytes);
      if (in.gcount() != bytes) fail(kFn, path, "cannot be read: the data ends early");
      break;
    }
    case Element::kF4:
      read_converted<float>(in, path, result.values, [](float x) { return double{x}; });
      break;
    case Element::kI8:
      read_converted<std::int64_t>(in, path, result.values,
                                   [](std::int64_t x) { return static_cast<double>(x); });
      break;
    case Element::kI4:
      read_converted<std::int32_t>(in, path, result.values,
                                   [](std::int32_t x) { return static_cast<double>(x); });
      break;
    case Element::kU1:
      read_converted<std::uint8_t>(in, path, result.values,
                                   [](std::uint8_t x) { return static_cast<double>(x); });
      break;
    case Element::kB1:
      read_converted<std::uint8_t>(in, path, result.values,
                                   [](std::uint8_t x) { return x != 0 ? 1.0 : 0.0; });
      break;
  }
  return result;
}

void write_npy(const fs::path& path, const std::vector<Eigen::Index>& shape,
               const Eigen::Ref<const Eigen::VectorXd>& values, NpyDtype dtype) {
  constexpr std::string_view kFn = "write_npy";
  std::int64_t count = 1;
  // The messages are built only on failure: a shape may have very many axes.
  for (const Eigen::Index extent : shape) {
    if (extent < 0)
      check_argument(
          false, kFn, "shape",
          shape_to_string(shape) + " has a negative entry (writing " + path.string() + ")");
    if (__builtin_mul_overflow(count, static_cast<std::int64_t>(extent), &count))
      check_argument(
          false, kFn, "shape",
          shape_to_string(shape) + " has too many values (writing " + path.string() + ")");
  }
  if (count != values.size())
    check_argument(false, kFn, "shape",
                   shape_to_string(shape) + " has " + std::to_string(count) +
                       " values, but values has " + std::to_string(values.size()) + " (writing " +
                       path.string() + ")");

  const std::string header = make_header(dtype == NpyDtype::kFloat64 ? "<f8" : "<f4", shape);

  std::error_code ec;
  if (fs::is_directory(path, ec)) fail(kFn, path, "cannot be written: it is a directory");
  TemporaryFile temporary(path.parent_path() / temporary_name(path));
  errno = 0;
  temporary.file() = std::fopen(temporary.path().c_str(), "wb");
  if (temporary.file() == nullptr)
    fail(kFn, path,
         "cannot be written: cannot create the temporary file " + temporary.path().string() +
             errno_text(errno));
  std::FILE* file = temporary.file();
  const auto write_failed = [&] {
    fail(kFn, path,
         "cannot be written: writing the temporary file " + temporary.path().string() + " failed" +
             errno_text(errno));
  };
  errno = 0;
  if (std::fwrite(header.data(), 1, header.size(), file) != header.size()) write_failed();
  const auto n = static_cast<std::size_t>(values.size());
  if (dtype == NpyDtype::kFloat64) {
    if (n > 0 && std::fwrite(values.data(), sizeof(double), n, file) != n) write_failed();
  } else {
    constexpr std::size_t kChunk = std::size_t{1} << 16;
    std::vector<float> buffer(std::min(n, kChunk));
    for (std::size_t start = 0; start < n; start += kChunk) {
      const std::size_t m = std::min(kChunk, n - start);
      for (std::size_t i = 0; i < m; ++i)
        buffer[i] = static_cast<float>(values[static_cast<Eigen::Index>(start + i)]);
      if (std::fwrite(buffer.data(), sizeof(float), m, file) != m) write_failed();
    }
  }
  if (std::fflush(file) != 0) write_failed();
#ifdef INFIELD_HAVE_FSYNC
  // Make the data durable before the rename makes it visible under the final name.
  if (::fsync(::fileno(file)) != 0) write_failed();
#endif
  temporary.file() = nullptr;
  if (std::fclose(file) != 0) write_failed();

  fs::rename(temporary.path(), path, ec);
  if (ec)
    fail(kFn, path,
         "cannot be written: renaming the temporary file " + temporary.path().string() +
             " failed: " + ec.message());
  temporary.release();
}

}  // namespace infield

#pragma once
/// @file npy.h
/// @brief Reading and writing NumPy `.npy` files (format versions 1.0, 2.0 and 3.0).
///
/// The `.npy` format is a 6-byte magic string `\x93NUMPY`, a version (major, minor), the length of
/// the header (2 bytes little endian for version 1.0, 4 bytes for 2.0 and 3.0), the header (a
/// Python dict literal `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }` padded with
/// spaces and ending in `'\n'`, so that the data starts at a multiple of 64 bytes), and then the
/// raw values. Infield reads numeric arrays of the common dtypes into doubles, in C order, and
/// writes float64 or float32 arrays exactly as NumPy writes them.
///
/// Errors about a file throw FileError with the message `read_npy: <path> <what is wrong>` (or
/// `write_npy: ...`); invalid arguments throw InvalidArgument (see infield/error.h).

#include <Eigen/Core>
#include <filesystem>
#include <vector>

namespace infield {

/// The element type written by write_npy.
enum class NpyDtype {
  kFloat64,  ///< `'<f8'`: IEEE double, little endian; lossless.
  kFloat32,  ///< `'<f4'`: IEEE single, little endian; values are rounded to float.
};

/// The contents of a `.npy` file.
struct NpyArray {
  /// Extent along each axis; an empty shape is a scalar (one value). A zero extent gives no values.
  std::vector<Eigen::Index> shape;
  /// All values in C order (the last axis varying fastest), converted to double; its size is the
  /// product of `shape`.
  Eigen::VectorXd values;
};

/// Reads a `.npy` file (format versions 1.0, 2.0 and 3.0).
///
/// Accepted dtypes: `'<f8'`, `'<f4'`, `'<i8'`, `'<i4'`, `'|u1'` (converted to double; 64-bit
/// integers beyond 2^53 are rounded) and `'|b1'` (false -> 0, true -> 1). The array must be in C
/// order (`fortran_order` False).
///
/// @param path the file to read.
/// @return the shape and the values, in C order.
/// @throws FileError with the path and the reason if the file is missing or unreadable, the magic
///   string is wrong, the version is not 1.0, 2.0 or 3.0, the header is not a well-formed dict with
///   exactly the keys `descr`, `fortran_order` and `shape`, the dtype is not one of the above (a
///   big-endian dtype such as `'>f8'`, a complex or structured dtype), `fortran_order` is True, a
///   shape entry is negative or not an integer, or the data that follows the header is shorter
///   (truncated) or longer (trailing bytes) than the shape requires.
NpyArray read_npy(const std::filesystem::path& path);

/// Writes `values` with the given `shape` to a `.npy` file, in C order, as `'<f8'` or `'<f4'`.
///
/// The file is written in format 1.0, or 2.0 when the header is longer than 1.0 allows (tens of
/// thousands of axes); the header is laid out byte for byte as NumPy writes it. The write is
/// atomic: the data goes to a temporary file in the same directory, which is then renamed to
/// `path`, so readers see either the old file or the complete new one, never a partial file.
///
/// @param path the file to write; an existing file is replaced.
/// @param shape extent along each axis (empty for a scalar); entries must be non-negative.
/// @param values the values in C order; `values.size()` must equal the product of `shape`.
/// @param dtype `NpyDtype::kFloat64` (default, lossless) or `NpyDtype::kFloat32` (rounded).
/// @throws InvalidArgument if a shape entry is negative or the product of `shape` differs from
///   `values.size()`.
/// @throws FileError with the path and the reason if the file cannot be written (missing
///   directory, no permission, disk full, `path` is a directory).
void write_npy(const std::filesystem::path& path, const std::vector<Eigen::Index>& shape,
               const Eigen::Ref<const Eigen::VectorXd>& values,
               NpyDtype dtype = NpyDtype::kFloat64);

}  // namespace infield

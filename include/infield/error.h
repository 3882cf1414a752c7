#pragma once
/// @file error.h
/// @brief Errors for misuse of the API, with one message format: `function: argument message`.
///
/// Infield has three error channels (docs/architecture.md): misuse throws through the `check_*`
/// helpers below; numerical outcomes (non-convergence) are a status in an algorithm's Summary;
/// internal invariants are assertions.

#include <Eigen/Core>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace infield {

/// Thrown for any invalid argument: wrong value, non-finite number, bad size.
class InvalidArgument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Thrown when two spaces that must agree (an operator's domain and its input, the target of an
/// inner operator and the domain of an outer one) do not. The message names both.
class DomainMismatch : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

/// Thrown for unreadable or malformed files (bad magic, truncated data, unsupported format) and
/// failed writes; the message names the file and what is wrong.
class FileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown when an operator is asked for a mode it does not support (e.g. an inverse).
class UnsupportedOperation : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {
[[noreturn]] [[gnu::cold]] void throw_invalid_argument(std::string_view function,
                                                       std::string_view argument,
                                                       std::string_view message);
[[noreturn]] [[gnu::cold]] void throw_domain_mismatch(std::string_view function,
                                                      std::string_view argument,
                                                      const std::string& expected,
                                                      const std::string& got);
[[noreturn]] [[gnu::cold]] void throw_non_finite(std::string_view function,
                                                 std::string_view argument, Eigen::Index index,
                                                 double value);
}  // namespace detail

/// Formats an error message: `function: argument message`.
std::string format_error(std::string_view function, std::string_view argument,
                         std::string_view message);

/// Throws InvalidArgument(`function: argument message`) unless `condition` holds.
inline void check_argument(bool condition, std::string_view function, std::string_view argument,
                           std::string_view message) {
  if (!condition) [[unlikely]]
    detail::throw_invalid_argument(function, argument, message);
}

/// True if every entry of `values` is finite. A matrix or array with its own storage is read
/// in memory order: Eigen's allFinite() walks a row-major matrix column by column, 10 times
/// slower (0.25 s for the 60,000 x 784 training images).
template <typename Derived>
bool all_finite(const Eigen::DenseBase<Derived>& values) {
  const Derived& v = values.derived();
  if constexpr (std::is_base_of_v<Eigen::PlainObjectBase<Derived>, Derived>) {
    using Scalar = typename Derived::Scalar;
    return Eigen::Map<const Eigen::Matrix<Scalar, Eigen::Dynamic, 1>>(v.data(), v.size())
        .allFinite();
  } else {
    return v.allFinite();
  }
}

/// Throws InvalidArgument unless every entry of `values` is finite (no NaN, no Inf); the message
/// names the argument, the first bad index and its value.
template <typename Derived>
void check_finite(const Eigen::DenseBase<Derived>& values, std::string_view function,
                  std::string_view argument) {
  const auto& v = values.derived();
  if (all_finite(v)) [[likely]]
    return;
  for (Eigen::Index i = 0; i < v.size(); ++i) {
    const double x = static_cast<double>(v.data()[i]);
    if (!std::isfinite(x)) detail::throw_non_finite(function, argument, i, x);
  }
}

/// Throws InvalidArgument unless `value` is finite.
void check_finite(double value, std::string_view function, std::string_view argument);

/// Throws InvalidArgument unless `value` > 0 and finite.
void check_positive(double value, std::string_view function, std::string_view argument);

/// Throws DomainMismatch unless `expected == got`; both are printed with their `to_string()`.
template <typename SpaceLike>
void check_same_space(const SpaceLike& expected, const SpaceLike& got, std::string_view function,
                      std::string_view argument) {
  if (!(expected == got)) [[unlikely]]
    detail::throw_domain_mismatch(function, argument, expected.to_string(), got.to_string());
}

}  // namespace infield

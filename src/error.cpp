#include "infield/error.h"

#include <cmath>
#include <sstream>

namespace infield {

std::string format_error(std::string_view function, std::string_view argument,
                         std::string_view message) {
  std::string out;
  out.reserve(function.size() + argument.size() + message.size() + 3);
  out.append(function).append(": ").append(argument).append(" ").append(message);
  return out;
}

namespace detail {

void throw_invalid_argument(std::string_view function, std::string_view argument,
                            std::string_view message) {
  throw InvalidArgument(format_error(function, argument, message));
}

void throw_domain_mismatch(std::string_view function, std::string_view argument,
                           const std::string& expected, const std::string& got) {
  throw DomainMismatch(
      format_error(function, argument, "has the wrong space: expected " + expected + ", got " + got));
}

void throw_non_finite(std::string_view function, std::string_view argument, Eigen::Index index,
                      double value) {
  std::ostringstream msg;
  msg << "must be finite, but entry " << index << " is " << value;
  throw InvalidArgument(format_error(function, argument, msg.str()));
}

}  // namespace detail

void check_finite(double value, std::string_view function, std::string_view argument) {
  if (!std::isfinite(value)) [[unlikely]]
    detail::throw_non_finite(function, argument, 0, value);
}

void check_positive(double value, std::string_view function, std::string_view argument) {
  check_finite(value, function, argument);
  if (!(value > 0)) [[unlikely]]
    detail::throw_invalid_argument(function, argument,
                                   "must be positive, got " + std::to_string(value));
}

}  // namespace infield

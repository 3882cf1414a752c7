#pragma once
/// @file testing/matchers.h
/// @brief GoogleMock matchers for the consistency checks of <infield/checks.h>:
///
///     EXPECT_THAT(*op, infield::testing::IsConsistentLinearOperator());
///     EXPECT_THAT(*op, infield::testing::HasConsistentJacobianAt(x));
///
/// On failure the match explanation lists every failed check with its measured error.

#include <gmock/gmock.h>

#include "infield/checks.h"

namespace infield::testing {

MATCHER_P(IsConsistentLinearOperatorWith, options,
          std::string(negation ? "fails" : "passes") + " check_linear_operator") {
  const CheckReport report = check_linear_operator(arg, options);
  *result_listener << report.summary();
  return report.passed;
}

inline auto IsConsistentLinearOperator() {
  return IsConsistentLinearOperatorWith(LinearCheckOptions{});
}

MATCHER_P2(HasConsistentJacobianAtWith, x, options,
           std::string(negation ? "fails" : "passes") + " check_jacobian") {
  const CheckReport report = check_jacobian(arg, x, options);
  *result_listener << report.summary();
  return report.passed;
}

inline auto HasConsistentJacobianAt(const Field& x) {
  return HasConsistentJacobianAtWith(x, JacobianCheckOptions{});
}

}  // namespace infield::testing

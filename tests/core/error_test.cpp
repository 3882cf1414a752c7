#include "infield/error.h"

#include <gtest/gtest.h>

#include "infield/domain.h"

namespace infield {
namespace {

TEST(Errors, OneMessageFormat) {
  EXPECT_EQ(format_error("solve", "b", "must be finite"), "solve: b must be finite");
  try {
    check_argument(false, "fn", "arg", "is wrong");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_STREQ(e.what(), "fn: arg is wrong");
  }
}

TEST(Errors, CheckFiniteNamesTheArgumentAndTheFirstBadEntry) {
  Eigen::VectorXd v = Eigen::VectorXd::Zero(5);
  EXPECT_NO_THROW(check_finite(v, "fn", "data"));
  v[3] = std::numeric_limits<double>::infinity();
  v[4] = std::nan("");
  try {
    check_finite(v, "fn", "data");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_STREQ(e.what(), "fn: data must be finite, but entry 3 is inf");
  }
  EXPECT_THROW(check_finite(std::nan(""), "fn", "x"), InvalidArgument);
  EXPECT_THROW(check_positive(0.0, "fn", "x"), InvalidArgument);
  EXPECT_NO_THROW(check_positive(1e-300, "fn", "x"));
}

TEST(Errors, DomainMismatchPrintsBothSpaces) {
  try {
    check_same_space(DomainTuple{unstructured(2)}, DomainTuple{unstructured(3)}, "fn", "x");
    FAIL();
  } catch (const DomainMismatch& e) {
    EXPECT_STREQ(e.what(),
                 "fn: x has the wrong space: expected DomainTuple(Unstructured(2)), got "
                 "DomainTuple(Unstructured(3))");
  }
}

}  // namespace
}  // namespace infield

#include "infield/error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <utility>

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

TEST(Errors, AllFiniteFindsEveryNonFiniteEntryOfAnyLayout) {
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  RowMajor images = RowMajor::Constant(7, 13, 0.5F);
  EXPECT_TRUE(all_finite(images));
  EXPECT_TRUE(all_finite(images.middleRows(2, 3)));  // an expression: Eigen's own walk
  for (const float bad : {std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(), std::nanf("")}) {
    for (const auto& [row, col] : {std::pair{0, 0}, std::pair{6, 12}, std::pair{3, 5}}) {
      RowMajor m = images;
      m(row, col) = bad;
      EXPECT_FALSE(all_finite(m)) << row << ", " << col;
      EXPECT_EQ(all_finite(m.middleRows(2, 3)), row < 2 || row > 4) << row;
      Eigen::MatrixXf column_major = m;
      EXPECT_FALSE(all_finite(column_major));
    }
  }
  EXPECT_TRUE(all_finite(Eigen::VectorXd()));  // empty
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

#include "infield/field.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "infield/error.h"
#include "infield/testing/statistics.h"

namespace infield {
namespace {

TEST(Field, RejectsValuesOfTheWrongSize) {
  EXPECT_THROW(Field(regular_grid({4}), Eigen::VectorXd::Zero(5)), InvalidArgument);
}

TEST(Field, MovesItsStorageInsteadOfCopying) {
  Eigen::VectorXd values = Eigen::VectorXd::LinSpaced(1000, 0.0, 1.0);
  const double* storage = values.data();
  Field f(unstructured(1000), std::move(values));
  EXPECT_EQ(f.data(), storage);
  Field g = std::move(f);
  EXPECT_EQ(g.data(), storage);
  Field h = std::move(g) * 2.0;  // arithmetic on a temporary reuses its storage
  EXPECT_EQ(h.data(), storage);
  Eigen::VectorXd out = std::move(h).values();
  EXPECT_EQ(out.data(), storage);
}

TEST(Field, PointwiseArithmetic) {
  Space s = unstructured(3);
  Field a(s, Eigen::Vector3d(1, 2, 3));
  Field b(s, Eigen::Vector3d(4, 5, 6));
  EXPECT_EQ((a + b).values(), Eigen::Vector3d(5, 7, 9));
  EXPECT_EQ((a - b).values(), Eigen::Vector3d(-3, -3, -3));
  EXPECT_EQ((a * b).values(), Eigen::Vector3d(4, 10, 18));
  EXPECT_EQ((b / a).values(), Eigen::Vector3d(4, 2.5, 2));
  EXPECT_EQ((2.0 * a).values(), Eigen::Vector3d(2, 4, 6));
  EXPECT_EQ((-a).values(), Eigen::Vector3d(-1, -2, -3));
  Field c = a;
  c += 1.0;
  EXPECT_EQ(c.values(), Eigen::Vector3d(2, 3, 4));
}

TEST(Field, ReductionsAndVolumeWeightedIntegral) {
  Field f(regular_grid({2, 2}, {0.5, 0.25}), Eigen::Vector4d(1, 2, 3, 4));
  EXPECT_DOUBLE_EQ(f.sum(), 10.0);
  EXPECT_DOUBLE_EQ(f.vdot(f), 30.0);
  EXPECT_DOUBLE_EQ(f.norm(), std::sqrt(30.0));
  EXPECT_DOUBLE_EQ(f.integrate(), 10.0 * 0.125);
}

TEST(Field, ArithmeticOnDifferentSpacesThrowsWithBothSpaces) {
  Field a = Field::zeros(regular_grid({4}));
  Field b = Field::zeros(unstructured(4));
  try {
    a += b;
    FAIL() << "expected DomainMismatch";
  } catch (const DomainMismatch& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("RegularGrid(shape=[4]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Unstructured(4)"), std::string::npos) << msg;
  }
  EXPECT_THROW(a.vdot(b), DomainMismatch);
  EXPECT_THROW(a * b, DomainMismatch);
}

TEST(Field, MatrixViewIsRowMajorWithoutCopy) {
  Field f(DomainTuple{unstructured(2), unstructured(3)}, Eigen::VectorXd::LinSpaced(6, 0, 5));
  auto m = f.matrix(2, 3);
  EXPECT_EQ(m.data(), f.data());
  EXPECT_EQ(m(1, 0), 3.0);
  m(0, 2) = 42.0;
  EXPECT_EQ(f.values()[2], 42.0);
  EXPECT_THROW(f.matrix(4, 2), InvalidArgument);
}

TEST(MultiField, PartsAreContiguousViewsInKeyOrder) {
  Field xi(unstructured(3), Eigen::Vector3d(1, 2, 3));
  Field amp(unstructured(1), Eigen::VectorXd::Constant(1, 7.0));
  MultiField mf = Field::multi({{"xi", xi}, {"amp", amp}});
  EXPECT_TRUE(mf.is_multi());
  EXPECT_EQ(mf.values(), Eigen::Vector4d(7, 1, 2, 3));
  EXPECT_EQ(mf.part("xi").data(), mf.data() + 1);
  mf.part("amp")[0] = 8.0;
  EXPECT_EQ(mf.extract("amp").values()[0], 8.0);
  EXPECT_EQ(mf.extract("xi").space(), xi.space());
  EXPECT_THROW(mf.part("zeta"), InvalidArgument);
  EXPECT_THROW(xi.part("xi"), InvalidArgument);
}

TEST(MultiField, VectorSpaceOperationsAndIntegralPerPart) {
  MultiField a = Field::multi({{"g", Field::full(regular_grid({4}), 1.0)},
                               {"u", Field::full(unstructured(2), 3.0)}});
  MultiField b = 2.0 * a;
  EXPECT_DOUBLE_EQ(a.vdot(b), 2.0 * (4 * 1 + 2 * 9));
  EXPECT_DOUBLE_EQ((a + b).sum(), 3.0 * (4 + 6));
  // Grid part: 4 cells of volume 1/4 with value 1; unstructured part: 2 points of volume 1.
  EXPECT_DOUBLE_EQ(a.integrate(), 1.0 + 6.0);
  MultiField other = Field::multi({{"g", Field::full(regular_grid({4}), 1.0)}});
  EXPECT_THROW(a += other, DomainMismatch);
}

TEST(Field, NormalFieldIsReproducibleFromTheSeed) {
  std::mt19937_64 r1(7), r2(7);
  EXPECT_EQ(Field::normal(unstructured(10), r1).values(),
            Field::normal(unstructured(10), r2).values());
}

}  // namespace
}  // namespace infield

namespace infield {
namespace {

TEST(FillStandardNormal, DrawsAreStandardNormalAndIndependentInPairs) {
  constexpr Eigen::Index n = 200001;  // odd: the last pair's sine is dropped
  std::vector<float> values(n);
  std::mt19937_64 rng(2026);
  fill_standard_normal(values.data(), n, rng);
  Eigen::VectorXd x(n);
  for (Eigen::Index i = 0; i < n; ++i) x[i] = values[static_cast<std::size_t>(i)];
  ASSERT_TRUE(x.allFinite());
  EXPECT_LT(x.cwiseAbs().maxCoeff(), 6.7);
  const double d = testing::ks_statistic(x, [](double v) { return 0.5 * std::erfc(-v / std::sqrt(2.0)); });
  EXPECT_LT(d, testing::ks_critical_1e3(n));
  // Mean and variance within 4.5 standard errors (var of the sample variance: 2 / n).
  EXPECT_LT(std::abs(x.mean()), 4.5 / std::sqrt(double(n)));
  EXPECT_LT(std::abs(x.squaredNorm() / n - 1.0), 4.5 * std::sqrt(2.0 / n));
  // The cosine and sine of one pair are independent: within a chunk of 2 x 256 values, value i
  // and i + 256 come from one pair. Their correlation within 4.5 standard errors.
  double cross = 0;
  Eigen::Index pairs = 0;
  for (Eigen::Index c = 0; c + 512 <= n; c += 512)
    for (Eigen::Index i = 0; i < 256; ++i, ++pairs) cross += x[c + i] * x[c + i + 256];
  EXPECT_LT(std::abs(cross / pairs), 4.5 / std::sqrt(double(pairs)));
  // The tail beyond 3: binomial count within 4.5 standard deviations.
  const double p3 = std::erfc(3.0 / std::sqrt(2.0));
  const double beyond3 = double((x.array().abs() > 3.0).count());
  EXPECT_LT(std::abs(beyond3 - n * p3), 4.5 * std::sqrt(n * p3 * (1 - p3)));
}

TEST(FillStandardNormal, IsReproducibleFromTheSeedForAnyCount) {
  for (Eigen::Index n : {0, 1, 2, 7, 511, 512, 513, 1000}) {
    std::vector<float> a(static_cast<std::size_t>(n) + 1, -1.0F), b(a);
    std::mt19937_64 ra(5), rb(5);
    fill_standard_normal(a.data(), n, ra);
    fill_standard_normal(b.data(), n, rb);
    EXPECT_EQ(a, b);
    EXPECT_EQ(a.back(), -1.0F) << "wrote past n = " << n;
    // The output's alignment does not change the values.
    std::vector<float> shifted(a.size() + 1);
    std::mt19937_64 rs(5);
    fill_standard_normal(shifted.data() + 1, n, rs);
    EXPECT_TRUE(std::equal(a.begin(), a.end() - 1, shifted.begin() + 1)) << n;
    for (Eigen::Index i = 0; i < n; ++i) EXPECT_TRUE(std::isfinite(a[static_cast<std::size_t>(i)]));
  }
}

}  // namespace
}  // namespace infield

#include "infield/domain.h"

#include <gtest/gtest.h>

#include "infield/error.h"

namespace infield {
namespace {

TEST(RegularGrid, ShapeDistancesAndVolume) {
  auto grid = regular_grid({4, 8}, {0.5, 0.25});
  EXPECT_EQ(grid->size(), 32);
  EXPECT_EQ(grid->shape(), (std::vector<Eigen::Index>{4, 8}));
  EXPECT_DOUBLE_EQ(grid->cell_volume(), 0.125);
  EXPECT_DOUBLE_EQ(grid->total_volume(), 4.0);
}

TEST(RegularGrid, DefaultDistancesSpanTheUnitBox) {
  auto grid = regular_grid({128, 64});
  EXPECT_DOUBLE_EQ(grid->total_volume(), 1.0);
  const auto& rg = dynamic_cast<const RegularGrid&>(*grid);
  EXPECT_DOUBLE_EQ(rg.distances()[0], 1.0 / 128);
  EXPECT_DOUBLE_EQ(rg.distances()[1], 1.0 / 64);
}

TEST(RegularGrid, RejectsBadShapes) {
  EXPECT_THROW(regular_grid({}), InvalidArgument);
  EXPECT_THROW(regular_grid({4, 0}), InvalidArgument);
  EXPECT_THROW(regular_grid({4, -2}), InvalidArgument);
  EXPECT_THROW(regular_grid({4}, {0.1, 0.2}), InvalidArgument);
  EXPECT_THROW(regular_grid({4}, {-0.1}), InvalidArgument);
  EXPECT_THROW(regular_grid({4}, {std::nan("")}), InvalidArgument);
  EXPECT_THROW(unstructured(0), InvalidArgument);
}

TEST(Domain, EqualityIsStructural) {
  EXPECT_TRUE(regular_grid({4, 4})->equals(*regular_grid({4, 4})));
  EXPECT_FALSE(regular_grid({4, 4})->equals(*regular_grid({4, 4}, {1.0, 1.0})));
  EXPECT_FALSE(regular_grid({16})->equals(*unstructured(16)));
  EXPECT_TRUE(unstructured(3)->equals(*unstructured(3)));
  EXPECT_FALSE(unstructured(3)->equals(*unstructured(4)));
}

TEST(DomainTuple, ProductSizeShapeAndVolume) {
  DomainTuple batch_pixels{unstructured(64), regular_grid({28, 28})};
  EXPECT_EQ(batch_pixels.rank(), 2u);
  EXPECT_EQ(batch_pixels.size(), 64 * 28 * 28);
  EXPECT_EQ(batch_pixels.shape(), (std::vector<Eigen::Index>{64, 28, 28}));
  EXPECT_DOUBLE_EQ(batch_pixels.cell_volume(), 1.0 / (28.0 * 28.0));
  EXPECT_EQ(batch_pixels.without(0), DomainTuple(regular_grid({28, 28})));
  EXPECT_THROW(batch_pixels.without(2), InvalidArgument);
  EXPECT_EQ(DomainTuple().size(), 1);
}

TEST(DomainTuple, EqualityComparesEveryFactorInOrder) {
  DomainTuple a{unstructured(2), unstructured(3)};
  DomainTuple b{unstructured(2), unstructured(3)};
  DomainTuple c{unstructured(3), unstructured(2)};
  EXPECT_EQ(a, b);
  EXPECT_FALSE(a == c);
  EXPECT_FALSE(a == DomainTuple{unstructured(6)});
}

TEST(DomainTuple, PrintsEveryFactor) {
  DomainTuple t{unstructured(5), regular_grid({2, 3}, {1.0, 0.5})};
  EXPECT_EQ(t.to_string(),
            "DomainTuple(Unstructured(5), RegularGrid(shape=[2, 3], distances=[1, 0.5]))");
}

TEST(MultiDomain, KeysAreSortedWithContiguousOffsets) {
  MultiDomain md{{"xi", DomainTuple{unstructured(4)}}, {"amp", DomainTuple{unstructured(2)}}};
  EXPECT_EQ(md.keys(), (std::vector<std::string>{"amp", "xi"}));
  EXPECT_EQ(md.at("amp").offset, 0);
  EXPECT_EQ(md.at("xi").offset, 2);
  EXPECT_EQ(md.size(), 6);
  EXPECT_TRUE(md.contains("xi"));
  EXPECT_FALSE(md.contains("zeta"));
}

TEST(MultiDomain, RejectsDuplicateOrEmptyKeysAndNamesKnownKeysOnMiss) {
  EXPECT_THROW((MultiDomain{{"a", DomainTuple{unstructured(1)}}, {"a", DomainTuple{unstructured(2)}}}),
               InvalidArgument);
  EXPECT_THROW((MultiDomain{{"", DomainTuple{unstructured(1)}}}), InvalidArgument);
  MultiDomain md{{"a", DomainTuple{unstructured(1)}}};
  try {
    md.at("b");
    FAIL() << "expected a throw";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("'b' is not one of [a]"), std::string::npos) << e.what();
  }
}

TEST(Space, HoldsATupleOrAMultiDomain) {
  Space plain = regular_grid({3});
  Space multi = MultiDomain{{"a", DomainTuple{unstructured(2)}}};
  EXPECT_FALSE(plain.is_multi());
  EXPECT_TRUE(multi.is_multi());
  EXPECT_EQ(plain.size(), 3);
  EXPECT_EQ(multi.size(), 2);
  EXPECT_THROW(plain.multi(), InvalidArgument);
  EXPECT_THROW(multi.tuple(), InvalidArgument);
  EXPECT_FALSE(plain == multi);
  EXPECT_EQ(plain, Space(regular_grid({3})));
}

}  // namespace
}  // namespace infield

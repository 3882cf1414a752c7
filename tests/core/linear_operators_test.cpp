// Every linear operator of the library, and every combinator, passes check_linear_operator; each
// case also lists inputs that must throw.
#include "infield/linear_operators.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "infield/error.h"
#include "infield/testing/matchers.h"

namespace infield {
namespace {

using testing::IsConsistentLinearOperator;
using BadInputs = std::vector<std::pair<std::string, std::function<void()>>>;
constexpr unsigned kForward = LinearOperator::kTimes | LinearOperator::kAdjointTimes;
constexpr unsigned kAll = kForward | LinearOperator::kInverseTimes |
                          LinearOperator::kAdjointInverseTimes;

Eigen::MatrixXd random_matrix(Eigen::Index rows, Eigen::Index cols, unsigned seed) {
  std::srand(seed);
  return Eigen::MatrixXd::Random(rows, cols);
}

Eigen::MatrixXd well_conditioned(Eigen::Index n, unsigned seed) {
  return random_matrix(n, n, seed) + 3.0 * Eigen::MatrixXd::Identity(n, n);
}

MultiDomain two_part_domain() {
  return MultiDomain{{"xi", DomainTuple{regular_grid({3, 4})}}, {"noise", DomainTuple{unstructured(2)}}};
}

struct Scaling {
  static LinearOperatorPtr make() { return scaling_operator(regular_grid({5, 3}), -2.5); }
  static unsigned capabilities() { return kAll; }
  static BadInputs bad() {
    return {{"NaN factor", [] { scaling_operator(unstructured(2), std::nan("")); }}};
  }
};
struct ScalingByZero {
  static LinearOperatorPtr make() { return scaling_operator(unstructured(4), 0.0); }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() {
    return {{"inverse of zero scaling", [] { inverse(scaling_operator(unstructured(2), 0.0)); }}};
  }
};
struct Diagonal {
  static LinearOperatorPtr make() {
    return diagonal_operator(regular_grid({6}), Eigen::VectorXd::LinSpaced(6, 1.0, 3.5));
  }
  static unsigned capabilities() { return kAll; }
  static BadInputs bad() {
    return {{"wrong size", [] { diagonal_operator(unstructured(3), Eigen::VectorXd::Ones(4)); }},
            {"Inf entry", [] {
               diagonal_operator(unstructured(2), Eigen::Vector2d(1.0, INFINITY));
             }}};
  }
};
struct DiagonalWithZero {
  static LinearOperatorPtr make() {
    return diagonal_operator(unstructured(3), Eigen::Vector3d(1.0, 0.0, 2.0));
  }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() { return {}; }
};
struct RectangularMatrix {
  static LinearOperatorPtr make() {
    return matrix_operator(regular_grid({7}), unstructured(4), random_matrix(4, 7, 1));
  }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() {
    return {{"transposed matrix",
             [] { matrix_operator(regular_grid({7}), unstructured(4), random_matrix(7, 4, 1)); }},
            {"NaN entry", [] {
               Eigen::MatrixXd m = random_matrix(2, 2, 1);
               m(1, 1) = std::nan("");
               matrix_operator(unstructured(2), unstructured(2), m);
             }}};
  }
};
struct SquareMatrix {
  static LinearOperatorPtr make() {
    return matrix_operator(unstructured(6), unstructured(6), well_conditioned(6, 2));
  }
  static unsigned capabilities() { return kAll; }
  static BadInputs bad() {
    return {{"inverse of singular matrix", [] {
               auto op = matrix_operator(unstructured(2), unstructured(2), Eigen::MatrixXd::Ones(2, 2));
               op->inverse_times(Field::zeros(unstructured(2)));
             }}};
  }
};
struct Mask {
  static LinearOperatorPtr make() {
    return mask_operator(regular_grid({3, 3}), {true, false, true, true, false, false, true, true, false});
  }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() {
    return {{"mask of the wrong size", [] { mask_operator(unstructured(3), {true, false}); }},
            {"empty mask", [] { mask_operator(unstructured(2), {false, false}); }}};
  }
};
struct ContractionMiddle {
  static LinearOperatorPtr make() {
    return contraction_operator(DomainTuple{unstructured(3), regular_grid({4}), unstructured(2)}, 1);
  }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() {
    return {{"axis out of range",
             [] { contraction_operator(DomainTuple{unstructured(3), unstructured(2)}, 2); }}};
  }
};
struct Broadcast {
  static LinearOperatorPtr make() {
    return broadcast_operator(DomainTuple{unstructured(5), regular_grid({2, 2})}, 0);
  }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() { return {}; }
};
struct BlockDiagonalSquare {
  static LinearOperatorPtr make() {
    return block_diagonal_operator(unstructured(4), unstructured(3), unstructured(3),
                                   {well_conditioned(3, 1), well_conditioned(3, 2),
                                    well_conditioned(3, 3), well_conditioned(3, 4)});
  }
  static unsigned capabilities() { return kAll; }
  static BadInputs bad() {
    return {{"wrong number of blocks",
             [] {
               block_diagonal_operator(unstructured(2), unstructured(3), unstructured(3),
                                       {well_conditioned(3, 1)});
             }},
            {"wrong block shape", [] {
               block_diagonal_operator(unstructured(1), unstructured(3), unstructured(2),
                                       {random_matrix(3, 2, 1)});
             }}};
  }
};
struct BlockDiagonalRectangular {
  static LinearOperatorPtr make() {
    std::vector<Eigen::MatrixXd> blocks;
    for (unsigned b = 0; b < 5; ++b) blocks.push_back(random_matrix(2, 4, b));
    return block_diagonal_operator(unstructured(5), unstructured(4), unstructured(2), blocks);
  }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() { return {}; }
};
struct BatchMatrix {
  static LinearOperatorPtr make() {
    return batch_matrix_operator(unstructured(6), unstructured(4), unstructured(3),
                                 random_matrix(3, 4, 12));
  }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() {
    return {{"matrix of the wrong shape", [] {
               batch_matrix_operator(unstructured(6), unstructured(4), unstructured(3),
                                     random_matrix(4, 3, 12));
             }}};
  }
};
struct FieldAdapterCase {
  static LinearOperatorPtr make() { return field_adapter(two_part_domain(), "xi"); }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() {
    return {{"unknown key", [] { field_adapter(two_part_domain(), "zeta"); }}};
  }
};
struct FieldEmbedding {
  static LinearOperatorPtr make() { return adjoint(field_adapter(two_part_domain(), "noise")); }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() { return {}; }
};
struct Sandwich {
  static LinearOperatorPtr make() {
    auto bun = matrix_operator(regular_grid({5}), unstructured(3), random_matrix(3, 5, 7));
    return sandwich(bun, diagonal_operator(unstructured(3), Eigen::Vector3d(1.0, 2.0, 3.0)));
  }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() {
    return {{"cheese on the wrong space", [] {
               sandwich(matrix_operator(unstructured(2), unstructured(3), random_matrix(3, 2, 1)),
                        scaling_operator(unstructured(2), 1.0));
             }}};
  }
};
struct Composition {
  static LinearOperatorPtr make() {
    auto a = matrix_operator(regular_grid({4}), unstructured(3), random_matrix(3, 4, 3));
    auto b = diagonal_operator(unstructured(3), Eigen::Vector3d(1.0, -2.0, 0.5));
    return compose(b, a, identity_operator(regular_grid({4})));
  }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() {
    return {{"mismatched spaces", [] {
               compose(scaling_operator(unstructured(3), 1.0), scaling_operator(unstructured(4), 1.0));
             }}};
  }
};
struct InvertibleComposition {
  static LinearOperatorPtr make() {
    return compose(matrix_operator(unstructured(4), unstructured(4), well_conditioned(4, 5)),
                   diagonal_operator(unstructured(4), Eigen::Vector4d(1, 2, 3, 4)),
                   scaling_operator(unstructured(4), -0.5));
  }
  static unsigned capabilities() { return kAll; }
  static BadInputs bad() { return {}; }
};
struct DiagonalChain {
  // Runs in place inside the output buffer (every step is diagonal-like).
  static LinearOperatorPtr make() {
    auto s = regular_grid({8});
    return compose(diagonal_operator(s, Eigen::VectorXd::LinSpaced(8, 1, 2)),
                   scaling_operator(s, -3.0),
                   diagonal_operator(s, Eigen::VectorXd::LinSpaced(8, -2, -1)));
  }
  static unsigned capabilities() { return kAll; }
  static BadInputs bad() { return {}; }
};
struct Sum {
  static LinearOperatorPtr make() {
    auto s = regular_grid({3, 2});
    return diagonal_operator(s, Eigen::VectorXd::LinSpaced(6, -1, 1)) +
           matrix_operator(s, s, random_matrix(6, 6, 9));
  }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() {
    return {{"different targets", [] {
               scaling_operator(unstructured(2), 1.0) +
                   matrix_operator(unstructured(2), unstructured(3), random_matrix(3, 2, 1));
             }}};
  }
};
struct Difference {
  static LinearOperatorPtr make() {
    auto s = unstructured(5);
    return identity_operator(s) - matrix_operator(s, s, random_matrix(5, 5, 4));
  }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() { return {}; }
};
struct Scaled {
  static LinearOperatorPtr make() {
    return scale(3.0, matrix_operator(unstructured(3), unstructured(3), well_conditioned(3, 6)));
  }
  static unsigned capabilities() { return kAll; }
  static BadInputs bad() {
    return {{"Inf factor", [] { scale(INFINITY, identity_operator(unstructured(2))); }}};
  }
};
struct AdjointView {
  static LinearOperatorPtr make() {
    return adjoint(matrix_operator(unstructured(3), regular_grid({5}), random_matrix(5, 3, 8)));
  }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() {
    return {{"null operator", [] { adjoint(nullptr); }}};
  }
};
struct InverseView {
  static LinearOperatorPtr make() {
    return inverse(matrix_operator(unstructured(5), unstructured(5), well_conditioned(5, 11)));
  }
  static unsigned capabilities() { return kAll; }
  static BadInputs bad() {
    return {{"inverse of a mask", [] { inverse(mask_operator(unstructured(2), {true, false})); }}};
  }
};
struct UserLinear {
  // A cumulative sum and its adjoint (the reversed cumulative sum).
  static LinearOperatorPtr make() {
    return make_linear_operator(
        unstructured(6), unstructured(6),
        [](ConstVectorRef x) {
          Eigen::VectorXd y(x.size());
          double acc = 0;
          for (Eigen::Index i = 0; i < x.size(); ++i) y[i] = acc += x[i];
          return y;
        },
        [](ConstVectorRef y) {
          Eigen::VectorXd x(y.size());
          double acc = 0;
          for (Eigen::Index i = y.size(); i-- > 0;) x[i] = acc += y[i];
          return x;
        },
        "CumulativeSum");
  }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() {
    return {{"missing adjoint", [] {
               make_linear_operator(unstructured(2), unstructured(2),
                                    [](ConstVectorRef x) { return Eigen::VectorXd(x); }, nullptr);
             }}};
  }
};
struct OnMultiField {
  // An operator from a MultiField to a plain field: a response acting on one part plus another.
  static LinearOperatorPtr make() {
    MultiDomain md = two_part_domain();
    auto xi = compose(mask_operator(regular_grid({3, 4}), std::vector<bool>(12, true)),
                      field_adapter(md, "xi"));
    auto noise = compose(matrix_operator(unstructured(2), unstructured(12), random_matrix(12, 2, 5)),
                         field_adapter(md, "noise"));
    return xi + noise;
  }
  static unsigned capabilities() { return kForward; }
  static BadInputs bad() { return {}; }
};

template <typename Case>
class LinearOperatorTest : public ::testing::Test {};

using Cases = ::testing::Types<Scaling, ScalingByZero, Diagonal, DiagonalWithZero,
                               RectangularMatrix, SquareMatrix, Mask, ContractionMiddle, Broadcast,
                               BlockDiagonalSquare, BlockDiagonalRectangular, BatchMatrix, FieldAdapterCase,
                               FieldEmbedding, Sandwich, Composition, InvertibleComposition, DiagonalChain, Sum,
                               Difference, Scaled, AdjointView, InverseView, UserLinear,
                               OnMultiField>;
TYPED_TEST_SUITE(LinearOperatorTest, Cases);

TYPED_TEST(LinearOperatorTest, PassesConsistencyChecks) {
  EXPECT_THAT(*TypeParam::make(), IsConsistentLinearOperator());
}

TYPED_TEST(LinearOperatorTest, HasTheExpectedCapabilities) {
  EXPECT_EQ(TypeParam::make()->capabilities(), TypeParam::capabilities());
}

TYPED_TEST(LinearOperatorTest, RejectsInputsOnTheWrongSpace) {
  auto op = TypeParam::make();
  Field wrong = Field::zeros(unstructured(op->domain().size() + 1));
  EXPECT_THROW(op->times(wrong), DomainMismatch);
  EXPECT_THROW(op->adjoint_times(Field::zeros(unstructured(op->target().size() + 1))),
               DomainMismatch);
}

TYPED_TEST(LinearOperatorTest, RejectsBadConstruction) {
  for (const auto& [what, fn] : TypeParam::bad()) {
    bool threw = false;
    try {
      fn();
    } catch (const InvalidArgument&) {
      threw = true;
    } catch (const UnsupportedOperation&) {
      threw = true;
    }
    EXPECT_TRUE(threw) << what;
  }
}

TYPED_TEST(LinearOperatorTest, UnsupportedModesThrow) {
  auto op = TypeParam::make();
  if (!op->supports(LinearOperator::kInverseTimes)) {
    EXPECT_THROW(op->inverse_times(Field::zeros(op->target())), UnsupportedOperation);
  }
}

// ---- Values ------------------------------------------------------------------------------------

TEST(LinearOperators, MaskKeepsEntriesInIndexOrderAndAdjointScatters) {
  auto op = mask_operator(unstructured(5), {false, true, false, true, true});
  Field x(unstructured(5), Eigen::VectorXd::LinSpaced(5, 10, 14));
  EXPECT_EQ(op->times(x).values(), Eigen::Vector3d(11, 13, 14));
  EXPECT_EQ(op->target(), Space(unstructured(3)));
  Field y(unstructured(3), Eigen::Vector3d(1, 2, 3));
  EXPECT_EQ(op->adjoint_times(y).values(), (Eigen::VectorXd(5) << 0, 1, 0, 2, 3).finished());
}

TEST(LinearOperators, ContractionSumsAlongTheChosenDomain) {
  DomainTuple dt{unstructured(2), unstructured(3)};
  Field x(dt, Eigen::VectorXd::LinSpaced(6, 0, 5));  // rows [0 1 2], [3 4 5]
  EXPECT_EQ(contraction_operator(dt, 0)->times(x).values(), Eigen::Vector3d(3, 5, 7));
  EXPECT_EQ(contraction_operator(dt, 1)->times(x).values(), Eigen::Vector2d(3, 12));
  Field y(DomainTuple{unstructured(3)}, Eigen::Vector3d(1, 2, 3));
  EXPECT_EQ(broadcast_operator(dt, 0)->times(y).values(),
            (Eigen::VectorXd(6) << 1, 2, 3, 1, 2, 3).finished());
}

TEST(LinearOperators, BlockDiagonalEqualsTheDenseBlockMatrix) {
  std::vector<Eigen::MatrixXd> blocks{random_matrix(2, 3, 1), random_matrix(2, 3, 2)};
  auto op = block_diagonal_operator(unstructured(2), unstructured(3), unstructured(2), blocks);
  Eigen::MatrixXd dense = Eigen::MatrixXd::Zero(4, 6);
  dense.block(0, 0, 2, 3) = blocks[0];
  dense.block(2, 3, 2, 3) = blocks[1];
  Field x(op->domain(), Eigen::VectorXd::LinSpaced(6, -1, 2));
  EXPECT_TRUE(op->times(x).values().isApprox(dense * x.values(), 1e-14));
}

TEST(LinearOperators, BatchMatrixAppliesTheMatrixToEveryDatum) {
  Eigen::MatrixXd w = random_matrix(3, 4, 2);
  auto op = batch_matrix_operator(unstructured(5), unstructured(4), unstructured(3), w);
  Field x(op->domain(), Eigen::VectorXd::LinSpaced(20, -1, 1));
  Field y = op->times(x);
  for (Eigen::Index b = 0; b < 5; ++b)
    EXPECT_TRUE(y.values().segment(b * 3, 3).isApprox(w * x.values().segment(b * 4, 4), 1e-14));
}

TEST(LinearOperators, SandwichIsBunTransposeCheeseBun) {
  Eigen::MatrixXd b = random_matrix(3, 4, 3);
  Eigen::Vector3d n(1.0, 2.0, 3.0);
  auto op = sandwich(matrix_operator(unstructured(4), unstructured(3), b),
                     diagonal_operator(unstructured(3), n));
  Field x(unstructured(4), Eigen::Vector4d(1, -1, 2, 0.5));
  EXPECT_TRUE(op->times(x).values().isApprox(b.transpose() * n.asDiagonal() * b * x.values(), 1e-14));
}

TEST(LinearOperators, InPlaceChainEqualsTheProductOfDiagonals) {
  auto s = unstructured(4);
  Eigen::Vector4d a(1, 2, 3, 4), b(-1, 0.5, 2, 1);
  auto op = compose(diagonal_operator(s, a), scaling_operator(s, 2.0), diagonal_operator(s, b));
  Field x(s, Eigen::Vector4d(1, 1, 2, -1));
  Eigen::Vector4d expected = (2.0 * a.array() * b.array() * x.values().array()).matrix();
  EXPECT_TRUE(op->times(x).values().isApprox(expected, 1e-15));
  EXPECT_TRUE(op->adjoint_times(x).values().isApprox(expected, 1e-15));
  EXPECT_TRUE(op->inverse_times(op->times(x)).values().isApprox(x.values(), 1e-14));
}

TEST(LinearOperators, AdjointOfAdjointAndInverseOfInverseAreTheOriginal) {
  auto a = matrix_operator(unstructured(3), unstructured(3), well_conditioned(3, 1));
  EXPECT_EQ(adjoint(adjoint(a)), a);
  EXPECT_EQ(inverse(inverse(a)), a);
}

TEST(LinearOperators, InverseOfCompositionReversesOrder) {
  auto a = matrix_operator(unstructured(3), unstructured(3), well_conditioned(3, 1));
  auto b = matrix_operator(unstructured(3), unstructured(3), well_conditioned(3, 2));
  Field x(unstructured(3), Eigen::Vector3d(1, 2, 3));
  Field back = compose(a, b)->inverse_times(compose(a, b)->times(x));
  EXPECT_TRUE(back.values().isApprox(x.values(), 1e-12));
}

TEST(LinearOperators, CompositionMismatchNamesBothSpaces) {
  try {
    compose(scaling_operator(regular_grid({3}), 1.0), scaling_operator(unstructured(4), 1.0));
    FAIL();
  } catch (const DomainMismatch& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("RegularGrid(shape=[3]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Unstructured(4)"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace infield

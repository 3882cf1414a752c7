// Every differentiable operator of the library, and every combinator, passes check_jacobian at a
// random point; each case also lists inputs that must throw.
#include "infield/operator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "infield/error.h"
#include "infield/linear_operators.h"
#include "infield/pointwise.h"
#include "infield/testing/matchers.h"

namespace infield {
namespace {

using testing::HasConsistentJacobianAt;
using BadInputs = std::vector<std::pair<std::string, std::function<void()>>>;

Field normal_point(const Space& space, unsigned seed = 3) {
  std::mt19937_64 rng(seed);
  return Field::normal(space, rng);
}

// exp of a normal point: strictly positive, for log, sqrt and power.
Field positive_point(const Space& space) {
  Field x = normal_point(space);
  x.values() = x.values().array().exp().matrix();
  return x;
}

Space grid() { return regular_grid({4, 5}); }

template <PointwiseFunction Fn, bool Positive = false>
struct Pointwise {
  static OperatorPtr make() { return pointwise(Fn, grid(), 1.7, 0.3); }
  static Field point() { return Positive ? positive_point(grid()) : normal_point(grid()); }
  static BadInputs bad() { return {}; }
};
using Exp = Pointwise<PointwiseFunction::kExp>;
using Log = Pointwise<PointwiseFunction::kLog, true>;
using Sqrt = Pointwise<PointwiseFunction::kSqrt, true>;
using Sigmoid = Pointwise<PointwiseFunction::kSigmoid>;
using Tanh = Pointwise<PointwiseFunction::kTanh>;
using Softplus = Pointwise<PointwiseFunction::kSoftplus>;
using Relu = Pointwise<PointwiseFunction::kRelu>;

struct Power {
  static OperatorPtr make() { return power(grid(), 2.5); }
  static Field point() { return positive_point(grid()); }
  static BadInputs bad() {
    return {{"NaN exponent", [] { power(grid(), std::nan("")); }}};
  }
};
struct Clip {
  static OperatorPtr make() { return clip(grid(), -0.5, 0.8); }
  static Field point() { return normal_point(grid()); }
  static BadInputs bad() {
    return {{"lower above upper", [] { clip(grid(), 1.0, -1.0); }},
            {"NaN bound", [] { clip(grid(), std::nan(""), 1.0); }}};
  }
};
struct LinearAsOperator {
  static OperatorPtr make() {
    return matrix_operator(grid(), unstructured(3), Eigen::MatrixXd::Random(3, 20));
  }
  static Field point() { return normal_point(grid()); }
  static BadInputs bad() { return {}; }
};
struct LogNormalResponse {
  // s = exp(A xi), observed through a mask: the generative story of a log-normal field.
  static OperatorPtr make() {
    std::vector<bool> keep(20, false);
    for (int i = 0; i < 20; i += 3) keep[i] = true;
    auto a = matrix_operator(grid(), grid(), 0.3 * Eigen::MatrixXd::Random(20, 20));
    return compose(mask_operator(grid(), keep), exp(a));
  }
  static Field point() { return normal_point(grid()); }
  static BadInputs bad() {
    return {{"mask on the wrong space", [] {
               compose(mask_operator(unstructured(3), {true, true, false}), exp(grid()));
             }}};
  }
};
struct TenPointwiseChain {
  static OperatorPtr make() {
    OperatorPtr op = tanh(grid());
    for (int i = 0; i < 3; ++i) op = softplus(sigmoid(exp(op)));
    return op;
  }
  static Field point() { return normal_point(grid()); }
  static BadInputs bad() { return {}; }
};
struct SumOfOperators {
  static OperatorPtr make() { return exp(grid()) + scale(2.0, tanh(grid())); }
  static Field point() { return normal_point(grid()); }
  static BadInputs bad() {
    return {{"different domains", [] { exp(grid()) + exp(unstructured(20)); }}};
  }
};
struct DifferenceOfOperators {
  static OperatorPtr make() { return sigmoid(grid()) - identity_operator(grid()); }
  static Field point() { return normal_point(grid()); }
  static BadInputs bad() { return {}; }
};
struct ScaledOperator {
  static OperatorPtr make() { return scale(-1.5, softplus(grid())); }
  static Field point() { return normal_point(grid()); }
  static BadInputs bad() {
    return {{"NaN factor", [] { scale(std::nan(""), exp(grid())); }}};
  }
};
struct ProductOfOperators {
  static OperatorPtr make() {
    return multiply(exp(grid()), tanh(scaling_operator(grid(), 0.7)));
  }
  static Field point() { return normal_point(grid()); }
  static BadInputs bad() {
    return {{"different targets", [] {
               multiply(exp(grid()), matrix_operator(grid(), unstructured(2), Eigen::MatrixXd::Ones(2, 20)));
             }}};
  }
};
struct UserOperator {
  // f(x)_i = x_i^2 + sin(x_{i+1}) (cyclic): a non-diagonal Jacobian written by hand.
  static OperatorPtr make() {
    auto value = [](ConstVectorRef x) {
      const Eigen::Index n = x.size();
      Eigen::VectorXd y(n);
      for (Eigen::Index i = 0; i < n; ++i) y[i] = x[i] * x[i] + std::sin(x[(i + 1) % n]);
      return y;
    };
    auto jvp = [](ConstVectorRef x, ConstVectorRef v) {
      const Eigen::Index n = x.size();
      Eigen::VectorXd y(n);
      for (Eigen::Index i = 0; i < n; ++i)
        y[i] = 2 * x[i] * v[i] + std::cos(x[(i + 1) % n]) * v[(i + 1) % n];
      return y;
    };
    auto vjp = [](ConstVectorRef x, ConstVectorRef u) {
      const Eigen::Index n = x.size();
      Eigen::VectorXd g = Eigen::VectorXd::Zero(n);
      for (Eigen::Index i = 0; i < n; ++i) {
        g[i] += 2 * x[i] * u[i];
        g[(i + 1) % n] += std::cos(x[(i + 1) % n]) * u[i];
      }
      return g;
    };
    return make_operator(grid(), grid(), value, jvp, vjp, "SquarePlusSine");
  }
  static Field point() { return normal_point(grid()); }
  static BadInputs bad() {
    return {{"missing vjp", [] {
               make_operator(grid(), grid(), [](ConstVectorRef x) { return Eigen::VectorXd(x); },
                             [](ConstVectorRef, ConstVectorRef v) { return Eigen::VectorXd(v); },
                             nullptr);
             }},
            {"value of the wrong size", [] {
               make_operator(grid(), grid(),
                             [](ConstVectorRef) { return Eigen::VectorXd::Zero(3).eval(); },
                             [](ConstVectorRef, ConstVectorRef v) { return Eigen::VectorXd(v); },
                             [](ConstVectorRef, ConstVectorRef v) { return Eigen::VectorXd(v); })
                   ->apply(Field::zeros(grid()));
             }}};
  }
};
struct OnMultiField {
  // signal = exp(xi) * softplus(amplitude broadcast over the grid): two inputs, one output.
  static MultiDomain domain() {
    return MultiDomain{{"xi", DomainTuple{regular_grid({4, 5})}},
                       {"amplitude", DomainTuple{unstructured(1)}}};
  }
  static OperatorPtr make() {
    MultiDomain md = domain();
    auto xi = field_adapter(md, "xi");
    auto spread = compose(matrix_operator(unstructured(1), grid(), Eigen::MatrixXd::Ones(20, 1)),
                          field_adapter(md, "amplitude"));
    return multiply(exp(xi), softplus(spread));
  }
  static Field point() { return normal_point(domain()); }
  static BadInputs bad() {
    return {{"field adapter with an unknown key", [] { field_adapter(domain(), "zeta"); }}};
  }
};

template <typename Case>
class OperatorTest : public ::testing::Test {};

using Cases = ::testing::Types<Exp, Log, Sqrt, Power, Sigmoid, Tanh, Softplus, Relu, Clip,
                               LinearAsOperator, LogNormalResponse, TenPointwiseChain,
                               SumOfOperators, DifferenceOfOperators, ScaledOperator,
                               ProductOfOperators, UserOperator, OnMultiField>;
TYPED_TEST_SUITE(OperatorTest, Cases);

TYPED_TEST(OperatorTest, JacobianMatchesFiniteDifferencesAndIsConsistent) {
  auto op = TypeParam::make();
  EXPECT_THAT(*op, HasConsistentJacobianAt(TypeParam::point()));
}

TYPED_TEST(OperatorTest, RejectsPointsOnTheWrongSpaceOrNonFinite) {
  auto op = TypeParam::make();
  Field wrong = Field::zeros(unstructured(op->domain().size() + 1));
  EXPECT_THROW(op->apply(wrong), DomainMismatch);
  EXPECT_THROW(op->linearize(wrong), DomainMismatch);
  Field bad = TypeParam::point();
  bad.values()[0] = std::nan("");
  try {
    check_jacobian(*op, bad);
    FAIL() << "expected a throw for NaN input";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("check_jacobian: x must be finite"), std::string::npos)
        << e.what();
  }
}

TYPED_TEST(OperatorTest, RejectsBadConstruction) {
  for (const auto& [what, fn] : TypeParam::bad()) EXPECT_THROW(fn(), InvalidArgument) << what;
}

// ---- Values ------------------------------------------------------------------------------------

TEST(Pointwise, ValuesMatchTheStandardFunctions) {
  Space s = unstructured(4);
  Field x(s, Eigen::Vector4d(0.3, 1.2, 2.0, 0.05));
  auto expect = [&](OperatorPtr op, auto f) {
    Field y = op->apply(x);
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(y.values()[i], f(x.values()[i]), 1e-14) << op->name();
  };
  expect(exp(s), [](double v) { return std::exp(v); });
  expect(log(s), [](double v) { return std::log(v); });
  expect(sqrt(s), [](double v) { return std::sqrt(v); });
  expect(power(s, 3.0), [](double v) { return v * v * v; });
  expect(sigmoid(s), [](double v) { return 1.0 / (1.0 + std::exp(-v)); });
  expect(tanh(s), [](double v) { return std::tanh(v); });
  expect(softplus(s), [](double v) { return std::log1p(std::exp(v)); });
  expect(clip(s, 0.1, 1.5), [](double v) { return std::clamp(v, 0.1, 1.5); });
}

TEST(Pointwise, ConsumingEvaluationEqualsTheCopyingOne) {
  // Chains hand intermediates to evaluate_consuming / linearize_consuming, which overwrite them.
  Space s = unstructured(50);
  Field x = positive_point(s);
  Field v = normal_point(s, 9);
  for (int fn = 0; fn <= static_cast<int>(PointwiseFunction::kClip); ++fn) {
    auto op = pointwise(static_cast<PointwiseFunction>(fn), s, 1.5, 2.5);
    Eigen::VectorXd copy = x.values();
    EXPECT_EQ(op->evaluate_consuming(std::move(copy)), op->evaluate(x.values())) << op->name();
    Eigen::VectorXd copy2 = x.values();
    FlatLinearization consumed = op->linearize_consuming(std::move(copy2));
    FlatLinearization plain = op->linearize_flat(x.values());
    EXPECT_EQ(consumed.value, plain.value) << op->name();
    EXPECT_EQ(consumed.jacobian->evaluate(v.values()), plain.jacobian->evaluate(v.values()))
        << op->name();
  }
}

TEST(Pointwise, SigmoidKeepsRelativePrecisionInTheLowerTail) {
  Space s = unstructured(3);
  Field x(s, Eigen::Vector3d(-30.0, -40.0, -700.0));
  Field y = sigmoid(s)->apply(x);
  for (int i = 0; i < 3; ++i) {
    const double v = x.values()[i];
    const double exact = std::exp(v) / (1.0 + std::exp(v));
    EXPECT_NEAR(y.values()[i], exact, 1e-15 * exact) << v;
  }
}

TEST(Pointwise, SigmoidAndSoftplusAreStableForLargeArguments) {
  Space s = unstructured(2);
  Field x(s, Eigen::Vector2d(-800.0, 800.0));
  Field sig = sigmoid(s)->apply(x);
  Field sp = softplus(s)->apply(x);
  EXPECT_EQ(sig.values()[0], 0.0);
  EXPECT_EQ(sig.values()[1], 1.0);
  EXPECT_EQ(sp.values()[0], 0.0);
  EXPECT_EQ(sp.values()[1], 800.0);
  EXPECT_TRUE(sigmoid(s)->linearize(x).jacobian->times(Field::full(s, 1.0)).all_finite());
}

TEST(Operator, ComposedModelsFlattenAndMatchHandWrittenMath) {
  Space s = unstructured(3);
  auto model = exp(scale(2.0, tanh(s)));
  Field x(s, Eigen::Vector3d(0.1, -0.4, 1.0));
  Eigen::Vector3d expected = (2.0 * x.values().array().tanh()).exp().matrix();
  EXPECT_TRUE(model->apply(x).values().isApprox(expected, 1e-14));
  // d/dx exp(2 tanh x) = exp(2 tanh x) 2 (1 - tanh^2 x)
  Eigen::Vector3d slope =
      expected.array() * 2.0 * (1.0 - x.values().array().tanh().square());
  Field ones = Field::full(s, 1.0);
  EXPECT_TRUE(model->linearize(x).jacobian->times(ones).values().isApprox(slope, 1e-14));
}

TEST(Operator, CheckJacobianRejectsAPointOnTheWrongSpace) {
  EXPECT_THROW(check_jacobian(*exp(unstructured(3)), Field::zeros(unstructured(4))),
               DomainMismatch);
}

}  // namespace
}  // namespace infield

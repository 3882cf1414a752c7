// The consistency checks must catch broken operators, not only pass correct ones.
#include "infield/checks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "infield/error.h"
#include "infield/linear_operators.h"
#include "infield/pointwise.h"
#include "infield/testing/matchers.h"

namespace infield {
namespace {

using ::testing::Not;
using testing::HasConsistentJacobianAt;
using testing::IsConsistentLinearOperator;

const Eigen::MatrixXd& matrix() {
  static const Eigen::MatrixXd m = Eigen::MatrixXd::Random(4, 3);
  return m;
}

TEST(CheckLinearOperator, DetectsAWrongAdjoint) {
  auto op = make_linear_operator(
      unstructured(3), unstructured(4), [](ConstVectorRef x) { return (matrix() * x).eval(); },
      [](ConstVectorRef y) { return (1.01 * matrix().transpose() * y).eval(); });
  EXPECT_THAT(*op, Not(IsConsistentLinearOperator()));
  EXPECT_THAT(check_linear_operator(*op).summary(), ::testing::HasSubstr("adjointness"));
}

TEST(CheckLinearOperator, DetectsANonlinearMap) {
  auto op = make_linear_operator(
      unstructured(3), unstructured(3),
      [](ConstVectorRef x) { return (x + 0.1 * x.cwiseAbs2()).eval(); },
      [](ConstVectorRef y) { return Eigen::VectorXd(y); });
  EXPECT_THAT(check_linear_operator(*op).summary(), ::testing::HasSubstr("linearity"));
}

TEST(CheckLinearOperator, DetectsAWrongInverse) {
  // A diagonal operator whose inverse is claimed but computed as the operator itself.
  class BadInverse final : public LinearOperator {
   public:
    BadInverse() : LinearOperator(unstructured(3), unstructured(3)) {}
    unsigned capabilities() const override { return kTimes | kAdjointTimes | kInverseTimes; }
    void apply_times(ConstVectorRef x, VectorRef out) const override { out = 2.0 * x; }
    void apply_adjoint(ConstVectorRef y, VectorRef out) const override { out = 2.0 * y; }
    void apply_inverse(ConstVectorRef y, VectorRef out) const override { out = 2.0 * y; }
  };
  auto op = std::make_shared<BadInverse>();
  EXPECT_THAT(check_linear_operator(*op).summary(), ::testing::HasSubstr("inverse"));
}

TEST(CheckJacobian, DetectsAWrongJvp) {
  Space s = unstructured(5);
  auto op = make_operator(
      s, s, [](ConstVectorRef x) { return x.array().sin().matrix().eval(); },
      [](ConstVectorRef x, ConstVectorRef v) {
        return (x.array().cos() * v.array() * 1.001).matrix().eval();  // 0.1% off
      },
      [](ConstVectorRef x, ConstVectorRef u) {
        return (x.array().cos() * u.array() * 1.001).matrix().eval();
      });
  std::mt19937_64 rng(1);
  Field x = Field::normal(s, rng);
  EXPECT_THAT(*op, Not(HasConsistentJacobianAt(x)));
  EXPECT_THAT(check_jacobian(*op, x).summary(), ::testing::HasSubstr("central differences"));
}

TEST(CheckJacobian, DetectsAVjpThatIsNotTheAdjointOfTheJvp) {
  Space s = unstructured(4);
  auto op = make_operator(
      s, s, [](ConstVectorRef x) { return x.array().square().matrix().eval(); },
      [](ConstVectorRef x, ConstVectorRef v) { return (2 * x.array() * v.array()).matrix().eval(); },
      [](ConstVectorRef x, ConstVectorRef u) { return (2 * x.array() * u.reverse().array()).matrix().eval(); });
  std::mt19937_64 rng(2);
  EXPECT_THAT(*op, Not(HasConsistentJacobianAt(Field::normal(s, rng))));
}

TEST(CheckJacobian, PassesACorrectOperatorAndReportsEveryCheck) {
  Space s = unstructured(6);
  std::mt19937_64 rng(3);
  CheckReport report = check_jacobian(*tanh(exp(s)), Field::normal(s, rng));
  EXPECT_TRUE(report.passed) << report.summary();
  EXPECT_GE(report.details.size(), 7u);
}

TEST(CheckJacobian, RejectsInvalidOptions) {
  Space s = unstructured(2);
  JacobianCheckOptions options;
  options.step = 0.0;
  EXPECT_THROW(check_jacobian(*exp(s), Field::zeros(s), options), InvalidArgument);
}

}  // namespace
}  // namespace infield

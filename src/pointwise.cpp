#include "infield/pointwise.h"

#include <cmath>

#include "unchecked_diagonal.h"
#include "infield/error.h"
#include "infield/linear_operators.h"

namespace infield {
namespace {

class PointwiseOperator final : public Operator {
 public:
  PointwiseOperator(PointwiseFunction fn, Space space, double a, double b)
      : Operator(space, space), fn_(fn), a_(a), b_(b) {}

  std::string name() const override {
    static constexpr const char* kNames[] = {"exp",  "log",      "sqrt", "power", "sigmoid",
                                             "tanh", "softplus", "relu", "clip"};
    return std::string("Pointwise(") + kNames[static_cast<int>(fn_)] + ")";
  }

  Eigen::VectorXd evaluate(ConstVectorRef x) const override {
    Eigen::VectorXd y(x.size());
    value(x, y);
    return y;
  }

  FlatLinearization linearize_flat(ConstVectorRef x) const override {
    Eigen::VectorXd y(x.size()), d(x.size());
    value(x, y);
    derivative(x, y, d);
    return {std::move(y), std::make_shared<detail::UncheckedDiagonal>(domain(), std::move(d))};
  }

  // The value overwrites the consumed input; the derivative is computed from x before that
  // where it needs x, and from the value after it otherwise.
  Eigen::VectorXd evaluate_consuming(Eigen::VectorXd&& x) const override {
    value(x, x);
    return std::move(x);
  }

  FlatLinearization linearize_consuming(Eigen::VectorXd&& x) const override {
    Eigen::VectorXd d(x.size());
    if (derivative_from_value()) {
      value(x, x);
      derivative(x, x, d);
    } else {
      derivative(x, x, d);  // y is unused by these functions
      value(x, x);
    }
    return {std::move(x), std::make_shared<detail::UncheckedDiagonal>(domain(), std::move(d))};
  }

 private:
  // 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) below: full relative precision in both tails
  // (the unused branch may overflow; select discards it).
  template <typename A>
  static Eigen::ArrayXd stable_sigmoid(const A& x) {
    return (x >= 0.0).select((1.0 + (-x).exp()).inverse(), x.exp() / (1.0 + x.exp()));
  }

  // One switch per call, whole-array Eigen expressions inside: no per-element dispatch.
  void value(ConstVectorRef x, VectorRef y) const {
    auto xa = x.array();
    switch (fn_) {
      case PointwiseFunction::kExp: y.array() = xa.exp(); break;
      case PointwiseFunction::kLog: y.array() = xa.log(); break;
      case PointwiseFunction::kSqrt: y.array() = xa.sqrt(); break;
      case PointwiseFunction::kPower: y.array() = xa.pow(a_); break;
      case PointwiseFunction::kSigmoid: y.array() = stable_sigmoid(xa); break;
      case PointwiseFunction::kTanh: y.array() = xa.tanh(); break;
      // log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}), stable for both signs.
      case PointwiseFunction::kSoftplus:
        y.array() = xa.max(0.0) + (-xa.abs()).exp().log1p();
        break;
      case PointwiseFunction::kRelu: y.array() = xa.max(0.0); break;
      case PointwiseFunction::kClip: y.array() = xa.max(a_).min(b_); break;
    }
  }

  bool derivative_from_value() const {
    return fn_ == PointwiseFunction::kExp || fn_ == PointwiseFunction::kSqrt ||
           fn_ == PointwiseFunction::kSigmoid || fn_ == PointwiseFunction::kTanh;
  }

  // Uses y only where derivative_from_value(), x only otherwise.
  void derivative(ConstVectorRef x, ConstVectorRef y, VectorRef d) const {
    auto xa = x.array();
    auto ya = y.array();
    switch (fn_) {
      case PointwiseFunction::kExp: d = y; break;
      case PointwiseFunction::kLog: d.array() = xa.inverse(); break;
      case PointwiseFunction::kSqrt: d.array() = 0.5 / ya; break;
      case PointwiseFunction::kPower: d.array() = a_ * xa.pow(a_ - 1.0); break;
      case PointwiseFunction::kSigmoid: d.array() = ya * (1.0 - ya); break;
      case PointwiseFunction::kTanh: d.array() = 1.0 - ya.square(); break;
      case PointwiseFunction::kSoftplus: d.array() = stable_sigmoid(xa); break;
      case PointwiseFunction::kRelu: d.array() = (xa > 0.0).cast<double>(); break;
      case PointwiseFunction::kClip:
        d.array() = ((xa > a_) && (xa < b_)).cast<double>();
        break;
    }
  }

  PointwiseFunction fn_;
  double a_, b_;
};

OperatorPtr after(OperatorPtr op, PointwiseFunction fn, double a = 0.0, double b = 0.0) {
  check_argument(op != nullptr, "pointwise", "op", "must not be null");
  return compose(pointwise(fn, op->target(), a, b), op);
}

}  // namespace

OperatorPtr pointwise(PointwiseFunction fn, Space space, double a, double b) {
  if (fn == PointwiseFunction::kPower) check_finite(a, "power", "exponent");
  if (fn == PointwiseFunction::kClip) {
    check_finite(a, "clip", "lower");
    check_finite(b, "clip", "upper");
    check_argument(a < b, "clip", "lower", "must be below upper");
  }
  return std::make_shared<PointwiseOperator>(fn, std::move(space), a, b);
}

OperatorPtr exp(Space space) { return pointwise(PointwiseFunction::kExp, std::move(space)); }
OperatorPtr log(Space space) { return pointwise(PointwiseFunction::kLog, std::move(space)); }
OperatorPtr sqrt(Space space) { return pointwise(PointwiseFunction::kSqrt, std::move(space)); }
OperatorPtr power(Space space, double exponent) {
  return pointwise(PointwiseFunction::kPower, std::move(space), exponent);
}
OperatorPtr sigmoid(Space space) { return pointwise(PointwiseFunction::kSigmoid, std::move(space)); }
OperatorPtr tanh(Space space) { return pointwise(PointwiseFunction::kTanh, std::move(space)); }
OperatorPtr softplus(Space space) {
  return pointwise(PointwiseFunction::kSoftplus, std::move(space));
}
OperatorPtr relu(Space space) { return pointwise(PointwiseFunction::kRelu, std::move(space)); }
OperatorPtr clip(Space space, double lower, double upper) {
  return pointwise(PointwiseFunction::kClip, std::move(space), lower, upper);
}

OperatorPtr exp(OperatorPtr op) { return after(std::move(op), PointwiseFunction::kExp); }
OperatorPtr log(OperatorPtr op) { return after(std::move(op), PointwiseFunction::kLog); }
OperatorPtr sqrt(OperatorPtr op) { return after(std::move(op), PointwiseFunction::kSqrt); }
OperatorPtr power(OperatorPtr op, double exponent) {
  return after(std::move(op), PointwiseFunction::kPower, exponent);
}
OperatorPtr sigmoid(OperatorPtr op) { return after(std::move(op), PointwiseFunction::kSigmoid); }
OperatorPtr tanh(OperatorPtr op) { return after(std::move(op), PointwiseFunction::kTanh); }
OperatorPtr softplus(OperatorPtr op) { return after(std::move(op), PointwiseFunction::kSoftplus); }
OperatorPtr relu(OperatorPtr op) { return after(std::move(op), PointwiseFunction::kRelu); }
OperatorPtr clip(OperatorPtr op, double lower, double upper) {
  return after(std::move(op), PointwiseFunction::kClip, lower, upper);
}

}  // namespace infield

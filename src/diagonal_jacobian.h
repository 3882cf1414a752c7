#pragma once
// Internal: the Jacobian of an operator that acts value by value, diag(f'(x)), holding the
// derivative its forward pass computed. Unlike diagonal_operator() it does not check finiteness
// (derivatives may overflow in far tails; that is a numerical outcome, not misuse).

#include "infield/operator.h"

namespace infield::detail {

class DiagonalJacobian final : public LinearOperator {
 public:
  DiagonalJacobian(const Space& space, Eigen::VectorXd derivative)
      : LinearOperator(space, space), derivative_(std::move(derivative)) {}
  std::string name() const override { return "DiagonalJacobian"; }
  bool in_place_safe() const override { return true; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    out.array() = derivative_.array() * x.array();
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override { apply_times(y, out); }

 private:
  Eigen::VectorXd derivative_;
};

}  // namespace infield::detail

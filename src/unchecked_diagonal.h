#pragma once
// Internal: diag(d) without diagonal_operator()'s finiteness check, for diagonals computed by the
// library itself: the Jacobian of a pointwise operator (d = f'(x)) and a likelihood's metric at a
// model output. Either may overflow at the edge of the support (a derivative in a far tail, a
// Poisson metric 1/s at s = 0); that is a numerical outcome a line search backs away from, not
// misuse, so it must not throw.

#include "infield/operator.h"

namespace infield::detail {

class UncheckedDiagonal final : public LinearOperator {
 public:
  UncheckedDiagonal(const Space& space, Eigen::VectorXd derivative)
      : LinearOperator(space, space), derivative_(std::move(derivative)) {}
  std::string name() const override { return "Diagonal"; }
  bool in_place_safe() const override { return true; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    out.array() = derivative_.array() * x.array();
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override { apply_times(y, out); }

 private:
  Eigen::VectorXd derivative_;
};

}  // namespace infield::detail

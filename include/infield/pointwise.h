#pragma once
/// @file pointwise.h
/// @brief Pointwise functions as differentiable operators. Each keeps its derivative f'(x) from the
/// forward pass; its Jacobian is the diagonal operator diag(f'(x)).
///
/// Every function exists in two forms: `exp(space)` is the pointwise operator on a space and
/// `exp(op)` composes it after an operator, so models read like the math: `exp(scale(2, xi))`.
/// relu and clip are differentiable except at their kinks, where the derivative taken is 0.

#include "infield/operator.h"

namespace infield {

enum class PointwiseFunction { kExp, kLog, kSqrt, kPower, kSigmoid, kTanh, kSoftplus, kRelu, kClip };

/// The pointwise operator on `space`; `a` is the exponent of kPower, (a, b) the bounds of kClip.
OperatorPtr pointwise(PointwiseFunction fn, Space space, double a = 0.0, double b = 0.0);

OperatorPtr exp(Space space);
OperatorPtr log(Space space);
OperatorPtr sqrt(Space space);
OperatorPtr power(Space space, double exponent);
OperatorPtr sigmoid(Space space);
OperatorPtr tanh(Space space);
OperatorPtr softplus(Space space);
OperatorPtr relu(Space space);
OperatorPtr clip(Space space, double lower, double upper);

OperatorPtr exp(OperatorPtr op);
OperatorPtr log(OperatorPtr op);
OperatorPtr sqrt(OperatorPtr op);
OperatorPtr power(OperatorPtr op, double exponent);
OperatorPtr sigmoid(OperatorPtr op);
OperatorPtr tanh(OperatorPtr op);
OperatorPtr softplus(OperatorPtr op);
OperatorPtr relu(OperatorPtr op);
OperatorPtr clip(OperatorPtr op, double lower, double upper);

}  // namespace infield

#pragma once
// Activations of the neural layers, shared by Mlp (neural.cpp) and Sequential (convolution.cpp).

#include "infield/models/neural.h"

namespace infield::neural::detail {

/// Value and derivative of an activation, elementwise over a matrix (derivative into `d`).
template <typename T>
inline void activate(Activation a, Matrix<T>& z, Matrix<T>* d) {
  auto za = z.array();
  switch (a) {
    case Activation::kIdentity:
      if (d) d->setOnes(z.rows(), z.cols());
      break;
    case Activation::kRelu:
      if (d) *d = (za > T(0)).template cast<T>().matrix();
      za = za.max(T(0));
      break;
    case Activation::kTanh:
      za = za.tanh();
      if (d) *d = (T(1) - za.square()).matrix();
      break;
    case Activation::kSigmoid: {
      // Stable for both signs: 1 / (1 + e^-x) = e^x / (1 + e^x).
      const auto e = (-za.abs()).exp().eval();
      za = (za >= T(0)).select(T(1) / (T(1) + e), e / (T(1) + e));
      if (d) *d = (za * (T(1) - za)).matrix();
      break;
    }
    case Activation::kSoftplus: {
      // log(1 + e^x) = max(x, 0) + log1p(e^-|x|); derivative sigmoid(x).
      const auto e = (-za.abs()).exp().eval();
      if (d) *d = (za >= T(0)).select(T(1) / (T(1) + e), e / (T(1) + e)).matrix();
      za = za.max(T(0)) + e.log1p();
      break;
    }
  }
}

}  // namespace infield::neural::detail

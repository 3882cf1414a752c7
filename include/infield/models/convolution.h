#pragma once
/// @file models/convolution.h
/// @brief Convolutional layers for the CVAE baseline of the FisherNet paper (Appendix A): 2D
/// convolution and transposed convolution by im2col + one GEMM per layer for the whole batch,
/// stacked with dense layers into a `Sequential` network with the same conventions as `Mlp`
/// (batch-first, one flat parameter vector, forward with a cache, vjp into input and parameters).
///
/// Layout: a datum is C x H x W values in C order (channel, row, column), one datum per row of
/// the batch matrix, so a dense layer after a convolution sees the flattened image as it is.

#include <Eigen/Core>
#include <random>
#include <vector>

#include "infield/models/neural.h"

namespace infield::neural {

/// The geometry of a 2D convolution from a large image (channels_in x rows x cols) to a small one
/// (channels_out x out_rows x out_cols) with a square kernel, stride and zero padding:
/// out = (in + 2 padding - kernel) / stride + 1. A transposed convolution uses the same geometry
/// backwards (small to large): it is the adjoint of the convolution in its input, so 28 x 28
/// with stride 2 and padding 1 maps 14 x 14 back to 28 x 28.
struct ConvGeometry {
  Eigen::Index channels_in = 1, rows = 28, cols = 28;  ///< The large side.
  Eigen::Index channels_out = 1;                       ///< Channels of the small side.
  Eigen::Index kernel = 3, stride = 1, padding = 1;
  Eigen::Index out_rows() const { return (rows + 2 * padding - kernel) / stride + 1; }
  Eigen::Index out_cols() const { return (cols + 2 * padding - kernel) / stride + 1; }
  Eigen::Index large_size() const { return channels_in * rows * cols; }
  Eigen::Index small_size() const { return channels_out * out_rows() * out_cols(); }
  /// Throws InvalidArgument for non-positive sizes or a kernel larger than the padded image.
  void validate() const;
};

/// cols ((C k k) x (B * out_rows * out_cols)) from a batch of large images (B x C*H*W): column
/// b * P + p holds the kernel window of output position p of datum b (zeros where padded).
template <typename T>
Matrix<T> im2col(const ConvGeometry& g, const Matrix<T>& images);
/// The adjoint of im2col: sums every column entry back into its image position (B x C*H*W).
template <typename T>
Matrix<T> col2im(const ConvGeometry& g, const Matrix<T>& cols, Eigen::Index batch);

enum class LayerKind { kDense, kConv, kConvTranspose };

/// One layer of a Sequential network with its activation.
struct LayerSpec {
  LayerKind kind = LayerKind::kDense;
  Eigen::Index in = 0, out = 0;  ///< Dense: sizes. Convolutions: from the geometry.
  ConvGeometry geometry;         ///< Convolutions only; a transposed one maps small -> large.
  Activation activation = Activation::kRelu;
  static LayerSpec dense(Eigen::Index in, Eigen::Index out, Activation a);
  static LayerSpec conv(const ConvGeometry& g, Activation a);
  static LayerSpec conv_transpose(const ConvGeometry& g, Activation a);
  Eigen::Index input_size() const;
  Eigen::Index output_size() const;
  Eigen::Index parameter_count() const;
};

/// A stack of dense, convolutional and transposed convolutional layers. Parameters per layer:
/// dense W (out x in) then b (out); conv W (C_out x C_in k k) then b (C_out); transposed conv W
/// (C_small x C_large k k) then b (C_large).
template <typename T>
class Sequential {
 public:
  /// Throws InvalidArgument if there are no layers or consecutive sizes disagree.
  explicit Sequential(std::vector<LayerSpec> layers);
  Eigen::Index input_size() const { return layers_.front().input_size(); }
  Eigen::Index output_size() const { return layers_.back().output_size(); }
  Eigen::Index parameter_count() const { return offsets_.back(); }
  const std::vector<LayerSpec>& layers() const { return layers_; }

  /// PyTorch's default initialisation: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
  /// fan_in = in (dense), C_in k k (conv), C_small k k (transposed conv, as PyTorch counts it).
  Vector<T> initialize(std::mt19937_64& rng) const;

  using ParamsRef = Eigen::Ref<const Vector<T>>;
  using GradientRef = Eigen::Ref<Vector<T>>;
  struct Cache {
    std::vector<Matrix<T>> inputs;       ///< Each layer's input (conv: its im2col columns).
    std::vector<Matrix<T>> derivatives;  ///< Activation derivatives, in the output layout.
    Eigen::Index batch = 0;
  };
  Matrix<T> forward(const ParamsRef& params, const Matrix<T>& x, Cache* cache = nullptr) const;
  /// Adds J_params^T u to param_gradient (or writes it there, kOverwrite) and returns J_x^T u
  /// (empty when input_gradient is false).
  Matrix<T> vjp(const ParamsRef& params, const Cache& cache, const Matrix<T>& u,
                GradientRef param_gradient, bool input_gradient = true,
                GradientWrite write = GradientWrite::kAccumulate) const;

 private:
  std::vector<LayerSpec> layers_;
  std::vector<Eigen::Index> offsets_;
};

/// The CVAE of the paper's Appendix A for 1 x rows x cols images (rows and cols divisible by 4):
/// encoder conv 32 (stride 2), conv 32 (stride 1), conv 64 (stride 2), all 3 x 3 with ReLU, then a
/// dense layer to [mu, log variance]; decoder dense D -> 64 x rows/4 x cols/4 (ReLU), transposed
/// convs 64 (stride 2), 32 (stride 1), 32 (stride 2) with ReLU and a final 3 x 3 transposed conv
/// to one channel (linear output).
std::vector<LayerSpec> cvae_encoder_layers(Eigen::Index rows, Eigen::Index cols, Eigen::Index latent);
std::vector<LayerSpec> cvae_decoder_layers(Eigen::Index rows, Eigen::Index cols, Eigen::Index latent);

extern template class Sequential<float>;
extern template class Sequential<double>;

}  // namespace infield::neural

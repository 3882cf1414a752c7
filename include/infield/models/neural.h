#pragma once
/// @file models/neural.h
/// @brief Neural layers as parametric operators of (input, parameters), batch-first: dense layers
/// with activations stacked into an MLP, their forward pass as one GEMM per layer, Jacobian-vector
/// products in the input for several tangents per datum at once (what FisherNet's per-datum
/// Jacobians J_i need), vector-Jacobian products in input and parameters, Glorot/He
/// initialisation and Adam. One code path for float (training) and double (gradient checks).
///
/// Layout: a batch is a row-major matrix, one datum per row. Parameters are one flat vector, layer
/// after layer, each as W (out x in, row-major) then b (out). With k tangents per datum, tangents
/// are stacked as k blocks of the batch: row t * batch + b is tangent t of datum b.

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

namespace infield::neural {

template <typename T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

/// How a vjp stores the parameter gradient: added to what the vector holds, or written over it
/// (every entry is written, so the vector need not be zeroed or even initialised first).
enum class GradientWrite { kAccumulate, kOverwrite };

/// Called by a backward pass as soon as a block of the parameter gradient is final and the pass
/// will not read the block's parameters again: (offset of the block in the gradient vector, the
/// block's gradient, its size). The callee may update those parameters there (training runs
/// Adam on each layer's block while its gradient is still in cache).
template <typename T>
using GradientBlockReady = std::function<void(Eigen::Index offset, const T* gradient, Eigen::Index size)>;

/// `ready` for a network whose parameters start at `base` of a longer vector (empty if `ready`
/// is).
template <typename T>
GradientBlockReady<T> with_base_offset(const GradientBlockReady<T>& ready, Eigen::Index base) {
  if (!ready) return {};
  return [ready, base](Eigen::Index offset, const T* gradient, Eigen::Index size) {
    ready(base + offset, gradient, size);
  };
}

enum class Activation { kIdentity, kRelu, kTanh, kSigmoid, kSoftplus };
enum class Initialization {
  kGlorotUniform,  ///< U(-a, a), a = sqrt(6 / (in + out)): for tanh, sigmoid, identity.
  kHeNormal,       ///< N(0, 2 / in): for relu-like activations.
  /// U(-a, a), a = 1 / sqrt(in), for weights and biases: PyTorch's default for nn.Linear, so that
  /// training runs compare with a PyTorch model from the same starting distribution.
  kUniformFanIn,
};

/// A multilayer perceptron: layer l maps widths[l] to widths[l + 1] and applies activations[l].
template <typename T>
class Mlp {
 public:
  /// Throws InvalidArgument unless widths has >= 2 positive entries and one activation per layer.
  Mlp(std::vector<Eigen::Index> widths, std::vector<Activation> activations);

  Eigen::Index input_size() const { return widths_.front(); }
  Eigen::Index output_size() const { return widths_.back(); }
  std::size_t layers() const { return activations_.size(); }
  Eigen::Index parameter_count() const { return offsets_.back(); }
  /// Where layer l's parameters start: its weights (widths[l + 1] x widths[l], row-major), then
  /// its biases.
  Eigen::Index parameter_offset(std::size_t layer) const { return offsets_.at(layer); }
  const std::vector<Eigen::Index>& widths() const { return widths_; }
  const std::vector<Activation>& activations() const { return activations_; }

  /// Fresh parameters: weights by `init` from `rng`; biases zero (uniform for kUniformFanIn).
  Vector<T> initialize(Initialization init, std::mt19937_64& rng) const;

  /// What the forward pass keeps for the derivatives: each layer's input and its activation's
  /// derivative at the pre-activation.
  struct Cache {
    std::vector<Matrix<T>> inputs;
    std::vector<Matrix<T>> derivatives;
  };

  /// y = f(x; params) for a batch x (batch x input_size); fills `cache` when given.
  /// Parameters are passed by reference to any contiguous vector (a segment of a longer one, as
  /// an autoencoder's [encoder, decoder, noise] vector, binds without a copy).
  using ParamsRef = Eigen::Ref<const Vector<T>>;
  using GradientRef = Eigen::Ref<Vector<T>>;

  Matrix<T> forward(const ParamsRef& params, const Matrix<T>& x, Cache* cache = nullptr) const;
  /// J_x dx for k tangents per datum: dx is (k * batch) x input_size, stacked as above; the
  /// result is (k * batch) x output_size. One GEMM per layer for all tangents.
  Matrix<T> jvp_input(const ParamsRef& params, const Cache& cache, const Matrix<T>& dx) const;
  /// The full JVP, J_params dparams + J_x dx, for one tangent per datum: dparams has
  /// parameter_count() entries, dx is batch x input_size or empty (no input tangent). Returns
  /// batch x output_size. What the network as a parametric operator of (x, params) needs.
  Matrix<T> jvp_parameters(const ParamsRef& params, const Cache& cache, const ParamsRef& dparams,
                           const Matrix<T>& dx = {}) const;
  /// J_x^T u alone (u batch x output_size), without the parameter gradient that vjp() forms.
  Matrix<T> vjp_input(const ParamsRef& params, const Cache& cache, const Matrix<T>& u) const;
  /// forward() and jvp_input() in one pass: the batch and its k tangents per datum go through
  /// each layer as one stacked GEMM (the weights are packed once for both). Returns y; the
  /// tangents' image J_x dx goes to `jvp`. With `output` false and a linear last layer, that
  /// layer maps the tangents only and an empty y is returned (a Jacobian needs the activations'
  /// derivatives on the way, not the network's output).
  Matrix<T> forward_with_jvp(const ParamsRef& params, const Matrix<T>& x, const Matrix<T>& dx,
                             Matrix<T>& jvp, Cache* cache = nullptr, bool output = true) const;
  /// For an output cotangent u (batch x output_size): adds J_params^T u to `param_gradient`
  /// (size parameter_count(); or writes it there with GradientWrite::kOverwrite) and returns
  /// J_x^T u. With input_gradient false the first layer's input product is skipped (an encoder
  /// fed by data needs none) and an empty matrix is returned. `ready`, when given, is called
  /// with each layer's block (offsets within this network's parameters) once it is final.
  Matrix<T> vjp(const ParamsRef& params, const Cache& cache, const Matrix<T>& u,
                GradientRef param_gradient, bool input_gradient = true,
                GradientWrite write = GradientWrite::kAccumulate,
                const GradientBlockReady<T>& ready = {}) const;

 private:
  std::vector<Eigen::Index> widths_;
  std::vector<Activation> activations_;
  std::vector<Eigen::Index> offsets_;  ///< Start of layer l's parameters; back() = total.
};

/// Adam (Kingma & Ba) with bias correction, one fused pass over the parameters per step.
template <typename T>
class Adam {
 public:
  struct Options {
    T learning_rate = T(1e-4);
    T beta1 = T(0.9);
    T beta2 = T(0.999);
    T epsilon = T(1e-8);
  };
  /// Throws InvalidArgument for a non-positive size, learning rate or epsilon, or betas outside
  /// [0, 1).
  Adam(Eigen::Index size, Options options);
  /// params -= lr * m_hat / (sqrt(v_hat) + eps), with the moments updated from
  /// gradient_scale * gradient (the scale folded into the same pass: a batch mean from a sum).
  void step(Eigen::Ref<Vector<T>> params, const Eigen::Ref<const Vector<T>>& gradient,
            T gradient_scale = T(1));
  /// A step in blocks, as a backward pass delivers them (GradientBlockReady): begin_step(), then
  /// update_block() once for every block of a partition of the parameters. The same update as
  /// step() up to float rounding (the square root of a block's first and last few entries).
  /// update_block() refuses to run before begin_step() (also after restore()).
  void begin_step();
  void update_block(T* params, const T* gradient, Eigen::Index offset, Eigen::Index size,
                    T gradient_scale = T(1));
  std::int64_t steps() const { return t_; }
  const Vector<T>& first_moment() const { return m_; }
  const Vector<T>& second_moment() const { return v_; }
  /// Restores a state (for checkpoints); sizes must match.
  void restore(Vector<T> m, Vector<T> v, std::int64_t steps);

 private:
  Options options_;
  Vector<T> m_, v_;
  std::int64_t t_ = 0;
  T c1_ = T(1), c2_ = T(1);  ///< this step's bias corrections 1 / (1 - beta^t)
  std::int64_t corrected_step_ = 0;  ///< the step c1_, c2_ belong to (0: none begun)
};

extern template class Mlp<float>;
extern template class Mlp<double>;
extern template class Adam<float>;
extern template class Adam<double>;

}  // namespace infield::neural

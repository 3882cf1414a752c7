#include "infield/models/neural.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "layer_kernels.h"
#include "infield/error.h"

namespace infield::neural {
namespace {

using detail::activate;
using detail::add_outer;
using detail::times;
using detail::times_transposed;

}  // namespace

template <typename T>
Mlp<T>::Mlp(std::vector<Eigen::Index> widths, std::vector<Activation> activations)
    : widths_(std::move(widths)), activations_(std::move(activations)) {
  constexpr std::string_view fn = "Mlp";
  check_argument(widths_.size() >= 2, fn, "widths", "must have at least 2 entries");
  for (Eigen::Index w : widths_) check_argument(w > 0, fn, "widths", "must be positive");
  check_argument(activations_.size() + 1 == widths_.size(), fn, "activations",
                 "must have one entry per layer (" + std::to_string(widths_.size() - 1) + ")");
  offsets_.push_back(0);
  for (std::size_t l = 0; l + 1 < widths_.size(); ++l)
    offsets_.push_back(offsets_.back() + widths_[l + 1] * widths_[l] + widths_[l + 1]);
}

template <typename T>
Vector<T> Mlp<T>::initialize(Initialization init, std::mt19937_64& rng) const {
  Vector<T> params = Vector<T>::Zero(parameter_count());
  for (std::size_t l = 0; l < layers(); ++l) {
    const Eigen::Index in = widths_[l], out = widths_[l + 1];
    T* w = params.data() + offsets_[l];
    if (init == Initialization::kUniformFanIn) {
      const double a = 1.0 / std::sqrt(static_cast<double>(in));
      std::uniform_real_distribution<double> u(-a, a);
      for (Eigen::Index i = 0; i < in * out + out; ++i) w[i] = static_cast<T>(u(rng));
    } else if (init == Initialization::kGlorotUniform) {
      const double a = std::sqrt(6.0 / static_cast<double>(in + out));
      std::uniform_real_distribution<double> u(-a, a);
      for (Eigen::Index i = 0; i < in * out; ++i) w[i] = static_cast<T>(u(rng));
    } else {
      std::normal_distribution<double> g(0.0, std::sqrt(2.0 / static_cast<double>(in)));
      for (Eigen::Index i = 0; i < in * out; ++i) w[i] = static_cast<T>(g(rng));
    }
  }
  return params;
}

template <typename T>
Matrix<T> Mlp<T>::forward(const ParamsRef& params, const Matrix<T>& x, Cache* cache) const {
  constexpr std::string_view fn = "Mlp::forward";
  check_argument(params.size() == parameter_count(), fn, "params",
                 "has " + std::to_string(params.size()) + " entries, the network " +
                     std::to_string(parameter_count()));
  check_argument(x.cols() == input_size(), fn, "x",
                 "has " + std::to_string(x.cols()) + " columns, the input size is " +
                     std::to_string(input_size()));
  if (cache) {
    cache->inputs.resize(layers());
    cache->derivatives.resize(layers());
  }
  Matrix<T> h = x;
  for (std::size_t l = 0; l < layers(); ++l) {
    const Eigen::Index in = widths_[l], out = widths_[l + 1];
    Eigen::Map<const Matrix<T>> w(params.data() + offsets_[l], out, in);
    Eigen::Map<const Vector<T>> b(params.data() + offsets_[l] + out * in, out);
    Matrix<T> z = times_transposed(h, w);  // one GEMM for the batch
    z.rowwise() += b.transpose();
    if (cache) {
      cache->inputs[l] = std::move(h);
      activate(activations_[l], z, &cache->derivatives[l]);
    } else {
      activate<T>(activations_[l], z, nullptr);
    }
    h = std::move(z);
  }
  return h;
}

template <typename T>
Matrix<T> Mlp<T>::forward_with_jvp(const ParamsRef& params, const Matrix<T>& x,
                                   const Matrix<T>& dx, Matrix<T>& jvp, Cache* cache,
                                   bool output) const {
  constexpr std::string_view fn = "Mlp::forward_with_jvp";
  check_argument(params.size() == parameter_count(), fn, "params", "has the wrong size");
  const Eigen::Index batch = x.rows();
  check_argument(x.cols() == input_size() && batch > 0, fn, "x", "must be batch x input_size");
  check_argument(dx.cols() == input_size() && dx.rows() % batch == 0, fn, "dx",
                 "must be (k * batch) x input_size");
  const Eigen::Index k = dx.rows() / batch;
  if (cache) {
    cache->inputs.resize(layers());
    cache->derivatives.resize(layers());
  }
  Matrix<T> stacked(batch * (k + 1), input_size());
  stacked.topRows(batch) = x;
  stacked.bottomRows(batch * k) = dx;
  Matrix<T> derivative;
  for (std::size_t l = 0; l < layers(); ++l) {
    const Eigen::Index in = widths_[l], out = widths_[l + 1];
    Eigen::Map<const Matrix<T>> w(params.data() + offsets_[l], out, in);
    Eigen::Map<const Vector<T>> b(params.data() + offsets_[l] + out * in, out);
    if (!output && l + 1 == layers() && activations_[l] == Activation::kIdentity) {
      // A linear last layer maps the tangents alone: its output at x is not needed.
      jvp = times_transposed(stacked.bottomRows(batch * k), w);
      if (cache) {
        cache->inputs[l] = stacked.topRows(batch);
        cache->derivatives[l].setOnes(batch, out);
      }
      return Matrix<T>();
    }
    Matrix<T> z = times_transposed(stacked, w);
    Matrix<T> primal = z.topRows(batch);
    primal.rowwise() += b.transpose();
    activate(activations_[l], primal, &derivative);
    for (Eigen::Index t = 1; t <= k; ++t)
      z.middleRows(t * batch, batch).array() *= derivative.array();
    z.topRows(batch) = primal;
    if (cache) {
      cache->inputs[l] = stacked.topRows(batch);
      cache->derivatives[l] = std::move(derivative);
    }
    stacked = std::move(z);
  }
  jvp = stacked.bottomRows(batch * k);
  return stacked.topRows(batch);
}

template <typename T>
Matrix<T> Mlp<T>::jvp_input(const ParamsRef& params, const Cache& cache,
                            const Matrix<T>& dx) const {
  constexpr std::string_view fn = "Mlp::jvp_input";
  check_argument(cache.inputs.size() == layers(), fn, "cache", "is not from forward()");
  const Eigen::Index batch = cache.inputs[0].rows();
  check_argument(dx.cols() == input_size() && batch > 0 && dx.rows() % batch == 0, fn, "dx",
                 "must be (k * batch) x input_size");
  const Eigen::Index k = dx.rows() / batch;
  Matrix<T> h = dx;
  for (std::size_t l = 0; l < layers(); ++l) {
    const Eigen::Index in = widths_[l], out = widths_[l + 1];
    Eigen::Map<const Matrix<T>> w(params.data() + offsets_[l], out, in);
    Matrix<T> z = times_transposed(h, w);
    for (Eigen::Index t = 0; t < k; ++t)
      z.middleRows(t * batch, batch).array() *= cache.derivatives[l].array();
    h = std::move(z);
  }
  return h;
}

template <typename T>
Matrix<T> Mlp<T>::vjp(const ParamsRef& params, const Cache& cache, const Matrix<T>& u,
                      GradientRef param_gradient, bool input_gradient,
                      GradientWrite write, const GradientBlockReady<T>& ready) const {
  constexpr std::string_view fn = "Mlp::vjp";
  check_argument(cache.inputs.size() == layers(), fn, "cache", "is not from forward()");
  check_argument(u.rows() == cache.inputs[0].rows() && u.cols() == output_size(), fn, "u",
                 "must be batch x output_size");
  check_argument(param_gradient.size() == parameter_count(), fn, "param_gradient",
                 "must have parameter_count() entries");
  Matrix<T> g = u;
  for (std::size_t l = layers(); l-- > 0;) {
    const Eigen::Index in = widths_[l], out = widths_[l + 1];
    g.array() *= cache.derivatives[l].array();  // through the activation
    Eigen::Map<const Matrix<T>> w(params.data() + offsets_[l], out, in);
    Eigen::Map<Matrix<T>> gw(param_gradient.data() + offsets_[l], out, in);
    Eigen::Map<Vector<T>> gb(param_gradient.data() + offsets_[l] + out * in, out);
    add_outer(gw, g, cache.inputs[l], write);
    detail::write_gradient(gb, g.colwise().sum().transpose(), write);
    Matrix<T> next;
    if (l > 0 || input_gradient) next = times(g, w);
    // Layer l's parameters are not read again by this pass.
    if (ready) ready(offsets_[l], gw.data(), offsets_[l + 1] - offsets_[l]);
    if (l == 0 && !input_gradient) return Matrix<T>();
    g = std::move(next);
  }
  return g;
}

template <typename T>
Matrix<T> Mlp<T>::jvp_parameters(const ParamsRef& params, const Cache& cache,
                                 const ParamsRef& dparams, const Matrix<T>& dx) const {
  constexpr std::string_view fn = "Mlp::jvp_parameters";
  check_argument(cache.inputs.size() == layers(), fn, "cache", "is not from forward()");
  check_argument(dparams.size() == parameter_count(), fn, "dparams",
                 "must have parameter_count() entries");
  const Eigen::Index batch = cache.inputs[0].rows();
  check_argument(dx.size() == 0 || (dx.rows() == batch && dx.cols() == input_size()), fn, "dx",
                 "must be batch x input_size (or empty for no input tangent)");
  // Forward mode through each layer: d(W x + b) = W dx + dW x + db, then the activation's
  // derivative at the pre-activation.
  Matrix<T> h = dx.size() == 0 ? Matrix<T>::Zero(batch, input_size()) : dx;
  for (std::size_t l = 0; l < layers(); ++l) {
    const Eigen::Index in = widths_[l], out = widths_[l + 1];
    Eigen::Map<const Matrix<T>> w(params.data() + offsets_[l], out, in);
    Eigen::Map<const Matrix<T>> dw(dparams.data() + offsets_[l], out, in);
    Eigen::Map<const Vector<T>> db(dparams.data() + offsets_[l] + out * in, out);
    Matrix<T> z = times_transposed(h, w);
    z.noalias() += cache.inputs[l] * dw.transpose();
    z.rowwise() += db.transpose();
    z.array() *= cache.derivatives[l].array();
    h = std::move(z);
  }
  return h;
}

template <typename T>
Matrix<T> Mlp<T>::vjp_input(const ParamsRef& params, const Cache& cache,
                            const Matrix<T>& u) const {
  constexpr std::string_view fn = "Mlp::vjp_input";
  check_argument(cache.inputs.size() == layers(), fn, "cache", "is not from forward()");
  check_argument(u.rows() == cache.inputs[0].rows() && u.cols() == output_size(), fn, "u",
                 "must be batch x output_size");
  Matrix<T> g = u;
  for (std::size_t l = layers(); l-- > 0;) {
    const Eigen::Index in = widths_[l], out = widths_[l + 1];
    g.array() *= cache.derivatives[l].array();
    Eigen::Map<const Matrix<T>> w(params.data() + offsets_[l], out, in);
    g = times(g, w);
  }
  return g;
}

template <typename T>
Adam<T>::Adam(Eigen::Index size, Options options)
    : options_(options), m_(Vector<T>::Zero(size)), v_(Vector<T>::Zero(size)) {
  constexpr std::string_view fn = "Adam";
  check_argument(size > 0, fn, "size", "must be positive");
  check_argument(options.learning_rate > 0 && options.epsilon > 0, fn, "options",
                 "learning_rate and epsilon must be positive");
  check_argument(options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 &&
                     options.beta2 < 1,
                 fn, "options", "beta1 and beta2 must lie in [0, 1)");
}

template <typename T>
void Adam<T>::step(Eigen::Ref<Vector<T>> params, const Eigen::Ref<const Vector<T>>& gradient,
                   T gradient_scale) {
  check_argument(params.size() == m_.size() && gradient.size() == m_.size(), "Adam::step",
                 "params, gradient", "must have the optimiser's size");
  begin_step();
  update_block(params.data(), gradient.data(), 0, params.size(), gradient_scale);
}

template <typename T>
void Adam<T>::begin_step() {
  ++t_;
  const double t = static_cast<double>(t_);
  c1_ = T(1) / (T(1) - static_cast<T>(std::pow(static_cast<double>(options_.beta1), t)));
  c2_ = T(1) / (T(1) - static_cast<T>(std::pow(static_cast<double>(options_.beta2), t)));
  corrected_step_ = t_;
}

template <typename T>
void Adam<T>::update_block(T* params, const T* gradient, Eigen::Index offset, Eigen::Index size,
                           T gradient_scale) {
  check_argument(t_ > 0 && corrected_step_ == t_, "Adam::update_block", "step",
                 "must be begun by begin_step() (also after restore())");
  check_argument(offset >= 0 && size >= 0 && offset + size <= m_.size(), "Adam::update_block",
                 "offset, size", "must lie within the parameters");
  const T b1 = options_.beta1, b2 = options_.beta2, c1 = c1_, c2 = c2_;
  const T lr = options_.learning_rate, eps = options_.epsilon;
  // One pass over cache-sized chunks: each statement below is a vectorised loop over a chunk that
  // stays in L1, so the arrays stream from memory once (a scalar loop does not vectorise: sqrt
  // may set errno).
  // Large blocks are split over the threads of the calling task arena (elementwise, so the
  // result does not depend on the split).
  constexpr Eigen::Index kChunk = 2048, kChunksPerTask = 32;
  const Eigen::Index chunks = (size + kChunk - 1) / kChunk;
  tbb::parallel_for(tbb::blocked_range<Eigen::Index>(0, chunks, kChunksPerTask),
                    [&](const tbb::blocked_range<Eigen::Index>& range) {
    for (Eigen::Index c = range.begin(); c < range.end(); ++c) {
      const Eigen::Index start = c * kChunk, n = std::min(kChunk, size - start);
      Eigen::Map<Vector<T>> p(params + start, n);
      Eigen::Map<const Vector<T>> gradient_chunk(gradient + start, n);
      auto m = m_.segment(offset + start, n).array();
      auto v = v_.segment(offset + start, n).array();
      const auto g = gradient_chunk.array() * gradient_scale;
      m = b1 * m + (T(1) - b1) * g;
      v = b2 * v + (T(1) - b2) * g.square();
      p.array() -= (lr * c1) * m / ((v * c2).sqrt() + eps);
    }
  });
}

template <typename T>
void Adam<T>::restore(Vector<T> m, Vector<T> v, std::int64_t steps) {
  check_argument(m.size() == m_.size() && v.size() == v_.size() && steps >= 0, "Adam::restore",
                 "state", "must match the optimiser's size with steps >= 0");
  m_ = std::move(m);
  v_ = std::move(v);
  t_ = steps;
  corrected_step_ = 0;  // the next update needs begin_step()
}

template class Mlp<float>;
template class Mlp<double>;
template class Adam<float>;
template class Adam<double>;

}  // namespace infield::neural

#include "infield/models/convolution.h"

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

/// Batch rows (B x C*P) to channel-major (C x B*P): column b * P + p of row c.
template <typename T>
Matrix<T> to_channel_major(const Matrix<T>& x, Eigen::Index channels, Eigen::Index positions) {
  const Eigen::Index batch = x.rows();
  Matrix<T> out(channels, batch * positions);
  for (Eigen::Index b = 0; b < batch; ++b)
    for (Eigen::Index c = 0; c < channels; ++c)
      out.row(c).segment(b * positions, positions) = x.row(b).segment(c * positions, positions);
  return out;
}

/// The inverse of to_channel_major.
template <typename T>
Matrix<T> to_batch_rows(const Matrix<T>& m, Eigen::Index batch, Eigen::Index positions) {
  const Eigen::Index channels = m.rows();
  Matrix<T> out(batch, channels * positions);
  for (Eigen::Index b = 0; b < batch; ++b)
    for (Eigen::Index c = 0; c < channels; ++c)
      out.row(b).segment(c * positions, positions) = m.row(c).segment(b * positions, positions);
  return out;
}

}  // namespace

void ConvGeometry::validate() const {
  check_argument(channels_in > 0 && rows > 0 && cols > 0 && channels_out > 0 && kernel > 0 &&
                     stride > 0 && padding >= 0,
                 "ConvGeometry", "sizes", "must be positive (padding >= 0)");
  check_argument(rows + 2 * padding >= kernel && cols + 2 * padding >= kernel, "ConvGeometry",
                 "kernel", "must fit into the padded image");
}

template <typename T>
Matrix<T> im2col(const ConvGeometry& g, const Matrix<T>& images) {
  check_argument(images.cols() == g.large_size(), "im2col", "images",
                 "must have channels_in * rows * cols columns");
  const Eigen::Index batch = images.rows(), k = g.kernel, ho = g.out_rows(), wo = g.out_cols();
  const Eigen::Index positions = ho * wo, plane = g.rows * g.cols;
  Matrix<T> cols(g.channels_in * k * k, batch * positions);
  for (Eigen::Index c = 0; c < g.channels_in; ++c)
    for (Eigen::Index ki = 0; ki < k; ++ki)
      for (Eigen::Index kj = 0; kj < k; ++kj) {
        T* row = cols.row((c * k + ki) * k + kj).data();
        for (Eigen::Index b = 0; b < batch; ++b) {
          const T* image = images.row(b).data() + c * plane;
          T* out = row + b * positions;
          for (Eigen::Index oh = 0; oh < ho; ++oh) {
            const Eigen::Index ih = oh * g.stride - g.padding + ki;
            for (Eigen::Index ow = 0; ow < wo; ++ow) {
              const Eigen::Index iw = ow * g.stride - g.padding + kj;
              out[oh * wo + ow] = (ih >= 0 && ih < g.rows && iw >= 0 && iw < g.cols)
                                      ? image[ih * g.cols + iw]
                                      : T(0);
            }
          }
        }
      }
  return cols;
}

template <typename T>
Matrix<T> col2im(const ConvGeometry& g, const Matrix<T>& cols, Eigen::Index batch) {
  const Eigen::Index k = g.kernel, ho = g.out_rows(), wo = g.out_cols();
  const Eigen::Index positions = ho * wo, plane = g.rows * g.cols;
  check_argument(cols.rows() == g.channels_in * k * k && cols.cols() == batch * positions,
                 "col2im", "cols", "must be (channels_in k k) x (batch out_rows out_cols)");
  Matrix<T> images = Matrix<T>::Zero(batch, g.large_size());
  for (Eigen::Index c = 0; c < g.channels_in; ++c)
    for (Eigen::Index ki = 0; ki < k; ++ki)
      for (Eigen::Index kj = 0; kj < k; ++kj) {
        const T* row = cols.row((c * k + ki) * k + kj).data();
        for (Eigen::Index b = 0; b < batch; ++b) {
          T* image = images.row(b).data() + c * plane;
          const T* in = row + b * positions;
          for (Eigen::Index oh = 0; oh < ho; ++oh) {
            const Eigen::Index ih = oh * g.stride - g.padding + ki;
            if (ih < 0 || ih >= g.rows) continue;
            for (Eigen::Index ow = 0; ow < wo; ++ow) {
              const Eigen::Index iw = ow * g.stride - g.padding + kj;
              if (iw >= 0 && iw < g.cols) image[ih * g.cols + iw] += in[oh * wo + ow];
            }
          }
        }
      }
  return images;
}

LayerSpec LayerSpec::dense(Eigen::Index in, Eigen::Index out, Activation a) {
  LayerSpec s;
  s.kind = LayerKind::kDense;
  s.in = in;
  s.out = out;
  s.activation = a;
  return s;
}

LayerSpec LayerSpec::conv(const ConvGeometry& g, Activation a) {
  g.validate();
  LayerSpec s;
  s.kind = LayerKind::kConv;
  s.geometry = g;
  s.activation = a;
  return s;
}

LayerSpec LayerSpec::conv_transpose(const ConvGeometry& g, Activation a) {
  g.validate();
  LayerSpec s;
  s.kind = LayerKind::kConvTranspose;
  s.geometry = g;
  s.activation = a;
  return s;
}

Eigen::Index LayerSpec::input_size() const {
  switch (kind) {
    case LayerKind::kDense: return in;
    case LayerKind::kConv: return geometry.large_size();
    case LayerKind::kConvTranspose: return geometry.small_size();
  }
  return 0;
}

Eigen::Index LayerSpec::output_size() const {
  switch (kind) {
    case LayerKind::kDense: return out;
    case LayerKind::kConv: return geometry.small_size();
    case LayerKind::kConvTranspose: return geometry.large_size();
  }
  return 0;
}

Eigen::Index LayerSpec::parameter_count() const {
  const ConvGeometry& g = geometry;
  const Eigen::Index window = g.channels_in * g.kernel * g.kernel;
  switch (kind) {
    case LayerKind::kDense: return in * out + out;
    case LayerKind::kConv: return g.channels_out * window + g.channels_out;
    case LayerKind::kConvTranspose: return g.channels_out * window + g.channels_in;
  }
  return 0;
}

template <typename T>
Sequential<T>::Sequential(std::vector<LayerSpec> layers) : layers_(std::move(layers)) {
  check_argument(!layers_.empty(), "Sequential", "layers", "must not be empty");
  offsets_.push_back(0);
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    check_argument(layers_[l].input_size() > 0 && layers_[l].output_size() > 0, "Sequential",
                   "layers", "must have positive sizes");
    if (l > 0)
      check_argument(layers_[l].input_size() == layers_[l - 1].output_size(), "Sequential",
                     "layers",
                     "layer " + std::to_string(l) + " takes " +
                         std::to_string(layers_[l].input_size()) + " values, the one before gives " +
                         std::to_string(layers_[l - 1].output_size()));
    offsets_.push_back(offsets_.back() + layers_[l].parameter_count());
  }
}

template <typename T>
Vector<T> Sequential<T>::initialize(std::mt19937_64& rng) const {
  Vector<T> params(parameter_count());
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& s = layers_[l];
    const ConvGeometry& g = s.geometry;
    const Eigen::Index fan_in = s.kind == LayerKind::kDense ? s.in
                                : s.kind == LayerKind::kConv
                                    ? g.channels_in * g.kernel * g.kernel
                                    : g.channels_out * g.kernel * g.kernel;
    std::uniform_real_distribution<double> u(-1.0 / std::sqrt(double(fan_in)),
                                             1.0 / std::sqrt(double(fan_in)));
    for (Eigen::Index i = offsets_[l]; i < offsets_[l + 1]; ++i) params[i] = static_cast<T>(u(rng));
  }
  return params;
}

template <typename T>
Matrix<T> Sequential<T>::forward(const ParamsRef& params, const Matrix<T>& x, Cache* cache) const {
  constexpr std::string_view fn = "Sequential::forward";
  check_argument(params.size() == parameter_count(), fn, "params", "has the wrong size");
  check_argument(x.cols() == input_size(), fn, "x", "has the wrong number of columns");
  const Eigen::Index batch = x.rows();
  if (cache) {
    cache->inputs.resize(layers_.size());
    cache->derivatives.resize(layers_.size());
    cache->batch = batch;
  }
  Matrix<T> h = x;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& s = layers_[l];
    const ConvGeometry& g = s.geometry;
    const T* p = params.data() + offsets_[l];
    Matrix<T> z, kept;
    if (s.kind == LayerKind::kDense) {
      Eigen::Map<const Matrix<T>> w(p, s.out, s.in);
      Eigen::Map<const Vector<T>> b(p + s.out * s.in, s.out);
      z = times_transposed(h, w);
      z.rowwise() += b.transpose();
      kept = std::move(h);
    } else {
      const Eigen::Index window = g.channels_in * g.kernel * g.kernel;
      const Eigen::Index positions = g.out_rows() * g.out_cols();
      Eigen::Map<const Matrix<T>> w(p, g.channels_out, window);
      if (s.kind == LayerKind::kConv) {
        Eigen::Map<const Vector<T>> b(p + g.channels_out * window, g.channels_out);
        Matrix<T> cols = im2col(g, h);
        Matrix<T> zm = times(w, cols);  // C_out x (B P): one GEMM for the batch
        zm.colwise() += b;
        z = to_batch_rows(zm, batch, positions);
        kept = std::move(cols);
      } else {
        Eigen::Map<const Vector<T>> b(p + g.channels_out * window, g.channels_in);
        Matrix<T> xm = to_channel_major(h, g.channels_out, positions);
        z = col2im(g, times(w.transpose(), xm), batch);
        const Eigen::Index plane = g.rows * g.cols;
        for (Eigen::Index c = 0; c < g.channels_in; ++c)
          z.middleCols(c * plane, plane).array() += b[c];
        kept = std::move(xm);
      }
    }
    if (cache) {
      cache->inputs[l] = std::move(kept);
      activate(s.activation, z, &cache->derivatives[l]);
    } else {
      activate<T>(s.activation, z, nullptr);
    }
    h = std::move(z);
  }
  return h;
}

template <typename T>
Matrix<T> Sequential<T>::vjp(const ParamsRef& params, const Cache& cache, const Matrix<T>& u,
                             GradientRef param_gradient, bool input_gradient,
                             GradientWrite write) const {
  constexpr std::string_view fn = "Sequential::vjp";
  check_argument(cache.inputs.size() == layers_.size(), fn, "cache", "is not from forward()");
  check_argument(u.rows() == cache.batch && u.cols() == output_size(), fn, "u",
                 "must be batch x output_size");
  check_argument(param_gradient.size() == parameter_count(), fn, "param_gradient",
                 "must have parameter_count() entries");
  const Eigen::Index batch = cache.batch;
  Matrix<T> g = u;
  for (std::size_t l = layers_.size(); l-- > 0;) {
    const LayerSpec& s = layers_[l];
    const ConvGeometry& cg = s.geometry;
    const T* p = params.data() + offsets_[l];
    T* gp = param_gradient.data() + offsets_[l];
    g.array() *= cache.derivatives[l].array();
    const bool need_input = l > 0 || input_gradient;
    if (s.kind == LayerKind::kDense) {
      Eigen::Map<const Matrix<T>> w(p, s.out, s.in);
      Eigen::Map<Matrix<T>> gw(gp, s.out, s.in);
      add_outer(gw, g, cache.inputs[l], write);
      detail::write_gradient(Eigen::Map<Vector<T>>(gp + s.out * s.in, s.out),
                             g.colwise().sum().transpose(), write);
      if (!need_input) return Matrix<T>();
      Matrix<T> next = times(g, w);
      g = std::move(next);
      continue;
    }
    const Eigen::Index window = cg.channels_in * cg.kernel * cg.kernel;
    const Eigen::Index positions = cg.out_rows() * cg.out_cols();
    Eigen::Map<const Matrix<T>> w(p, cg.channels_out, window);
    Eigen::Map<Matrix<T>> gw(gp, cg.channels_out, window);
    if (s.kind == LayerKind::kConv) {
      const Matrix<T> gm = to_channel_major(g, cg.channels_out, positions);
      detail::write_gradient(gw, gm * cache.inputs[l].transpose(), write);
      detail::write_gradient(Eigen::Map<Vector<T>>(gp + cg.channels_out * window, cg.channels_out),
                             gm.rowwise().sum(), write);
      if (!need_input) return Matrix<T>();
      g = col2im(cg, times(w.transpose(), gm), batch);
    } else {
      const Matrix<T> gcols = im2col(cg, g);
      detail::write_gradient(gw, cache.inputs[l] * gcols.transpose(), write);
      const Eigen::Index plane = cg.rows * cg.cols;
      Eigen::Map<Vector<T>> gb(gp + cg.channels_out * window, cg.channels_in);
      if (write == GradientWrite::kOverwrite) gb.setZero();
      for (Eigen::Index c = 0; c < cg.channels_in; ++c) gb[c] += g.middleCols(c * plane, plane).sum();
      if (!need_input) return Matrix<T>();
      g = to_batch_rows(times(w, gcols), batch, positions);
    }
  }
  return g;
}

std::vector<LayerSpec> cvae_encoder_layers(Eigen::Index rows, Eigen::Index cols,
                                           Eigen::Index latent) {
  check_argument(rows % 4 == 0 && cols % 4 == 0 && rows > 0 && cols > 0, "cvae_encoder_layers",
                 "rows, cols", "must be positive multiples of 4");
  const auto a = Activation::kRelu;
  return {LayerSpec::conv({1, rows, cols, 32, 3, 2, 1}, a),
          LayerSpec::conv({32, rows / 2, cols / 2, 32, 3, 1, 1}, a),
          LayerSpec::conv({32, rows / 2, cols / 2, 64, 3, 2, 1}, a),
          LayerSpec::dense(64 * (rows / 4) * (cols / 4), 2 * latent, Activation::kIdentity)};
}

std::vector<LayerSpec> cvae_decoder_layers(Eigen::Index rows, Eigen::Index cols,
                                           Eigen::Index latent) {
  check_argument(rows % 4 == 0 && cols % 4 == 0 && rows > 0 && cols > 0, "cvae_decoder_layers",
                 "rows, cols", "must be positive multiples of 4");
  const auto a = Activation::kRelu;
  // Geometries name the large side first (channels_in, rows, cols), then the small side's
  // channels: a transposed conv maps small -> large.
  return {LayerSpec::dense(latent, 64 * (rows / 4) * (cols / 4), a),
          LayerSpec::conv_transpose({64, rows / 2, cols / 2, 64, 3, 2, 1}, a),
          LayerSpec::conv_transpose({32, rows / 2, cols / 2, 64, 3, 1, 1}, a),
          LayerSpec::conv_transpose({32, rows, cols, 32, 3, 2, 1}, a),
          LayerSpec::conv_transpose({1, rows, cols, 32, 3, 1, 1}, Activation::kIdentity)};
}

template Matrix<float> im2col(const ConvGeometry&, const Matrix<float>&);
template Matrix<double> im2col(const ConvGeometry&, const Matrix<double>&);
template Matrix<float> col2im(const ConvGeometry&, const Matrix<float>&, Eigen::Index);
template Matrix<double> col2im(const ConvGeometry&, const Matrix<double>&, Eigen::Index);
template class Sequential<float>;
template class Sequential<double>;

}  // namespace infield::neural

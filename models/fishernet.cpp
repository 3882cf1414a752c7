#include "infield/models/fishernet.h"

#include <tbb/parallel_for.h>
#include <tbb/parallel_invoke.h>

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <cmath>
#include <string>

#include "infield/error.h"
#include "infield/inference/conjugate_gradient.h"
#include "infield/operator.h"
#include "layer_kernels.h"

namespace infield::neural {

namespace {

/// The unit tangents e_t of every datum for a multi-tangent JVP: row t * batch + b is e_t.
template <typename T>
Matrix<T> unit_tangents(Eigen::Index batch, Eigen::Index d) {
  Matrix<T> tangents = Matrix<T>::Zero(d * batch, d);
  for (Eigen::Index t = 0; t < d; ++t) tangents.block(t * batch, t, batch, 1).setOnes();
  return tangents;
}

}  // namespace

template <typename T>
std::vector<Matrix<T>> decoder_jacobians(const Mlp<T>& decoder, const typename Mlp<T>::ParamsRef& params,
                                         const Matrix<T>& z) {
  const Eigen::Index batch = z.rows(), d = z.cols(), k = decoder.output_size();
  check_argument(d == decoder.input_size(), "decoder_jacobians", "z",
                 "must have the decoder's input size as columns");
  // The forward pass at z (for the activations' derivatives) and the tangents share every
  // layer's GEMM.
  Matrix<T> columns;  // (d * batch) x k
  decoder.forward_with_jvp(params, z, unit_tangents<T>(batch, d), columns, nullptr, false);
  std::vector<Matrix<T>> out(static_cast<std::size_t>(batch));
  // Per datum, over the threads of the calling arena.
  tbb::parallel_for(Eigen::Index{0}, batch, [&](Eigen::Index b) {
    Matrix<T>& j = out[static_cast<std::size_t>(b)];
    j.resize(k, d);
    for (Eigen::Index t = 0; t < d; ++t) j.col(t) = columns.row(t * batch + b).transpose();
  });
  return out;
}

template <typename T>
std::vector<Matrix<T>> latent_metrics(const std::vector<Matrix<T>>& jacobians, T noise_variance) {
  check_argument(noise_variance > 0, "latent_metrics", "noise_variance", "must be positive");
  std::vector<Matrix<T>> out(jacobians.size());
  tbb::parallel_for(std::size_t{0}, jacobians.size(), [&](std::size_t b) {
    const Matrix<T>& j = jacobians[b];
    out[b].noalias() = (j.transpose() * j) / noise_variance;
    out[b].diagonal().array() += T(1);
  });
  return out;
}

template <typename T>
LatentUncertainty<T> latent_uncertainty(const Matrix<T>& metric) {
  check_argument(metric.rows() == metric.cols() && metric.rows() > 0, "latent_uncertainty",
                 "metric", "must be square");
  check_finite(metric, "latent_uncertainty", "metric");
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(metric.template cast<double>());
  return {eig.eigenvalues().cast<T>(), eig.eigenvectors().cast<T>()};
}

template LatentUncertainty<float> latent_uncertainty(const Matrix<float>&);
template LatentUncertainty<double> latent_uncertainty(const Matrix<double>&);

template <typename T>
Matrix<T> latent_residuals_explicit(const std::vector<Matrix<T>>& jacobians, T noise_variance,
                                    const Matrix<T>& n, const Matrix<T>& eta) {
  constexpr std::string_view fn = "latent_residuals_explicit";
  const auto batch = static_cast<Eigen::Index>(jacobians.size());
  check_argument(batch > 0, fn, "jacobians", "must not be empty");
  const Eigen::Index k = jacobians[0].rows(), d = jacobians[0].cols();
  check_argument(n.rows() == batch && n.cols() == k, fn, "n", "must be batch x k");
  check_argument(eta.rows() == batch && eta.cols() == d, fn, "eta", "must be batch x D");
  const T sigma = std::sqrt(noise_variance);
  const std::vector<Matrix<T>> metrics = latent_metrics(jacobians, noise_variance);
  Matrix<T> out(batch, d);
  tbb::parallel_for(Eigen::Index{0}, batch, [&](Eigen::Index b) {
    const auto& j = jacobians[static_cast<std::size_t>(b)];
    const Vector<T> theta = j.transpose() * n.row(b).transpose() / sigma + eta.row(b).transpose();
    const Eigen::LLT<Matrix<T>> llt(metrics[static_cast<std::size_t>(b)]);
    out.row(b) = llt.solve(theta).transpose();
  });
  return out;
}

template <typename T>
Matrix<T> latent_residuals_cg(const Mlp<T>& decoder, const typename Mlp<T>::ParamsRef& params, const Matrix<T>& z,
                              T noise_variance, const Matrix<T>& n, const Matrix<T>& eta,
                              double relative_residual) {
  constexpr std::string_view fn = "latent_residuals_cg";
  const Eigen::Index batch = z.rows(), d = z.cols(), k = decoder.output_size();
  check_argument(noise_variance > 0, fn, "noise_variance", "must be positive");
  check_argument(n.rows() == batch && n.cols() == k, fn, "n", "must be batch x k");
  check_argument(eta.rows() == batch && eta.cols() == d, fn, "eta", "must be batch x D");
  const double sigma = std::sqrt(static_cast<double>(noise_variance));
  Matrix<T> out(batch, d);
  const auto latent = unstructured(d);
  for (Eigen::Index b = 0; b < batch; ++b) {
    typename Mlp<T>::Cache cache;
    decoder.forward(params, Matrix<T>(z.row(b)), &cache);
    auto jvp = [&](const Eigen::VectorXd& v) {
      return decoder.jvp_input(params, cache, Matrix<T>(v.transpose().cast<T>()))
          .template cast<double>()
          .transpose()
          .eval();
    };
    auto vjp = [&](const Eigen::VectorXd& u) {
      Vector<T> unused = Vector<T>::Zero(decoder.parameter_count());
      return decoder.vjp(params, cache, Matrix<T>(u.transpose().cast<T>()), unused)
          .template cast<double>()
          .transpose()
          .eval();
    };
    const double inv_noise = 1.0 / static_cast<double>(noise_variance);
    auto metric = make_linear_operator(
        latent, latent,
        [&](ConstVectorRef v) { return (vjp(jvp(v)) * inv_noise + v).eval(); },
        [&](ConstVectorRef v) { return (vjp(jvp(v)) * inv_noise + v).eval(); }, "LatentMetric");
    const Eigen::VectorXd theta =
        vjp(n.row(b).transpose().template cast<double>()) / sigma +
        eta.row(b).transpose().template cast<double>();
    Eigen::VectorXd delta = Eigen::VectorXd::Zero(d);
    const ConjugateGradientSummary s =
        conjugate_gradient(*metric, theta, delta, {relative_residual, 0.0, 10 * static_cast<int>(d) + 10});
    if (!s.converged())
      throw std::runtime_error(std::string(fn) + ": the CG solve of datum " + std::to_string(b) +
                               " did not converge: " + s.brief_report());
    out.row(b) = delta.transpose().cast<T>();
  }
  return out;
}

namespace {
/// The Gram route's precondition: a hidden layer before a linear last layer f = W h + c.
template <typename T>
bool has_linear_last_layer(const Mlp<T>& decoder) {
  return decoder.layers() >= 2 && decoder.activations().back() == Activation::kIdentity;
}
}  // namespace

template <typename T>
double latent_system_multiply_adds(const Mlp<T>& decoder, Eigen::Index batch, bool with_rhs,
                                   LatentSystemRoute route) {
  const std::size_t layers = decoder.layers();
  const double b = double(batch), d = double(decoder.input_size()),
               h = double(decoder.widths()[layers - 1]), k = double(decoder.output_size());
  if (route == LatentSystemRoute::kJacobians)
    return d * b * h * k + b * d * d * k + (with_rhs ? b * d * k : 0);
  check_argument(route == LatentSystemRoute::kLastLayerGram, "latent_system_multiply_adds",
                 "route", "must be kJacobians or kLastLayerGram");
  check_argument(has_linear_last_layer(decoder), "latent_system_multiply_adds", "decoder",
                 "needs a linear last layer and a hidden layer for the Gram route");
  // W^T W (lower triangle), its Cholesky factor L, H_b^T L (triangular), then per datum
  // (H_b^T L)(L^T H_b) and, with the right-hand side, W^T n_b and H_b^T (W^T n_b).
  return h * h * k / 2 + h * h * h / 6 + d * b * h * h / 2 + b * d * d * h +
         (with_rhs ? b * k * h + b * d * h : 0);
}

template <typename T>
LatentSystemRoute latent_system_route(const Mlp<T>& decoder, Eigen::Index batch, bool with_rhs) {
  const std::size_t layers = decoder.layers();
  // With fewer outputs than hidden units W^T W is singular: no Cholesky factor, and the
  // fallback's full Gram product is not what the count below assumes.
  if (!has_linear_last_layer(decoder) || decoder.output_size() < decoder.widths()[layers - 1])
    return LatentSystemRoute::kJacobians;
  const double by_jacobians =
      latent_system_multiply_adds(decoder, batch, with_rhs, LatentSystemRoute::kJacobians);
  // Time decides, not the count alone: the Gram route's h x h Cholesky factorisation runs at
  // about a third of the GEMM rate (on one thread, while the others carry on with the tangents;
  // measured: at D = 10 the Gram route is 1.5% faster on 1 thread and 9% on 2).
  const double h = double(decoder.widths()[layers - 1]);
  const double by_gram =
      latent_system_multiply_adds(decoder, batch, with_rhs, LatentSystemRoute::kLastLayerGram) +
      2 * h * h * h / 6;
  return by_gram < by_jacobians ? LatentSystemRoute::kLastLayerGram : LatentSystemRoute::kJacobians;
}

template <typename T>
LatentSystems<T> latent_systems(const Mlp<T>& decoder, const typename Mlp<T>::ParamsRef& params,
                                const Matrix<T>& z, T noise_variance, const Matrix<T>& n,
                                const Matrix<T>& eta, LatentSystemRoute route) {
  constexpr std::string_view fn = "latent_systems";
  const Eigen::Index batch = z.rows(), d = z.cols(), k = decoder.output_size();
  check_argument(d == decoder.input_size() && batch > 0, fn, "z",
                 "must be batch x the decoder's input size");
  check_argument(noise_variance > 0, fn, "noise_variance", "must be positive");
  const bool with_rhs = n.size() > 0 || eta.size() > 0;
  check_argument(!with_rhs || (n.rows() == batch && n.cols() == k), fn, "n", "must be batch x k");
  check_argument(!with_rhs || (eta.rows() == batch && eta.cols() == d), fn, "eta",
                 "must be batch x D");
  const std::size_t layers = decoder.layers();
  const Eigen::Index hidden = decoder.widths()[layers - 1];
  if (route == LatentSystemRoute::kAuto) route = latent_system_route(decoder, batch, with_rhs);
  check_argument(route != LatentSystemRoute::kLastLayerGram || has_linear_last_layer(decoder), fn, "route",
                 "the last-layer Gram route needs a linear last layer and a hidden layer");
  const Matrix<T> tangents = unit_tangents<T>(batch, d);
  // `stacked` holds the D columns of J_b (of H_b on the Gram route) as rows t * batch + b;
  // M_b / s^2 - 1 is the product of datum b's rows of `metric_left` and `metric_right`
  // (transposed); `projected_noise` holds the rows n_b^T W.
  Matrix<T> stacked, factored, gram_stacked, projected_noise;
  const Matrix<T>* metric_left = &stacked;
  const Matrix<T>* metric_right = &stacked;
  const T* noise_rows = n.data();
  Eigen::Index noise_width = k;
  if (route == LatentSystemRoute::kJacobians) {
    decoder.forward_with_jvp(params, z, tangents, stacked, nullptr, false);
  } else {
    std::vector<Eigen::Index> widths(decoder.widths().begin(), decoder.widths().end() - 1);
    std::vector<Activation> activations(decoder.activations().begin(),
                                        decoder.activations().end() - 1);
    const Mlp<T> body(std::move(widths), std::move(activations));
    const Eigen::Map<const Matrix<T>> w(params.data() + body.parameter_count(), k, hidden);
    Matrix<T> gram(hidden, hidden);
    bool has_factor = false;
    // The tangents through the hidden layers and the work on W alone run side by side: the
    // Cholesky factorisation is serial, and the tangents' products keep the other threads busy
    // meanwhile (both split their products over the arena's threads, so either helps the other
    // when it is done first).
    tbb::parallel_invoke(
        [&] { body.forward_with_jvp(params.head(body.parameter_count()), z, tangents, stacked); },
        [&] {
          detail::gram_lower(w, gram);
          // W^T W = L L^T makes M_b = (H_b^T L)(L^T H_b) / s^2 + 1: a triangular product for
          // the batch, half the multiply-adds of W^T W H_b.
          has_factor =
              Eigen::LLT<Eigen::Ref<Matrix<T>>, Eigen::Lower>(gram).info() == Eigen::Success;
          if (with_rhs) projected_noise = detail::times(n, w);
        });
    if (has_factor) {
      factored = detail::times_lower_triangular(stacked, gram);
      metric_left = metric_right = &factored;
    } else {
      // W^T W singular to working precision (W has a zero or dependent column): the Gram
      // matrix itself, formed again (the failed factorisation overwrote it).
      detail::gram_lower(w, gram);
      gram.template triangularView<Eigen::StrictlyUpper>() = gram.transpose();
      gram_stacked = detail::times(stacked, gram);
      metric_right = &gram_stacked;
    }
    if (with_rhs) {
      noise_rows = projected_noise.data();
      noise_width = hidden;
    }
  }
  const Eigen::Index width = stacked.cols();
  LatentSystems<T> out;
  out.route = route;
  out.metrics.resize(static_cast<std::size_t>(batch));
  if (with_rhs) out.rhs.resize(batch, d);
  const T inv_sigma = T(1) / std::sqrt(noise_variance), inv_variance = T(1) / noise_variance;
  using Strided = Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>>;
  tbb::parallel_for(Eigen::Index{0}, batch, [&](Eigen::Index b) {
    // Datum b's D rows, batch rows apart.
    auto rows_of_datum = [&](const Matrix<T>& m) {
      return Strided(m.data() + b * width, d, width, Eigen::OuterStride<>(batch * width));
    };
    Matrix<T>& m = out.metrics[static_cast<std::size_t>(b)];
    m.noalias() =
        (rows_of_datum(*metric_left) * rows_of_datum(*metric_right).transpose()) * inv_variance;
    m.diagonal().array() += T(1);
    if (with_rhs) {
      const Eigen::Map<const Vector<T>> noise_b(noise_rows + b * noise_width, noise_width);
      out.rhs.row(b).noalias() =
          (rows_of_datum(stacked) * noise_b).transpose() * inv_sigma + eta.row(b);
    }
  });
  return out;
}

template <typename T>
Matrix<T> latent_residuals(const Mlp<T>& decoder, const typename Mlp<T>::ParamsRef& params, const Matrix<T>& z,
                           T noise_variance, const Matrix<T>& n, const Matrix<T>& eta) {
  if (z.cols() > kExplicitSamplingMaxLatent)
    return latent_residuals_cg(decoder, params, z, noise_variance, n, eta);
  check_argument(n.size() > 0 && eta.size() > 0, "latent_residuals", "n, eta",
                 "must not be empty");
  const LatentSystems<T> systems = latent_systems(decoder, params, z, noise_variance, n, eta);
  Matrix<T> out(z.rows(), z.cols());
  tbb::parallel_for(Eigen::Index{0}, z.rows(), [&](Eigen::Index b) {
    const Eigen::LLT<Matrix<T>> llt(systems.metrics[static_cast<std::size_t>(b)]);
    out.row(b) = llt.solve(systems.rhs.row(b).transpose()).transpose();
  });
  return out;
}

namespace {

/// Checks the arguments shared by fishernet_loss and fishernet_step.
template <typename T>
void check_loss_arguments(std::string_view fn, const Mlp<T>& encoder, const Mlp<T>& decoder,
                          const Vector<T>& params, const Matrix<T>& data,
                          Eigen::Index dataset_size) {
  const Eigen::Index pe = encoder.parameter_count(), pd = decoder.parameter_count();
  check_argument(params.size() == pe + pd + 1, fn, "params",
                 "must hold the encoder's, the decoder's parameters and zeta_N (" +
                     std::to_string(pe + pd + 1) + " entries)");
  check_argument(encoder.output_size() == decoder.input_size(), fn, "encoder, decoder",
                 "must agree on the latent size");
  check_argument(data.cols() == encoder.input_size() && data.cols() == decoder.output_size(), fn,
                 "data", "must have the encoder's input size (= the decoder's output size)");
  check_argument(dataset_size >= data.rows(), fn, "dataset_size", "must be >= the batch size");
}

/// Eq. 25 and its gradient given the encoder's forward pass (mu and its cache) and the residuals.
template <typename T>
FisherNetLoss<T> loss_given_mean(const Mlp<T>& encoder, const Mlp<T>& decoder,
                                 const Vector<T>& params, const Matrix<T>& data,
                                 const Matrix<T>& mu, const typename Mlp<T>::Cache& enc_cache,
                                 const Matrix<T>& residuals, Eigen::Index dataset_size,
                                 const GradientBlockReady<T>& ready = {}) {
  const Eigen::Index pe = encoder.parameter_count(), pd = decoder.parameter_count();
  const auto pdec = params.segment(pe, pd);
  const T zeta = params[pe + pd];
  const auto batch = static_cast<double>(data.rows());
  const auto k = static_cast<double>(data.cols());
  const auto p = static_cast<double>(dataset_size);

  typename Mlp<T>::Cache dec_cache;
  const Matrix<T> z = mu + residuals;
  const Matrix<T> f = decoder.forward(pdec, z, &dec_cache);
  const Matrix<T> r = data - f;
  const double r2 = static_cast<double>(r.squaredNorm());
  const double z2 = static_cast<double>(z.squaredNorm());
  const double inv_noise = std::exp(-static_cast<double>(zeta));

  FisherNetLoss<T> out;
  const double zd = static_cast<double>(zeta);
  out.value = 0.5 * (z2 + batch * zd * zd / p + batch * k * zd + inv_noise * r2);
  out.reconstruction_error = r2 / (batch * k);
  out.gradient.resize(params.size());  // every entry is written below
  // d/df = -exp(-zeta) r; through the decoder to its parameters and to z.
  const Matrix<T> gz = decoder.vjp(pdec, dec_cache, (-static_cast<T>(inv_noise)) * r,
                                   out.gradient.segment(pe, pd), true, GradientWrite::kOverwrite,
                                   with_base_offset(ready, pe)) +
                       z;
  // z = mu + delta with delta fixed; the data need no gradient.
  encoder.vjp(params.head(pe), enc_cache, gz, out.gradient.head(pe), false,
              GradientWrite::kOverwrite, ready);
  out.gradient[pe + pd] = static_cast<T>(batch * zd / p + 0.5 * batch * k - 0.5 * inv_noise * r2);
  return out;
}

}  // namespace

template <typename T>
FisherNetLoss<T> fishernet_loss(const Mlp<T>& encoder, const Mlp<T>& decoder,
                                const Vector<T>& params, const Matrix<T>& data,
                                const Matrix<T>& residuals, Eigen::Index dataset_size) {
  constexpr std::string_view fn = "fishernet_loss";
  check_loss_arguments(fn, encoder, decoder, params, data, dataset_size);
  check_argument(residuals.rows() == data.rows() && residuals.cols() == decoder.input_size(), fn,
                 "residuals", "must be batch x latent size");
  typename Mlp<T>::Cache enc_cache;
  const Matrix<T> mu = encoder.forward(params.head(encoder.parameter_count()), data, &enc_cache);
  return loss_given_mean(encoder, decoder, params, data, mu, enc_cache, residuals, dataset_size);
}

template <typename T>
FisherNetLoss<T> fishernet_step(const Mlp<T>& encoder, const Mlp<T>& decoder,
                                const Vector<T>& params, const Matrix<T>& data, const Matrix<T>& n,
                                const Matrix<T>& eta, Eigen::Index dataset_size,
                                const GradientBlockReady<T>& ready) {
  constexpr std::string_view fn = "fishernet_step";
  check_loss_arguments(fn, encoder, decoder, params, data, dataset_size);
  const Eigen::Index pe = encoder.parameter_count(), pd = decoder.parameter_count();
  typename Mlp<T>::Cache enc_cache;
  const Matrix<T> mu = encoder.forward(params.head(pe), data, &enc_cache);
  const auto pdec = params.segment(pe, pd);
  const T noise_variance = std::exp(params[pe + pd]);
  const Matrix<T> residuals = latent_residuals(decoder, pdec, mu, noise_variance, n, eta);
  return loss_given_mean(encoder, decoder, params, data, mu, enc_cache, residuals, dataset_size,
                         ready);
}

template std::vector<Matrix<float>> decoder_jacobians(const Mlp<float>&, const Mlp<float>::ParamsRef&,
                                                      const Matrix<float>&);
template std::vector<Matrix<double>> decoder_jacobians(const Mlp<double>&, const Mlp<double>::ParamsRef&,
                                                       const Matrix<double>&);
template std::vector<Matrix<float>> latent_metrics(const std::vector<Matrix<float>>&, float);
template std::vector<Matrix<double>> latent_metrics(const std::vector<Matrix<double>>&, double);
template Matrix<float> latent_residuals_explicit(const std::vector<Matrix<float>>&, float,
                                                 const Matrix<float>&, const Matrix<float>&);
template Matrix<double> latent_residuals_explicit(const std::vector<Matrix<double>>&, double,
                                                  const Matrix<double>&, const Matrix<double>&);
template Matrix<float> latent_residuals_cg(const Mlp<float>&, const Mlp<float>::ParamsRef&,
                                           const Matrix<float>&, float, const Matrix<float>&,
                                           const Matrix<float>&, double);
template Matrix<double> latent_residuals_cg(const Mlp<double>&, const Mlp<double>::ParamsRef&,
                                            const Matrix<double>&, double, const Matrix<double>&,
                                            const Matrix<double>&, double);
template double latent_system_multiply_adds(const Mlp<float>&, Eigen::Index, bool,
                                            LatentSystemRoute);
template double latent_system_multiply_adds(const Mlp<double>&, Eigen::Index, bool,
                                            LatentSystemRoute);
template LatentSystemRoute latent_system_route(const Mlp<float>&, Eigen::Index, bool);
template LatentSystemRoute latent_system_route(const Mlp<double>&, Eigen::Index, bool);
template LatentSystems<float> latent_systems(const Mlp<float>&, const Mlp<float>::ParamsRef&,
                                             const Matrix<float>&, float, const Matrix<float>&,
                                             const Matrix<float>&, LatentSystemRoute);
template LatentSystems<double> latent_systems(const Mlp<double>&, const Mlp<double>::ParamsRef&,
                                              const Matrix<double>&, double, const Matrix<double>&,
                                              const Matrix<double>&, LatentSystemRoute);
template Matrix<float> latent_residuals(const Mlp<float>&, const Mlp<float>::ParamsRef&,
                                        const Matrix<float>&, float, const Matrix<float>&,
                                        const Matrix<float>&);
template Matrix<double> latent_residuals(const Mlp<double>&, const Mlp<double>::ParamsRef&,
                                         const Matrix<double>&, double, const Matrix<double>&,
                                         const Matrix<double>&);
template FisherNetLoss<float> fishernet_loss(const Mlp<float>&, const Mlp<float>&,
                                             const Vector<float>&, const Matrix<float>&,
                                             const Matrix<float>&, Eigen::Index);
template FisherNetLoss<double> fishernet_loss(const Mlp<double>&, const Mlp<double>&,
                                              const Vector<double>&, const Matrix<double>&,
                                              const Matrix<double>&, Eigen::Index);
template FisherNetLoss<float> fishernet_step(const Mlp<float>&, const Mlp<float>&,
                                             const Vector<float>&, const Matrix<float>&,
                                             const Matrix<float>&, const Matrix<float>&,
                                             Eigen::Index, const GradientBlockReady<float>&);
template FisherNetLoss<double> fishernet_step(const Mlp<double>&, const Mlp<double>&,
                                              const Vector<double>&, const Matrix<double>&,
                                              const Matrix<double>&, const Matrix<double>&,
                                              Eigen::Index, const GradientBlockReady<double>&);

}  // namespace infield::neural

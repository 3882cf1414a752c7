#include "infield/models/fishernet.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_invoke.h>
#include <tbb/task_group.h>

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <type_traits>

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

/// The decoder's hidden layers (all but its last) as a network of their own; its parameters are
/// the head of the decoder's.
template <typename T>
Mlp<T> hidden_layers_of(const Mlp<T>& decoder) {
  return Mlp<T>(std::vector<Eigen::Index>(decoder.widths().begin(), decoder.widths().end() - 1),
                std::vector<Activation>(decoder.activations().begin(),
                                        decoder.activations().end() - 1));
}

/// W^T W (h x h for W k x h) as U^T U into `gram`: U in its upper triangle (the strictly lower
/// part is left unset) and true; or, where W^T W is singular to working precision (W has a zero
/// or dependent column), the full Gram matrix and false. Upper, because on row-major storage
/// Eigen's upper factorisation is the fast one (0.7 against 2.2 ms for h = 448 on a Xeon); W^T W
/// is formed in that triangle, so that nothing is copied (the kernel's panels take L = U^T).
template <typename W, typename T>
bool factor_gram(const W& w, Matrix<T>& gram) {
  gram.resize(w.cols(), w.cols());
  detail::gram_upper(w, gram);
  if (Eigen::LLT<Eigen::Ref<Matrix<T>>, Eigen::Upper>(gram).info() == Eigen::Success) return true;
  // The failed factorisation overwrote the upper triangle: the Gram matrix again.
  detail::gram_upper(w, gram);
  gram.template triangularView<Eigen::StrictlyLower>() = gram.transpose();
  return false;
}

/// The Gram routes' work on the decoder's last layer W alone (linear, f = W h + c): W^T W and its
/// factor, and the rows n_b^T W of the right-hand sides. It needs only the weights and the
/// noise, so fishernet_step starts it alongside the encoder's forward pass (`StartedGram`).
template <typename T>
struct LastLayerGram {
  Matrix<T> gram;  ///< U (W^T W = U^T U) in the upper triangle, or W^T W where it has no factor
  bool has_factor = false;
  detail::Panels<T> panels;   ///< L = U^T, or W^T W, in the active-unit kernel's panels
  Matrix<T> projected_noise;  ///< n W, B x h (empty without n)
};

/// With panel_width 0, no panels (the stacked Gram route reads `gram` itself).
template <typename T>
LastLayerGram<T> last_layer_gram(const Mlp<T>& decoder, const typename Mlp<T>::ParamsRef& params,
                                 const Matrix<T>& n, Eigen::Index panel_width) {
  const std::size_t last = decoder.layers() - 1;
  const Eigen::Map<const Matrix<T>> w(params.data() + decoder.parameter_offset(last),
                                      decoder.output_size(), decoder.widths()[last]);
  LastLayerGram<T> out;
  out.has_factor = factor_gram(w, out.gram);
  if (panel_width > 0)
    out.panels = out.has_factor
                     ? detail::to_lower_triangular_panels(out.gram.transpose(), panel_width)
                     : detail::to_panels(out.gram, panel_width);
  if (n.size() > 0) out.projected_noise = detail::times(n, w);
  return out;
}

/// last_layer_gram running in `group` since before the systems' forward pass; wait() returns it.
template <typename T>
struct StartedGram {
  tbb::task_group* group;
  const LastLayerGram<T>* result;
  const LastLayerGram<T>& wait() const {
    // Cancelled (the caller's task group was): the result was never formed.
    if (group->wait() != tbb::task_group_status::complete)
      throw std::runtime_error("latent_systems: the last layer's Gram work was cancelled");
    return *result;
  }
};

/// Runs `tangents` side by side with last_layer_gram into `own` (the factorisation is serial; the
/// tangents' products keep the other threads busy meanwhile, and either helps the other when
/// it is done first), or, where the caller started that work already, `tangents` alone and then
/// waits for it. Returns the work done.
template <typename T, typename F>
const LastLayerGram<T>& tangents_beside_gram(F&& tangents,
                                             const std::type_identity_t<StartedGram<T>>* started,
                                             LastLayerGram<T>& own, const Mlp<T>& decoder,
                                             const typename Mlp<T>::ParamsRef& params,
                                             const Matrix<T>& n, Eigen::Index panel_width) {
  if (started) {
    tangents();
    return started->wait();
  }
  tbb::parallel_invoke(tangents, [&] { own = last_layer_gram(decoder, params, n, panel_width); });
  return own;
}
}  // namespace

namespace {
bool is_active_units(LatentSystemRoute route) {
  return route == LatentSystemRoute::kActiveUnitsJacobians ||
         route == LatentSystemRoute::kActiveUnitsGram;
}
bool is_gram(LatentSystemRoute route) {
  return route == LatentSystemRoute::kLastLayerGram || route == LatentSystemRoute::kActiveUnitsGram;
}
/// Per layer of a forward pass, the fraction of non-zero activation derivatives (empty for none).
template <typename T>
std::vector<double> active_fractions(const typename Mlp<T>::Cache& cache) {
  std::vector<double> out;
  for (const Matrix<T>& d : cache.derivatives)
    out.push_back(d.size() == 0 ? 1.0 : double((d.array() != T(0)).count()) / double(d.size()));
  return out;
}
}  // namespace

template <typename T>
std::vector<double> decoder_active_fractions(const Mlp<T>& decoder,
                                             const typename Mlp<T>::ParamsRef& params,
                                             const Matrix<T>& z) {
  check_argument(decoder.layers() >= 2, "decoder_active_fractions", "decoder",
                 "needs a hidden layer");
  const Mlp<T> body = hidden_layers_of(decoder);
  typename Mlp<T>::Cache cache;
  body.forward(params.head(body.parameter_count()), z, &cache);
  return active_fractions<T>(cache);
}

namespace {
/// A route's multiply-adds, and the share of them run by the active-unit kernel.
struct RouteWork {
  double total = 0;
  double kernel = 0;
};

template <typename T>
RouteWork route_work(const Mlp<T>& decoder, Eigen::Index batch, bool with_rhs,
                     LatentSystemRoute route, const std::vector<double>& active_fractions) {
  constexpr std::string_view fn = "latent_system_multiply_adds";
  const std::size_t layers = decoder.layers();
  const std::vector<Eigen::Index>& w = decoder.widths();
  const double b = double(batch), d = double(decoder.input_size()), h = double(w[layers - 1]),
               k = double(decoder.output_size());
  check_argument(route != LatentSystemRoute::kAuto, fn, "route", "must not be kAuto");
  check_argument(!is_gram(route) || has_linear_last_layer(decoder), fn, "decoder",
                 "needs a linear last layer and a hidden layer for the Gram routes");
  const bool active = is_active_units(route);
  check_argument(!active || (layers >= 2 && active_fractions.size() == layers - 1), fn,
                 "active_fractions", "must have one entry per hidden layer (and there must be one)");
  // The forward pass at z through the hidden layers, then the tangents: stacked, D per datum
  // through every hidden layer; by active units, a gather for the first hidden layer and
  // D p_{l-1} h_{l-1} h_l per datum for the others.
  double forward = 0, tangents = 0;
  for (std::size_t l = 0; l + 1 < layers; ++l) {
    const double layer = double(w[l]) * double(w[l + 1]);
    forward += b * layer;
    if (!active)
      tangents += d * b * layer;
    else if (l > 0)
      tangents += d * b * active_fractions[l - 1] * layer;
  }
  // The last hidden layer's share of the tangents' rows.
  const double p = active ? active_fractions.back() : 1.0;
  RouteWork out;
  if (!is_gram(route)) {
    // J_b = W H_b (D p h k per datum), J_b^T J_b, J_b^T n_b.
    const double last = d * b * p * h * k;
    out.total = forward + tangents + last + b * d * d * k + (with_rhs ? b * d * k : 0);
    out.kernel = active ? tangents + last : 0;
    return out;
  }
  // W^T W (one triangle), its Cholesky factor L, H_b^T L (triangular), then per datum
  // (H_b^T L)(L^T H_b) and, with the right-hand side, W^T n_b and H_b^T (W^T n_b).
  const double triangular = d * b * p * h * h / 2;
  out.total = forward + tangents + h * h * k / 2 + h * h * h / 6 + triangular + b * d * d * h +
              (with_rhs ? b * k * h + b * d * p * h : 0);
  out.kernel = active ? tangents + triangular : 0;
  return out;
}
}  // namespace

template <typename T>
double latent_system_multiply_adds(const Mlp<T>& decoder, Eigen::Index batch, bool with_rhs,
                                   LatentSystemRoute route,
                                   const std::vector<double>& active_fractions) {
  return route_work(decoder, batch, with_rhs, route, active_fractions).total;
}

template <typename T>
LatentSystemRoute latent_system_route(const Mlp<T>& decoder, Eigen::Index batch, bool with_rhs,
                                      const std::vector<double>& active_fractions) {
  const std::size_t layers = decoder.layers();
  // With fewer outputs than hidden units W^T W is singular: no Cholesky factor, and the
  // fallback's full Gram product is not what the count assumes.
  const bool gram = has_linear_last_layer(decoder) &&
                    decoder.output_size() >= decoder.widths()[layers - 1];
  const bool active = layers >= 2 && active_fractions.size() == layers - 1;
  const double h = double(decoder.widths()[layers - 1]);
  // Time decides, not the count alone: the Gram routes' h x h Cholesky factorisation runs at
  // about a third of the GEMM rate (on one thread, while the others carry on with the tangents;
  // measured: at D = 10 the Gram route is 1.5% faster on 1 thread and 9% on 2), the active-unit
  // kernel a little below it.
  auto time = [&](LatentSystemRoute route) {
    const RouteWork work = route_work(decoder, batch, with_rhs, route, active_fractions);
    return work.total + (kActiveUnitsKernelCost - 1) * work.kernel +
           (is_gram(route) ? 2 * h * h * h / 6 : 0.0);
  };
  LatentSystemRoute best = LatentSystemRoute::kJacobians;
  double best_time = time(best);
  for (LatentSystemRoute route :
       {LatentSystemRoute::kLastLayerGram, LatentSystemRoute::kActiveUnitsJacobians,
        LatentSystemRoute::kActiveUnitsGram}) {
    if ((is_gram(route) && !gram) || (is_active_units(route) && !active)) continue;
    const double t = time(route);
    if (t < best_time) {
      best = route;
      best_time = t;
    }
  }
  return best;
}

namespace {

/// The metrics (and right-hand sides) by the active-unit routes: per datum, the tangents through
/// the units with non-zero activation derivative only. `cache` holds the hidden layers' forward
/// pass at z (the body's: every layer but the last).
template <typename T>
void active_unit_systems(const Mlp<T>& decoder, const typename Mlp<T>::ParamsRef& params,
                         const Matrix<T>& last_hidden, const typename Mlp<T>::Cache& cache,
                         T noise_variance, const Matrix<T>& n, const Matrix<T>& eta,
                         bool gram_route, const std::type_identity_t<StartedGram<T>>* started,
                         LatentSystems<T>& out) {
  const std::size_t layers = decoder.layers(), hidden_layers = layers - 1;
  const std::vector<Eigen::Index>& widths = decoder.widths();
  const Eigen::Index batch = cache.derivatives[0].rows(), d = decoder.input_size(),
                     k = decoder.output_size(), h = widths[hidden_layers];
  const bool with_rhs = n.size() > 0;
  auto weights = [&](std::size_t l) {
    return Eigen::Map<const Matrix<T>>(params.data() + decoder.parameter_offset(l), widths[l + 1],
                                       widths[l]);
  };
  // A non-linear last layer scales J_b's rows by its activation's derivative at z.
  Matrix<T> last_derivative;
  const Activation last_activation = decoder.activations().back();
  if (last_activation != Activation::kIdentity) {
    const auto w = weights(hidden_layers);
    Matrix<T> pre = detail::times_transposed(last_hidden, w);
    pre.rowwise() += Eigen::Map<const Vector<T>>(
                         params.data() + decoder.parameter_offset(hidden_layers) + k * h, k)
                         .transpose();
    detail::activate(last_activation, pre, &last_derivative);
  }
  // W_l^T for the hidden layers after the first, in the kernel's panels.
  const Eigen::Index panel_width = detail::selected_rows_panel_width<T>(d);
  std::vector<detail::Panels<T>> transposed(hidden_layers);
  tbb::parallel_for(std::size_t{1}, hidden_layers, [&](std::size_t l) {
    transposed[l] = detail::to_panels(weights(l).transpose(), panel_width);
  });
  auto padded = [&](Eigen::Index width) {
    return (width + panel_width - 1) / panel_width * panel_width;
  };
  Eigen::Index widest_hidden = 0;
  for (std::size_t l = 1; l <= hidden_layers; ++l)
    widest_hidden = std::max(widest_hidden, padded(widths[l]));
  const Eigen::Index widest = std::max(widest_hidden, padded(k));
  // Data in groups whose products go through the weights panel by panel, each panel read from
  // cache by the whole group; groups of 8 (fewer where a group's products would pass 1 MB), so
  // that the threads share them out evenly (data differ in their active units).
  const Eigen::Index group =
      std::clamp<Eigen::Index>((Eigen::Index{1} << 20) / (d * widest * Eigen::Index(sizeof(T))),
                               1, 8);
  const Eigen::Index groups = (batch + group - 1) / group;
  // Per datum: its tangents at the last hidden layer's active units (D x active, row-major) and
  // the units' indices.
  std::vector<Matrix<T>> tangents(static_cast<std::size_t>(batch));
  std::vector<std::vector<int>> active(static_cast<std::size_t>(batch));
  // The products of a group: datum b's with the selected rows of a layer's panels, into `out`.
  auto run_group = [&](Eigen::Index first, Eigen::Index size, const detail::Panels<T>& b,
                       bool lower_triangular, std::vector<Matrix<T>>& out) {
    std::vector<detail::SelectedRowsProduct<T>> jobs;
    for (Eigen::Index q = 0; q < size; ++q) {
      const auto i = static_cast<std::size_t>(first + q);
      Matrix<T>& y = out[static_cast<std::size_t>(q)];
      y.resize(d, widest);
      jobs.push_back({tangents[i].data(), tangents[i].cols(),
                      static_cast<Eigen::Index>(active[i].size()), active[i].data(), y.data(),
                      y.cols()});
    }
    detail::times_selected_rows(jobs, d, b, lower_triangular);
  };
  // Keeps datum b's tangents at the units active in `derivative`, scaled by it, from `from`
  // (D x width; the first hidden layer: W_1^T).
  auto keep_active = [&](Eigen::Index b, const auto& from, const auto& derivative) {
    const auto i = static_cast<std::size_t>(b);
    std::vector<int>& units = active[i];
    units.clear();
    for (Eigen::Index u = 0; u < derivative.size(); ++u)
      if (derivative[u] != T(0)) units.push_back(static_cast<int>(u));
    Matrix<T>& t = tangents[i];
    for (Eigen::Index r = 0; r < d; ++r)
      for (std::size_t c = 0; c < units.size(); ++c)
        t(r, Eigen::Index(c)) = from(r, units[c]) * derivative[units[c]];
  };
  const auto w1 = weights(0);  // h_1 x D
  // The tangents through the hidden layers, by groups.
  auto hidden_tangents = [&] {
    tbb::parallel_for(Eigen::Index{0}, groups, [&](Eigen::Index g) {
      const Eigen::Index first = g * group, size = std::min(group, batch - first);
      std::vector<Matrix<T>> products(static_cast<std::size_t>(size));
      for (Eigen::Index b = first; b < first + size; ++b) {
        const auto i = static_cast<std::size_t>(b);
        tangents[i].resize(d, widest_hidden);
        active[i].reserve(static_cast<std::size_t>(widest_hidden));
        // The first hidden layer: tangent t at unit u is W_1[u, t] times the derivative.
        keep_active(b, w1.transpose(), cache.derivatives[0].row(b));
      }
      for (std::size_t l = 1; l < hidden_layers; ++l) {
        run_group(first, size, transposed[l], false, products);
        for (Eigen::Index q = 0; q < size; ++q)
          keep_active(first + q, products[static_cast<std::size_t>(q)],
                      cache.derivatives[l].row(first + q));
      }
    });
  };
  // W^T of the last layer (Jacobians), or the Cholesky factor of W^T W with W^T n_b (Gram): from
  // the weights alone, so formed alongside the tangents, unless the caller started it earlier.
  detail::Panels<T> transposed_last;  // W^T (Jacobians)
  LastLayerGram<T> own_gram;
  const LastLayerGram<T>* gram = &own_gram;
  if (gram_route)
    gram = &tangents_beside_gram(hidden_tangents, started, own_gram, decoder, params, n,
                                 panel_width);
  else
    tbb::parallel_invoke(hidden_tangents, [&] {
      transposed_last = detail::to_panels(weights(hidden_layers).transpose(), panel_width);
    });
  const detail::Panels<T>& right = gram_route ? gram->panels : transposed_last;
  const bool has_factor = gram->has_factor;
  const Matrix<T>& projected_noise = gram->projected_noise;

  // J_b^T = H_b^T W^T (D x k), or H_b^T L (D x h), or H_b^T (W^T W) without a factor; H_b
  // restricted to its active rows is tangents[b].leftCols(s)^T.
  const T inv_sigma = T(1) / std::sqrt(noise_variance), inv_variance = T(1) / noise_variance;
  tbb::parallel_for(Eigen::Index{0}, groups, [&](Eigen::Index g) {
    const Eigen::Index first = g * group, size = std::min(group, batch - first);
    std::vector<Matrix<T>> products(static_cast<std::size_t>(size));
    run_group(first, size, right, gram_route && has_factor, products);
    for (Eigen::Index q = 0; q < size; ++q) {
      const Eigen::Index b = first + q;
      const auto i = static_cast<std::size_t>(b);
      const Eigen::Index s = static_cast<Eigen::Index>(active[i].size());
      Matrix<T>& m = out.metrics[i];
      const auto h_active = tangents[i].topLeftCorner(d, s);
      auto y = products[static_cast<std::size_t>(q)].leftCols(right.columns);
      if (!gram_route || has_factor) {
        // M_b - 1 is the Gram matrix of J_b^T, or of H_b^T L.
        if (last_derivative.size() > 0) y.array().rowwise() *= last_derivative.row(b).array();
        m.noalias() = (y * y.transpose()) * inv_variance;
        if (with_rhs && !gram_route)
          out.rhs.row(b).noalias() = (y * n.row(b).transpose()).transpose() * inv_sigma + eta.row(b);
      } else {
        // H_b^T (W^T W) at the active columns, times H_b.
        m.setZero(d, d);
        for (Eigen::Index c = 0; c < s; ++c)
          m.noalias() += y.col(active[i][static_cast<std::size_t>(c)]) * h_active.col(c).transpose();
        m *= inv_variance;
      }
      m.diagonal().array() += T(1);
      if (with_rhs && gram_route) {
        Vector<T> noise_active(s);
        for (Eigen::Index c = 0; c < s; ++c)
          noise_active[c] = projected_noise(b, active[i][static_cast<std::size_t>(c)]);
        out.rhs.row(b).noalias() = (h_active * noise_active).transpose() * inv_sigma + eta.row(b);
      }
    }
  });
}

}  // namespace

namespace {
/// Whether a hidden layer can have inactive units (a ReLU; other activations have non-zero
/// derivatives).
template <typename T>
bool has_relu_hidden_layer(const Mlp<T>& decoder) {
  return decoder.layers() >= 2 &&
         std::any_of(decoder.activations().begin(), decoder.activations().end() - 1,
                     [](Activation a) { return a == Activation::kRelu; });
}

/// Whether latent_residuals is expected to take a Gram route for a batch of `batch`: the route
/// kAuto takes with half and with all units active in every ReLU layer (trained ReLU layers of
/// the paper's networks have 0.5-0.65 of them active). A guess made before the forward pass: a
/// wrong one costs time (the last-layer work done for nothing, or not started early), never
/// a different result.
template <typename T>
bool expects_gram_route(const Mlp<T>& decoder, Eigen::Index batch) {
  if (decoder.input_size() > kExplicitSamplingMaxLatent || decoder.layers() < 2) return false;
  if (!has_relu_hidden_layer(decoder)) return is_gram(latent_system_route(decoder, batch, true));
  for (double fraction : {0.5, 1.0}) {
    std::vector<double> fractions;
    for (std::size_t l = 0; l + 1 < decoder.layers(); ++l)
      fractions.push_back(decoder.activations()[l] == Activation::kRelu ? fraction : 1.0);
    if (!is_gram(latent_system_route(decoder, batch, true, fractions))) return false;
  }
  return true;
}

/// latent_systems, taking the last-layer Gram work from `started` where the route needs it.
template <typename T>
LatentSystems<T> systems_of(const Mlp<T>& decoder, const typename Mlp<T>::ParamsRef& params,
                            const Matrix<T>& z, T noise_variance, const Matrix<T>& n,
                            const Matrix<T>& eta, LatentSystemRoute route,
                            const std::type_identity_t<StartedGram<T>>* started) {
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
  check_argument(!is_gram(route) || has_linear_last_layer(decoder), fn, "route",
                 "the last-layer Gram routes need a linear last layer and a hidden layer");
  check_argument(!is_active_units(route) || layers >= 2, fn, "route",
                 "the active-unit routes need a hidden layer");
  // The hidden layers' forward pass at z: the active-unit routes start from it, and kAuto
  // counts the active units in it where a hidden layer can have inactive units (a ReLU; other
  // activations have non-zero derivatives, and kAuto then takes a stacked route without it).
  const bool may_have_inactive_units = has_relu_hidden_layer(decoder);
  std::optional<Mlp<T>> body;
  typename Mlp<T>::Cache body_cache;
  Matrix<T> last_hidden;
  if ((route == LatentSystemRoute::kAuto && may_have_inactive_units) || is_active_units(route)) {
    body.emplace(hidden_layers_of(decoder));
    last_hidden = body->forward(params.head(body->parameter_count()), z, &body_cache);
  }
  if (route == LatentSystemRoute::kAuto)
    route = latent_system_route(decoder, batch, with_rhs, active_fractions<T>(body_cache));
  if (is_active_units(route)) {
    LatentSystems<T> out;
    out.route = route;
    out.metrics.resize(static_cast<std::size_t>(batch));
    if (with_rhs) out.rhs.resize(batch, d);
    active_unit_systems(decoder, params, last_hidden, body_cache, noise_variance, n, eta,
                        route == LatentSystemRoute::kActiveUnitsGram, started, out);
    return out;
  }
  const Matrix<T> tangents = unit_tangents<T>(batch, d);
  // `stacked` holds the D columns of J_b (of H_b on the Gram route) as rows t * batch + b;
  // M_b / s^2 - 1 is the product of datum b's rows of `metric_left` and `metric_right`
  // (transposed); on the Gram routes `noise_rows` are the rows n_b^T W.
  Matrix<T> stacked, factored, gram_stacked;
  LastLayerGram<T> own_gram;  // the Gram routes' (n W is read below)
  const Matrix<T>* metric_left = &stacked;
  const Matrix<T>* metric_right = &stacked;
  const T* noise_rows = n.data();
  Eigen::Index noise_width = k;
  if (route == LatentSystemRoute::kJacobians) {
    decoder.forward_with_jvp(params, z, tangents, stacked, nullptr, false);
  } else {
    const Mlp<T> body = hidden_layers_of(decoder);
    // W^T W = L L^T makes M_b = (H_b^T L)(L^T H_b) / s^2 + 1: a triangular product for the
    // batch, half the multiply-adds of W^T W H_b; formed beside the tangents through the hidden
    // layers.
    const LastLayerGram<T>* gram = &tangents_beside_gram(
        [&] { body.forward_with_jvp(params.head(body.parameter_count()), z, tangents, stacked); },
        started, own_gram, decoder, params, n, 0);
    if (gram->has_factor) {
      factored = detail::times_lower_triangular(stacked, gram->gram.transpose());
      metric_left = metric_right = &factored;
    } else {
      // W^T W singular to working precision: the Gram matrix itself.
      gram_stacked = detail::times(stacked, gram->gram);
      metric_right = &gram_stacked;
    }
    if (with_rhs) {
      noise_rows = gram->projected_noise.data();
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
}  // namespace

template <typename T>
LatentSystems<T> latent_systems(const Mlp<T>& decoder, const typename Mlp<T>::ParamsRef& params,
                                const Matrix<T>& z, T noise_variance, const Matrix<T>& n,
                                const Matrix<T>& eta, LatentSystemRoute route) {
  return systems_of(decoder, params, z, noise_variance, n, eta, route, nullptr);
}

namespace {
/// latent_residuals, with the explicit systems' last-layer Gram work from `started` if given.
template <typename T>
Matrix<T> residuals_of(const Mlp<T>& decoder, const typename Mlp<T>::ParamsRef& params,
                       const Matrix<T>& z, T noise_variance, const Matrix<T>& n,
                       const Matrix<T>& eta,
                       const std::type_identity_t<StartedGram<T>>* started) {
  if (z.cols() > kExplicitSamplingMaxLatent)
    return latent_residuals_cg(decoder, params, z, noise_variance, n, eta);
  check_argument(n.size() > 0 && eta.size() > 0, "latent_residuals", "n, eta",
                 "must not be empty");
  const LatentSystems<T> systems = systems_of(decoder, params, z, noise_variance, n, eta,
                                              LatentSystemRoute::kAuto, started);
  Matrix<T> out(z.rows(), z.cols());
  tbb::parallel_for(Eigen::Index{0}, z.rows(), [&](Eigen::Index b) {
    const Eigen::LLT<Matrix<T>> llt(systems.metrics[static_cast<std::size_t>(b)]);
    out.row(b) = llt.solve(systems.rhs.row(b).transpose()).transpose();
  });
  return out;
}
}  // namespace

template <typename T>
Matrix<T> latent_residuals(const Mlp<T>& decoder, const typename Mlp<T>::ParamsRef& params, const Matrix<T>& z,
                           T noise_variance, const Matrix<T>& n, const Matrix<T>& eta) {
  return residuals_of(decoder, params, z, noise_variance, n, eta, nullptr);
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
                                 const GradientBlockReady<T>& ready = {},
                                 T* gradient_storage = nullptr) {
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
  // Every entry is written below.
  auto gradient = out.gradient_destination(gradient_storage, params.size());
  // d/df = -exp(-zeta) r; through the decoder to its parameters and to z.
  const Matrix<T> gz = decoder.vjp(pdec, dec_cache, (-static_cast<T>(inv_noise)) * r,
                                   gradient.segment(pe, pd), true, GradientWrite::kOverwrite,
                                   with_base_offset(ready, pe)) +
                       z;
  // z = mu + delta with delta fixed; the data need no gradient.
  encoder.vjp(params.head(pe), enc_cache, gz, gradient.head(pe), false,
              GradientWrite::kOverwrite, ready);
  gradient[pe + pd] = static_cast<T>(batch * zd / p + 0.5 * batch * k - 0.5 * inv_noise * r2);
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
                                const GradientBlockReady<T>& ready, T* gradient_storage) {
  constexpr std::string_view fn = "fishernet_step";
  check_loss_arguments(fn, encoder, decoder, params, data, dataset_size);
  const Eigen::Index pe = encoder.parameter_count(), pd = decoder.parameter_count();
  // The Gram routes' work on the decoder's last layer needs only its weights and n: started
  // first, it runs alongside the encoder's forward pass and the decoder's at mu (batch-sized
  // products, which the threads share less well than the tangents), not only alongside the
  // tangents. Declared before the group, which waits for it on a throw.
  // n is checked here, since the work reads it before latent_systems checks it.
  LastLayerGram<T> early_gram;
  tbb::task_group gram_group;
  const bool start_early = n.rows() == data.rows() && n.cols() == decoder.output_size() &&
                           expects_gram_route(decoder, data.rows());
  if (start_early)
    gram_group.run([&] {
      // The kernel's panels only where the active-unit Gram route may be taken.
      const Eigen::Index panel_width =
          has_relu_hidden_layer(decoder)
              ? detail::selected_rows_panel_width<T>(decoder.input_size())
              : 0;
      early_gram = last_layer_gram(decoder, params.segment(pe, pd), n, panel_width);
    });
  const StartedGram<T> started{&gram_group, &early_gram};
  typename Mlp<T>::Cache enc_cache;
  const Matrix<T> mu = encoder.forward(params.head(pe), data, &enc_cache);
  const auto pdec = params.segment(pe, pd);
  const T noise_variance = std::exp(params[pe + pd]);
  const Matrix<T> residuals = residuals_of(decoder, pdec, mu, noise_variance, n, eta,
                                           start_early ? &started : nullptr);
  gram_group.wait();  // done already where the route took it
  return loss_given_mean(encoder, decoder, params, data, mu, enc_cache, residuals, dataset_size,
                         ready, gradient_storage);
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
template std::vector<double> decoder_active_fractions(const Mlp<float>&,
                                                      const Mlp<float>::ParamsRef&,
                                                      const Matrix<float>&);
template std::vector<double> decoder_active_fractions(const Mlp<double>&,
                                                      const Mlp<double>::ParamsRef&,
                                                      const Matrix<double>&);
template double latent_system_multiply_adds(const Mlp<float>&, Eigen::Index, bool,
                                            LatentSystemRoute, const std::vector<double>&);
template double latent_system_multiply_adds(const Mlp<double>&, Eigen::Index, bool,
                                            LatentSystemRoute, const std::vector<double>&);
template LatentSystemRoute latent_system_route(const Mlp<float>&, Eigen::Index, bool,
                                               const std::vector<double>&);
template LatentSystemRoute latent_system_route(const Mlp<double>&, Eigen::Index, bool,
                                               const std::vector<double>&);
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
                                             Eigen::Index, const GradientBlockReady<float>&,
                                             float*);
template FisherNetLoss<double> fishernet_step(const Mlp<double>&, const Mlp<double>&,
                                              const Vector<double>&, const Matrix<double>&,
                                              const Matrix<double>&, const Matrix<double>&,
                                              Eigen::Index, const GradientBlockReady<double>&,
                                              double*);

}  // namespace infield::neural

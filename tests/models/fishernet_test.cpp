// FisherNet core: decoder Jacobians and metrics against finite differences, the latent residuals'
// covariance (chi-square), explicit (Cholesky) and matrix-free (CG) sampling agreeing, and the
// gradient of the whole loss against finite differences in float64.
#include "infield/models/fishernet.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <boost/math/distributions/chi_squared.hpp>
#include <cmath>
#include <limits>

#include "infield/inference/conjugate_gradient.h"
#include "infield/infield.h"

namespace infield {
namespace {

using neural::Activation;
using neural::Matrix;
using neural::Mlp;
using neural::Vector;

Matrix<double> normal_matrix(Eigen::Index r, Eigen::Index c, std::mt19937_64& rng) {
  Matrix<double> m(r, c);
  for (auto& v : m.reshaped()) v = standard_normal_vector(1, rng)[0];
  return m;
}

struct Tiny {
  Mlp<double> encoder{{6, 5, 3}, {Activation::kTanh, Activation::kIdentity}};
  Mlp<double> decoder{{3, 7, 6}, {Activation::kSoftplus, Activation::kSigmoid}};
  Vector<double> params;
  Tiny() {
    std::mt19937_64 rng(1);
    params.resize(encoder.parameter_count() + decoder.parameter_count() + 1);
    params << encoder.initialize(neural::Initialization::kGlorotUniform, rng),
        decoder.initialize(neural::Initialization::kGlorotUniform, rng), -1.3;
  }
  Vector<double> decoder_params() const {
    return params.segment(encoder.parameter_count(), decoder.parameter_count());
  }
};

TEST(FisherNet, JacobiansAndMetricsMatchFiniteDifferences) {
  Tiny t;
  std::mt19937_64 rng(2);
  const Matrix<double> z = normal_matrix(4, 3, rng);
  const Vector<double> pd = t.decoder_params();
  const auto jac = neural::decoder_jacobians(t.decoder, pd, z);
  const auto metrics = neural::latent_metrics(jac, 0.3);
  ASSERT_EQ(jac.size(), 4u);
  const double h = 1e-6;
  for (Eigen::Index b = 0; b < 4; ++b) {
    Matrix<double> fd(6, 3);
    for (Eigen::Index a = 0; a < 3; ++a) {
      Matrix<double> zp = z.row(b), zm = z.row(b);
      zp(0, a) += h;
      zm(0, a) -= h;
      fd.col(a) = ((t.decoder.forward(pd, zp) - t.decoder.forward(pd, zm)) / (2 * h)).transpose();
    }
    EXPECT_LE((jac[b] - fd).norm(), 1e-8 * fd.norm()) << b;
    Matrix<double> m = fd.transpose() * fd / 0.3;
    m.diagonal().array() += 1.0;
    EXPECT_LE((metrics[b] - m).norm(), 1e-7 * m.norm()) << b;
  }
}

TEST(FisherNet, LatentUncertaintyIsTheMetricsEigensystem) {
  Tiny t;
  std::mt19937_64 rng(7);
  const auto jac = neural::decoder_jacobians(t.decoder, t.decoder_params(), normal_matrix(1, 3, rng));
  const Matrix<double> m = neural::latent_metrics(jac, 0.2)[0];
  const auto u = neural::latent_uncertainty(m);
  EXPECT_GE(u.eigenvalues.minCoeff(), 1.0 - 1e-12);  // the prior's precision is a floor
  EXPECT_TRUE(std::is_sorted(u.eigenvalues.data(), u.eigenvalues.data() + 3));
  const Matrix<double> back = u.eigenvectors * u.eigenvalues.asDiagonal() * u.eigenvectors.transpose();
  EXPECT_LE((back - m).norm(), 1e-12 * m.norm());
  EXPECT_THROW(neural::latent_uncertainty(Matrix<double>(2, 3)), InvalidArgument);
}

TEST(FisherNet, ResidualsHaveTheInverseMetricAsCovariance) {
  Tiny t;
  std::mt19937_64 rng(3);
  const Matrix<double> mu = normal_matrix(1, 3, rng);
  const auto jac = neural::decoder_jacobians(t.decoder, t.decoder_params(), mu);
  const double noise = 0.05;
  const Matrix<double> m = neural::latent_metrics(jac, noise)[0];
  // delta^T M delta summed over S draws is chi-square with 3 S degrees of freedom.
  const int draws = 4000;
  double stat = 0.0;
  for (int s = 0; s < draws; ++s) {
    const Matrix<double> delta = neural::latent_residuals_explicit(
        jac, noise, normal_matrix(1, 6, rng), normal_matrix(1, 3, rng));
    stat += (delta * m * delta.transpose())(0, 0);
  }
  const boost::math::chi_squared chi2(3.0 * draws);
  EXPECT_GT(stat, boost::math::quantile(chi2, 5e-4));
  EXPECT_LT(stat, boost::math::quantile(boost::math::complement(chi2, 5e-4)));
}

TEST(FisherNet, ExplicitAndConjugateGradientSamplingAgree) {
  Tiny t;
  std::mt19937_64 rng(4);
  const Matrix<double> mu = normal_matrix(3, 3, rng);
  const Matrix<double> n = normal_matrix(3, 6, rng), eta = normal_matrix(3, 3, rng);
  const double noise = 0.1;
  const Vector<double> pd = t.decoder_params();
  const auto jac = neural::decoder_jacobians(t.decoder, pd, mu);
  const Matrix<double> explicit_delta = neural::latent_residuals_explicit(jac, noise, n, eta);
  // Matrix-free: the decoder as an operator of one latent, its metric J^T N^-1 J + 1 as a
  // LinearOperator from the toolkit, solved by the inference layer's CG.
  for (Eigen::Index b = 0; b < 3; ++b) {
    auto latent = unstructured(3), pixels = unstructured(6);
    auto decoder_op = make_operator(
        latent, pixels,
        [&](ConstVectorRef z) {
          return Eigen::VectorXd(t.decoder.forward(pd, Matrix<double>(z.transpose())).transpose());
        },
        [&](ConstVectorRef z, ConstVectorRef v) {
          Mlp<double>::Cache cache;
          t.decoder.forward(pd, Matrix<double>(z.transpose()), &cache);
          return Eigen::VectorXd(
              t.decoder.jvp_input(pd, cache, Matrix<double>(v.transpose())).transpose());
        },
        [&](ConstVectorRef z, ConstVectorRef u) {
          Mlp<double>::Cache cache;
          t.decoder.forward(pd, Matrix<double>(z.transpose()), &cache);
          Vector<double> g = Vector<double>::Zero(t.decoder.parameter_count());
          return Eigen::VectorXd(
              t.decoder.vjp(pd, cache, Matrix<double>(u.transpose()), g).transpose());
        });
    const Linearization lin = decoder_op->linearize(Field(latent, mu.row(b).transpose()));
    const auto metric = sandwich(lin.jacobian, scaling_operator(pixels, 1.0 / noise)) +
                        identity_operator(latent);
    Eigen::VectorXd theta(3);
    lin.jacobian->apply_adjoint(n.row(b).transpose() / std::sqrt(noise), theta);
    theta += eta.row(b).transpose();
    Eigen::VectorXd delta = Eigen::VectorXd::Zero(3);
    const auto summary = conjugate_gradient(*metric, theta, delta, {1e-12, 0.0, 100});
    ASSERT_TRUE(summary.converged());
    EXPECT_LE((delta - explicit_delta.row(b).transpose()).norm(), 1e-9 * delta.norm()) << b;
  }
}

TEST(FisherNet, LatentSystemsByEveryRouteEqualTheExplicitMetricAndRightHandSide) {
  // A linear last layer, so that every route applies; a ReLU layer (about half its units
  // active per datum) before a tanh one (all active). D = 20 spans two row blocks of the
  // active-unit kernel.
  for (Eigen::Index d : {2, 12, 20}) {
    const Mlp<double> decoder({d, 16, 16, 60},
                              {Activation::kRelu, Activation::kTanh, Activation::kIdentity});
    std::mt19937_64 rng(static_cast<std::uint64_t>(20 + d));
    const Vector<double> pd = decoder.initialize(neural::Initialization::kUniformFanIn, rng);
    const Matrix<double> z = normal_matrix(5, d, rng), n = normal_matrix(5, 60, rng),
                         eta = normal_matrix(5, d, rng);
    const double noise = 0.07;
    const auto jac = neural::decoder_jacobians(decoder, pd, z);
    const auto metrics = neural::latent_metrics(jac, noise);
    for (auto route : {neural::LatentSystemRoute::kJacobians,
                       neural::LatentSystemRoute::kLastLayerGram,
                       neural::LatentSystemRoute::kActiveUnitsJacobians,
                       neural::LatentSystemRoute::kActiveUnitsGram}) {
      const auto systems = neural::latent_systems(decoder, pd, z, noise, n, eta, route);
      EXPECT_EQ(systems.route, route);
      for (Eigen::Index b = 0; b < 5; ++b) {
        const auto i = static_cast<std::size_t>(b);
        EXPECT_LE((systems.metrics[i] - metrics[i]).norm(), 1e-12 * metrics[i].norm())
            << b << " route " << static_cast<int>(route);
        const Vector<double> theta =
            jac[i].transpose() * n.row(b).transpose() / std::sqrt(noise) + eta.row(b).transpose();
        EXPECT_LE((systems.rhs.row(b).transpose() - theta).norm(), 1e-12 * theta.norm())
            << b << " route " << static_cast<int>(route);
      }
      // Metrics only.
      const auto only = neural::latent_systems(decoder, pd, z, noise, Matrix<double>(),
                                               Matrix<double>(), route);
      EXPECT_EQ(only.rhs.size(), 0);
      EXPECT_LE((only.metrics[3] - metrics[3]).norm(), 1e-12 * metrics[3].norm());
    }
    // kAuto takes the route that latent_system_route picks for the active units at z: about
    // half of the ReLU layer's, all of the tanh layer's.
    const std::vector<double> fractions = neural::decoder_active_fractions(decoder, pd, z);
    ASSERT_EQ(fractions.size(), 2U);
    EXPECT_GT(fractions[0], 0.2);
    EXPECT_LT(fractions[0], 0.8);
    EXPECT_EQ(fractions[1], 1.0);
    const auto automatic = neural::latent_systems(decoder, pd, z, noise, n, eta);
    EXPECT_EQ(automatic.route, neural::latent_system_route(decoder, 5, true, fractions));
    // latent_residuals solves these systems: the explicit residuals up to rounding.
    const Matrix<double> explicit_delta = neural::latent_residuals_explicit(jac, noise, n, eta);
    EXPECT_LE((neural::latent_residuals(decoder, pd, z, noise, n, eta) - explicit_delta).norm(),
              1e-10 * explicit_delta.norm());
  }
  // One hidden layer (the tangents go straight from W_1 to the last step), and a layer with no
  // active unit for some data (a ReLU layer whose biases are very negative for half its units and
  // whose weights are tiny: every unit off for the data with a negative first latent).
  for (bool all_off : {false, true}) {
    const Eigen::Index d = 3;
    const Mlp<double> decoder({d, 24, 40}, {Activation::kRelu, Activation::kIdentity});
    std::mt19937_64 rng(all_off ? 52 : 51);
    Vector<double> pd = decoder.initialize(neural::Initialization::kGlorotUniform, rng);
    if (all_off) {
      // W_1 = 0 but its first column, biases -1: unit u is on iff z_0 > 1 (for all u at once).
      for (Eigen::Index u = 0; u < 24; ++u) {
        for (Eigen::Index t = 0; t < d; ++t) pd[u * d + t] = t == 0 ? 1.0 : 0.0;
        pd[24 * d + u] = -1.0;
      }
    }
    Matrix<double> z = normal_matrix(6, d, rng);
    z(0, 0) = 2.0;   // all units on
    z(1, 0) = -2.0;  // all units off: J = 0, M = 1
    const Matrix<double> n = normal_matrix(6, 40, rng), eta = normal_matrix(6, d, rng);
    const auto jac = neural::decoder_jacobians(decoder, pd, z);
    const auto metrics = neural::latent_metrics(jac, 0.2);
    for (auto route : {neural::LatentSystemRoute::kActiveUnitsJacobians,
                       neural::LatentSystemRoute::kActiveUnitsGram}) {
      const auto systems = neural::latent_systems(decoder, pd, z, 0.2, n, eta, route);
      for (Eigen::Index b = 0; b < 6; ++b) {
        const auto i = static_cast<std::size_t>(b);
        EXPECT_LE((systems.metrics[i] - metrics[i]).norm(), 1e-12 * metrics[i].norm())
            << b << " route " << static_cast<int>(route) << " all_off " << all_off;
        const Vector<double> theta =
            jac[i].transpose() * n.row(b).transpose() / std::sqrt(0.2) + eta.row(b).transpose();
        EXPECT_LE((systems.rhs.row(b).transpose() - theta).norm(), 1e-12 * theta.norm()) << b;
      }
      if (all_off) {
        EXPECT_TRUE(systems.metrics[1].isIdentity(0.0));
        EXPECT_EQ(systems.rhs.row(1), eta.row(1));
      }
    }
  }
  // A non-linear last layer has no Gram route; mismatched noise is refused.
  const Mlp<double> sigmoid_last({3, 8, 10}, {Activation::kRelu, Activation::kSigmoid});
  std::mt19937_64 rng(9);
  const Vector<double> ps = sigmoid_last.initialize(neural::Initialization::kGlorotUniform, rng);
  const Matrix<double> z = normal_matrix(2, 3, rng);
  EXPECT_THROW(neural::latent_systems(sigmoid_last, ps, z, 0.1, normal_matrix(2, 10, rng),
                                      normal_matrix(2, 3, rng),
                                      neural::LatentSystemRoute::kLastLayerGram),
               InvalidArgument);
  EXPECT_THROW(neural::latent_systems(sigmoid_last, ps, z, 0.1, Matrix<double>(),
                                      Matrix<double>(), neural::LatentSystemRoute::kActiveUnitsGram),
               InvalidArgument);
  const auto sigmoid_route =
      neural::latent_systems(sigmoid_last, ps, z, 0.1, Matrix<double>(), Matrix<double>()).route;
  EXPECT_TRUE(sigmoid_route == neural::LatentSystemRoute::kJacobians ||
              sigmoid_route == neural::LatentSystemRoute::kActiveUnitsJacobians);
  // The active units with a non-linear last layer: J_b's rows scaled by its derivative.
  const auto sigmoid_metrics =
      neural::latent_metrics(neural::decoder_jacobians(sigmoid_last, ps, z), 0.1);
  const auto by_active_units =
      neural::latent_systems(sigmoid_last, ps, z, 0.1, Matrix<double>(), Matrix<double>(),
                             neural::LatentSystemRoute::kActiveUnitsJacobians);
  for (std::size_t b = 0; b < 2; ++b)
    EXPECT_LE((by_active_units.metrics[b] - sigmoid_metrics[b]).norm(),
              1e-12 * sigmoid_metrics[b].norm());
  // A network without a hidden layer has no active-unit route.
  const Mlp<double> single({3, 10}, {Activation::kIdentity});
  const Vector<double> p1 = single.initialize(neural::Initialization::kGlorotUniform, rng);
  EXPECT_THROW(neural::latent_systems(single, p1, z, 0.1, Matrix<double>(), Matrix<double>(),
                                      neural::LatentSystemRoute::kActiveUnitsJacobians),
               InvalidArgument);
  EXPECT_EQ(neural::latent_systems(single, p1, z, 0.1, Matrix<double>(), Matrix<double>()).route,
            neural::LatentSystemRoute::kJacobians);
  EXPECT_THROW(neural::latent_systems(sigmoid_last, ps, z, 0.1, normal_matrix(2, 9, rng),
                                      normal_matrix(2, 3, rng)),
               InvalidArgument);
}

TEST(FisherNet, RouteChoiceAtThePapersSizes) {
  // Appendix A's decoder (3 x 448 ReLU, 784 linear outputs), a batch of 64: the Gram route saves
  // time from D = 10 on (measured: 1.5% on 1 thread, 9% on 2), not at D = 2 or 5, where its
  // Gram matrix and factorisation cost more than the D B products by W they replace.
  for (Eigen::Index d : {2, 5, 10, 20}) {
    const Mlp<float> decoder({d, 448, 448, 448, 784}, {Activation::kRelu, Activation::kRelu,
                                                        Activation::kRelu, Activation::kIdentity});
    const auto stacked = d >= 10 ? neural::LatentSystemRoute::kLastLayerGram
                                 : neural::LatentSystemRoute::kJacobians;
    EXPECT_EQ(neural::latent_system_route(decoder, 64, true), stacked) << "D = " << d;
    // With every unit active the per-datum kernel has the stacked products' work and runs
    // slower than Eigen's GEMM: not taken. With half of them active (a ReLU network at its
    // initialisation) it has half the tangents' work: taken at every D, with the Gram matrix
    // at D = 20 (at D = 10 the halved products by W cost less than W^T W and its factor).
    EXPECT_EQ(neural::latent_system_route(decoder, 64, true, {1.0, 1.0, 1.0}), stacked);
    EXPECT_EQ(neural::latent_system_route(decoder, 64, true, {0.5, 0.5, 0.5}),
              d >= 20 ? neural::LatentSystemRoute::kActiveUnitsGram
                      : neural::LatentSystemRoute::kActiveUnitsJacobians)
        << "D = " << d;
  }
}

TEST(FisherNet, GramRouteSplitOverThreadsAndWithASingularGramMatrix) {
  // Wide enough that W^T W and the triangular product are split over 2 threads; then a last
  // layer with a zero column, whose W^T W has no Cholesky factor (the plain Gram product instead).
  const Eigen::Index d = 12, batch = 100, k = 1000;
  const Mlp<double> decoder({d, 64, 64, k},
                            {Activation::kRelu, Activation::kRelu, Activation::kIdentity});
  std::mt19937_64 rng(31);
  Vector<double> pd = decoder.initialize(neural::Initialization::kGlorotUniform, rng);
  const Matrix<double> z = normal_matrix(batch, d, rng), n = normal_matrix(batch, k, rng),
                       eta = normal_matrix(batch, d, rng);
  const double noise = 0.3;
  for (bool singular : {false, true}) {
    if (singular) {
      // Column 5 of the last layer's W (k x 64, row-major, after the two hidden layers).
      const Eigen::Index w_offset = (d * 64 + 64) + (64 * 64 + 64);
      for (Eigen::Index r = 0; r < k; ++r) pd[w_offset + r * 64 + 5] = 0.0;
    }
    const auto jac = neural::decoder_jacobians(decoder, pd, z);
    const auto metrics = neural::latent_metrics(jac, noise);
    for (int threads : {1, 2})
      for (auto route :
           {neural::LatentSystemRoute::kLastLayerGram, neural::LatentSystemRoute::kActiveUnitsGram}) {
        tbb::task_arena arena(threads);
        const auto systems =
            arena.execute([&] { return neural::latent_systems(decoder, pd, z, noise, n, eta, route); });
        for (Eigen::Index b = 0; b < batch; b += 7) {
          const auto i = static_cast<std::size_t>(b);
          EXPECT_LE((systems.metrics[i] - metrics[i]).norm(), 1e-12 * metrics[i].norm())
              << b << " singular " << singular << " threads " << threads << " route "
              << static_cast<int>(route);
          const Vector<double> theta = jac[i].transpose() * n.row(b).transpose() / std::sqrt(noise) +
                                       eta.row(b).transpose();
          EXPECT_LE((systems.rhs.row(b).transpose() - theta).norm(), 1e-12 * theta.norm()) << b;
        }
      }
  }
}

TEST(FisherNet, GramAndActiveUnitRoutesInFloatMatchTheDoubleMetric) {
  // Training runs in float: the in-place Cholesky factor, the triangular product and the
  // active-unit kernel there, against the metric in double from the same (float) parameters.
  // Bound: float rounding accumulated over sums of k = 1000 terms, k * epsilon relative.
  const Eigen::Index d = 12, batch = 100, k = 1000;
  const Mlp<float> decoder_f({d, 64, 64, k},
                             {Activation::kRelu, Activation::kRelu, Activation::kIdentity});
  const Mlp<double> decoder({d, 64, 64, k},
                            {Activation::kRelu, Activation::kRelu, Activation::kIdentity});
  std::mt19937_64 rng(41);
  const Vector<float> pf = decoder_f.initialize(neural::Initialization::kGlorotUniform, rng);
  const Matrix<float> zf = normal_matrix(batch, d, rng).cast<float>();
  const double noise = 0.3;
  const auto metrics =
      neural::latent_metrics(neural::decoder_jacobians(decoder, pf.cast<double>().eval(),
                                                       zf.cast<double>().eval()),
                             noise);
  for (int threads : {1, 2})
    for (auto route : {neural::LatentSystemRoute::kLastLayerGram,
                       neural::LatentSystemRoute::kActiveUnitsJacobians,
                       neural::LatentSystemRoute::kActiveUnitsGram}) {
      tbb::task_arena arena(threads);
      const auto systems = arena.execute([&] {
        return neural::latent_systems(decoder_f, pf, zf, static_cast<float>(noise),
                                      Matrix<float>(), Matrix<float>(), route);
      });
      const double bound = double(k) * std::numeric_limits<float>::epsilon();
      for (Eigen::Index b = 0; b < batch; b += 7) {
        const auto i = static_cast<std::size_t>(b);
        EXPECT_LE((systems.metrics[i].cast<double>() - metrics[i]).norm(),
                  bound * metrics[i].norm())
            << b << " threads " << threads << " route " << static_cast<int>(route);
      }
    }
}

TEST(FisherNet, MatrixFreeResidualsEqualExplicitOnes) {
  // A wider latent space, so that the CG has real work; same n and eta both ways.
  const Mlp<double> decoder({40, 30, 50}, {Activation::kTanh, Activation::kSigmoid});
  std::mt19937_64 rng(6);
  const Vector<double> pd = decoder.initialize(neural::Initialization::kGlorotUniform, rng);
  const Matrix<double> z = normal_matrix(3, 40, rng), n = normal_matrix(3, 50, rng),
                       eta = normal_matrix(3, 40, rng);
  const Matrix<double> explicit_delta =
      neural::latent_residuals_explicit(neural::decoder_jacobians(decoder, pd, z), 0.01, n, eta);
  const Matrix<double> cg_delta = neural::latent_residuals_cg(decoder, pd, z, 0.01, n, eta);
  EXPECT_LE((cg_delta - explicit_delta).norm(), 1e-8 * explicit_delta.norm());
  // The automatic choice: D = 40 > 32 takes CG.
  EXPECT_EQ(neural::latent_residuals(decoder, pd, z, 0.01, n, eta), cg_delta);
}

TEST(FisherNet, LossGradientMatchesFiniteDifferences) {
  Tiny t;
  std::mt19937_64 rng(5);
  const Matrix<double> data = (normal_matrix(4, 6, rng).array() * 0.2 + 0.5).matrix();
  const Matrix<double> residuals = 0.3 * normal_matrix(4, 3, rng);
  const auto loss = neural::fishernet_loss(t.encoder, t.decoder, t.params, data, residuals, 40);
  ASSERT_EQ(loss.gradient.size(), t.params.size());
  Eigen::VectorXd fd(t.params.size());
  const double h = 1e-6;
  for (Eigen::Index i = 0; i < t.params.size(); ++i) {
    Vector<double> p = t.params, m = t.params;
    p[i] += h;
    m[i] -= h;
    fd[i] = (neural::fishernet_loss(t.encoder, t.decoder, p, data, residuals, 40).value -
             neural::fishernet_loss(t.encoder, t.decoder, m, data, residuals, 40).value) /
            (2 * h);
  }
  EXPECT_LE((loss.gradient - fd).norm(), 1e-7 * fd.norm());
  // The noise parameter's part separately (it is one scalar among many).
  const Eigen::Index last = t.params.size() - 1;
  EXPECT_NEAR(loss.gradient[last], fd[last], 1e-6 * std::abs(fd[last]) + 1e-9);
  // The value against Eq. 25 computed by hand.
  const Matrix<double> z =
      t.encoder.forward(t.params.head(t.encoder.parameter_count()), data) + residuals;
  const Matrix<double> f = t.decoder.forward(t.decoder_params(), z);
  const double zeta = t.params[last];
  const double expected = 0.5 * (z.squaredNorm() + 4 * zeta * zeta / 40 + 4 * 6 * zeta +
                                 std::exp(-zeta) * (data - f).squaredNorm());
  EXPECT_NEAR(loss.value, expected, 1e-12 * std::abs(expected));
  EXPECT_THROW(neural::fishernet_loss(t.encoder, t.decoder, t.params, data, residuals, 3),
               InvalidArgument);
}

}  // namespace
}  // namespace infield

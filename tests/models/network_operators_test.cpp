// Networks as Infield operators: decoder and encoder operators (one datum, a batch, parametric in
// (input, parameters)) against finite differences, and FisherNet's fast path against the general
// machinery for a trained network: the metric of standard_hamiltonian(gaussian_likelihood, decoder)
// equals M_i by every route, the inference layer's metric sample equals latent_residuals for the
// same n_i and eta_i (explicit and CG), and the Hamiltonian's energy plus the noise terms equals
// the Eq. 25 loss per datum. A fast path with a wrong noise scale fails the same comparisons.
// Full MGVI per datum (infer_latents) on a linear decoder gives the exact Gaussian posterior.
#include "infield/models/network_operators.h"

#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <boost/math/distributions/chi_squared.hpp>
#include <cmath>
#include <random>

#include "infield/infield.h"
#include "infield/inference/mgvi.h"
#include "infield/models/autoencoder.h"
#include "infield/models/fishernet.h"
#include "infield/models/latent_inference.h"
#include "network_test_data.h"

namespace infield {
namespace {

using neural::Activation;
using neural::Autoencoder;
using neural::AutoencoderKind;
using neural::DenseNetwork;
using neural::LatentSystemRoute;
using neural::Matrix;
using neural::Mlp;
using neural::Vector;
using test::normal_matrix;
using test::pattern_images;

/// A small FisherNet (or VAE) trained for a few epochs: the network and data the checks use.
struct TrainedRun {
  static constexpr Eigen::Index kPixels = 36, kLatent = 3;
  Autoencoder model;
  Vector<float> params;
  Matrix<float> images;
  explicit TrainedRun(AutoencoderKind kind)
      : model(kind, kPixels, kLatent, {16, 16}), images(pattern_images(256, kPixels, 3)) {
    neural::TrainingOptions o;
    o.epochs = 3;
    o.batch = 32;
    o.learning_rate = 2e-3;
    o.noise_learning_rate = 2e-2;
    o.seed = 4;
    params = neural::train_autoencoder(model, o, images, images,
                                       neural::start_training(model, o, images.rows()), {})
                 .params;
  }
  double noise_variance() const { return std::pow(model.noise_std(params), 2); }
  double zeta() const { return static_cast<double>(params[params.size() - 1]); }
};

const TrainedRun& trained_fishernet() {
  static const TrainedRun run(AutoencoderKind::kFisherNet);
  return run;
}

Field vector_field(const Eigen::VectorXd& v) { return Field(Space(unstructured(v.size())), v); }

/// The dense matrix of a linear operator on flat vectors.
Eigen::MatrixXd dense(const LinearOperator& op) {
  const Eigen::Index n = op.domain().size();
  Eigen::MatrixXd m(op.target().size(), n);
  Eigen::VectorXd out(op.target().size());
  for (Eigen::Index j = 0; j < n; ++j) {
    op.apply_times(Eigen::VectorXd::Unit(n, j), out);
    m.col(j) = out;
  }
  return m;
}

double relative_difference(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  return (a - b).norm() / std::max(b.norm(), 1e-300);
}

TEST(NetworkOperators, DecoderAndEncoderPassTheJacobianCheck) {
  const TrainedRun& run = trained_fishernet();
  std::mt19937_64 rng(1);
  const DenseNetwork decoder = neural::decoder_network(run.model, run.params);
  const DenseNetwork encoder = neural::encoder_network(run.model, run.params);
  // Away from the ReLUs' kinks the network is smooth; a step of 1e-6 stays on one side of them.
  JacobianCheckOptions options;
  options.step = 1e-6;
  options.tolerance = 1e-6;

  const OperatorPtr one = neural::network_operator(decoder, "Decoder");
  EXPECT_EQ(one->domain().size(), TrainedRun::kLatent);
  EXPECT_EQ(one->target().size(), TrainedRun::kPixels);
  const Field z = vector_field(standard_normal_vector(TrainedRun::kLatent, rng));
  const CheckReport single = check_jacobian(*one, z, options);
  EXPECT_TRUE(single.passed) << single.summary();

  constexpr Eigen::Index kBatch = 5;
  const OperatorPtr batch = neural::network_batch_operator(decoder, kBatch);
  const Field zb(batch->domain(), standard_normal_vector(kBatch * TrainedRun::kLatent, rng));
  const CheckReport batched = check_jacobian(*batch, zb, options);
  EXPECT_TRUE(batched.passed) << batched.summary();
  // Row b of the batch is datum b: the batch operator decodes each latent as the single one does.
  const Eigen::VectorXd decoded = batch->apply(zb).values();
  for (Eigen::Index b = 0; b < kBatch; ++b) {
    const Eigen::VectorXd zi = zb.values().segment(b * TrainedRun::kLatent, TrainedRun::kLatent);
    EXPECT_LT((decoded.segment(b * TrainedRun::kPixels, TrainedRun::kPixels) -
               one->apply(vector_field(zi)).values())
                  .norm(),
              1e-12);
  }

  const OperatorPtr image_to_mean = neural::network_operator(encoder, "Encoder");
  const Field image = vector_field(run.images.row(7).transpose().cast<double>());
  const CheckReport enc = check_jacobian(*image_to_mean, image, options);
  EXPECT_TRUE(enc.passed) << enc.summary();
  // The encoder over a batch and as a parametric operator of (image, phi).
  const OperatorPtr encoder_batch = neural::network_batch_operator(encoder, 3, "EncoderBatch");
  Eigen::VectorXd images(3 * TrainedRun::kPixels);
  for (Eigen::Index b = 0; b < 3; ++b)
    images.segment(b * TrainedRun::kPixels, TrainedRun::kPixels) =
        run.images.row(b).transpose().cast<double>();
  const CheckReport enc_batch =
      check_jacobian(*encoder_batch, Field(encoder_batch->domain(), images), options);
  EXPECT_TRUE(enc_batch.passed) << enc_batch.summary();
  const OperatorPtr encoder_parametric =
      neural::parametric_network_operator(encoder.network, "image", 3);
  const MultiDomain& emd = encoder_parametric->domain().multi();
  Eigen::VectorXd ex(encoder_parametric->domain().size());
  ex.segment(emd.at("image").offset, images.size()) = images;
  ex.segment(emd.at(neural::kParametersKey).offset, encoder.parameters->size()) = *encoder.parameters;
  const CheckReport enc_param =
      check_jacobian(*encoder_parametric, Field(encoder_parametric->domain(), ex), options);
  EXPECT_TRUE(enc_param.passed) << enc_param.summary();

  // The encoder operator is the trained encoder: its value is encode_mean's (float) mean.
  const Eigen::VectorXd mu = image_to_mean->apply(image).values();
  const Matrix<float> mu_f = run.model.encode_mean(run.params, run.images.middleRows(7, 1));
  EXPECT_LT((mu - mu_f.row(0).transpose().cast<double>()).norm(), 1e-5 * (1 + mu.norm()));
}

TEST(NetworkOperators, ParametricDecoderPassesTheJacobianCheckInBothArguments) {
  const TrainedRun& run = trained_fishernet();
  const DenseNetwork decoder = neural::decoder_network(run.model, run.params);
  std::mt19937_64 rng(2);
  JacobianCheckOptions options;
  options.step = 1e-6;
  for (const Eigen::Index batch : {Eigen::Index{0}, Eigen::Index{4}}) {
    const OperatorPtr op = neural::parametric_network_operator(decoder.network, "latent", batch);
    const MultiDomain& md = op->domain().multi();
    ASSERT_EQ(md.keys(), (std::vector<std::string>{"latent", "parameters"}));
    Eigen::VectorXd x(op->domain().size());
    const auto& latent = md.at("latent");
    const auto& parameters = md.at(neural::kParametersKey);
    x.segment(latent.offset, latent.domain.size()) =
        standard_normal_vector(latent.domain.size(), rng);
    x.segment(parameters.offset, parameters.domain.size()) = *decoder.parameters;
    const CheckReport report = check_jacobian(*op, Field(op->domain(), x), options);
    EXPECT_TRUE(report.passed) << "batch " << batch << ": " << report.summary();
    // At the trained parameters it is the fixed-parameter operator.
    const OperatorPtr fixed = batch == 0 ? neural::network_operator(decoder)
                                         : neural::network_batch_operator(decoder, batch);
    const Field z(fixed->domain(), x.segment(latent.offset, latent.domain.size()));
    EXPECT_LT((op->apply(Field(op->domain(), x)).values() - fixed->apply(z).values()).norm(),
              1e-12);
  }
  // Small enough for a dense check of the parameter block against finite differences of every
  // single parameter (the random directions above mix them).
  const Mlp<double> small({2, 3, 4}, {Activation::kTanh, Activation::kIdentity});
  const OperatorPtr op = neural::parametric_network_operator(
      std::make_shared<const Mlp<double>>(small), "input");
  const Eigen::VectorXd x = standard_normal_vector(op->domain().size(), rng);
  const Linearization lin = op->linearize(Field(op->domain(), x));
  const Eigen::MatrixXd jacobian = dense(*lin.jacobian);
  for (Eigen::Index j = 0; j < x.size(); ++j) {
    const double h = 1e-6;
    const Eigen::VectorXd e = Eigen::VectorXd::Unit(x.size(), j) * h;
    const Eigen::VectorXd fd = (op->evaluate(x + e) - op->evaluate(x - e)) / (2 * h);
    EXPECT_LT((jacobian.col(j) - fd).norm(), 1e-8 * (1 + fd.norm())) << "column " << j;
  }
}

TEST(NetworkOperators, BadArgumentsAreRefused) {
  const TrainedRun& run = trained_fishernet();
  EXPECT_THROW(neural::decoder_network(run.model, run.params.head(10)), InvalidArgument);
  const Autoencoder cvae(AutoencoderKind::kCvae, 64, 2);
  EXPECT_THROW(neural::decoder_network(cvae, cvae.initialize(1)), InvalidArgument);
  const DenseNetwork decoder = neural::decoder_network(run.model, run.params);
  EXPECT_THROW(neural::network_batch_operator(decoder, 0), InvalidArgument);
  EXPECT_THROW(neural::parametric_network_operator(decoder.network, "parameters"),
               InvalidArgument);
  EXPECT_THROW(neural::dense_network(Mlp<double>({2, 3}, {Activation::kIdentity}),
                                     Eigen::VectorXd::Constant(9, NAN)),
               InvalidArgument);
  const OperatorPtr op = neural::network_operator(decoder);
  EXPECT_THROW(op->apply(vector_field(Eigen::VectorXd::Zero(TrainedRun::kLatent + 1))),
               DomainMismatch);
}

// ---- FisherNet's fast path against the general machinery -------------------------------------

/// What the general path gives for datum i of a batch: the metric at mu_i, the MGVI residual for
/// (n_i, eta_i) and the Hamiltonian's energy at z_i* = mu_i + residual.
struct GeneralPath {
  std::vector<Eigen::MatrixXd> metrics;
  Matrix<double> residuals;
  std::vector<double> energies;
};

GeneralPath general_path(const OperatorPtr& decoder, const Matrix<double>& data,
                         const Matrix<double>& mu, double noise_std, const Matrix<double>& n,
                         const Matrix<double>& eta) {
  GeneralPath out;
  out.residuals.resize(mu.rows(), mu.cols());
  for (Eigen::Index i = 0; i < data.rows(); ++i) {
    const auto hamiltonian = standard_hamiltonian(
        gaussian_likelihood(Field(decoder->target(), data.row(i).transpose()), noise_std), decoder);
    const Field position = vector_field(mu.row(i).transpose());
    out.metrics.push_back(dense(*hamiltonian->evaluate(position.values(), kMetric).metric));
    const Eigen::VectorXd delta =
        mgvi_residual(*hamiltonian, position, n.row(i).transpose(), eta.row(i).transpose());
    out.residuals.row(i) = delta.transpose();
    out.energies.push_back(hamiltonian->evaluate(position.values() + delta, kValue).value);
  }
  return out;
}

/// The largest relative difference of the fast path's metrics to the general path's.
double metric_difference(const std::vector<Matrix<double>>& fast, const GeneralPath& general) {
  double worst = 0;
  for (std::size_t i = 0; i < fast.size(); ++i)
    worst = std::max(worst, relative_difference(fast[i], general.metrics[i]));
  return worst;
}

double residual_difference(const Matrix<double>& fast, const GeneralPath& general) {
  double worst = 0;
  for (Eigen::Index i = 0; i < fast.rows(); ++i)
    worst = std::max(worst, relative_difference(fast.row(i), general.residuals.row(i)));
  return worst;
}

/// M_b delta_b = theta_b solved by Cholesky for the systems of one route.
Matrix<double> solve_systems(const neural::LatentSystems<double>& systems) {
  Matrix<double> delta(systems.rhs.rows(), systems.rhs.cols());
  for (Eigen::Index b = 0; b < delta.rows(); ++b)
    delta.row(b) = Eigen::MatrixXd(systems.metrics[b]).llt().solve(
        Eigen::VectorXd(systems.rhs.row(b).transpose())).transpose();
  return delta;
}

struct FastPathFixture {
  const TrainedRun& run = trained_fishernet();
  const DenseNetwork decoder = neural::decoder_network(run.model, run.params);
  const DenseNetwork encoder = neural::encoder_network(run.model, run.params);
  static constexpr Eigen::Index kBatch = 6;
  Matrix<double> data = run.images.topRows(kBatch).cast<double>();
  Matrix<double> mu = encoder.network->forward(*encoder.parameters, data);
  Matrix<double> n, eta;
  GeneralPath general;
  FastPathFixture() {
    std::mt19937_64 rng(8);
    n = normal_matrix<double>(kBatch, TrainedRun::kPixels, rng);
    eta = normal_matrix<double>(kBatch, TrainedRun::kLatent, rng);
    general = general_path(neural::network_operator(decoder), data, mu, run.model.noise_std(run.params),
                           n, eta);
  }
};

TEST(FisherNetThroughTheFramework, TheHamiltoniansMetricIsTheLatentMetricByEveryRoute) {
  const FastPathFixture f;
  const double s2 = f.run.noise_variance();
  const Mlp<double>& net = *f.decoder.network;
  const Vector<double>& theta = *f.decoder.parameters;
  constexpr double kTolerance = 1e-11;
  const auto explicit_metrics =
      neural::latent_metrics(neural::decoder_jacobians(net, theta, f.mu), s2);
  EXPECT_LT(metric_difference(explicit_metrics, f.general), kTolerance);
  // The decoder has a linear last layer with no more hidden units than pixels: every route
  // applies, the Gram routes included.
  for (const LatentSystemRoute route :
       {LatentSystemRoute::kJacobians, LatentSystemRoute::kLastLayerGram,
        LatentSystemRoute::kActiveUnitsJacobians, LatentSystemRoute::kActiveUnitsGram}) {
    const auto systems = neural::latent_systems(net, theta, f.mu, s2, f.n, f.eta, route);
    EXPECT_LT(metric_difference(systems.metrics, f.general), kTolerance)
        << "route " << static_cast<int>(route);
    EXPECT_LT(residual_difference(solve_systems(systems), f.general), 1e-9)
        << "route " << static_cast<int>(route);
  }
  // A fast path with a noise variance 1% off is caught by the same comparison.
  const auto wrong = neural::latent_metrics(neural::decoder_jacobians(net, theta, f.mu), 1.01 * s2);
  EXPECT_GT(metric_difference(wrong, f.general), 1e3 * kTolerance);
  // In float, as training runs, the same matrices to float rounding.
  const Mlp<float>& net_f = f.run.model.decoder();
  const Vector<float> theta_f = f.run.params.segment(f.run.model.encoder_parameter_count(),
                                                     f.run.model.decoder_parameter_count());
  const auto float_systems = neural::latent_systems(
      net_f, theta_f, Matrix<float>(f.mu.cast<float>()), static_cast<float>(s2),
      Matrix<float>(f.n.cast<float>()), Matrix<float>(f.eta.cast<float>()));
  std::vector<Matrix<double>> float_metrics;
  for (const auto& m : float_systems.metrics) float_metrics.push_back(m.cast<double>());
  EXPECT_LT(metric_difference(float_metrics, f.general), 1e-4);
}

TEST(FisherNetThroughTheFramework, TheMetricSampleIsTheLatentResidualExplicitAndByCg) {
  const FastPathFixture f;
  const double s2 = f.run.noise_variance();
  const Mlp<double>& net = *f.decoder.network;
  const Vector<double>& theta = *f.decoder.parameters;
  const auto jacobians = neural::decoder_jacobians(net, theta, f.mu);
  const Matrix<double> explicit_residuals =
      neural::latent_residuals_explicit(jacobians, s2, f.n, f.eta);
  const Matrix<double> cg_residuals =
      neural::latent_residuals_cg(net, theta, f.mu, s2, f.n, f.eta, 1e-13);
  const Matrix<double> dispatched = neural::latent_residuals(net, theta, f.mu, s2, f.n, f.eta);
  EXPECT_LT(residual_difference(explicit_residuals, f.general), 1e-9);
  EXPECT_LT(residual_difference(cg_residuals, f.general), 1e-9);
  EXPECT_LT(residual_difference(dispatched, f.general), 1e-9);
  // The residuals are not all zero (the comparison has something to compare).
  EXPECT_GT(f.general.residuals.norm(), 0.1);
  // A wrong noise scale in the fast path (sigma 1% off) fails.
  const Matrix<double> wrong = neural::latent_residuals_explicit(jacobians, 1.01 * s2, f.n, f.eta);
  EXPECT_GT(residual_difference(wrong, f.general), 1e-6);
  // Float, as training draws them.
  const Vector<float> theta_f = f.run.params.segment(f.run.model.encoder_parameter_count(),
                                                     f.run.model.decoder_parameter_count());
  const Matrix<float> float_residuals = neural::latent_residuals(
      f.run.model.decoder(), theta_f, Matrix<float>(f.mu.cast<float>()), static_cast<float>(s2),
      Matrix<float>(f.n.cast<float>()), Matrix<float>(f.eta.cast<float>()));
  EXPECT_LT(residual_difference(float_residuals.cast<double>(), f.general), 1e-4);
}

TEST(FisherNetThroughTheFramework, TheHamiltonianPlusNoiseTermsIsTheEq25LossPerDatum) {
  const FastPathFixture f;
  const TrainedRun& run = f.run;
  const Mlp<double> encoder(run.model.encoder().widths(), run.model.encoder().activations());
  const Vector<double> params = run.params.cast<double>();
  const double zeta = run.zeta(), k = TrainedRun::kPixels;
  constexpr Eigen::Index kDatasetSize = 256;
  for (Eigen::Index i = 0; i < FastPathFixture::kBatch; ++i) {
    const double noise_terms = 0.5 * (zeta * zeta / kDatasetSize + k * zeta);
    const double loss = neural::fishernet_loss(encoder, *f.decoder.network, params,
                                               Matrix<double>(f.data.row(i)),
                                               Matrix<double>(f.general.residuals.row(i)),
                                               kDatasetSize)
                            .value;
    EXPECT_NEAR(f.general.energies[i] + noise_terms, loss, 1e-10 * std::abs(loss)) << "datum " << i;
    // A fast path whose noise scale is off (zeta_N + 0.02, sigma 1% larger) is caught.
    Vector<double> perturbed = params;
    perturbed[perturbed.size() - 1] += 0.02;
    const double wrong = neural::fishernet_loss(encoder, *f.decoder.network, perturbed,
                                                Matrix<double>(f.data.row(i)),
                                                Matrix<double>(f.general.residuals.row(i)),
                                                kDatasetSize)
                             .value -
                         0.5 * ((zeta + 0.02) * (zeta + 0.02) / kDatasetSize + k * (zeta + 0.02)) +
                         noise_terms;
    EXPECT_GT(std::abs(f.general.energies[i] + noise_terms - wrong), 1e-6 * std::abs(loss));
  }
}

// ---- Full MGVI per datum -----------------------------------------------------------------------

TEST(InferLatents, OnALinearDecoderTheRefinedPosteriorIsTheExactGaussianPosterior) {
  // d = W z + b + n, n ~ N(0, s^2), z ~ N(0, 1): the posterior is N(m, M^-1) with
  // M = W^T W / s^2 + 1 and m = M^-1 W^T (d - b) / s^2.
  constexpr Eigen::Index kLatent = 3, kPixels = 12, kImages = 40;
  constexpr double kNoise = 0.4;
  std::mt19937_64 rng(13);
  const Mlp<double> linear({kLatent, kPixels}, {Activation::kIdentity});
  const Eigen::VectorXd theta = standard_normal_vector(linear.parameter_count(), rng);
  const DenseNetwork decoder = neural::dense_network(linear, theta);
  const Eigen::Map<const Matrix<double>> w(theta.data(), kPixels, kLatent);
  const Eigen::VectorXd b = theta.tail(kPixels);
  const Matrix<double> z_true = normal_matrix<double>(kImages, kLatent, rng);
  Matrix<double> images = z_true * w.transpose() + kNoise * normal_matrix<double>(kImages, kPixels, rng);
  images.rowwise() += b.transpose();
  const Matrix<double> start = Matrix<double>::Zero(kImages, kLatent);

  neural::LatentInferenceOptions options;
  options.samples = 6;
  options.iterations = 2;
  options.threads = 2;
  options.seed = 3;
  const neural::LatentPosteriors posterior =
      neural::infer_latents(decoder, kNoise, images, start, options);
  EXPECT_EQ(posterior.not_converged(), 0);

  const Eigen::MatrixXd metric =
      Eigen::MatrixXd(w.transpose() * w) / (kNoise * kNoise) +
      Eigen::MatrixXd::Identity(kLatent, kLatent);
  const Eigen::LLT<Eigen::MatrixXd> llt(metric);
  double whitened = 0;  // sum over data and pairs of r^T M r ~ chi2(data * pairs * D)
  for (Eigen::Index i = 0; i < kImages; ++i) {
    const Eigen::VectorXd exact =
        llt.solve(w.transpose() * (images.row(i).transpose() - b) / (kNoise * kNoise));
    EXPECT_LT((posterior.mean.row(i).transpose() - exact).norm(), 1e-7 * (1 + exact.norm()))
        << "image " << i;
    const Eigen::Map<const Eigen::MatrixXd> c(posterior.covariance.row(i).data(), kLatent,
                                              kLatent);
    // Mirrored pairs: C = 2 sum_p r_p r_p^T / (K - 1), so (K - 1) / 2 tr(M C) = sum_p r_p^T M r_p.
    whitened += (options.samples - 1) / 2.0 * (metric * c).trace();
  }
  const double dof = kImages * (options.samples / 2) * kLatent;
  const boost::math::chi_squared chi2(dof);
  EXPECT_GT(whitened, boost::math::quantile(chi2, 0.0005));
  EXPECT_LT(whitened, boost::math::quantile(chi2, 0.9995));

  // The same result on one thread, and bad input refused.
  options.threads = 1;
  EXPECT_EQ(neural::infer_latents(decoder, kNoise, images, start, options).mean, posterior.mean);
  EXPECT_THROW(neural::infer_latents(decoder, kNoise, images.leftCols(5), start, options),
               InvalidArgument);
  EXPECT_THROW(neural::infer_latents(decoder, 0.0, images, start, options), InvalidArgument);
  images(0, 0) = NAN;
  EXPECT_THROW(neural::infer_latents(decoder, kNoise, images, start, options), InvalidArgument);
  options.samples = 5;
  EXPECT_THROW(options.validate(), InvalidArgument);
}

}  // namespace
}  // namespace infield

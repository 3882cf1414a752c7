// FisherNet and VAE training: the VAE loss's gradient against finite differences (float64), the
// training step against the FisherNet core, overfitting a small set, exact resume from a
// checkpoint, independence of the thread count, checkpoint validation, latent covariances.
#include "infield/models/autoencoder.h"

#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "infield/error.h"
#include "infield/models/idx.h"
#include "infield/npy.h"
#include "network_test_data.h"

namespace infield {
namespace {

using neural::Activation;
using neural::Autoencoder;
using neural::AutoencoderKind;
using neural::Matrix;
using neural::Mlp;
using neural::Vector;
using test::normal_matrix;

/// Images with structure an autoencoder can learn, 8 x 8 pixels.
Matrix<float> pattern_images(Eigen::Index count, std::uint64_t seed) {
  return test::pattern_images(count, 64, seed);
}

std::filesystem::path temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("infield_autoencoder_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(Vae, LossGradientMatchesFiniteDifferences) {
  const Mlp<double> encoder({6, 5, 4}, {Activation::kTanh, Activation::kIdentity});
  const Mlp<double> decoder({2, 7, 6}, {Activation::kSoftplus, Activation::kSigmoid});
  std::mt19937_64 rng(11);
  Vector<double> params(encoder.parameter_count() + decoder.parameter_count() + 1);
  params << encoder.initialize(neural::Initialization::kGlorotUniform, rng),
      decoder.initialize(neural::Initialization::kGlorotUniform, rng), -0.7;
  const Matrix<double> data = (normal_matrix<double>(5, 6, rng).array() * 0.2 + 0.5).matrix();
  const Matrix<double> eps = normal_matrix<double>(5, 2, rng);
  const auto loss = neural::vae_loss(encoder, decoder, params, data, eps, 50);
  Eigen::VectorXd fd(params.size());
  const double h = 1e-6;
  for (Eigen::Index i = 0; i < params.size(); ++i) {
    Vector<double> p = params, m = params;
    p[i] += h;
    m[i] -= h;
    fd[i] = (neural::vae_loss(encoder, decoder, p, data, eps, 50).value -
             neural::vae_loss(encoder, decoder, m, data, eps, 50).value) /
            (2 * h);
  }
  EXPECT_LE((loss.gradient - fd).norm(), 1e-7 * fd.norm());
  const Eigen::Index last = params.size() - 1;
  EXPECT_NEAR(loss.gradient[last], fd[last], 1e-6 * std::abs(fd[last]) + 1e-9);
  // The value by hand: KL of N(mu, diag s^2) to N(0, 1) plus the Gaussian likelihood.
  const Matrix<double> hidden = encoder.forward(params.head(encoder.parameter_count()), data);
  double kl = 0.0;
  Matrix<double> z(5, 2);
  for (Eigen::Index i = 0; i < 5; ++i)
    for (Eigen::Index a = 0; a < 2; ++a) {
      const double mu = hidden(i, a), lv = hidden(i, 2 + a);
      kl += 0.5 * (mu * mu + std::exp(lv) - lv - 1.0);
      z(i, a) = mu + std::exp(0.5 * lv) * eps(i, a);
    }
  const Matrix<double> f =
      decoder.forward(params.segment(encoder.parameter_count(), decoder.parameter_count()), z);
  const double zeta = params[last];
  const double expected = kl + 0.5 * (5 * zeta * zeta / 50 + 5 * 6 * zeta +
                                      std::exp(-zeta) * (data - f).squaredNorm());
  EXPECT_NEAR(loss.value, expected, 1e-12 * std::abs(expected));
  EXPECT_THROW(neural::vae_loss(decoder, decoder, params, data, eps, 50), InvalidArgument);
}

TEST(FisherNet, TrainingStepIsTheCoreLossAtResidualsDrawnAtTheMean) {
  // A tiny network with one hidden layer, and two wide enough (batch 64, D = 12, k = 300 from two
  // layers of 32 hidden units) for the last-layer Gram routes, whose work on W the step starts
  // before the encoder's forward pass: ReLU (the active-unit Gram route) and tanh (the stacked
  // one); with 1 and 2 threads.
  struct Case {
    Eigen::Index d, hidden, k, batch;
    std::size_t hidden_layers;
    Activation activation;
  };
  for (const Case c : {Case{3, 7, 6, 4, 1, Activation::kRelu},
                       Case{12, 32, 300, 64, 2, Activation::kRelu},
                       Case{12, 32, 300, 64, 2, Activation::kTanh}})
    for (int threads : {1, 2}) {
      const Mlp<double> encoder({c.k, c.hidden, c.d}, {Activation::kRelu, Activation::kIdentity});
      std::vector<Eigen::Index> widths{c.d};
      std::vector<Activation> activations;
      for (std::size_t l = 0; l < c.hidden_layers; ++l) {
        widths.push_back(c.hidden);
        activations.push_back(c.activation);
      }
      widths.push_back(c.k);
      activations.push_back(Activation::kIdentity);
      const Mlp<double> decoder(widths, activations);
      std::mt19937_64 rng(12);
      Vector<double> params(encoder.parameter_count() + decoder.parameter_count() + 1);
      params << encoder.initialize(neural::Initialization::kUniformFanIn, rng),
          decoder.initialize(neural::Initialization::kUniformFanIn, rng), -0.4;
      const Matrix<double> data = normal_matrix<double>(c.batch, c.k, rng);
      const Matrix<double> n = normal_matrix<double>(c.batch, c.k, rng),
                           eta = normal_matrix<double>(c.batch, c.d, rng);
      tbb::task_arena arena(threads);
      arena.execute([&] {
        const auto step = neural::fishernet_step(encoder, decoder, params, data, n, eta, 400);
        const Matrix<double> mu = encoder.forward(params.head(encoder.parameter_count()), data);
        const Vector<double> pd =
            params.segment(encoder.parameter_count(), decoder.parameter_count());
        const double noise_variance = std::exp(params[params.size() - 1]);
        const Matrix<double> residuals =
            neural::latent_residuals(decoder, pd, mu, noise_variance, n, eta);
        const auto loss = neural::fishernet_loss(encoder, decoder, params, data, residuals, 400);
        EXPECT_NEAR(step.value, loss.value, 1e-12 * std::abs(loss.value))
            << "D " << c.d << " threads " << threads;
        EXPECT_LE((step.gradient - loss.gradient).norm(), 1e-12 * loss.gradient.norm())
            << "D " << c.d << " threads " << threads;
        if (c.k > c.hidden) {  // the wide cases do take a Gram route
          const auto route = neural::latent_systems(decoder, pd, mu, noise_variance, n, eta).route;
          EXPECT_EQ(route, c.activation == Activation::kRelu
                               ? neural::LatentSystemRoute::kActiveUnitsGram
                               : neural::LatentSystemRoute::kLastLayerGram);
        }
      });
    }
}

TEST(Autoencoder, LossesReportEveryLayersGradientBlockOnceAndReadItsParametersNoMore) {
  // FisherNet's step and the VAE's loss with a callback that poisons each reported block's
  // parameters (as Adam's update would change them): the same value and gradient as without.
  // The wide FisherNet case takes the last-layer Gram route, whose work on W starts with the
  // step: it must be done before the last layer's block is reported.
  for (const bool wide : {false, true}) {
    for (const bool vae : {false, true}) {
      if (wide && vae) continue;
      const Eigen::Index d = wide ? 12 : 3, k = wide ? 300 : 6, batch = wide ? 64 : 4;
      const Mlp<double> decoder =
          wide ? Mlp<double>({d, 32, 32, k},
                             {Activation::kRelu, Activation::kRelu, Activation::kIdentity})
               : Mlp<double>({d, 7, k}, {Activation::kRelu, Activation::kIdentity});
      std::mt19937_64 rng(13);
      const Matrix<double> data = normal_matrix<double>(batch, k, rng);
      const Matrix<double> n = normal_matrix<double>(batch, k, rng),
                           eta = normal_matrix<double>(batch, d, rng);
      const Mlp<double> encoder({k, 5, vae ? 2 * d : d},
                                {Activation::kRelu, Activation::kIdentity});
      Vector<double> params(encoder.parameter_count() + decoder.parameter_count() + 1);
      params << encoder.initialize(neural::Initialization::kUniformFanIn, rng),
          decoder.initialize(neural::Initialization::kUniformFanIn, rng), -0.4;
      auto loss = [&](const Vector<double>& p, const neural::GradientBlockReady<double>& ready) {
        return vae ? neural::vae_loss(encoder, decoder, p, data, eta, 400, ready)
                   : neural::fishernet_step(encoder, decoder, p, data, n, eta, 400, ready);
      };
      const auto expected = loss(params, {});
      Vector<double> poisoned = params;
      Eigen::Index reported = 0, end = params.size() - 1;  // zeta_N (last) is not reported
      const auto fused = loss(poisoned, [&](Eigen::Index offset, const double* g,
                                            Eigen::Index size) {
        EXPECT_EQ(offset + size, end) << "blocks from the last layer back, without gaps";
        // Final when reported: Adam reads it there.
        EXPECT_EQ(Eigen::Map<const Vector<double>>(g, size),
                  expected.gradient.segment(offset, size));
        end = offset;
        reported += size;
        poisoned.segment(offset, size).setConstant(std::nan(""));
      });
      EXPECT_EQ(reported, params.size() - 1) << (vae ? "VAE" : "FisherNet");
      EXPECT_EQ(fused.value, expected.value);
      EXPECT_EQ(fused.gradient, expected.gradient);
    }
  }
}

TEST(Autoencoder, FisherNetCovariancesAreInverseMetrics) {
  const Autoencoder model(AutoencoderKind::kFisherNet, 64, 3, {32, 32});
  Vector<float> params = model.initialize(3);
  params[params.size() - 1] = -1.0F;
  const Matrix<float> x = pattern_images(5, 4);
  const Matrix<float> cov = model.latent_covariances(params, x);
  const Matrix<float> mu = model.encode_mean(params, x);
  const Eigen::Index pe = model.encoder().parameter_count();
  const auto metrics = neural::latent_metrics(
      neural::decoder_jacobians(model.decoder(),
                                Vector<float>(params.segment(pe, model.decoder().parameter_count())),
                                mu),
      std::exp(-1.0F));
  for (Eigen::Index i = 0; i < 5; ++i) {
    const Eigen::Map<const Matrix<float>> c(cov.row(i).data(), 3, 3);
    const Eigen::MatrixXd product =
        c.cast<double>() * metrics[static_cast<std::size_t>(i)].cast<double>();
    EXPECT_LE((product - Eigen::MatrixXd::Identity(3, 3)).norm(), 1e-4) << i;
  }
  // The VAE's is diagonal and positive.
  const Autoencoder vae(AutoencoderKind::kVae, 64, 3, {32});
  const Matrix<float> vc = vae.latent_covariances(vae.initialize(1), x);
  EXPECT_GT(vc(0, 0), 0.0F);
  EXPECT_EQ(vc(0, 1), 0.0F);
}

/// Trains `model` on 256 pattern images and returns the test-on-train MSE.
double overfit(AutoencoderKind kind, int epochs) {
  const Autoencoder model(kind, 64, 5, {128, 128});
  const Matrix<float> x = pattern_images(256, 21);
  neural::TrainingOptions o;
  o.epochs = epochs;
  o.batch = 32;
  o.learning_rate = 2e-3;
  o.noise_learning_rate = 2e-2;
  o.seed = 5;
  const auto state = neural::train_autoencoder(model, o, x, x,
                                               neural::start_training(model, o, x.rows()), {});
  return state.history.back().test_mse;
}

TEST(Autoencoder, OverfittingASmallSetDrivesTheErrorDown) {
  // Pixel variance of the set is about 0.04; an autoencoder that memorises reaches far below.
  const double fisher = overfit(AutoencoderKind::kFisherNet, 150);
  const double vae = overfit(AutoencoderKind::kVae, 150);
  EXPECT_LT(fisher, 0.005);
  EXPECT_LT(vae, 0.005);
  // Not trivially so: after one epoch both are far above the bound.
  EXPECT_GT(overfit(AutoencoderKind::kFisherNet, 1), 0.01);
  EXPECT_GT(overfit(AutoencoderKind::kVae, 1), 0.01);
  std::printf("test-on-train MSE after 150 epochs: FisherNet %.5f, VAE %.5f\n", fisher, vae);
}

TEST(Autoencoder, OverfittingFashionMnistImagesWithThePapersNetwork) {
  // 256 Fashion-MNIST training images, the Appendix A network with D = 20 (400 epochs reach
  // 0.006 and 0.007; at D = 5, 250 epochs reach 0.014); needs the fetched data set
  // (scripts/fetch-fashion-mnist.sh), skipped without it.
  // Minutes of training: runs only when asked for (INFIELD_LONG_TESTS=1), so that the suite stays
  // short wherever the data set has been fetched.
  const std::filesystem::path data = INFIELD_DATA_DIR "/fashion-mnist";
  if (std::getenv("INFIELD_LONG_TESTS") == nullptr)
    GTEST_SKIP() << "a long test: set INFIELD_LONG_TESTS=1 to run it";
  if (!std::filesystem::exists(data / "train-images-idx3-ubyte"))
    GTEST_SKIP() << "no Fashion-MNIST in " << data;
  const Matrix<float> x = read_image_dataset(data, "train").images.topRows(256);
  for (AutoencoderKind kind : {AutoencoderKind::kFisherNet, AutoencoderKind::kVae}) {
    const Autoencoder model(kind, 784, 20);
    neural::TrainingOptions o;
    o.epochs = 1000;
    o.batch = 64;
    o.learning_rate = 1e-3;
    o.noise_learning_rate = 1e-2;
    o.threads = 2;
    const auto state =
        neural::train_autoencoder(model, o, x, x, neural::start_training(model, o, 256), {});
    std::printf("%s: test-on-train MSE %.5f after 1000 epochs on 256 images\n",
                neural::autoencoder_kind_name(kind).c_str(), state.history.back().test_mse);
    EXPECT_LT(state.history.back().test_mse, 0.005);
  }
}

TEST(Autoencoder, ResumedTrainingContinuesExactly) {
  for (AutoencoderKind kind : {AutoencoderKind::kFisherNet, AutoencoderKind::kVae}) {
    for (int threads : {1, 2}) {
      const Autoencoder model(kind, 64, 2, {24});
      const Matrix<float> train = pattern_images(100, 7), test = pattern_images(20, 8);
      neural::TrainingOptions o;
      o.epochs = 3;
      o.batch = 16;
      o.learning_rate = 1e-3;
      o.seed = 99;
      o.threads = threads;
      const auto whole =
          neural::train_autoencoder(model, o, train, test, neural::start_training(model, o, 100), {});
      // Interrupted after epoch 1: the checkpoint written then, read back, trained on.
      const auto dir = temp_dir("resume");
      neural::TrainingOptions first = o;
      first.epochs = 1;
      neural::train_autoencoder(model, first, train, test, neural::start_training(model, o, 100),
                                {nullptr, [&](const neural::TrainingCheckpoint& c) {
                                   neural::save_checkpoint(dir / "checkpoint.npy", c);
                                 }});
      const auto resumed = neural::train_autoencoder(
          model, o, train, test, neural::load_checkpoint(dir / "checkpoint.npy"), {});
      EXPECT_EQ(resumed.params, whole.params) << neural::autoencoder_kind_name(kind) << threads;
      EXPECT_EQ(resumed.network_v, whole.network_v);
      EXPECT_EQ(resumed.steps, whole.steps);
      ASSERT_EQ(resumed.history.size(), 3u);
      EXPECT_EQ(resumed.history[2].test_mse, whole.history[2].test_mse);
      EXPECT_EQ(resumed.history[2].train_loss, whole.history[2].train_loss);
    }
  }
}

TEST(Autoencoder, ThreadsAndEveryWayOfApplyingAdamChangeOnlyTheSummationOrder) {
  // One thread: Adam fused into the backward pass (FisherNet, VAE) or over the whole vector
  // after it (the CVAE reports no blocks); two threads splitting the products: the same, with
  // sums in another order; two threads on batch chunks: Adam::step on the summed gradient. Same
  // noise and shuffle throughout: relative differences of float rounding.
  const Matrix<float> train = pattern_images(128, 11);
  for (AutoencoderKind kind : {AutoencoderKind::kFisherNet, AutoencoderKind::kVae,
                               AutoencoderKind::kCvae}) {
    const Autoencoder model(kind, 64, 3, {32});
    neural::TrainingOptions o;
    o.epochs = 1;
    o.batch = 64;
    o.learning_rate = 1e-3;
    auto train_with = [&](int threads, neural::TrainingOptions::Parallelism parallelism) {
      o.threads = threads;
      o.parallelism = parallelism;
      return neural::train_autoencoder(model, o, train, train,
                                       neural::start_training(model, o, 128), {});
    };
    using P = neural::TrainingOptions::Parallelism;
    const auto one = train_with(1, P::kAuto);
    const auto initial = neural::start_training(model, o, 128).params;
    EXPECT_EQ(one.steps, 2);
    EXPECT_GT((one.params - initial).norm(), 0.0F);
    for (P parallelism : {P::kProducts, P::kBatch}) {
      const auto two = train_with(2, parallelism);
      const std::string what = std::string(neural::autoencoder_kind_name(kind)) +
                               (parallelism == P::kBatch ? ", batch chunks" : ", products");
      EXPECT_NEAR(one.history[0].train_loss, two.history[0].train_loss,
                  1e-5 * std::abs(one.history[0].train_loss))
          << what;
      EXPECT_LE((one.params - two.params).norm(), 1e-4 * one.params.norm()) << what;
      EXPECT_LE((one.network_v - two.network_v).norm(), 1e-4 * one.network_v.norm()) << what;
    }
  }
}

TEST(Autoencoder, SplittingTheProductsChangesOnlyRounding) {
  // Wide enough layers that the products are split (over 2e6 multiply-adds). Eigen blocks the
  // sums by the product's shape, so halves of a product round differently: equal to float
  // precision, not bit for bit.
  for (AutoencoderKind kind : {AutoencoderKind::kVae, AutoencoderKind::kFisherNet}) {
    const Autoencoder model(kind, 64, 3, {200, 200});
    const Matrix<float> train = pattern_images(256, 9);
    neural::TrainingOptions o;
    o.epochs = 1;
    o.batch = 128;
    o.learning_rate = 1e-3;
    o.parallelism = neural::TrainingOptions::Parallelism::kProducts;
    const auto one =
        neural::train_autoencoder(model, o, train, train, neural::start_training(model, o, 256), {});
    o.threads = 2;
    const auto two =
        neural::train_autoencoder(model, o, train, train, neural::start_training(model, o, 256), {});
    EXPECT_LE((one.params - two.params).norm(), 1e-4 * one.params.norm())
        << neural::autoencoder_kind_name(kind);
    EXPECT_NEAR(one.history[0].train_loss, two.history[0].train_loss,
                1e-5 * std::abs(one.history[0].train_loss));
  }
}

TEST(Autoencoder, CheckpointsFromOtherRunsOrDamagedFilesAreRejected) {
  const Autoencoder model(AutoencoderKind::kFisherNet, 64, 2, {24});
  neural::TrainingOptions o;
  o.seed = 4;
  const auto state = neural::start_training(model, o, 100);
  const auto dir = temp_dir("damaged");
  const auto path = dir / "checkpoint.npy";
  neural::save_checkpoint(path, state);
  const auto loaded = neural::load_checkpoint(path);
  EXPECT_EQ(loaded.params, state.params);
  EXPECT_NO_THROW(neural::check_checkpoint_matches(loaded, model, o, 100));
  // Another model, latent size, seed, thread count or data set.
  EXPECT_THROW(neural::check_checkpoint_matches(
                   loaded, Autoencoder(AutoencoderKind::kVae, 64, 2, {24}), o, 100),
               InvalidArgument);
  EXPECT_THROW(neural::check_checkpoint_matches(
                   loaded, Autoencoder(AutoencoderKind::kFisherNet, 64, 3, {24}), o, 100),
               InvalidArgument);
  neural::TrainingOptions other = o;
  other.seed = 5;
  EXPECT_THROW(neural::check_checkpoint_matches(loaded, model, other, 100), InvalidArgument);
  other = o;
  other.threads = 2;
  EXPECT_THROW(neural::check_checkpoint_matches(loaded, model, other, 100), InvalidArgument);
  EXPECT_THROW(neural::check_checkpoint_matches(loaded, model, o, 101), InvalidArgument);
  // Truncated, with a non-finite parameter, not a checkpoint at all.
  NpyArray raw = read_npy(path);
  write_npy(dir / "truncated.npy", {raw.values.size() - 10}, raw.values.head(raw.values.size() - 10));
  EXPECT_THROW(neural::load_checkpoint(dir / "truncated.npy"), FileError);
  raw.values[40] = std::nan("");
  write_npy(dir / "nan.npy", raw.shape, raw.values);
  EXPECT_THROW(neural::load_checkpoint(dir / "nan.npy"), FileError);
  write_npy(dir / "other.npy", {3}, Eigen::Vector3d(1, 2, 3));
  EXPECT_THROW(neural::load_checkpoint(dir / "other.npy"), FileError);
  std::ofstream(dir / "garbage.npy") << "not a file of numbers";
  EXPECT_THROW(neural::load_checkpoint(dir / "garbage.npy"), FileError);
}

TEST(Autoencoder, DivergenceIsReportedNotHidden) {
  const Autoencoder model(AutoencoderKind::kVae, 64, 2, {16});
  Matrix<float> train = pattern_images(32, 3);
  neural::TrainingOptions o;
  o.batch = 16;
  auto state = neural::start_training(model, o, 32);
  state.params[0] = 1e30F;  // overflows in the first layer
  EXPECT_THROW(neural::train_autoencoder(model, o, train, train, state, {}), std::runtime_error);
  // A step that throws zeta_N out of exp's float range is divergence too, for FisherNet (whose
  // metric needs a positive noise variance) and the VAE, not an invalid argument.
  for (const AutoencoderKind kind : {AutoencoderKind::kFisherNet, AutoencoderKind::kVae}) {
    const Autoencoder m(kind, 64, 2, {16});
    for (const float zeta : {-200.0F, 200.0F}) {
      auto s = neural::start_training(m, o, 32);
      s.params[s.params.size() - 1] = zeta;
      try {
        neural::train_autoencoder(m, o, train, train, s, {});
        ADD_FAILURE() << "no divergence reported for zeta_N = " << zeta;
      } catch (const InvalidArgument& e) {
        ADD_FAILURE() << "divergence reported as bad input: " << e.what();
      } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("noise variance"), std::string::npos) << e.what();
      }
    }
  }
  train(0, 0) = std::nanf("");
  EXPECT_THROW(neural::train_autoencoder(model, o, train, train,
                                         neural::start_training(model, o, 32), {}),
               InvalidArgument);
}

}  // namespace
}  // namespace infield

#include "infield/models/autoencoder.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <Eigen/Cholesky>
#include <algorithm>
#include <chrono>
#include <memory>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "infield/error.h"
#include "infield/field.h"
#include "infield/npy.h"
#include "checkpoint_reader.h"
#include "random_streams.h"

namespace infield::neural {
namespace {

/// Rows per block of training noise: each block has its own generator, so that the noise does not
/// depend on how the batch is split over threads.
constexpr Eigen::Index kNoiseBlockRows = 16;

using detail::mix;

std::vector<Eigen::Index> encoder_widths(AutoencoderKind kind, Eigen::Index data_size,
                                         Eigen::Index latent,
                                         const std::vector<Eigen::Index>& hidden) {
  std::vector<Eigen::Index> w{data_size};
  w.insert(w.end(), hidden.begin(), hidden.end());
  w.push_back(kind == AutoencoderKind::kVae ? 2 * latent : latent);
  return w;
}

std::vector<Eigen::Index> decoder_widths(Eigen::Index data_size, Eigen::Index latent,
                                         const std::vector<Eigen::Index>& hidden) {
  std::vector<Eigen::Index> w{latent};
  w.insert(w.end(), hidden.begin(), hidden.end());
  w.push_back(data_size);
  return w;
}

std::vector<Activation> relu_then_linear(std::size_t hidden_layers) {
  std::vector<Activation> a(hidden_layers, Activation::kRelu);
  a.push_back(Activation::kIdentity);
  return a;
}

/// Splits [0, rows) into `parts` ranges of whole chunks of `granularity` rows; runs f(part, begin,
/// end) for each on the calling arena, one task per part.
template <typename F>
void for_each_part(Eigen::Index rows, Eigen::Index granularity, int parts, F&& f) {
  const Eigen::Index blocks = (rows + granularity - 1) / granularity;
  const int n = static_cast<int>(std::max<Eigen::Index>(1, std::min<Eigen::Index>(parts, blocks)));
  auto range = [&](int p) {
    const Eigen::Index b0 = blocks * p / n, b1 = blocks * (p + 1) / n;
    return std::pair{std::min(rows, b0 * granularity), std::min(rows, b1 * granularity)};
  };
  if (n == 1) {
    f(0, Eigen::Index{0}, rows);
    return;
  }
  tbb::parallel_for(0, n, 1, [&](int p) {
    const auto [begin, end] = range(p);
    f(p, begin, end);
  }, tbb::simple_partitioner());
}

constexpr double kCheckpointTag = 46110.0;  // "FisherNet checkpoint" tag in the first entry
constexpr double kCheckpointVersion = 1.0;

}  // namespace

std::string autoencoder_kind_name(AutoencoderKind kind) {
  switch (kind) {
    case AutoencoderKind::kFisherNet: return "fishernet";
    case AutoencoderKind::kVae: return "vae";
    case AutoencoderKind::kCvae: return "cvae";
  }
  return "?";
}

AutoencoderKind parse_autoencoder_kind(const std::string& name) {
  if (name == "fishernet") return AutoencoderKind::kFisherNet;
  if (name == "vae") return AutoencoderKind::kVae;
  if (name == "cvae") return AutoencoderKind::kCvae;
  throw InvalidArgument("parse_autoencoder_kind: unknown model '" + name +
                        "' (expected fishernet, vae or cvae)");
}

namespace {

template <typename T, typename Net>
FisherNetLoss<T> vae_loss_impl(const Net& encoder, const Net& decoder, const Vector<T>& params,
                               const Matrix<T>& data, const Matrix<T>& eps,
                               Eigen::Index dataset_size, const GradientBlockReady<T>& ready,
                               T* gradient_storage) {
  constexpr std::string_view fn = "vae_loss";
  const Eigen::Index pe = encoder.parameter_count(), pd = decoder.parameter_count();
  const Eigen::Index d = decoder.input_size();
  check_argument(params.size() == pe + pd + 1, fn, "params",
                 "must hold the encoder's, the decoder's parameters and zeta_N");
  check_argument(encoder.output_size() == 2 * d, fn, "encoder",
                 "must output [mean, log variance] (twice the latent size)");
  check_argument(data.cols() == encoder.input_size() && data.cols() == decoder.output_size(), fn,
                 "data", "must have the encoder's input size (= the decoder's output size)");
  check_argument(eps.rows() == data.rows() && eps.cols() == d, fn, "eps",
                 "must be batch x latent size");
  check_argument(dataset_size >= data.rows(), fn, "dataset_size", "must be >= the batch size");
  const auto pen = params.head(pe);
  const auto pdec = params.segment(pe, pd);
  const double zeta = static_cast<double>(params[pe + pd]);
  const auto batch = static_cast<double>(data.rows());
  const auto k = static_cast<double>(data.cols());
  const auto p = static_cast<double>(dataset_size);

  typename Net::Cache enc_cache, dec_cache;
  const Matrix<T> h = encoder.forward(pen, data, &enc_cache);
  const auto mu = h.leftCols(d).array();
  const auto log_var = h.rightCols(d).array();
  const Matrix<T> sd = (T(0.5) * log_var).exp().matrix();
  const Matrix<T> z = (mu + sd.array() * eps.array()).matrix();
  const Matrix<T> r = data - decoder.forward(pdec, z, &dec_cache);
  const double r2 = static_cast<double>(r.squaredNorm());
  const double kl =
      0.5 * static_cast<double>((mu.square() + log_var.exp() - log_var - T(1)).sum());
  const double inv_noise = std::exp(-zeta);

  FisherNetLoss<T> out;
  out.value = kl + 0.5 * (batch * zeta * zeta / p + batch * k * zeta + inv_noise * r2);
  out.reconstruction_error = r2 / (batch * k);
  // Every entry is written below.
  auto all_gradient = out.gradient_destination(gradient_storage, params.size());
  // One network's backward pass into its part of the gradient (overwritten), reporting its
  // layers' blocks to `ready` at offset `base`; Sequential (the CVAE) reports none.
  auto backward = [&](const Net& net, Eigen::Index base, Eigen::Index count, const auto& net_params,
                      const typename Net::Cache& cache, const Matrix<T>& u, bool input_gradient) {
    auto gradient = all_gradient.segment(base, count);
    if constexpr (std::is_same_v<Net, Mlp<T>>)
      return net.vjp(net_params, cache, u, gradient, input_gradient, GradientWrite::kOverwrite,
                     with_base_offset(ready, base));
    else
      return net.vjp(net_params, cache, u, gradient, input_gradient, GradientWrite::kOverwrite);
  };
  const Matrix<T> gz =
      backward(decoder, pe, pd, pdec, dec_cache, (-static_cast<T>(inv_noise)) * r, true);
  Matrix<T> gh(h.rows(), 2 * d);
  gh.leftCols(d) = (mu + gz.array()).matrix();
  gh.rightCols(d) =
      (T(0.5) * (log_var.exp() - T(1)) + T(0.5) * gz.array() * eps.array() * sd.array()).matrix();
  backward(encoder, 0, pe, pen, enc_cache, gh, false);
  all_gradient[pe + pd] =
      static_cast<T>(batch * zeta / p + 0.5 * batch * k - 0.5 * inv_noise * r2);
  return out;
}

}  // namespace

template <typename T>
FisherNetLoss<T> vae_loss(const Mlp<T>& encoder, const Mlp<T>& decoder, const Vector<T>& params,
                          const Matrix<T>& data, const Matrix<T>& eps, Eigen::Index dataset_size,
                          const GradientBlockReady<T>& ready, T* gradient_storage) {
  return vae_loss_impl(encoder, decoder, params, data, eps, dataset_size, ready,
                       gradient_storage);
}

template <typename T>
FisherNetLoss<T> vae_loss(const Sequential<T>& encoder, const Sequential<T>& decoder,
                          const Vector<T>& params, const Matrix<T>& data, const Matrix<T>& eps,
                          Eigen::Index dataset_size) {
  return vae_loss_impl(encoder, decoder, params, data, eps, dataset_size, {},
                       static_cast<T*>(nullptr));
}

template FisherNetLoss<float> vae_loss(const Sequential<float>&, const Sequential<float>&,
                                       const Vector<float>&, const Matrix<float>&,
                                       const Matrix<float>&, Eigen::Index);
template FisherNetLoss<double> vae_loss(const Sequential<double>&, const Sequential<double>&,
                                        const Vector<double>&, const Matrix<double>&,
                                        const Matrix<double>&, Eigen::Index);
template FisherNetLoss<float> vae_loss(const Mlp<float>&, const Mlp<float>&, const Vector<float>&,
                                       const Matrix<float>&, const Matrix<float>&, Eigen::Index,
                                       const GradientBlockReady<float>&, float*);
template FisherNetLoss<double> vae_loss(const Mlp<double>&, const Mlp<double>&,
                                        const Vector<double>&, const Matrix<double>&,
                                        const Matrix<double>&, Eigen::Index,
                                        const GradientBlockReady<double>&, double*);

Autoencoder::Autoencoder(AutoencoderKind kind, Eigen::Index data_size, Eigen::Index latent,
                         std::vector<Eigen::Index> hidden)
    : kind_(kind), data_size_(data_size), latent_(latent), hidden_(std::move(hidden)) {
  check_argument(data_size > 0 && latent > 0 && !hidden_.empty(), "Autoencoder", "sizes",
                 "data size and latent size must be positive and there must be at least one "
                 "hidden layer");
  if (kind == AutoencoderKind::kCvae) {
    const auto side = static_cast<Eigen::Index>(std::lround(std::sqrt(double(data_size))));
    check_argument(side * side == data_size && side % 4 == 0, "Autoencoder", "data_size",
                   "the CVAE needs square images with a side divisible by 4 (got " +
                       std::to_string(data_size) + " pixels)");
    conv_encoder_.emplace(cvae_encoder_layers(side, side, latent));
    conv_decoder_.emplace(cvae_decoder_layers(side, side, latent));
    encoder_count_ = conv_encoder_->parameter_count();
    decoder_count_ = conv_decoder_->parameter_count();
  } else {
    encoder_.emplace(encoder_widths(kind, data_size, latent, hidden_),
                     relu_then_linear(hidden_.size()));
    decoder_.emplace(decoder_widths(data_size, latent, hidden_), relu_then_linear(hidden_.size()));
    encoder_count_ = encoder_->parameter_count();
    decoder_count_ = decoder_->parameter_count();
  }
}

const Mlp<float>& Autoencoder::encoder() const {
  check_argument(encoder_.has_value(), "Autoencoder::encoder", "kind", "the CVAE has no dense encoder");
  return *encoder_;
}
const Mlp<float>& Autoencoder::decoder() const {
  check_argument(decoder_.has_value(), "Autoencoder::decoder", "kind", "the CVAE has no dense decoder");
  return *decoder_;
}
const Sequential<float>& Autoencoder::conv_encoder() const {
  check_argument(conv_encoder_.has_value(), "Autoencoder::conv_encoder", "kind", "only the CVAE has one");
  return *conv_encoder_;
}
const Sequential<float>& Autoencoder::conv_decoder() const {
  check_argument(conv_decoder_.has_value(), "Autoencoder::conv_decoder", "kind", "only the CVAE has one");
  return *conv_decoder_;
}

Vector<float> Autoencoder::initialize(std::uint64_t seed) const {
  std::mt19937_64 rng(mix(seed, 0x1a17));
  Vector<float> p(parameter_count());
  if (kind_ == AutoencoderKind::kCvae) {
    p.head(encoder_count_) = conv_encoder_->initialize(rng);
    p.segment(encoder_count_, decoder_count_) = conv_decoder_->initialize(rng);
  } else {
    p.head(encoder_count_) = encoder_->initialize(Initialization::kUniformFanIn, rng);
    p.segment(encoder_count_, decoder_count_) =
        decoder_->initialize(Initialization::kUniformFanIn, rng);
  }
  p[parameter_count() - 1] = 0.0F;
  return p;
}

FisherNetLoss<float> Autoencoder::loss(const Vector<float>& params, const Matrix<float>& data,
                                       const Matrix<float>& n, const Matrix<float>& eta,
                                       Eigen::Index dataset_size,
                                       const GradientBlockReady<float>& ready,
                                       float* gradient_storage) const {
  switch (kind_) {
    case AutoencoderKind::kFisherNet:
      return fishernet_step(*encoder_, *decoder_, params, data, n, eta, dataset_size, ready,
                            gradient_storage);
    case AutoencoderKind::kVae:
      return vae_loss(*encoder_, *decoder_, params, data, eta, dataset_size, ready,
                      gradient_storage);
    case AutoencoderKind::kCvae:
      return vae_loss_impl(*conv_encoder_, *conv_decoder_, params, data, eta, dataset_size, {},
                           gradient_storage);
  }
  throw std::logic_error("Autoencoder::loss: unknown kind");
}

Matrix<float> Autoencoder::encoder_output(const Vector<float>& params,
                                          const Matrix<float>& data) const {
  check_argument(params.size() == parameter_count(), "Autoencoder", "params",
                 "must have parameter_count() entries");
  if (conv_encoder_) return conv_encoder_->forward(params.head(encoder_count_), data);
  return encoder_->forward(params.head(encoder_count_), data);
}

Matrix<float> Autoencoder::encode_mean(const Vector<float>& params,
                                       const Matrix<float>& data) const {
  Matrix<float> h = encoder_output(params, data);
  if (kind_ != AutoencoderKind::kFisherNet) return h.leftCols(latent_);
  return h;
}

Matrix<float> Autoencoder::latent_covariances(const Vector<float>& params,
                                              const Matrix<float>& data) const {
  const Eigen::Index d = latent_;
  Matrix<float> out(data.rows(), d * d);
  const Matrix<float> h = encoder_output(params, data);
  if (kind_ != AutoencoderKind::kFisherNet) {
    out.setZero();
    for (Eigen::Index i = 0; i < data.rows(); ++i)
      for (Eigen::Index a = 0; a < d; ++a) out(i, a * d + a) = std::exp(h(i, d + a));
    return out;
  }
  const auto pdec = params.segment(encoder_count_, decoder_count_);
  const float noise_variance = std::exp(params[parameter_count() - 1]);
  constexpr Eigen::Index kChunk = 256;  // bounds the memory of the per-datum Jacobians
  for (Eigen::Index start = 0; start < data.rows(); start += kChunk) {
    const Eigen::Index rows = std::min(kChunk, data.rows() - start);
    const auto metrics = latent_systems(*decoder_, pdec, Matrix<float>(h.middleRows(start, rows)),
                                        noise_variance, Matrix<float>(), Matrix<float>())
                             .metrics;
    for (Eigen::Index i = 0; i < rows; ++i) {
      // In double: M_i can be ill-conditioned when the noise is small.
      const Eigen::MatrixXd m = metrics[static_cast<std::size_t>(i)].cast<double>();
      const Eigen::MatrixXd inv = m.llt().solve(Eigen::MatrixXd::Identity(d, d));
      Eigen::Map<Matrix<float>>(out.row(start + i).data(), d, d) = inv.cast<float>();
    }
  }
  return out;
}

Matrix<float> Autoencoder::decode(const Vector<float>& params, const Matrix<float>& z) const {
  check_argument(params.size() == parameter_count(), "Autoencoder::decode", "params",
                 "must have parameter_count() entries");
  const auto pdec = params.segment(encoder_count_, decoder_count_);
  if (conv_decoder_) return conv_decoder_->forward(pdec, z);
  return decoder_->forward(pdec, z);
}

double Autoencoder::noise_std(const Vector<float>& params) const {
  return std::exp(0.5 * static_cast<double>(params[parameter_count() - 1]));
}

double test_mse(const Autoencoder& model, const Vector<float>& params, const Matrix<float>& data,
                int threads, const Communicator& communicator) {
  check_argument(data.rows() > 0 && data.cols() == model.data_size(), "test_mse", "data",
                 "must have rows of the model's data size");
  constexpr Eigen::Index kChunk = 500;
  const auto chunks = static_cast<int>((data.rows() + kChunk - 1) / kChunk);
  // Over ranks each evaluates its share of the chunks; the chunk sums are gathered and added in
  // chunk order, so the result is the same bits for any number of ranks.
  const auto [first, end] = communicator.share(chunks);
  std::vector<Eigen::VectorXd> sums(static_cast<std::size_t>(end - first), Eigen::VectorXd(1));
  tbb::task_arena arena(std::max(1, threads));
  arena.execute([&] {
    tbb::parallel_for(first, end, [&](int c) {
      const Eigen::Index start = c * kChunk, rows = std::min(kChunk, data.rows() - start);
      const Matrix<float> x = data.middleRows(start, rows);
      const Matrix<float> f = model.decode(params, model.encode_mean(params, x));
      sums[static_cast<std::size_t>(c - first)][0] = static_cast<double>((x - f).squaredNorm());
    });
  });
  double total = 0.0;
  for (const auto& s : communicator.all_gather(sums, 1)) total += s[0];
  return total / static_cast<double>(data.rows() * data.cols());
}

// ------------------------------------------------------------------------------ checkpoints

void save_checkpoint(const std::filesystem::path& path, const TrainingCheckpoint& c) {
  std::vector<double> v{kCheckpointTag,
                        kCheckpointVersion,
                        static_cast<double>(static_cast<int>(c.kind)),
                        static_cast<double>(c.data_size),
                        static_cast<double>(c.latent),
                        static_cast<double>(c.hidden.size())};
  for (Eigen::Index h : c.hidden) v.push_back(static_cast<double>(h));
  // The seed in two exact 32-bit halves (a double holds 53 bits).
  v.push_back(static_cast<double>(c.options.seed >> 32));
  v.push_back(static_cast<double>(c.options.seed & 0xffffffffULL));
  for (double x : {static_cast<double>(c.options.batch), c.options.learning_rate,
                   c.options.noise_learning_rate, static_cast<double>(c.options.threads),
                   static_cast<double>(c.options.epochs), static_cast<double>(c.train_size),
                   static_cast<double>(c.epochs_done), static_cast<double>(c.steps),
                   static_cast<double>(c.params.size())})
    v.push_back(x);
  for (const Vector<float>* a : {&c.params, &c.network_m, &c.network_v, &c.noise_m, &c.noise_v})
    v.insert(v.end(), a->data(), a->data() + a->size());
  v.push_back(static_cast<double>(c.history.size()));
  for (const EpochRecord& r : c.history)
    for (double x : {static_cast<double>(r.epoch), r.train_loss, r.test_mse, r.noise_std,
                     r.seconds, r.images_per_s})
      v.push_back(x);
  write_npy(path, {static_cast<Eigen::Index>(v.size())},
            Eigen::Map<const Eigen::VectorXd>(v.data(), static_cast<Eigen::Index>(v.size())));
}

TrainingCheckpoint load_checkpoint(const std::filesystem::path& path) {
  detail::CheckpointReader in(path, "load_checkpoint: " + path.string() + ":");
  if (in.remaining() < 2 || in.next("tag") != kCheckpointTag)
    in.fail("is not an infield FisherNet/VAE checkpoint");
  const double version = in.next("version");
  if (version != kCheckpointVersion)
    in.fail("has format version " + std::to_string(version) + ", this build reads " +
            std::to_string(kCheckpointVersion));
  TrainingCheckpoint c;
  c.kind = static_cast<AutoencoderKind>(in.count("model kind", 2));
  c.data_size = in.count("data size", 1e8);
  c.latent = in.count("latent size", 1e6);
  const Eigen::Index layers = in.count("hidden layer count", 100);
  for (Eigen::Index l = 0; l < layers; ++l) c.hidden.push_back(in.count("hidden width", 1e6));
  const auto seed_high = static_cast<std::uint64_t>(in.count("seed", 4294967295.0));
  const auto seed_low = static_cast<std::uint64_t>(in.count("seed", 4294967295.0));
  c.options.seed = (seed_high << 32) | seed_low;
  c.options.batch = in.count("batch size", 1e9);
  c.options.learning_rate = in.next("learning rate");
  c.options.noise_learning_rate = in.next("noise learning rate");
  c.options.threads = static_cast<int>(in.count("thread count", 1e6));
  c.options.epochs = static_cast<int>(in.count("epoch count", 1e9));
  c.train_size = in.count("training set size", 1e12);
  c.epochs_done = static_cast<int>(in.count("epochs done", 1e9));
  c.steps = in.count("step count", 1e15);
  const Eigen::Index p = in.count("parameter count", 1e10);
  if (p < 2) in.fail("has too few parameters");
  c.params = in.floats(p, "parameters");
  c.network_m = in.floats(p - 1, "moments");
  c.network_v = in.floats(p - 1, "moments");
  c.noise_m = in.floats(1, "moments");
  c.noise_v = in.floats(1, "moments");
  const Eigen::Index records = in.count("history length", 1e9);
  for (Eigen::Index r = 0; r < records; ++r) {
    EpochRecord e;
    e.epoch = static_cast<int>(in.count("epoch number", 1e9));
    e.train_loss = in.next("train loss");
    e.test_mse = in.next("test MSE");
    e.noise_std = in.next("noise std");
    e.seconds = in.next("epoch time");
    e.images_per_s = in.next("throughput");
    c.history.push_back(e);
  }
  in.expect_end();
  if (static_cast<Eigen::Index>(c.history.size()) != c.epochs_done)
    in.fail("has a history that does not match its epoch count");
  const Autoencoder model(c.kind, c.data_size, c.latent, c.hidden);
  if (model.parameter_count() != p)
    in.fail("has " + std::to_string(p) + " parameters, its model has " +
            std::to_string(model.parameter_count()));
  return c;
}

void check_checkpoint_matches(const TrainingCheckpoint& c, const Autoencoder& model,
                              const TrainingOptions& o, Eigen::Index train_size) {
  auto differ = [](const std::string& what, const std::string& theirs, const std::string& ours) {
    throw InvalidArgument("the checkpoint is from another run: its " + what + " is " + theirs +
                          ", this run's is " + ours);
  };
  auto hidden = [](const std::vector<Eigen::Index>& h) {
    std::string s;
    for (Eigen::Index x : h) s += (s.empty() ? "" : ",") + std::to_string(x);
    return s;
  };
  if (c.kind != model.kind())
    differ("model", autoencoder_kind_name(c.kind), autoencoder_kind_name(model.kind()));
  if (c.latent != model.latent())
    differ("latent size", std::to_string(c.latent), std::to_string(model.latent()));
  if (c.data_size != model.data_size())
    differ("data size", std::to_string(c.data_size), std::to_string(model.data_size()));
  if (c.hidden != model.hidden()) differ("hidden widths", hidden(c.hidden), hidden(model.hidden()));
  if (c.options.seed != o.seed)
    differ("seed", std::to_string(c.options.seed), std::to_string(o.seed));
  if (c.options.batch != o.batch)
    differ("batch size", std::to_string(c.options.batch), std::to_string(o.batch));
  if (c.options.learning_rate != o.learning_rate)
    differ("learning rate", std::to_string(c.options.learning_rate),
           std::to_string(o.learning_rate));
  if (c.options.noise_learning_rate != o.noise_learning_rate)
    differ("noise learning rate", std::to_string(c.options.noise_learning_rate),
           std::to_string(o.noise_learning_rate));
  if (c.options.threads != o.threads)
    differ("thread count (results depend on it through the summation order)",
           std::to_string(c.options.threads), std::to_string(o.threads));
  if (c.train_size != train_size)
    differ("training set size", std::to_string(c.train_size), std::to_string(train_size));
}

// ------------------------------------------------------------------------------ training

TrainingCheckpoint start_training(const Autoencoder& model, const TrainingOptions& options,
                                  Eigen::Index train_size) {
  TrainingCheckpoint c;
  c.kind = model.kind();
  c.data_size = model.data_size();
  c.latent = model.latent();
  c.hidden = model.hidden();
  c.options = options;
  c.train_size = train_size;
  c.params = model.initialize(options.seed);
  const Eigen::Index p = model.parameter_count();
  c.network_m = c.network_v = Vector<float>::Zero(p - 1);
  c.noise_m = c.noise_v = Vector<float>::Zero(1);
  return c;
}

TrainingCheckpoint train_autoencoder(const Autoencoder& model, const TrainingOptions& options,
                                     const Matrix<float>& train, const Matrix<float>& test,
                                     TrainingCheckpoint state, const TrainingCallbacks& callbacks) {
  constexpr std::string_view fn = "train_autoencoder";
  check_argument(options.epochs >= 1 && options.batch >= 1 && options.threads >= 1 &&
                     options.learning_rate > 0 && options.noise_learning_rate >= 0,
                 fn, "options",
                 "need epochs, batch and threads >= 1 and positive learning rates");
  check_argument(train.rows() >= 1 && train.cols() == model.data_size(), fn, "train",
                 "must have rows of the model's data size");
  check_argument(test.rows() >= 1 && test.cols() == model.data_size(), fn, "test",
                 "must have rows of the model's data size");
  check_argument(all_finite(train) && all_finite(test), fn, "train, test",
                 "must be finite");
  check_checkpoint_matches(state, model, options, train.rows());
  const Eigen::Index p = model.parameter_count(), n_train = train.rows(), k = model.data_size();
  const Eigen::Index d = model.latent(), batch = options.batch;
  const bool fisher = model.kind() == AutoencoderKind::kFisherNet;

  Adam<float> network_adam(p - 1, {static_cast<float>(options.learning_rate)});
  Adam<float> noise_adam(1, {static_cast<float>(options.noise_learning_rate > 0
                                                    ? options.noise_learning_rate
                                                    : options.learning_rate)});
  network_adam.restore(state.network_m, state.network_v, state.steps);
  noise_adam.restore(state.noise_m, state.noise_v, state.steps);
  Vector<float>& params = state.params;

  tbb::task_arena arena(options.threads);
  const bool batch_parallel =
      options.threads > 1 && options.parallelism == TrainingOptions::Parallelism::kBatch;
  std::vector<std::unique_ptr<tbb::task_arena>> chunk_arenas;
  for (int i = 0; i < options.threads; ++i)
    chunk_arenas.push_back(std::make_unique<tbb::task_arena>(1));
  const Eigen::Index batches = (n_train + batch - 1) / batch;
  std::vector<Eigen::Index> order(static_cast<std::size_t>(n_train));
  Matrix<float> x(batch, k), n(fisher ? batch : 0, k), eta(batch, d);
  std::vector<FisherNetLoss<float>> parts(static_cast<std::size_t>(options.threads));
  Vector<float> gradient(p);
  const Communicator& communicator = options.communicator;
  const bool distributed = communicator.size() > 1;
  // Over ranks, the gradient is reduce-scattered and each rank runs Adam on its shard of the
  // network's parameters only, then the parameters are all-gathered (ZeRO stage 1): every rank
  // would otherwise repeat the whole update. zeta_N's entry rides along unused: its gradient is
  // summed in double with the loss, and every rank runs its Adam.
  ShardedReduction exchange(communicator, p, options.exchange);
  // On one machine the backward pass writes the gradient straight into the exchange's shared
  // memory (no copy). The parameters stay in each rank's own memory: read in place from shared
  // memory, where their owner writes them, the forward pass was 4% slower (measured on 2 ranks).
  float* const contribution = distributed ? exchange.contribution_buffer() : nullptr;
  Vector<float> noise_gradient(1);  // over ranks, the batch's, summed

  for (int epoch = state.epochs_done + 1; epoch <= options.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    std::iota(order.begin(), order.end(), Eigen::Index{0});
    std::mt19937_64 shuffle_rng(mix(options.seed, 0x5eed, static_cast<std::uint64_t>(epoch)));
    std::shuffle(order.begin(), order.end(), shuffle_rng);
    double loss_sum = 0.0;
    Eigen::Index seen = 0;
    for (Eigen::Index b = 0; b < batches; ++b) {
      const Eigen::Index rows = std::min(batch, n_train - b * batch);
      if (x.rows() != rows) {
        x.resize(rows, k);
        n.resize(fisher ? rows : 0, k);
        eta.resize(rows, d);
      }
      // Over ranks, each takes a contiguous share of the batch's rows (and copies only those); the
      // noise is drawn for the whole batch on every rank (from the same streams), so each row gets
      // the noise it would get in one process.
      const auto [row_begin, row_end] = communicator.share(static_cast<int>(rows));
      const Eigen::Index local_rows = row_end - row_begin;
      for (Eigen::Index i = row_begin; i < row_end; ++i)
        x.row(i) = train.row(order[static_cast<std::size_t>(b * batch + i)]);
      const std::uint64_t step = static_cast<std::uint64_t>(state.steps) + 1;
      // A step too large for zeta_N makes exp(zeta_N) underflow to 0 or overflow (in float from
      // |zeta_N| of about 90): the loss is then undefined, which is divergence, not bad input.
      const float noise_variance = std::exp(params[p - 1]);
      if (!(noise_variance > 0.0F && std::isfinite(noise_variance))) {
        exchange.release();  // every rank holds the same parameters and stops here alike
        throw std::runtime_error(
            "training diverged: the noise variance exp(zeta_N) = exp(" +
            std::to_string(params[p - 1]) + ") is out of float range at epoch " +
            std::to_string(epoch) + ", step " + std::to_string(step) +
            " (try a smaller learning rate or noise learning rate)");
      }
      // Threads work inside each product (over output columns) for the whole batch, or, with
      // batch_parallel, on one chunk of the batch each.
      const int chunks = batch_parallel ? options.threads : 1;
      // With the whole batch in one part (and one rank), Adam updates each layer as soon as the
      // backward pass has finished its gradient (still in cache; the pass reads those weights no
      // more). The parameters thus change before the divergence check below: a throw discards
      // `state`, this function's own copy, so the caller keeps the last good checkpoint.
      const float scale = 1.0F / static_cast<float>(rows);  // the batch mean
      network_adam.begin_step();
      Eigen::Index fused_entries = 0;
      GradientBlockReady<float> adam_on_block;
      if (chunks == 1 && !distributed)
        adam_on_block = [&](Eigen::Index offset, const float* g, Eigen::Index size) {
          network_adam.update_block(params.data() + offset, g, offset, size, scale);
          fused_entries += size;
        };
      // Over ranks on one machine, the whole gradient goes where the other ranks read it.
      const bool into_contribution = chunks == 1 && contribution != nullptr;
      arena.execute([&] {
        // The noise blocks that hold this rank's rows (all of them in one process).
        const Eigen::Index first_block = row_begin / kNoiseBlockRows;
        const Eigen::Index end_block =
            local_rows == 0 ? first_block : (row_end - 1) / kNoiseBlockRows + 1;
        tbb::parallel_for(first_block, end_block, [&](Eigen::Index block) {
          const Eigen::Index r0 = block * kNoiseBlockRows;
          std::mt19937_64 rng(mix(options.seed, step, static_cast<std::uint64_t>(r0)));
          const Eigen::Index r1 = std::min(rows, r0 + kNoiseBlockRows);
          // The block's rows are contiguous in the row-major matrices.
          fill_standard_normal(eta.row(r0).data(), (r1 - r0) * d, rng);
          if (fisher) fill_standard_normal(n.row(r0).data(), (r1 - r0) * k, rng);
        });
        if (local_rows == 0) return;
        // This rank's rows (all of them in one process; a view, no copy).
        const auto xs = x.middleRows(row_begin, local_rows);
        const auto etas = eta.middleRows(row_begin, local_rows);
        for_each_part(local_rows, kNoiseBlockRows, chunks,
                      [&](int part, Eigen::Index begin, Eigen::Index end) {
          const Eigen::Index m = end - begin;
          if (chunks == 1) {
            if (!distributed) {
              parts[0] = model.loss(params, x, fisher ? n : Matrix<float>(), eta, n_train,
                                    adam_on_block);
              return;
            }
            parts[0] = model.loss(params, Matrix<float>(xs),
                                  fisher ? Matrix<float>(n.middleRows(row_begin, local_rows))
                                         : Matrix<float>(),
                                  Matrix<float>(etas), n_train, {},
                                  into_contribution ? contribution : nullptr);
            return;
          }
          // A one-thread arena per chunk: the work inside a chunk stays on its thread.
          chunk_arenas[static_cast<std::size_t>(part)]->execute([&] {
            parts[static_cast<std::size_t>(part)] =
                model.loss(params, Matrix<float>(xs.middleRows(begin, m)),
                           fisher ? Matrix<float>(n.middleRows(row_begin + begin, m))
                                  : Matrix<float>(),
                           Matrix<float>(etas.middleRows(begin, m)), n_train);
          });
        });
      });
      const int used = static_cast<int>(
          std::min<Eigen::Index>(chunks, (local_rows + kNoiseBlockRows - 1) / kNoiseBlockRows));
      double value = 0.0;
      for (int i = 0; i < used; ++i) value += parts[static_cast<std::size_t>(i)].value;
      const Vector<float>* g = &parts[0].gradient;
      if (used > 1) {  // the chunk gradients summed in a fixed order, blocks over the threads
        arena.execute([&] {
          tbb::parallel_for(tbb::blocked_range<Eigen::Index>(0, p, Eigen::Index{1} << 16),
                            [&](const tbb::blocked_range<Eigen::Index>& r) {
            const Eigen::Index n = r.end() - r.begin();
            auto sum = gradient.segment(r.begin(), n);
            sum = parts[0].gradient.segment(r.begin(), n);
            for (int i = 1; i < used; ++i)
              sum += parts[static_cast<std::size_t>(i)].gradient.segment(r.begin(), n);
          });
        });
        g = &gradient;
      }
      // Over ranks: this rank's gradient, and the batch's loss and noise gradient summed.
      float* local = nullptr;
      if (distributed) {
        local = into_contribution ? contribution
                                  : (used == 1 ? parts[0].gradient.data() : gradient.data());
        if (used == 0) std::fill_n(local, p, 0.0F);
        Eigen::VectorXd scalars(2);
        scalars << value, static_cast<double>(local[p - 1]);
        communicator.sum_in_place(scalars);
        value = scalars[0];
        noise_gradient[0] = static_cast<float>(scalars[1]);
      }
      // A non-finite gradient makes the parameters, and so the next step's loss, non-finite:
      // checking the loss catches divergence within one step without a pass over the gradient.
      if (!std::isfinite(value)) {
        exchange.release();  // the value is the sum over ranks: every rank stops here alike
        throw std::runtime_error("training diverged: the loss or its gradient is not finite at "
                                 "epoch " + std::to_string(epoch) + ", step " +
                                 std::to_string(step) + " (try a smaller learning rate)");
      }
      if (distributed) {
        // The gradient's shard summed over ranks, Adam on this rank's share of the network's
        // parameters piece by piece as the sum comes out, zeta_N's Adam on every rank, then the
        // parameters assembled (zeta_N from its shard's owner, where it is the same).
        arena.execute([&] {
          exchange.reduce_scatter(local, [&](Eigen::Index offset, const float* sum,
                                             Eigen::Index size) {
            const Eigen::Index network = std::min(size, p - 1 - offset);
            if (network > 0)
              network_adam.update_block(params.data() + offset, sum, offset, network, scale);
          });
        });
        noise_adam.step(params.tail(1), noise_gradient, scale);
        exchange.all_gather(params.data());
      } else if (fused_entries == 0) {  // batch chunks, or a model that reports no blocks (CVAE)
        arena.execute([&] {
          network_adam.update_block(params.data(), g->data(), 0, p - 1, scale);
        });
      } else if (fused_entries != p - 1) {
        throw std::logic_error("train_autoencoder: the loss reported " +
                               std::to_string(fused_entries) + " of " + std::to_string(p - 1) +
                               " network gradient entries");
      }
      if (!distributed) noise_adam.step(params.tail(1), g->tail(1), scale);
      state.steps = network_adam.steps();
      loss_sum += value;
      seen += rows;
      if (callbacks.on_batch) {
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        callbacks.on_batch({epoch, b + 1, batches, loss_sum / static_cast<double>(seen),
                            static_cast<double>(seen) / std::max(s, 1e-9), s});
      }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EpochRecord record;
    record.epoch = epoch;
    record.train_loss = loss_sum / static_cast<double>(n_train);
    record.test_mse = test_mse(model, params, test, options.threads, communicator);
    record.noise_std = model.noise_std(params);
    record.seconds = seconds;
    record.images_per_s = static_cast<double>(n_train) / seconds;
    state.history.push_back(record);
    state.epochs_done = epoch;
    state.options.epochs = options.epochs;
    state.network_m = network_adam.first_moment();
    state.network_v = network_adam.second_moment();
    // Each rank's moments are current on its shard only: assembled for the checkpoint (a resumed
    // run restores them whole on every rank).
    if (distributed) {
      Vector<float> moment(p);
      for (Vector<float>* m : {&state.network_m, &state.network_v}) {
        moment << *m, 0.0F;
        exchange.all_gather(moment.data());
        *m = moment.head(p - 1);
      }
    }
    state.noise_m = noise_adam.first_moment();
    state.noise_v = noise_adam.second_moment();
    if (callbacks.on_epoch) callbacks.on_epoch(state);
  }
  return state;
}

}  // namespace infield::neural

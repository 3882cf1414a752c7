#pragma once
/// @file models/autoencoder.h
/// @brief FisherNet and its VAE baseline as trainable models: the architecture of the paper's
/// Appendix A (dense 3 x 448 ReLU encoder and decoder, linear output, learnable noise
/// N = exp(zeta_N) 1), the VAE loss, data-parallel training with Adam (batch-first GEMMs, one
/// chunk of the batch per thread), atomic checkpoints that resume exactly, and the per-datum
/// latent means and covariances.
///
/// Parameter layout: [encoder, decoder, zeta_N]. Losses are summed over a batch; training steps
/// use the batch mean, as the PyTorch reference does.
///
/// Reproducibility: the shuffle of epoch e is drawn from (seed, e) and the noise of a training
/// step from (seed, step, block of 16 rows), so results do not depend on the thread count beyond
/// float rounding (summation order), and a run resumed from a checkpoint continues bit for bit as
/// the uninterrupted run with the same seed and threads.

#include <Eigen/Core>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <optional>

#include "infield/models/convolution.h"
#include "infield/models/fishernet.h"
#include "infield/inference/communicator.h"
#include "infield/models/neural.h"

namespace infield::neural {

/// FisherNet; the VAE with the same dense layers; the convolutional VAE (CVAE) of Appendix A.
enum class AutoencoderKind { kFisherNet, kVae, kCvae };
/// "fishernet", "vae" or "cvae".
std::string autoencoder_kind_name(AutoencoderKind kind);
/// The inverse of autoencoder_kind_name; throws InvalidArgument for anything else.
AutoencoderKind parse_autoencoder_kind(const std::string& name);

/// The VAE baseline's loss, summed over the batch, with the same Gaussian likelihood and learnable
/// noise as FisherNet: the encoder gives [mu, log variance] (B x 2D), z = mu + exp(lv / 2) eps,
///
///     L = sum_i [ KL(N(mu_i, diag e^lv_i) || N(0, 1)) ]
///         + 0.5 sum_i [ zeta^2 / p + k zeta + exp(-zeta) |d_i - f(z_i)|^2 ],
///
/// with its gradient (reparametrisation: eps (B x D, standard normal) fixed).
/// `ready` and `gradient_storage` as in fishernet_step.
template <typename T>
FisherNetLoss<T> vae_loss(const Mlp<T>& encoder, const Mlp<T>& decoder, const Vector<T>& params,
                          const Matrix<T>& data, const Matrix<T>& eps, Eigen::Index dataset_size,
                          const GradientBlockReady<T>& ready = {},
                          T* gradient_storage = nullptr);
/// The same loss for the CVAE's convolutional encoder and decoder.
template <typename T>
FisherNetLoss<T> vae_loss(const Sequential<T>& encoder, const Sequential<T>& decoder,
                          const Vector<T>& params, const Matrix<T>& data, const Matrix<T>& eps,
                          Eigen::Index dataset_size);

/// An autoencoder of Appendix A's shape; float32 for training. FisherNet and the VAE use dense
/// layers of the `hidden` widths; the CVAE uses `cvae_encoder_layers` / `cvae_decoder_layers` on
/// square images (data_size = side^2, side a multiple of 4) and ignores `hidden`.
class Autoencoder {
 public:
  /// Throws InvalidArgument for a non-positive data size or latent size, an empty/non-positive
  /// hidden width, or (CVAE) images that are not square with a side divisible by 4.
  Autoencoder(AutoencoderKind kind, Eigen::Index data_size, Eigen::Index latent,
              std::vector<Eigen::Index> hidden = {448, 448, 448});

  AutoencoderKind kind() const { return kind_; }
  Eigen::Index data_size() const { return data_size_; }
  Eigen::Index latent() const { return latent_; }
  const std::vector<Eigen::Index>& hidden() const { return hidden_; }
  /// The dense encoder and decoder (FisherNet, VAE); throw InvalidArgument for the CVAE.
  const Mlp<float>& encoder() const;
  const Mlp<float>& decoder() const;
  /// The convolutional encoder and decoder (CVAE); throw InvalidArgument for the others.
  const Sequential<float>& conv_encoder() const;
  const Sequential<float>& conv_decoder() const;
  Eigen::Index encoder_parameter_count() const { return encoder_count_; }
  Eigen::Index decoder_parameter_count() const { return decoder_count_; }
  /// Encoder, decoder and zeta_N.
  Eigen::Index parameter_count() const { return encoder_count_ + decoder_count_ + 1; }

  /// PyTorch's default initialisation of the layers (kUniformFanIn) from `seed`; zeta_N = 0, the
  /// mean of its prior.
  Vector<float> initialize(std::uint64_t seed) const;

  /// Loss and gradient summed over the rows of `data`, with the model's random numbers: n (rows x
  /// data_size, FisherNet only; may be empty for the VAE) and eta (rows x latent). FisherNet and
  /// the VAE call `ready` with every layer's block of the gradient as it is finished (see
  /// fishernet_step); the CVAE does not call it. With `gradient_storage` (parameter_count()
  /// values) the gradient goes there and the result's is left empty, as in fishernet_step.
  FisherNetLoss<float> loss(const Vector<float>& params, const Matrix<float>& data,
                            const Matrix<float>& n, const Matrix<float>& eta,
                            Eigen::Index dataset_size,
                            const GradientBlockReady<float>& ready = {},
                            float* gradient_storage = nullptr) const;
  /// The latent mean mu_i of every row (the encoder's mean for the VAE).
  Matrix<float> encode_mean(const Vector<float>& params, const Matrix<float>& data) const;
  /// Per datum, the latent covariance as a row of D * D values (row-major): M_i^{-1} at mu_i for
  /// FisherNet, diag(exp(log variance)) for the VAE.
  Matrix<float> latent_covariances(const Vector<float>& params, const Matrix<float>& data) const;
  /// The decoder's output f(z) for latents z (rows x latent).
  Matrix<float> decode(const Vector<float>& params, const Matrix<float>& z) const;
  /// exp(zeta_N / 2), the noise standard deviation.
  double noise_std(const Vector<float>& params) const;

 private:
  AutoencoderKind kind_;
  Eigen::Index data_size_, latent_;
  std::vector<Eigen::Index> hidden_;
  std::optional<Mlp<float>> encoder_, decoder_;
  std::optional<Sequential<float>> conv_encoder_, conv_decoder_;
  Eigen::Index encoder_count_ = 0, decoder_count_ = 0;
  Matrix<float> encoder_output(const Vector<float>& params, const Matrix<float>& data) const;
};

/// Mean over rows and pixels of (d - f(mu))^2, decoding the encoder's mean, on `threads` threads
/// (per rank: over ranks each takes its share of the rows, the same result on any number).
double test_mse(const Autoencoder& model, const Vector<float>& params, const Matrix<float>& data,
                int threads, const Communicator& communicator = {});

struct TrainingOptions {
  int epochs = 1;
  Eigen::Index batch = 64;
  double learning_rate = 1e-4;
  /// Adam's learning rate for zeta_N; 0: the same as learning_rate (the paper's single rate).
  double noise_learning_rate = 0.0;
  std::uint64_t seed = 0;
  int threads = 1;
  /// How threads share a step: kProducts splits every product of the network over the threads
  /// (by output columns); kBatch gives each thread a chunk of the batch and sums the chunk
  /// gradients. Either way the thread count changes results only by float rounding; kAuto
  /// takes kProducts, the faster on 2 cores for every model since the per-datum latent work runs
  /// over the threads too (FisherNet D = 2 and 5: 10,600-10,900 and 8,500-8,700 images/s
  /// against 8,500-9,400 and 7,200-8,300 with kBatch).
  enum class Parallelism { kAuto, kProducts, kBatch };
  Parallelism parallelism = Parallelism::kAuto;
  /// Data-parallel training over MPI ranks (default: this process alone): every rank takes its
  /// contiguous share of each global batch (threads above are per rank), the gradient is summed
  /// over ranks shard by shard, each rank runs Adam on its shard of the parameters and the shards
  /// are gathered (ShardedReduction), so the trajectory is one process's with the same global
  /// batch up to float rounding. Not part of a checkpoint: a run
  /// may resume on another number of ranks.
  Communicator communicator;
  /// How the ranks exchange the gradient and the parameters: kAutomatic takes shared memory when
  /// all ranks share one machine; kMessages always takes MPI's collectives, the path of ranks on
  /// several machines (for tests of that path on one machine). Not part of a checkpoint either.
  ShardedReduction::Transport exchange = ShardedReduction::Transport::kAutomatic;
};

/// One epoch's line of metrics.csv.
struct EpochRecord {
  int epoch = 0;
  double train_loss = 0.0;  ///< Mean loss per datum over the epoch's batches.
  double test_mse = 0.0;
  double noise_std = 0.0;
  double seconds = 0.0;       ///< Training time of the epoch (without the test evaluation).
  double images_per_s = 0.0;  ///< Training throughput of the epoch.
};

/// Everything a resumed run needs: the model and options it must match, the parameters, both Adam
/// states (network; zeta_N) and the history.
struct TrainingCheckpoint {
  AutoencoderKind kind = AutoencoderKind::kFisherNet;
  Eigen::Index data_size = 0, latent = 0;
  std::vector<Eigen::Index> hidden;
  TrainingOptions options;   ///< epochs: the target of the run that wrote it (not checked).
  Eigen::Index train_size = 0;
  int epochs_done = 0;
  std::int64_t steps = 0;
  Vector<float> params, network_m, network_v, noise_m, noise_v;
  std::vector<EpochRecord> history;
};

/// Writes the checkpoint atomically (temporary file + rename) as one .npy vector.
void save_checkpoint(const std::filesystem::path& path, const TrainingCheckpoint& checkpoint);
/// Reads and validates a checkpoint; throws FileError for a missing, corrupt or truncated file.
TrainingCheckpoint load_checkpoint(const std::filesystem::path& path);
/// Throws InvalidArgument naming the first difference if `checkpoint` was not written by a run of
/// this model with these options (kind, sizes, seed, batch, learning rates, threads) on a training
/// set of `train_size` images.
void check_checkpoint_matches(const TrainingCheckpoint& checkpoint, const Autoencoder& model,
                              const TrainingOptions& options, Eigen::Index train_size);

struct TrainingProgress {
  int epoch = 0;
  Eigen::Index batch = 0, batches = 0;
  double mean_loss = 0.0;    ///< Over the epoch's batches so far.
  double images_per_s = 0.0;
  double epoch_seconds = 0.0;
};

struct TrainingCallbacks {
  /// After every batch (cheap to call; throttle output in the callback).
  std::function<void(const TrainingProgress&)> on_batch;
  /// After every epoch, with the state to checkpoint (its history includes the epoch).
  std::function<void(const TrainingCheckpoint&)> on_epoch;
};

/// A fresh training state for `model` (parameters from options.seed).
TrainingCheckpoint start_training(const Autoencoder& model, const TrainingOptions& options,
                                  Eigen::Index train_size);

/// Trains from `state` until options.epochs epochs are done; `train` and `test` hold one image per
/// row, scaled to [0, 1]. Throws std::runtime_error if the loss becomes non-finite (naming the
/// epoch and step).
TrainingCheckpoint train_autoencoder(const Autoencoder& model, const TrainingOptions& options,
                                     const Matrix<float>& train, const Matrix<float>& test,
                                     TrainingCheckpoint state, const TrainingCallbacks& callbacks);

}  // namespace infield::neural

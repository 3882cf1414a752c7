// Training throughput of FisherNet and the VAE (images/s), the FLOPs of a step and the fraction
// of the machine's float GEMM peak, for the side-by-side comparison with the PyTorch reference
// (bench/fishernet_vs_torch.sh). One JSON line per configuration.
//
//   fishernet_bench [--models fishernet,vae] [--dims 2,5,10,20] [--threads 1] [--batches 200]
//                   [--warmup 20] [--repeats 3] [--data DIR] [--parallelism auto|batch|products]
#include <malloc.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "infield/models/autoencoder.h"
#include "infield/models/idx.h"

namespace {

using infield::neural::Autoencoder;
using infield::neural::AutoencoderKind;
using infield::neural::Matrix;

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string x; std::getline(in, x, ',');) out.push_back(x);
  return out;
}

/// Multiply-adds of one datum through an MLP, and of its first layer.
double macs(const infield::neural::Mlp<float>& mlp) {
  double m = 0;
  for (std::size_t l = 0; l + 1 < mlp.widths().size(); ++l)
    m += static_cast<double>(mlp.widths()[l] * mlp.widths()[l + 1]);
  return m;
}

/// Multiply-adds of one datum through a convolutional network, and of its first layer.
std::pair<double, double> macs(const infield::neural::Sequential<float>& net) {
  double total = 0, first = 0;
  for (const auto& l : net.layers()) {
    const auto& g = l.geometry;
    const double m = l.kind == infield::neural::LayerKind::kDense
                         ? static_cast<double>(l.in * l.out)
                         : static_cast<double>(g.out_rows() * g.out_cols() * g.channels_out *
                                               g.channels_in * g.kernel * g.kernel);
    if (total == 0) first = m;
    total += m;
  }
  return {total, first};
}

/// FLOPs per image of a training step as the PyTorch reference counts them (forward + backward,
/// with the encoder's input gradient), and as this code runs it (without that gradient; for
/// FisherNet without the decoder's output at mu and with the metric by the route that
/// latent_systems takes for the batch: the Gram route's W^T W shared by the batch, the active-unit
/// routes' work for the decoder's active fractions at the encoder's means, `active_fractions`).
std::pair<double, double> step_flops(const Autoencoder& m, double batch,
                                     const std::vector<double>& active_fractions) {
  if (m.kind() == AutoencoderKind::kCvae) {
    const auto [fe, first] = macs(m.conv_encoder());
    const double fd = macs(m.conv_decoder()).first;
    return {2 * (3 * fe + 3 * fd), 2 * (3 * fe + 3 * fd - first)};
  }
  const double fe = macs(m.encoder()), fd = macs(m.decoder());
  const double first = static_cast<double>(m.encoder().widths()[0] * m.encoder().widths()[1]);
  const double d = static_cast<double>(m.latent());
  // FisherNet: encoder forward, decoder at mu, D tangents through the decoder, decoder at z*,
  // decoder backward (2x), encoder backward (2x). VAE: forward and backward of both.
  const double reference = m.kind() == AutoencoderKind::kFisherNet ? 3 * fe + (4 + d) * fd
                                                                  : 3 * fe + 3 * fd;
  if (m.kind() != AutoencoderKind::kFisherNet) return {2 * reference, 2 * (reference - first)};
  const auto b = static_cast<Eigen::Index>(batch);
  const auto route = infield::neural::latent_system_route(m.decoder(), b, true, active_fractions);
  // The decoder's hidden layers at mu and the tangents, then the route's own work.
  const double metric =
      infield::neural::latent_system_multiply_adds(m.decoder(), b, true, route, active_fractions) /
      batch;
  const double own = 3 * fe - first + 3 * fd + metric;
  return {2 * reference, 2 * own};
}

/// Peak float GEMM rate of Eigen on this machine (448^2 and a batch of 640 rows), one thread.
double gemm_gflops() {
  Matrix<float> a = Matrix<float>::Random(640, 448), w = Matrix<float>::Random(448, 448), c(640, 448);
  for (int i = 0; i < 20; ++i) c.noalias() = a * w.transpose();
  const int reps = 400;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) c.noalias() = a * w.transpose();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * 640 * 448 * 448 * reps / s / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  // Training allocates and frees the same large matrices every step; glibc would map and unmap
  // each (page faults and zeroing: ~10% of a CVAE step). Keeping them in the heap avoids that.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  std::string models = "fishernet,vae", dims = "2,5,10,20", data = "data/fashion-mnist";
  int threads = 1, batches = 200, warmup = 20, repeats = 3;
  std::string parallelism = "auto";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--models") models = value;
    else if (flag == "--dims") dims = value;
    else if (flag == "--threads") threads = std::stoi(value);
    else if (flag == "--batches") batches = std::stoi(value);
    else if (flag == "--warmup") warmup = std::stoi(value);
    else if (flag == "--repeats") repeats = std::stoi(value);
    else if (flag == "--data") data = value;
    else if (flag == "--parallelism") parallelism = value;
    else {
      std::fprintf(stderr, "fishernet_bench: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  const Eigen::Index batch = 64, rows = static_cast<Eigen::Index>(batches + warmup) * batch;
  Matrix<float> train;
  std::string source = "random";
  if (std::filesystem::exists(std::filesystem::path(data) / "train-images-idx3-ubyte")) {
    const auto set = infield::read_image_dataset(data, "train");
    train = set.images.topRows(std::min(rows, set.images.rows()));
    source = "fashion-mnist";
  }
  if (train.rows() < rows) {
    std::srand(1);
    train = ((Matrix<float>::Random(rows, 784).array() + 1.0F) * 0.5F).matrix();
  }
  const Matrix<float> test = train.topRows(64);
  const double peak = gemm_gflops();
  std::printf("{\"eigen_gemm_gflops_1_thread\": %.1f}\n", peak);
  for (const std::string& model_name : split(models))
    for (const std::string& d : split(dims)) {
      const Autoencoder model(infield::neural::parse_autoencoder_kind(model_name), 784,
                              std::stol(d));
      infield::neural::TrainingOptions o;
      o.epochs = 1;
      o.batch = batch;
      o.threads = threads;
      using P = infield::neural::TrainingOptions::Parallelism;
      o.parallelism = parallelism == "batch" ? P::kBatch : parallelism == "products" ? P::kProducts : P::kAuto;
      std::vector<double> rates;
      Eigen::VectorXf trained;
      for (int r = 0; r < repeats; ++r) {
        o.seed = static_cast<std::uint64_t>(r);
        double t_warm = 0.0, t_end = 0.0;
        infield::neural::TrainingCallbacks cb;
        cb.on_batch = [&](const infield::neural::TrainingProgress& p) {
          if (p.batch == warmup) t_warm = p.epoch_seconds;
          if (p.batch == p.batches) t_end = p.epoch_seconds;
        };
        trained = infield::neural::train_autoencoder(
                      model, o, train, test, infield::neural::start_training(model, o, rows), cb)
                      .params;
        rates.push_back(static_cast<double>(batches * batch) / (t_end - t_warm));
      }
      std::sort(rates.begin(), rates.end());
      const double median = rates[rates.size() / 2];
      // The decoder's active units at the trained encoder's means of the training set's last 64
      // images (the active-unit routes' work depends on them).
      std::vector<double> fractions;
      if (model.kind() == AutoencoderKind::kFisherNet) {
        const Eigen::Index pe = model.encoder().parameter_count();
        const Matrix<float> mu =
            model.encoder().forward(trained.head(pe), train.bottomRows(batch));
        fractions = infield::neural::decoder_active_fractions(
            model.decoder(), trained.segment(pe, model.decoder().parameter_count()), mu);
      }
      const auto [reference_flops, own_flops] =
          step_flops(model, static_cast<double>(batch), fractions);
      std::string active = "[";
      for (double f : fractions) active += (active.size() > 1 ? ", " : "") + std::to_string(f).substr(0, 5);
      active += "]";
      std::printf(
          "{\"model\": \"%s\", \"d\": %s, \"threads\": %d, \"img_per_s\": %.0f, "
          "\"ms_per_batch\": %.2f, \"mflop_per_image_reference_count\": %.2f, "
          "\"mflop_per_image_run\": %.2f, \"gflops\": %.1f, \"fraction_of_peak\": %.2f, "
          "\"decoder_active_fractions\": %s, \"data\": \"%s\"}\n",
          model_name.c_str(), d.c_str(), threads, median, 1000.0 * batch / median,
          reference_flops / 1e6, own_flops / 1e6, own_flops * median / 1e9,
          own_flops * median / 1e9 / (peak * threads), active.c_str(), source.c_str());
      std::fflush(stdout);
    }
  return 0;
}

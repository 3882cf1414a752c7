// `infield fishernet train | evaluate | encode | sample | infer | report`: FisherNet and its VAE
// baseline on an image data set in IDX format (Fashion-MNIST by default), with checkpoints, metrics
// and figures; `infer` runs full MGVI per image with the trained decoder.

#include <fmt/core.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <unistd.h>

#include <Eigen/Eigenvalues>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <cstdio>
#include <iostream>
#include <map>
#include <random>

#include "commands.h"
#include "image_input.h"
#include "matplotlib_figures.h"
#include "infield/error.h"
#include "infield/models/autoencoder.h"
#include "infield/models/idx.h"
#include "infield/models/latent_inference.h"
#include "infield/models/mkde.h"
#include "infield/npy.h"
#include "json_output.h"
#include "png_image.h"

namespace infield::apps {
namespace {

namespace fs = std::filesystem;
using neural::Autoencoder;
using neural::Matrix;
using neural::Vector;

/// Exit status of a run whose training diverged (as `infield reconstruct` uses for numerical
/// failures).
constexpr int kExitNumericalFailure = 3;

struct FisherNetCommandOptions {
  // train
  std::string model = "fishernet";
  Eigen::Index latent = 5;
  std::vector<Eigen::Index> hidden = {448, 448, 448};
  neural::TrainingOptions training;
  std::string data = "data/fashion-mnist";
  std::string run;
  bool resume = false;
  bool quiet = false;
  // encode / sample
  std::string images, out, covariance_out, latent_density = "gaussian";
  std::vector<std::string> runs;  // report
  int at_epoch = 0;
  Eigen::Index n = 64;
  std::uint64_t seed = 1;
  int threads = 1;
  // infer
  Eigen::Index first = 0;  // 0: every image
  int samples = 8;
  int iterations = 3;
};

std::vector<double> to_doubles(const Matrix<float>& m) {
  return std::vector<double>(m.data(), m.data() + m.size());
}

void write_matrix_npy(const fs::path& path, const std::vector<Eigen::Index>& shape,
                      const Matrix<float>& m) {
  const std::vector<double> v = to_doubles(m);
  write_npy(path, shape,
            Eigen::Map<const Eigen::VectorXd>(v.data(), static_cast<Eigen::Index>(v.size())),
            NpyDtype::kFloat32);
}

std::string format_duration(double seconds) {
  const auto s = static_cast<long>(std::max(0.0, seconds));
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

/// The progress bar: rewritten in place on a terminal, a line every 10% of an epoch otherwise.
class ProgressBar {
 public:
  ProgressBar(int epochs, bool quiet) : epochs_(epochs), quiet_(quiet), tty_(isatty(2) != 0) {}
  void update(const neural::TrainingProgress& p) {
    if (quiet_) return;
    const auto now = std::chrono::steady_clock::now();
    const bool last = p.batch == p.batches;
    const Eigen::Index tenth = std::max<Eigen::Index>(1, p.batches / 10);
    if (tty_) {
      if (!last && now - shown_ < std::chrono::milliseconds(200)) return;
    } else if (!last && p.batch % tenth != 0) {
      return;
    }
    shown_ = now;
    const double per_epoch = p.epoch_seconds / static_cast<double>(p.batch) *
                             static_cast<double>(p.batches);
    const double left = per_epoch * (epochs_ - p.epoch) + (per_epoch - p.epoch_seconds);
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(kWidth * p.batch / p.batches);
    const std::string bar = std::string(static_cast<std::size_t>(filled), '=') +
                            std::string(static_cast<std::size_t>(kWidth - filled), ' ');
    fmt::print(stderr, "{}epoch {}/{} [{}] batch {}/{} loss {:.2f} {:.0f} images/s ETA {}{}",
               tty_ ? "\r" : "", p.epoch, epochs_, bar, p.batch, p.batches, p.mean_loss,
               p.images_per_s, format_duration(left), tty_ ? "" : "\n");
    if (tty_ && last) fmt::print(stderr, "\n");
  }

 private:
  int epochs_;
  bool quiet_, tty_;
  std::chrono::steady_clock::time_point shown_{};
};

void write_metrics_csv(const fs::path& path, const std::vector<neural::EpochRecord>& history) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp);
    f << "epoch,train_loss,test_mse,noise_std,seconds,images_per_s\n";
    for (const auto& r : history)
      f << fmt::format("{},{:.9g},{:.9g},{:.9g},{:.6g},{:.6g}\n", r.epoch, r.train_loss, r.test_mse,
                       r.noise_std, r.seconds, r.images_per_s);
    if (!f) throw FileError("infield fishernet: cannot write " + tmp.string());
  }
  fs::rename(tmp, path);
}

// ------------------------------------------------------------------------------ figures

/// Originals (top row) above their reconstructions (bottom row): the first test image of each
/// class.
void write_reconstructions_png(const fs::path& path, const Autoencoder& model,
                               const Vector<float>& params, const ImageDataset& test) {
  std::vector<Eigen::Index> pick;
  for (int c = 0; c < 10; ++c)
    for (std::size_t i = 0; i < test.labels.size(); ++i)
      if (test.labels[i] == c) {
        pick.push_back(static_cast<Eigen::Index>(i));
        break;
      }
  Matrix<float> x(static_cast<Eigen::Index>(pick.size()), test.images.cols());
  for (std::size_t i = 0; i < pick.size(); ++i)
    x.row(static_cast<Eigen::Index>(i)) = test.images.row(pick[i]);
  const Matrix<float> r = model.decode(params, model.encode_mean(params, x));
  const int rows = static_cast<int>(test.rows), cols = static_cast<int>(test.cols), scale = 3;
  const int tile_w = cols * scale + 4, tile_h = rows * scale + 4;
  Canvas canvas(static_cast<int>(x.rows()) * tile_w + 4, 2 * tile_h + 4);
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const int left = 4 + static_cast<int>(i) * tile_w;
    canvas.gray_image(left, 4, x.row(i).data(), rows, cols, scale);
    canvas.gray_image(left, 4 + tile_h, r.row(i).data(), rows, cols, scale);
  }
  canvas.write(path);
}

/// An 8 x 8 grid of decoded latents (rows of z).
void write_image_grid_png(const fs::path& path, const Matrix<float>& images, int rows, int cols) {
  const int per_row = 8, scale = 2;
  const int n = static_cast<int>(images.rows());
  const int grid_rows = (n + per_row - 1) / per_row;
  const int tile_w = cols * scale + 2, tile_h = rows * scale + 2;
  Canvas canvas(per_row * tile_w + 2, grid_rows * tile_h + 2);
  for (int i = 0; i < n; ++i)
    canvas.gray_image(2 + (i % per_row) * tile_w, 2 + (i / per_row) * tile_h,
                      images.row(i).data(), rows, cols, scale);
  canvas.write(path);
}

/// The test latents (D = 2) coloured by class, with 2-sigma ellipses of the latent covariance for
/// every 100th point (paper Figs. 4 and 5).
void write_latent_scatter_png(const fs::path& path, const Matrix<float>& mean,
                              const Matrix<float>& covariance, const std::vector<int>& labels) {
  const int size = 640, margin = 20;
  // A window holding 99% of the points on each axis.
  auto quantile_range = [&](Eigen::Index axis) {
    std::vector<float> v;
    for (Eigen::Index i = 0; i < mean.rows(); ++i) v.push_back(mean(i, axis));
    std::sort(v.begin(), v.end());
    const float lo = v[v.size() / 200], hi = v[v.size() - 1 - v.size() / 200];
    const float pad = 0.1F * (hi - lo) + 1e-6F;
    return std::pair{lo - pad, hi + pad};
  };
  const auto [x0, x1] = quantile_range(0);
  const auto [y0, y1] = quantile_range(1);
  const float span = std::max(x1 - x0, y1 - y0);  // equal scales, so ellipses keep their shape
  const float cx = 0.5F * (x0 + x1), cy = 0.5F * (y0 + y1);
  const double pixels_per_unit = (size - 2 * margin) / static_cast<double>(span);
  auto px = [&](double x) { return size / 2.0 + (x - cx) * pixels_per_unit; };
  auto py = [&](double y) { return size / 2.0 - (y - cy) * pixels_per_unit; };
  Canvas canvas(size, size);
  canvas.line(px(0), 0, px(0), size - 1, {220, 220, 220});
  canvas.line(0, py(0), size - 1, py(0), {220, 220, 220});
  for (Eigen::Index i = 0; i < mean.rows(); ++i)
    canvas.dot(px(mean(i, 0)), py(mean(i, 1)), 1, class_colour(labels[static_cast<std::size_t>(i)]));
  for (Eigen::Index i = 0; i < mean.rows(); i += 100) {
    Eigen::Matrix2d c;
    c << covariance(i, 0), covariance(i, 1), covariance(i, 2), covariance(i, 3);
    const Eigen::SelfAdjointEigenSolver<Eigen::Matrix2d> eig(c);
    const Eigen::Vector2d radii = 2.0 * eig.eigenvalues().cwiseMax(0.0).cwiseSqrt();
    const Rgb colour = class_colour(labels[static_cast<std::size_t>(i)]);
    Eigen::Vector2d previous;
    for (int s = 0; s <= 72; ++s) {
      const double t = 2.0 * M_PI * s / 72.0;
      const Eigen::Vector2d p = Eigen::Vector2d(mean(i, 0), mean(i, 1)) +
                                eig.eigenvectors() * Eigen::Vector2d(radii[0] * std::cos(t),
                                                                     radii[1] * std::sin(t));
      if (s > 0) canvas.line(px(previous[0]), py(previous[1]), px(p[0]), py(p[1]), colour);
      previous = p;
    }
    canvas.dot(px(mean(i, 0)), py(mean(i, 1)), 3, {0, 0, 0});
  }
  canvas.write(path);
}

/// A line plot of several series on a log-scale y axis (one colour per series, from
/// class_colour), the axis ranges written at the axes: x from the first to the last x value.
struct Series {
  std::vector<double> x, y;
};
void write_line_plot_png(const fs::path& path, const std::vector<Series>& series) {
  const int w = 640, h = 400, left = 60, right = 20, top = 20, bottom = 40;
  Canvas canvas(w, h);
  const Rgb axis{0, 0, 0};
  double lo = INFINITY, hi = -INFINITY, x0 = INFINITY, x1 = -INFINITY;
  for (const Series& s : series)
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      lo = std::min(lo, s.y[i]);
      hi = std::max(hi, s.y[i]);
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
    }
  if (!(lo > 0) || !std::isfinite(hi)) return;  // nothing to draw on a log scale
  hi = std::max(hi, lo * 1.01);
  x1 = std::max(x1, x0 + 1);
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (w - left - right); };
  auto py = [&](double v) {
    return h - bottom - (std::log(v) - std::log(lo)) / (std::log(hi) - std::log(lo)) *
                            (h - top - bottom);
  };
  canvas.line(left, top, left, h - bottom, axis);
  canvas.line(left, h - bottom, w - right, h - bottom, axis);
  for (std::size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    const Rgb colour = class_colour(static_cast<int>(k));
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      canvas.dot(px(s.x[i]), py(s.y[i]), 3, colour);
      if (i > 0) canvas.line(px(s.x[i - 1]), py(s.y[i - 1]), px(s.x[i]), py(s.y[i]), colour);
    }
  }
  canvas.text(4, top, fmt::format("{:.4f}", hi), 2, axis);
  canvas.text(4, h - bottom - 10, fmt::format("{:.4f}", lo), 2, axis);
  canvas.text(left, h - bottom + 8, fmt::format("{:g}", x0), 2, axis);
  const std::string end = fmt::format("{:g}", x1);
  canvas.text(w - right - 8 * static_cast<int>(end.size()), h - bottom + 8, end, 2, axis);
  canvas.write(path);
}

/// Test MSE against the epoch.
void write_mse_png(const fs::path& path, const std::vector<neural::EpochRecord>& history) {
  Series s;
  for (const auto& r : history) {
    s.x.push_back(r.epoch);
    s.y.push_back(r.test_mse);
  }
  write_line_plot_png(path, {s});
}

// ------------------------------------------------------------------------------ commands

struct LoadedRun {
  neural::TrainingCheckpoint checkpoint;
  Autoencoder model;
  nlohmann::json config;
};

LoadedRun load_run(const fs::path& run) {
  const fs::path path = run / "checkpoint.npy";
  if (!fs::exists(path))
    throw FileError("infield fishernet: " + run.string() +
                    " holds no run (no checkpoint.npy); train one with `infield fishernet train`");
  neural::TrainingCheckpoint c = neural::load_checkpoint(path);
  nlohmann::json config;
  if (std::ifstream f(run / "config.json"); f) config = nlohmann::json::parse(f, nullptr, false);
  Autoencoder model(c.kind, c.data_size, c.latent, c.hidden);
  return {std::move(c), std::move(model), std::move(config)};
}

/// The test set of `data`, checked against the model's image size.
ImageDataset load_images(const fs::path& data, const std::string& split, Eigen::Index size) {
  ImageDataset set = read_image_dataset(data, split);
  if (set.images.cols() != size)
    throw InvalidArgument(fmt::format(
        "infield fishernet: the images in {} are {} x {} = {} pixels, the model's data size is {}",
        data.string(), set.rows, set.cols, set.images.cols(), size));
  return set;
}

/// The test images' latent means (n x d) and covariances (n x d*d), in chunks dealt over the
/// ranks of `communicator` and gathered on its root, which writes them (empty matrices on the
/// other ranks: every rank would otherwise hold n (d + d^2) doubles it does not use).
std::pair<Matrix<float>, Matrix<float>> test_latents(const Autoencoder& model,
                                                     const Vector<float>& params,
                                                     const Matrix<float>& images, int threads,
                                                     const Communicator& communicator) {
  const Eigen::Index d = model.latent(), n = images.rows();
  constexpr Eigen::Index kChunk = 500;
  const auto chunks = static_cast<int>((n + kChunk - 1) / kChunk);
  const auto [first, end] = communicator.share(chunks);
  // One vector per image of this rank's chunks: its mean, then its covariance.
  const Eigen::Index begin_row = std::min(n, first * kChunk), end_row = std::min(n, end * kChunk);
  std::vector<Eigen::VectorXd> local(static_cast<std::size_t>(end_row - begin_row),
                                     Eigen::VectorXd(d + d * d));
  tbb::task_arena arena(std::max(1, threads));
  arena.execute([&] {
    tbb::parallel_for(first, end, [&](int c) {
      const Eigen::Index start = c * kChunk, rows = std::min(kChunk, n - start);
      const Matrix<float> x = images.middleRows(start, rows);
      const Matrix<float> mean = model.encode_mean(params, x);
      const Matrix<float> covariance = model.latent_covariances(params, x);
      for (Eigen::Index i = 0; i < rows; ++i) {
        auto& v = local[static_cast<std::size_t>(start + i - begin_row)];
        v.head(d) = mean.row(i).transpose().cast<double>();
        v.tail(d * d) = covariance.row(i).transpose().cast<double>();
      }
    });
  });
  const auto all = communicator.gather(local, d + d * d);
  if (!communicator.is_root()) return {};
  Matrix<float> mean(n, d), covariance(n, d * d);
  for (Eigen::Index i = 0; i < n; ++i) {  // floats through doubles: exact
    mean.row(i) = all[static_cast<std::size_t>(i)].head(d).transpose().cast<float>();
    covariance.row(i) = all[static_cast<std::size_t>(i)].tail(d * d).transpose().cast<float>();
  }
  return {std::move(mean), std::move(covariance)};
}

/// Test latents, labels and covariances (from test_latents), and the figures, from the run's
/// current parameters.
void write_run_outputs(const fs::path& run, const Autoencoder& model, const Vector<float>& params,
                       const ImageDataset& test, const Matrix<float>& mean,
                       const Matrix<float>& covariance,
                       const std::vector<neural::EpochRecord>& history, std::uint64_t seed) {
  const Eigen::Index d = model.latent(), n = test.images.rows();
  write_matrix_npy(run / "latent_test_mean.npy", {n, d}, mean);
  write_matrix_npy(run / "latent_test_covariance.npy", {n, d, d}, covariance);
  Eigen::VectorXd labels(n);
  for (Eigen::Index i = 0; i < n; ++i) labels[i] = test.labels[static_cast<std::size_t>(i)];
  write_npy(run / "latent_test_labels.npy", {n}, labels);

  write_reconstructions_png(run / "reconstructions.png", model, params, test);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  Matrix<float> z(64, d);
  for (auto& v : z.reshaped()) v = normal(rng);
  write_image_grid_png(run / "samples.png", model.decode(params, z), static_cast<int>(test.rows),
                       static_cast<int>(test.cols));
  // Labelled matplotlib figures where python3 has it; the plain PNGs otherwise.
  if (history.empty() || !draw_run_figures(run)) {
    if (d == 2) write_latent_scatter_png(run / "latent_scatter.png", mean, covariance, test.labels);
    if (!history.empty()) write_mse_png(run / "mse.png", history);
  }
}

int run_train(const FisherNetCommandOptions& options) {
  if (options.run.empty()) throw InvalidArgument("infield fishernet train: --out RUN is required");
  // Under mpirun every rank trains on its share of each batch; rank 0 alone prints and writes.
  FisherNetCommandOptions o = options;
  o.training.communicator = Communicator::world();
  const bool root = o.training.communicator.is_root();
  if (!root) o.quiet = true;
  const fs::path run(o.run);
  const ImageDataset train = read_image_dataset(o.data, "train");
  const ImageDataset test = load_images(o.data, "t10k", train.images.cols());
  const Autoencoder ae(neural::parse_autoencoder_kind(o.model), train.images.cols(), o.latent,
                       o.hidden);
  fs::create_directories(run);
  const fs::path checkpoint_path = run / "checkpoint.npy";
  neural::TrainingCheckpoint state;
  const bool exists = fs::exists(checkpoint_path);
  if (o.training.communicator.any(exists) != exists)
    throw FileError("infield fishernet train: only some ranks see " + checkpoint_path.string() +
                    "; --out must be on a file system every rank shares");
  if (exists) {
    if (!o.resume)
      throw InvalidArgument("infield fishernet train: " + run.string() +
                            " already holds a run; pass --resume to continue it or choose another "
                            "--out");
    state = neural::load_checkpoint(checkpoint_path);
    neural::check_checkpoint_matches(state, ae, o.training, train.images.rows());
    // Every rank reads RUN itself: they must all see the root's checkpoint (a shared file system).
    std::string progress = std::to_string(state.epochs_done) + ":" + std::to_string(state.steps);
    std::string root_progress = progress;
    o.training.communicator.broadcast(root_progress);
    if (o.training.communicator.any(progress != root_progress))
      throw FileError("infield fishernet train: the ranks see different checkpoints in " +
                      run.string() + "; --out must be on a file system every rank shares");
    if (root) fmt::print(stderr, "resuming {} after epoch {} of {}\n", run.string(), state.epochs_done,
               o.training.epochs);
  } else {
    state = neural::start_training(ae, o.training, train.images.rows());
  }
  nlohmann::json config = {
      {"model", o.model},
      {"latent", o.latent},
      {"hidden", o.hidden},
      {"epochs", o.training.epochs},
      {"batch", o.training.batch},
      {"lr", o.training.learning_rate},
      {"noise_lr", o.training.noise_learning_rate > 0 ? o.training.noise_learning_rate
                                                      : o.training.learning_rate},
      {"seed", o.training.seed},
      {"threads", o.training.threads},
      {"data", fs::absolute(o.data).string()},
      {"train_images", train.images.rows()},
      {"test_images", test.images.rows()},
      {"image_rows", train.rows},
      {"image_cols", train.cols}};
  config["ranks"] = o.training.communicator.size();
  if (root) write_json_atomic(run / "config.json", config, "infield fishernet train");
  if (!o.quiet)
    fmt::print(stderr,
               "{} with D = {}: {} parameters, {} training and {} test images, {} rank(s) x {} "
               "thread(s)\n",
               o.model, o.latent, ae.parameter_count(), train.images.rows(), test.images.rows(),
               o.training.communicator.size(), o.training.threads);

  ProgressBar bar(o.training.epochs, o.quiet);
  neural::TrainingCallbacks callbacks;
  callbacks.on_batch = [&](const neural::TrainingProgress& p) { bar.update(p); };
  callbacks.on_epoch = [&](const neural::TrainingCheckpoint& c) {
    if (!root) return;
    neural::save_checkpoint(checkpoint_path, c);
    write_metrics_csv(run / "metrics.csv", c.history);
    const auto& r = c.history.back();
    if (!o.quiet)
      fmt::print(stderr, "epoch {}: train loss {:.3f}, test MSE {:.5f}, noise std {:.4f}, {:.1f} s, "
                         "{:.0f} images/s\n",
                 r.epoch, r.train_loss, r.test_mse, r.noise_std, r.seconds, r.images_per_s);
  };
  try {
    state = neural::train_autoencoder(ae, o.training, train.images, test.images, std::move(state),
                                      callbacks);
  } catch (const InvalidArgument&) {
    throw;
  } catch (const FileError&) {
    throw;  // a checkpoint or metrics write failed: an error (main ends every rank), not divergence
  } catch (const std::runtime_error& e) {
    if (root)
      fmt::print(stderr, "infield fishernet train: {}; the last checkpoint is kept in {}\n",
                 e.what(), checkpoint_path.string());
    return kExitNumericalFailure;
  }
  // Every rank computes its share of the test latents; rank 0 writes them and the figures.
  const auto [mean, covariance] = test_latents(ae, state.params, test.images, o.training.threads,
                                               o.training.communicator);
  if (!root) return 0;
  write_metrics_csv(run / "metrics.csv", state.history);
  write_run_outputs(run, ae, state.params, test, mean, covariance, state.history,
                    o.training.seed);
  const auto& r = state.history.back();
  fmt::print("{}: test MSE {:.5f} after {} epochs (noise std {:.4f}); figures in {}\n", o.model,
             r.test_mse, r.epoch, r.noise_std, run.string());
  return 0;
}

int run_evaluate(const FisherNetCommandOptions& o) {
  const LoadedRun loaded = load_run(o.run);
  const std::string data = !o.data.empty() && o.data != "data/fashion-mnist"
                               ? o.data
                               : loaded.config.value("data", o.data);
  const ImageDataset test = load_images(data, "t10k", loaded.model.data_size());
  const double mse = neural::test_mse(loaded.model, loaded.checkpoint.params, test.images, o.threads);
  write_json_atomic(fs::path(o.run) / "evaluation.json",
                    {{"test_mse", mse},
                     {"epochs", loaded.checkpoint.epochs_done},
                     {"noise_std", loaded.model.noise_std(loaded.checkpoint.params)},
                     {"data", data}},
                    "infield fishernet evaluate");
  fmt::print("test MSE {:.6f} ({} images, after {} epochs)\n", mse, test.images.rows(),
             loaded.checkpoint.epochs_done);
  return 0;
}

int run_encode(const FisherNetCommandOptions& o) {
  const LoadedRun loaded = load_run(o.run);
  const IdxArray raw = read_idx(o.images);
  if (raw.shape.size() != 3)
    throw InvalidArgument("infield fishernet encode: " + o.images +
                          " is not a file of images (3 dimensions expected)");
  const Eigen::Index n = raw.shape[0], size = raw.shape[1] * raw.shape[2];
  if (size != loaded.model.data_size())
    throw InvalidArgument(fmt::format(
        "infield fishernet encode: the images in {} are {} x {} = {} pixels, the model's data size "
        "is {}",
        o.images, raw.shape[1], raw.shape[2], size, loaded.model.data_size()));
  Matrix<float> x(n, size);
  for (Eigen::Index i = 0; i < x.size(); ++i)
    x.data()[i] = static_cast<float>(raw.values[static_cast<std::size_t>(i)]) / 255.0F;
  const Vector<float>& params = loaded.checkpoint.params;
  const Eigen::Index d = loaded.model.latent();
  write_matrix_npy(o.out, {n, d}, loaded.model.encode_mean(params, x));
  if (!o.covariance_out.empty())
    write_matrix_npy(o.covariance_out, {n, d, d}, loaded.model.latent_covariances(params, x));
  fmt::print("encoded {} images into {}\n", n, o.out);
  return 0;
}

int run_sample(const FisherNetCommandOptions& o) {
  const LoadedRun loaded = load_run(o.run);
  if (o.n < 1) throw InvalidArgument("infield fishernet sample: --n must be at least 1");
  const Eigen::Index d = loaded.model.latent();
  const Vector<float>& params = loaded.checkpoint.params;
  std::mt19937_64 rng(o.seed);
  Matrix<float> z(o.n, d);
  if (o.latent_density == "gaussian") {
    std::normal_distribution<float> normal;
    for (auto& v : z.reshaped()) v = normal(rng);
  } else if (o.latent_density == "mkde") {
    if (d > 5)
      throw InvalidArgument(fmt::format(
          "infield fishernet sample: the MKDE latent density supports D <= 5, this model has D = {}",
          d));
    // The density of the training set's latent means (paper section 3.3.2).
    const std::string data = loaded.config.value("data", o.data);
    const ImageDataset train = load_images(data, "train", loaded.model.data_size());
    const Matrix<float> mean = loaded.model.encode_mean(params, train.images);
    MkdeOptions mo;
    mo.cells = {d <= 2 ? Eigen::Index{64} : Eigen::Index{8}};
    mo.seed = o.seed;
    mo.progress = &std::cerr;
    const Mkde mkde = Mkde::fit(mean.cast<double>(), mo);
    z = mkde.sample(o.n, rng).cast<float>();
  } else {
    throw InvalidArgument("infield fishernet sample: --latent-density must be gaussian or mkde, got '" +
                          o.latent_density + "'");
  }
  const Matrix<float> images = loaded.model.decode(params, z);
  const fs::path out(o.out);
  fs::create_directories(out);
  write_matrix_npy(out / "samples.npy", {o.n, images.cols()}, images);
  write_matrix_npy(out / "latents.npy", {o.n, d}, z);
  const int side = static_cast<int>(std::lround(std::sqrt(static_cast<double>(images.cols()))));
  if (side * side == images.cols()) write_image_grid_png(out / "samples.png", images, side, side);
  fmt::print("{} samples ({} latent density) in {}\n", o.n, o.latent_density, out.string());
  return 0;
}

int run_infer(const FisherNetCommandOptions& o) {
  constexpr std::string_view kCommand = "infield fishernet infer";
  const LoadedRun loaded = load_run(o.run);
  const Autoencoder& model = loaded.model;
  if (model.kind() == neural::AutoencoderKind::kCvae)
    throw InvalidArgument(fmt::format(
        "{}: {} is a CVAE run; its decoder is convolutional, which infer does not take as an "
        "operator (FisherNet and VAE runs, whose decoders are dense, are supported)",
        kCommand, o.run));
  const Vector<float>& params = loaded.checkpoint.params;
  const Matrix<double> images = read_image_rows(o.images, model.data_size(), o.first, kCommand);
  const Eigen::Index n = images.rows(), d = model.latent(), k = model.data_size();
  const double noise_std = model.noise_std(params);
  const neural::DenseNetwork decoder = neural::decoder_network(model, params);

  const auto started = std::chrono::steady_clock::now();
  const Matrix<double> encoder_mean =
      model.encode_mean(params, images.cast<float>()).cast<double>();
  neural::LatentInferenceOptions options;
  options.samples = o.samples;
  options.iterations = o.iterations;
  options.threads = o.threads;
  options.seed = o.seed;
  auto last_report = std::chrono::steady_clock::now();
  options.progress = [&](Eigen::Index done, Eigen::Index total) {
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_report < std::chrono::seconds(2)) return;
    last_report = now;
    const double seconds = std::chrono::duration<double>(now - started).count();
    fmt::print(stderr, "infer: {} / {} images, {:.1f} images/s\n", done, total, done / seconds);
  };
  const neural::LatentPosteriors posteriors =
      neural::infer_latents(decoder, noise_std, images, encoder_mean, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  const Matrix<double> encoder_decoded = decoder.network->forward(*decoder.parameters, encoder_mean);
  const Matrix<double> refined_decoded =
      decoder.network->forward(*decoder.parameters, posteriors.mean);
  const double encoder_mse = (images - encoder_decoded).squaredNorm() / static_cast<double>(n * k);
  const double refined_mse = (images - refined_decoded).squaredNorm() / static_cast<double>(n * k);

  const fs::path out(o.out);
  fs::create_directories(out);
  auto write = [](const fs::path& path, const std::vector<Eigen::Index>& shape,
                  const Matrix<double>& m) {
    write_npy(path, shape, Eigen::Map<const Eigen::VectorXd>(m.data(), m.size()));
  };
  write(out / "latent_mean.npy", {n, d}, posteriors.mean);
  write(out / "latent_covariance.npy", {n, d, d}, posteriors.covariance);
  write(out / "reconstructions.npy", {n, k}, refined_decoded);
  write(out / "encoder_mean.npy", {n, d}, encoder_mean);
  const bool all_converged = posteriors.not_converged() == 0;
  write_json_atomic(out / "summary.json",
                    {{"run", o.run},
                     {"model", neural::autoencoder_kind_name(model.kind())},
                     {"latent", d},
                     {"n_images", n},
                     {"samples", o.samples},
                     {"iterations", o.iterations},
                     {"threads", o.threads},
                     {"seed", o.seed},
                     {"noise_std", noise_std},
                     {"encoder_mse", encoder_mse},
                     {"refined_mse", refined_mse},
                     {"seconds", seconds},
                     {"images_per_s", static_cast<double>(n) / seconds},
                     {"not_converged", posteriors.not_converged()},
                     {"all_converged", all_converged}},
                    std::string(kCommand));
  fmt::print("{} images: reconstruction MSE {:.6f} from the encoder's means, {:.6f} from the "
             "refined means; {:.1f} s ({:.1f} images/s){}\n",
             n, encoder_mse, refined_mse, seconds, static_cast<double>(n) / seconds,
             all_converged ? ""
                           : fmt::format("; {} images NOT CONVERGED", posteriors.not_converged()));
  return 0;
}

/// One run's metrics.csv rows and its model and latent size from config.json.
struct RunSummary {
  std::string name, model;
  Eigen::Index latent = 0;
  std::vector<neural::EpochRecord> history;
};

RunSummary read_run_summary(const fs::path& run) {
  RunSummary r;
  r.name = run.filename().empty() ? run.parent_path().filename().string() : run.filename().string();
  std::ifstream config(run / "config.json");
  if (!config) throw FileError("infield fishernet report: " + run.string() + " has no config.json");
  const nlohmann::json c = nlohmann::json::parse(config, nullptr, false);
  if (c.is_discarded() || !c.contains("model") || !c.contains("latent"))
    throw FileError("infield fishernet report: " + (run / "config.json").string() +
                    " is not a run's configuration");
  r.model = c["model"].get<std::string>();
  r.latent = c["latent"].get<Eigen::Index>();
  std::ifstream csv(run / "metrics.csv");
  if (!csv) throw FileError("infield fishernet report: " + run.string() + " has no metrics.csv");
  std::string line;
  std::getline(csv, line);  // header
  while (std::getline(csv, line)) {
    neural::EpochRecord e;
    if (std::sscanf(line.c_str(), "%d,%lf,%lf,%lf,%lf,%lf", &e.epoch, &e.train_loss, &e.test_mse,
                    &e.noise_std, &e.seconds, &e.images_per_s) != 6)
      throw FileError("infield fishernet report: malformed line in " +
                      (run / "metrics.csv").string() + ": " + line);
    r.history.push_back(e);
  }
  if (r.history.empty())
    throw FileError("infield fishernet report: " + run.string() + " has no finished epoch");
  return r;
}

int run_report(const FisherNetCommandOptions& o) {
  static const char* kColourNames[] = {"blue", "orange", "green", "red",   "purple",
                                       "brown", "pink",  "grey",  "olive", "cyan"};
  std::vector<RunSummary> runs;
  for (const std::string& r : o.runs) runs.push_back(read_run_summary(r));
  const fs::path out(o.out);
  fs::create_directories(out);
  std::vector<Series> curves;
  std::string md = "| colour | run | model | D | epoch | test MSE | noise std | images/s |\n"
                   "|---|---|---|---|---|---|---|---|\n";
  std::map<std::string, Series> by_model;
  for (std::size_t k = 0; k < runs.size(); ++k) {
    const RunSummary& r = runs[k];
    Series s;
    for (const auto& e : r.history) {
      s.x.push_back(e.epoch);
      s.y.push_back(e.test_mse);
    }
    curves.push_back(s);
    // The row at --epoch (when the run has it), else the last.
    neural::EpochRecord e = r.history.back();
    for (const auto& x : r.history)
      if (x.epoch == o.at_epoch) e = x;
    double mean_rate = 0.0;
    for (const auto& x : r.history) mean_rate += x.images_per_s / r.history.size();
    md += fmt::format("| {} | {} | {} | {} | {} | {:.4f} | {:.4f} | {:.0f} |\n",
                      kColourNames[k % 10], r.name, r.model, r.latent, e.epoch, e.test_mse,
                      e.noise_std, mean_rate);
    by_model[r.model].x.push_back(static_cast<double>(r.latent));
    by_model[r.model].y.push_back(e.test_mse);
  }
  std::vector<fs::path> run_dirs(o.runs.begin(), o.runs.end());
  const bool matplotlib = draw_report_figures(run_dirs, out, o.at_epoch);
  if (!matplotlib) write_line_plot_png(out / "curves.png", curves);
  std::vector<Series> versus;
  md += "\nmse_vs_latent.png (test MSE against D):";
  for (auto& [model, s] : by_model) {
    std::vector<std::size_t> order(s.x.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](auto a, auto b) { return s.x[a] < s.x[b]; });
    Series sorted;
    for (auto i : order) {
      sorted.x.push_back(s.x[i]);
      sorted.y.push_back(s.y[i]);
    }
    md += fmt::format(" {} {}", kColourNames[versus.size() % 10], model);
    versus.push_back(sorted);
  }
  md += "\n";
  if (matplotlib)
    md += "(curves.png and mse_vs_latent.png are drawn with matplotlib and name the runs and "
          "models in their legends; .svg beside them)\n";
  else
    write_line_plot_png(out / "mse_vs_latent.png", versus);
  std::ofstream(out / "report.md") << md;
  fmt::print("{}", md);
  return 0;
}

}  // namespace

std::function<int()> register_fishernet_command(CLI::App& app) {
  auto o = std::make_shared<FisherNetCommandOptions>();
  CLI::App* cmd = app.add_subcommand("fishernet", "FisherNet and its VAE baseline on images");
  cmd->require_subcommand(1);

  CLI::App* train = cmd->add_subcommand("train", "train a model; checkpoints after every epoch");
  train->add_option("--model", o->model, "fishernet | vae | cvae")
      ->check(CLI::IsMember({"fishernet", "vae", "cvae"}));
  train->add_option("--latent", o->latent, "latent dimension D")->check(CLI::Range(1, 4096));
  train->add_option("--hidden", o->hidden, "hidden widths of encoder and decoder (not the CVAE)")
      ->delimiter(',');
  train->add_option("--epochs", o->training.epochs, "epochs to train in all")
      ->check(CLI::Range(1, 100000));
  train->add_option("--batch", o->training.batch, "batch size")->check(CLI::Range(1, 1 << 20));
  train->add_option("--lr", o->training.learning_rate, "Adam's learning rate")
      ->check(CLI::PositiveNumber);
  train->add_option("--noise-lr", o->training.noise_learning_rate,
                    "Adam's learning rate for zeta_N (default: --lr, the paper's single rate)")
      ->check(CLI::PositiveNumber);
  train->add_option("--seed", o->training.seed, "random seed");
  train->add_option("--threads", o->training.threads, "threads")->check(CLI::Range(1, 1024));
  train->add_option("--data", o->data, "directory with the four IDX files");
  train->add_option("--out", o->run, "run directory")->required();
  train->add_flag("--resume", o->resume, "continue the run in --out from its checkpoint");
  train->add_flag("--quiet", o->quiet, "no progress output");

  CLI::App* evaluate = cmd->add_subcommand("evaluate", "test MSE of a run");
  evaluate->add_option("--run", o->run, "run directory")->required();
  evaluate->add_option("--data", o->data, "directory with the IDX files (default: the run's)");
  evaluate->add_option("--threads", o->threads, "threads")->check(CLI::Range(1, 1024));

  CLI::App* encode = cmd->add_subcommand("encode", "latent means (and covariances) of images");
  encode->add_option("--run", o->run, "run directory")->required();
  encode->add_option("--images", o->images, "IDX file of images")->required();
  encode->add_option("--out", o->out, ".npy of latent means (N x D)")->required();
  encode->add_option("--covariance", o->covariance_out, ".npy of latent covariances (N x D x D)");

  CLI::App* sample = cmd->add_subcommand("sample", "decode latents drawn from a latent density");
  sample->add_option("--run", o->run, "run directory")->required();
  sample->add_option("--n", o->n, "number of samples")->check(CLI::Range(1, 1000000));
  sample->add_option("--latent-density", o->latent_density, "gaussian | mkde")
      ->check(CLI::IsMember({"gaussian", "mkde"}));
  sample->add_option("--seed", o->seed, "random seed");
  sample->add_option("--out", o->out, "output directory")->required();

  CLI::App* infer = cmd->add_subcommand(
      "infer", "full MGVI per image with the trained decoder and noise, from the encoder's means");
  infer->add_option("--run", o->run, "run directory (FisherNet or VAE)")->required();
  infer->add_option("--images", o->images, "IDX file of images, or .npy (N x pixels, in [0, 1])")
      ->required();
  infer->add_option("--first", o->first, "only the first N images (default: all)")
      ->check(CLI::Range(Eigen::Index{1}, Eigen::Index{1} << 40));
  infer->add_option("--samples", o->samples, "MGVI samples per image (even: mirrored pairs)")
      ->check(CLI::Range(2, 100000));
  infer->add_option("--iterations", o->iterations, "global MGVI iterations per image")
      ->check(CLI::Range(1, 10000));
  infer->add_option("--threads", o->threads, "threads (images run in parallel)")
      ->check(CLI::Range(1, 1024));
  infer->add_option("--seed", o->seed, "random seed");
  infer->add_option("--out", o->out, "output directory")->required();

  CLI::App* report = cmd->add_subcommand(
      "report", "a table and plots (test MSE per epoch, test MSE against D) of several runs");
  report->add_option("--runs", o->runs, "run directories")->required()->delimiter(',');
  report->add_option("--epoch", o->at_epoch, "compare at this epoch (default: each run's last)");
  report->add_option("--out", o->out, "output directory")->required();

  return [o, train, evaluate, encode, sample, infer, report]() {
    if (report->parsed()) return run_report(*o);
    if (train->parsed()) return run_train(*o);
    if (evaluate->parsed()) return run_evaluate(*o);
    if (encode->parsed()) return run_encode(*o);
    if (sample->parsed()) return run_sample(*o);
    if (infer->parsed()) return run_infer(*o);
    return 2;
  };
}

}  // namespace infield::apps

#include "infield/models/classifier.h"

#include <tbb/task_arena.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <string>

#include "infield/error.h"
#include "infield/npy.h"
#include "checkpoint_reader.h"
#include "random_streams.h"

namespace infield::neural {
namespace {

constexpr Eigen::Index kChunk = 1000;
constexpr double kTag = 46120.0;  // "classifier checkpoint" tag in the first entry
constexpr double kVersion = 1.0;

std::vector<LayerSpec> classifier_layers(Eigen::Index rows, Eigen::Index cols,
                                         Eigen::Index classes, bool features_only) {
  ConvGeometry first;
  first.channels_in = 1;
  first.rows = rows;
  first.cols = cols;
  first.channels_out = 32;
  first.kernel = 3;
  first.stride = 2;
  first.padding = 1;
  ConvGeometry second = first;
  second.channels_in = 32;
  second.rows = first.out_rows();
  second.cols = first.out_cols();
  second.channels_out = 64;
  std::vector<LayerSpec> layers = {
      LayerSpec::conv(first, Activation::kRelu), LayerSpec::conv(second, Activation::kRelu),
      LayerSpec::dense(second.small_size(), kClassifierFeatures, Activation::kRelu)};
  if (!features_only)
    layers.push_back(LayerSpec::dense(kClassifierFeatures, classes, Activation::kIdentity));
  return layers;
}

void check_images(const ImageClassifier& m, const Matrix<float>& images, std::string_view fn) {
  if (images.cols() != m.input_size())
    throw InvalidArgument(std::string(fn) + ": the images have " + std::to_string(images.cols()) +
                          " pixels, the classifier takes " + std::to_string(m.rows()) + " x " +
                          std::to_string(m.cols()) + " = " + std::to_string(m.input_size()));
}

void check_labels(const ImageClassifier& m, const Matrix<float>& images,
                  const std::vector<int>& labels, std::string_view fn) {
  check_images(m, images, fn);
  check_argument(static_cast<Eigen::Index>(labels.size()) == images.rows(), fn, "labels",
                 "must have one entry per image");
  for (int l : labels)
    check_argument(l >= 0 && l < m.classes(), fn, "labels",
                   "must lie in 0 .. " + std::to_string(m.classes() - 1) + ", got " +
                       std::to_string(l));
}

}  // namespace

ImageClassifier::ImageClassifier(Eigen::Index rows, Eigen::Index cols, Eigen::Index classes)
    : rows_(rows), cols_(cols), classes_(classes),
      network_((check_argument(rows > 0 && cols > 0 && rows % 4 == 0 && cols % 4 == 0,
                               "ImageClassifier", "rows, cols",
                               "must be positive multiples of 4"),
                check_argument(classes >= 2, "ImageClassifier", "classes", "must be at least 2"),
                classifier_layers(rows, cols, classes, false))),
      features_(classifier_layers(rows, cols, classes, true)) {}

Vector<float> ImageClassifier::initialize(std::uint64_t seed) const {
  std::mt19937_64 rng(detail::mix(seed, 0xc1a5));
  return network_.initialize(rng);
}

double ImageClassifier::loss(const Vector<float>& params, const Matrix<float>& images,
                             const std::vector<int>& labels, Vector<float>* gradient,
                             Eigen::Index* correct) const {
  check_labels(*this, images, labels, "ImageClassifier::loss");
  Sequential<float>::Cache cache;
  const Matrix<float> logits = network_.forward(params, images, gradient ? &cache : nullptr);
  Matrix<float> g(logits.rows(), logits.cols());
  double total = 0.0;
  Eigen::Index right = 0;
  for (Eigen::Index i = 0; i < logits.rows(); ++i) {
    // Softmax in double around the largest logit (no overflow); d loss / d logits = p - onehot.
    const Eigen::VectorXd z = logits.row(i).transpose().cast<double>();
    Eigen::Index best = 0;
    const double top = z.maxCoeff(&best);
    const Eigen::VectorXd e = (z.array() - top).exp();
    const double sum = e.sum();
    const int label = labels[static_cast<std::size_t>(i)];
    total += std::log(sum) - (z[label] - top);
    right += best == label;
    g.row(i) = (e / sum).transpose().cast<float>();
    g(i, label) -= 1.0F;
  }
  if (gradient) {
    gradient->resize(network_.parameter_count());
    network_.vjp(params, cache, g, *gradient, false, GradientWrite::kOverwrite);
  }
  if (correct) *correct = right;
  return total;
}

std::vector<int> ImageClassifier::predict(const Vector<float>& params,
                                          const Matrix<float>& images) const {
  check_images(*this, images, "ImageClassifier::predict");
  std::vector<int> out(static_cast<std::size_t>(images.rows()));
  for (Eigen::Index start = 0; start < images.rows(); start += kChunk) {
    const Eigen::Index n = std::min(kChunk, images.rows() - start);
    const Matrix<float> logits = network_.forward(params, images.middleRows(start, n));
    for (Eigen::Index i = 0; i < n; ++i) {
      Eigen::Index best = 0;
      logits.row(i).maxCoeff(&best);
      out[static_cast<std::size_t>(start + i)] = static_cast<int>(best);
    }
  }
  return out;
}

double ImageClassifier::accuracy(const Vector<float>& params, const Matrix<float>& images,
                                 const std::vector<int>& labels) const {
  check_labels(*this, images, labels, "ImageClassifier::accuracy");
  check_argument(images.rows() > 0, "ImageClassifier::accuracy", "images", "must not be empty");
  const std::vector<int> predicted = predict(params, images);
  Eigen::Index right = 0;
  for (std::size_t i = 0; i < predicted.size(); ++i) right += predicted[i] == labels[i];
  return static_cast<double>(right) / static_cast<double>(images.rows());
}

Eigen::MatrixXd ImageClassifier::features(const Vector<float>& params,
                                          const Matrix<float>& images) const {
  check_images(*this, images, "ImageClassifier::features");
  const Eigen::Ref<const Vector<float>> prefix = params.head(features_.parameter_count());
  Eigen::MatrixXd out(images.rows(), kClassifierFeatures);
  for (Eigen::Index start = 0; start < images.rows(); start += kChunk) {
    const Eigen::Index n = std::min(kChunk, images.rows() - start);
    out.middleRows(start, n) =
        features_.forward(prefix, images.middleRows(start, n)).cast<double>();
  }
  return out;
}

void ClassifierOptions::validate() const {
  constexpr std::string_view fn = "ClassifierOptions";
  check_argument(epochs >= 1, fn, "epochs", "must be at least 1");
  check_argument(batch >= 1, fn, "batch", "must be at least 1");
  check_argument(learning_rate > 0, fn, "learning_rate", "must be positive");
  check_argument(threads >= 1, fn, "threads", "must be at least 1");
}

ClassifierState start_classifier(const ImageClassifier& model, const ClassifierOptions& options) {
  options.validate();
  ClassifierState s;
  s.rows = model.rows();
  s.cols = model.cols();
  s.classes = model.classes();
  s.options = options;
  s.params = model.initialize(options.seed);
  s.adam_m = Vector<float>::Zero(s.params.size());
  s.adam_v = Vector<float>::Zero(s.params.size());
  return s;
}

ClassifierState train_classifier(const ImageClassifier& model, const ClassifierOptions& options,
                                 const Matrix<float>& train, const std::vector<int>& train_labels,
                                 const Matrix<float>& test, const std::vector<int>& test_labels,
                                 ClassifierState state,
                                 const std::function<void(const ClassifierState&)>& on_epoch) {
  constexpr std::string_view fn = "train_classifier";
  options.validate();
  check_labels(model, train, train_labels, fn);
  check_labels(model, test, test_labels, fn);
  check_argument(train.rows() > 0 && test.rows() > 0, fn, "images", "must not be empty");
  check_argument(state.params.size() == model.parameter_count(), fn, "state",
                 "does not belong to this classifier");
  typename Adam<float>::Options adam_options;
  adam_options.learning_rate = static_cast<float>(options.learning_rate);
  Adam<float> adam(model.parameter_count(), adam_options);
  adam.restore(state.adam_m, state.adam_v, state.steps);
  tbb::task_arena arena(options.threads);
  const Eigen::Index n = train.rows();
  std::vector<Eigen::Index> order(static_cast<std::size_t>(n));
  Vector<float> gradient(model.parameter_count());
  for (int epoch = state.epochs_done + 1; epoch <= options.epochs; ++epoch) {
    const auto started = std::chrono::steady_clock::now();
    std::iota(order.begin(), order.end(), Eigen::Index{0});
    std::mt19937_64 shuffle(detail::mix(options.seed, 0x5eed, static_cast<std::uint64_t>(epoch)));
    std::shuffle(order.begin(), order.end(), shuffle);
    double loss_sum = 0.0;
    Eigen::Index correct_sum = 0;
    arena.execute([&] {
      for (Eigen::Index start = 0; start < n; start += options.batch) {
        const Eigen::Index b = std::min(options.batch, n - start);
        Matrix<float> x(b, train.cols());
        std::vector<int> y(static_cast<std::size_t>(b));
        for (Eigen::Index i = 0; i < b; ++i) {
          const Eigen::Index row = order[static_cast<std::size_t>(start + i)];
          x.row(i) = train.row(row);
          y[static_cast<std::size_t>(i)] = train_labels[static_cast<std::size_t>(row)];
        }
        Eigen::Index correct = 0;
        const double loss = model.loss(state.params, x, y, &gradient, &correct);
        if (!std::isfinite(loss))
          throw std::runtime_error("train_classifier: the loss became non-finite in epoch " +
                                   std::to_string(epoch));
        adam.step(state.params, gradient, 1.0F / static_cast<float>(b));
        loss_sum += loss;
        correct_sum += correct;
      }
    });
    ClassifierEpoch record;
    record.epoch = epoch;
    record.train_loss = loss_sum / static_cast<double>(n);
    record.train_accuracy = static_cast<double>(correct_sum) / static_cast<double>(n);
    record.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    record.test_accuracy =
        arena.execute([&] { return model.accuracy(state.params, test, test_labels); });
    state.history.push_back(record);
    state.epochs_done = epoch;
    state.steps = adam.steps();
    state.adam_m = adam.first_moment();
    state.adam_v = adam.second_moment();
    state.options = options;
    if (on_epoch) on_epoch(state);
  }
  return state;
}

void save_classifier(const std::filesystem::path& path, const ClassifierState& s) {
  std::vector<double> v{kTag,
                        kVersion,
                        static_cast<double>(s.rows),
                        static_cast<double>(s.cols),
                        static_cast<double>(s.classes),
                        static_cast<double>(s.options.seed >> 32),
                        static_cast<double>(s.options.seed & 0xffffffffULL),
                        static_cast<double>(s.options.batch),
                        s.options.learning_rate,
                        static_cast<double>(s.options.epochs),
                        static_cast<double>(s.epochs_done),
                        static_cast<double>(s.steps),
                        static_cast<double>(s.params.size())};
  for (const Vector<float>* a : {&s.params, &s.adam_m, &s.adam_v})
    v.insert(v.end(), a->data(), a->data() + a->size());
  v.push_back(static_cast<double>(s.history.size()));
  for (const ClassifierEpoch& r : s.history)
    for (double x : {static_cast<double>(r.epoch), r.train_loss, r.train_accuracy,
                     r.test_accuracy, r.seconds})
      v.push_back(x);
  write_npy(path, {static_cast<Eigen::Index>(v.size())},
            Eigen::Map<const Eigen::VectorXd>(v.data(), static_cast<Eigen::Index>(v.size())));
}

ClassifierState load_classifier(const std::filesystem::path& path) {
  detail::CheckpointReader in(path, "classifier checkpoint " + path.string());
  if (in.next("tag") != kTag) in.fail("is not a classifier checkpoint");
  if (in.next("version") != kVersion) in.fail("has an unknown version");
  ClassifierState s;
  s.rows = in.count("rows", 1 << 16);
  s.cols = in.count("cols", 1 << 16);
  s.classes = in.count("classes", 1 << 20);
  const auto hi = static_cast<std::uint64_t>(in.count("seed", 4294967295.0));
  const auto lo = static_cast<std::uint64_t>(in.count("seed", 4294967295.0));
  s.options.seed = hi << 32 | lo;
  s.options.batch = in.count("batch", 1 << 30);
  s.options.learning_rate = in.next("learning rate");
  s.options.epochs = static_cast<int>(in.count("epochs", 1e9));
  s.epochs_done = static_cast<int>(in.count("epochs done", 1e9));
  s.steps = in.count("steps", 1e15);
  const Eigen::Index p = in.count("parameter count", 1e10);
  if (s.rows % 4 != 0 || s.cols % 4 != 0 || s.rows == 0 || s.cols == 0 || s.classes < 2)
    in.fail("has a bad image size or class count");
  if (p != ImageClassifier(s.rows, s.cols, s.classes).parameter_count())
    in.fail("has a parameter count that does not match its network");
  s.params = in.floats(p, "parameters");
  s.adam_m = in.floats(p, "moments");
  s.adam_v = in.floats(p, "moments");
  const Eigen::Index epochs = in.count("history length", 1e9);
  for (Eigen::Index e = 0; e < epochs; ++e) {
    ClassifierEpoch r;
    r.epoch = static_cast<int>(in.next("history"));
    r.train_loss = in.next("history");
    r.train_accuracy = in.next("history");
    r.test_accuracy = in.next("history");
    r.seconds = in.next("history");
    s.history.push_back(r);
  }
  in.expect_end();
  return s;
}

FeatureGaussian fit_feature_gaussian(const Eigen::MatrixXd& features) {
  constexpr std::string_view fn = "fit_feature_gaussian";
  check_argument(features.rows() >= 2, fn, "features",
                 "needs at least 2 rows (a covariance), got " + std::to_string(features.rows()));
  check_finite(features.reshaped(), fn, "features");
  FeatureGaussian g;
  g.count = features.rows();
  g.mean = features.colwise().mean().transpose();
  const Eigen::MatrixXd centred = features.rowwise() - g.mean.transpose();
  g.covariance = centred.transpose() * centred / static_cast<double>(features.rows() - 1);
  return g;
}

double trace_sqrt_product(const Eigen::MatrixXd& s1, const Eigen::MatrixXd& s2) {
  constexpr std::string_view fn = "trace_sqrt_product";
  check_argument(s1.rows() == s1.cols() && s2.rows() == s2.cols() && s1.rows() == s2.rows(), fn,
                 "s1, s2", "must be square matrices of one size");
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> e1(0.5 * (s1 + s1.transpose()));
  if (e1.info() != Eigen::Success) throw std::runtime_error("trace_sqrt_product: no eigensystem");
  const Eigen::VectorXd root = e1.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  const Eigen::MatrixXd sqrt1 = e1.eigenvectors() * root.asDiagonal() * e1.eigenvectors().transpose();
  const Eigen::MatrixXd inner = sqrt1 * (0.5 * (s2 + s2.transpose())) * sqrt1;
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> e2(0.5 * (inner + inner.transpose()),
                                                          Eigen::EigenvaluesOnly);
  if (e2.info() != Eigen::Success) throw std::runtime_error("trace_sqrt_product: no eigensystem");
  return e2.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
}

double frechet_distance(const FeatureGaussian& a, const FeatureGaussian& b) {
  check_argument(a.mean.size() == b.mean.size(), "frechet_distance", "a, b",
                 "must have features of one size");
  const double d = (a.mean - b.mean).squaredNorm() + a.covariance.trace() + b.covariance.trace() -
                   2.0 * trace_sqrt_product(a.covariance, b.covariance);
  return std::max(d, 0.0);
}

}  // namespace infield::neural

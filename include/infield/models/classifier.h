#pragma once
/// @file models/classifier.h
/// @brief An image classifier trained with Infield's own layers, and the Fréchet distance between
/// the Gaussians of its penultimate-layer features: the paper's FID measure of sample quality
/// (Heusel et al. 2017) without Inception v3's weights, which cannot be fetched here. Distances on
/// our features are not on the FID's scale; compare orderings and trends (docs/reproduction.md).
///
/// The network for 1 x rows x cols images (rows and cols divisible by 4): conv 32 (3 x 3,
/// stride 2) and conv 64 (3 x 3, stride 2) with ReLU, a dense layer of 128 ReLU units (the
/// features), a dense layer to the class logits; softmax cross-entropy, Adam.

#include <Eigen/Core>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <vector>

#include "infield/models/convolution.h"
#include "infield/models/neural.h"

namespace infield::neural {

/// Width of the feature layer.
constexpr Eigen::Index kClassifierFeatures = 128;

class ImageClassifier {
 public:
  /// Throws InvalidArgument unless rows and cols are positive multiples of 4 and classes >= 2.
  ImageClassifier(Eigen::Index rows, Eigen::Index cols, Eigen::Index classes = 10);
  Eigen::Index rows() const { return rows_; }
  Eigen::Index cols() const { return cols_; }
  Eigen::Index classes() const { return classes_; }
  Eigen::Index input_size() const { return rows_ * cols_; }
  const Sequential<float>& network() const { return network_; }
  /// The layers up to the features; its parameters are the first features_parameter_count() of
  /// the network's.
  const Sequential<float>& feature_network() const { return features_; }
  Eigen::Index parameter_count() const { return network_.parameter_count(); }

  /// PyTorch's default initialisation from `seed`.
  Vector<float> initialize(std::uint64_t seed) const;
  /// Softmax cross-entropy summed over the rows of `images` (labels 0 .. classes - 1); with
  /// `gradient` (overwritten) its gradient in the parameters; `correct` counts the rows whose
  /// largest logit is the label.
  double loss(const Vector<float>& params, const Matrix<float>& images,
              const std::vector<int>& labels, Vector<float>* gradient = nullptr,
              Eigen::Index* correct = nullptr) const;
  /// Predicted classes (argmax of the logits), in chunks of 1000 rows.
  std::vector<int> predict(const Vector<float>& params, const Matrix<float>& images) const;
  /// Fraction of rows predicted correctly.
  double accuracy(const Vector<float>& params, const Matrix<float>& images,
                  const std::vector<int>& labels) const;
  /// The penultimate layer's activations (N x kClassifierFeatures), in chunks of 1000 rows.
  Eigen::MatrixXd features(const Vector<float>& params, const Matrix<float>& images) const;

 private:
  Eigen::Index rows_, cols_, classes_;
  Sequential<float> network_, features_;
};

struct ClassifierOptions {
  int epochs = 6;
  Eigen::Index batch = 64;
  double learning_rate = 1e-3;
  std::uint64_t seed = 0;
  int threads = 1;
  void validate() const;
};

struct ClassifierEpoch {
  int epoch = 0;
  double train_loss = 0.0;      ///< Mean cross-entropy per image over the epoch.
  double train_accuracy = 0.0;  ///< Over the epoch's batches, as they were trained.
  double test_accuracy = 0.0;
  double seconds = 0.0;
};

/// Everything a resumed training needs (and what `infield frechet` loads).
struct ClassifierState {
  Eigen::Index rows = 0, cols = 0, classes = 0;
  ClassifierOptions options;
  int epochs_done = 0;
  std::int64_t steps = 0;
  Vector<float> params, adam_m, adam_v;
  std::vector<ClassifierEpoch> history;
};

/// A fresh state: parameters from options.seed.
ClassifierState start_classifier(const ImageClassifier& model, const ClassifierOptions& options);
/// Trains from `state` until options.epochs epochs are done (the shuffle of epoch e drawn from
/// (seed, e)); `on_epoch` gets the state after every epoch (to checkpoint it). Throws
/// InvalidArgument for images of another size or labels outside 0 .. classes - 1, and
/// std::runtime_error if the loss becomes non-finite.
ClassifierState train_classifier(const ImageClassifier& model, const ClassifierOptions& options,
                                 const Matrix<float>& train, const std::vector<int>& train_labels,
                                 const Matrix<float>& test, const std::vector<int>& test_labels,
                                 ClassifierState state,
                                 const std::function<void(const ClassifierState&)>& on_epoch = {});
/// Atomic save (one .npy vector) and validated load (FileError for a missing, corrupt or
/// truncated file).
void save_classifier(const std::filesystem::path& path, const ClassifierState& state);
ClassifierState load_classifier(const std::filesystem::path& path);

/// A Gaussian fitted to feature vectors: their mean and covariance (divided by n - 1).
struct FeatureGaussian {
  Eigen::VectorXd mean;
  Eigen::MatrixXd covariance;
  Eigen::Index count = 0;
};
/// Throws InvalidArgument for fewer than 2 rows or non-finite values.
FeatureGaussian fit_feature_gaussian(const Eigen::MatrixXd& features);

/// tr (S1^{1/2} S2 S1^{1/2})^{1/2} for symmetric positive semi-definite S1, S2 (equal to
/// tr (S1 S2)^{1/2}, the term of the Fréchet distance): S1^{1/2} from the symmetric
/// eigendecomposition of S1, then the eigenvalues of the symmetric S1^{1/2} S2 S1^{1/2}, whose
/// square roots are summed. Eigenvalues below zero by rounding are taken as zero. Unlike a
/// general matrix square root of S1 S2 (scipy's sqrtm), every step stays real and symmetric.
double trace_sqrt_product(const Eigen::MatrixXd& s1, const Eigen::MatrixXd& s2);

/// |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr (S_a^{1/2} S_b S_a^{1/2})^{1/2}: the squared
/// 2-Wasserstein distance of the two Gaussians (>= 0; 0 for equal ones up to rounding).
double frechet_distance(const FeatureGaussian& a, const FeatureGaussian& b);

}  // namespace infield::neural

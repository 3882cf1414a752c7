#pragma once
/// @file inference/mgvi.h
/// @brief Metric Gaussian Variational Inference: metric samples, the sampled KL, sample lists and
/// the one-call `optimize_kl` driver.
///
/// Around an expansion point xi_bar with model Jacobian J and likelihood metric F, a residual is
/// delta = M^{-1} theta with theta = J^T n + eta, n ~ N(0, F), eta ~ N(0, 1), M = J^T F J + 1, so
/// Cov(delta) = M^{-1}. Samples come in mirrored pairs xi_bar +- delta. The sampled KL
///   KL(xi) = (1/K) sum_k H(xi + delta_k)
/// is minimised over xi with the residuals held fixed; then residuals are redrawn at the new point.
/// Every sample has its own random stream, derived from (seed, global iteration, pair index), so
/// results do not depend on the number of threads, and a resumed run repeats an uninterrupted one.
///
/// geoVI (<infield/inference/geovi.h>) is the same loop with non-linear samples: each linear
/// sample and its mirror are refined by a minimiser (SamplingOptions::nonlinear_minimizer,
/// GlobalIterationSettings::nonlinear_sampling_minimizer); a schedule may switch per iteration.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <limits>
#include <string>
#include <vector>

#include "infield/energy.h"
#include "infield/inference/communicator.h"
#include "infield/inference/conjugate_gradient.h"
#include "infield/inference/geovi.h"
#include "infield/inference/minimizer.h"

namespace infield {

/// Samples xi_bar + residual_k (and xi_bar - residual_k when mirrored) of the approximate posterior.
class SampleList {
 public:
  SampleList() = default;
  SampleList(Field mean, std::vector<Eigen::VectorXd> residuals, bool mirrored);

  const Field& mean() const { return mean_; }
  const std::vector<Eigen::VectorXd>& residuals() const { return residuals_; }
  bool mirrored() const { return mirrored_; }
  /// Number of samples: 2 x residuals when mirrored.
  int size() const;
  /// Sample k (0 <= k < size()); mirrored pairs are k = 2i (plus) and 2i + 1 (minus).
  Field sample(int k) const;
  /// The signed residuals, one per sample.
  std::vector<Eigen::VectorXd> signed_residuals() const;

  struct Statistics {
    Field mean;
    Field std;  ///< Unbiased (divides by n - 1); zero with one sample.
  };
  /// Mean and standard deviation over the samples of op(sample); op->domain() must be the
  /// samples' space. Samples are evaluated in parallel.
  Statistics statistics(const Operator& op) const;

 private:
  Field mean_;
  std::vector<Eigen::VectorXd> residuals_;
  bool mirrored_ = true;
};

struct SamplingOptions {
  /// Mirrored pairs to draw (each gives two samples).
  int pairs = 4;
  /// CG for M delta = theta.
  ConjugateGradientOptions cg = {1e-8, 0.0, 500};
  /// Keys of a MultiField position that are point-estimated: their residuals are zero and the
  /// metric is restricted to the other keys.
  std::vector<std::string> point_estimates;
  /// geoVI when set: every linear sample and its mirror are refined by this minimiser on geoVI's
  /// sample energy (GeoVIExpansion::refine), e.g. geovi_sample_minimizer(). Null: MGVI.
  MinimizerPtr nonlinear_minimizer;
  void validate() const;
};

struct SamplingSummary {
  int cg_iterations = 0;       ///< Summed over all pairs.
  int cg_not_converged = 0;    ///< Number of pairs whose CG did not reach its tolerance.
  std::vector<ConjugateGradientSummary> per_sample;  ///< One per pair.
  /// geoVI only: minimiser iterations summed over all samples, the samples whose refinement did
  /// not converge, and each sample's summary (2 per pair: plus, then minus).
  int nonlinear_iterations = 0;
  int nonlinear_not_converged = 0;
  std::vector<MinimizerSummary> nonlinear_per_sample;
};

/// Draws `options.pairs` mirrored residual pairs around `position`, in parallel (oneTBB), pair i
/// from the random stream (seed, stream, i). With options.nonlinear_minimizer (geoVI) the linear
/// residuals come from geoVI's metric 1 + J̄^T J̄ (the Hamiltonian's, where the likelihood's
/// transformation is exact) and are then refined one by one: the list is not mirrored, its
/// samples 2i and 2i + 1 are the refined plus and minus samples of pair i.
SampleList draw_samples(const StandardHamiltonian& hamiltonian, const Field& position,
                        const SamplingOptions& options, std::uint64_t seed, std::uint64_t stream,
                        SamplingSummary* summary = nullptr);

/// One MGVI residual from given standard-normal draws, as draw_samples forms one from drawn
/// draws: theta = J^T J_f^T n + eta with J the model's Jacobian and J_f that of the likelihood's
/// transformation at the model's value (J_f^T J_f = F, so J_f^T n ~ N(0, F)), then
/// delta = M^{-1} theta by CG from eta. n has the transformation's target size, eta the
/// position's. For checking a fast path against the inference layer (FisherNet's
/// latent_residuals: tests/models/network_operators_test.cpp). Throws InvalidArgument if the
/// likelihood's transformation is missing or not exact, or for sizes that do not match.
Eigen::VectorXd mgvi_residual(const StandardHamiltonian& hamiltonian, const Field& position,
                              ConstVectorRef n, ConstVectorRef eta,
                              const ConjugateGradientOptions& cg = {1e-12, 0.0, 1000},
                              ConjugateGradientSummary* summary = nullptr);

/// The sampled KL (1/K) sum_k H(xi + r_k) with residuals r_k held fixed; value, gradient and the
/// averaged metric, evaluated over the samples in parallel and summed in a fixed order.
///
/// Over several ranks each rank holds its share of the samples (`signed_residuals`, possibly
/// none) and `total_samples` is K over all ranks: value, gradient and every metric product are
/// summed over ranks (Communicator: in rank order, the same bits on every rank), so each rank's
/// minimiser takes the same steps. Every rank must then evaluate at the same points in the same
/// order. With no samples at all (K = 0) it is the Hamiltonian itself, evaluated on every rank.
class SampledKL final : public Energy {
 public:
  SampledKL(std::shared_ptr<const StandardHamiltonian> hamiltonian,
            std::vector<Eigen::VectorXd> signed_residuals, Communicator communicator = {},
            int total_samples = -1);
  bool has_metric() const override { return true; }
  EnergyEvaluation evaluate(ConstVectorRef x, unsigned request) const override;

 private:
  std::shared_ptr<const StandardHamiltonian> hamiltonian_;
  std::vector<Eigen::VectorXd> residuals_;
  Communicator communicator_;
  int total_samples_ = 0;
};

/// Settings of one global iteration.
struct GlobalIterationSettings {
  /// Mirrored sample pairs; 0 means a maximum a posteriori step (no samples).
  int sample_pairs = 4;
  /// Minimizer of the sampled KL (default: Newton-CG with the averaged metric).
  MinimizerPtr minimizer;
  ConjugateGradientOptions sampling_cg = {1e-8, 0.0, 500};
  std::vector<std::string> point_estimates;
  /// geoVI's sample minimiser (NIFTy's `nonlinear_sampling_minimizer`); null: MGVI's linear
  /// samples.
  MinimizerPtr nonlinear_sampling_minimizer;
};

struct GlobalIterationReport {
  int iteration = 0;
  int samples = 0;
  double kl_value = 0.0;        ///< Sampled KL after the minimisation.
  /// Monte Carlo standard error of kl_value: the standard deviation of the mirrored pairs' mean
  /// energies over sqrt(pairs) (0 with fewer than two pairs). Changes of the KL between global
  /// iterations smaller than a few of these are noise, not progress.
  double kl_standard_error = 0.0;
  /// The KL divergence up to a constant, kl_value minus the entropy of the sample distribution
  /// (constant during the minimisation of one iteration): MGVI's Gaussian has entropy
  /// -0.5 log det M with M the metric where the samples were drawn; geoVI's samples g^{-1}(z),
  /// z ~ N(g(xi_bar), M), have entropy 0.5 log det M - E[log |det J_g|] (which is MGVI's where g
  /// is affine, J_g = M), the expectation taken over this iteration's samples. Computed densely when the sampled space has at most
  /// OptimizeKLOptions::dense_entropy_limit entries, otherwise NaN. Unlike kl_value, this is
  /// comparable between global iterations whose sample distributions differ, and between MGVI
  /// and geoVI.
  double kl_with_entropy = std::numeric_limits<double>::quiet_NaN();
  double gradient_norm = 0.0;   ///< Its gradient norm.
  int sampling_cg_iterations = 0;
  int sampling_cg_not_converged = 0;
  /// True if this iteration's samples are geoVI's; then the refinement's iterations (summed over
  /// samples) and the samples whose refinement did not converge.
  bool nonlinear_sampling = false;
  int nonlinear_sampling_iterations = 0;
  int nonlinear_sampling_not_converged = 0;
  MinimizerSummary minimizer;
  double seconds_sampling = 0.0;
  double seconds_minimizing = 0.0;
  /// The progress line printed for this iteration.
  std::string progress_line() const;
};

struct OptimizeKLOptions {
  int global_iterations = 5;
  /// Settings per global iteration; when empty, `settings` is used for every iteration.
  std::function<GlobalIterationSettings(int iteration)> schedule;
  GlobalIterationSettings settings;
  std::uint64_t seed = 42;
  /// Checkpoint file written atomically after every global iteration; empty disables.
  std::filesystem::path checkpoint;
  /// Continue from `checkpoint` if it exists. It is validated against this run: the space, the
  /// seed, and `run_id`.
  bool resume = false;
  /// Identifies the problem for checkpoint validation: callers should fingerprint what the
  /// checkpoint cannot see (data, model parameters, schedule), as `infield mgvi linear` does with
  /// a hash of its inputs and options. A checkpoint with another run_id is rejected.
  std::string run_id;
  /// One progress line per global iteration goes here; null silences it.
  std::ostream* progress = nullptr;
  /// Largest sampled dimension for which kl_with_entropy is computed (n metric products and a
  /// dense Cholesky factorisation per global iteration); 0 disables it.
  Eigen::Index dense_entropy_limit = 2048;
  /// Called after each global iteration with its report and the current samples (on every rank,
  /// with the same samples; write files from the root rank only).
  std::function<void(const GlobalIterationReport&, const SampleList&)> callback;
  /// The ranks sharing the work (default: this process alone). Sample pairs are dealt to ranks in
  /// contiguous blocks; every rank holds the expansion point; the KL, its gradient and metric
  /// products are summed over ranks in rank order; the samples are gathered to every rank after
  /// each global iteration (the summary, the callback and the checkpoint hold all of them).
  /// Progress lines and the checkpoint are written by the root rank; a checkpoint is read by the
  /// root and sent to the others. Results depend on the number of ranks only through rounding
  /// (the summation order), never on timing. Ranks without a sample pair in an iteration (more
  /// ranks than pairs) join the sums with nothing and are named on the progress line.
  Communicator communicator;
  void validate() const;
};

struct OptimizeKLSummary {
  std::vector<GlobalIterationReport> iterations;
  /// The final samples (their mean is the final expansion point).
  SampleList samples;
  /// Global iterations restored from the checkpoint rather than run.
  int resumed_iterations = 0;
  /// True if every sampling CG and every minimisation converged.
  bool all_converged() const;
};

/// MGVI: for each global iteration, draw samples at the current point, minimise the sampled KL,
/// report, checkpoint.
OptimizeKLSummary optimize_kl(std::shared_ptr<const StandardHamiltonian> hamiltonian,
                              Field initial_position, const OptimizeKLOptions& options);

}  // namespace infield

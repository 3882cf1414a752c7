#include "infield/inference/mgvi.h"

#include <tbb/parallel_for.h>

#include <Eigen/Cholesky>
#include <algorithm>
#include <chrono>
#include <fcntl.h>
#include <unistd.h>
#include <cstring>
#include <exception>
#include <fstream>
#include <optional>
#include <iomanip>
#include <ostream>
#include <random>
#include <sstream>

#include "infield/error.h"
#include "infield/linear_operators.h"

namespace infield {

// ---- SampleList ----------------------------------------------------------------------------------

SampleList::SampleList(Field mean, std::vector<Eigen::VectorXd> residuals, bool mirrored)
    : mean_(std::move(mean)), residuals_(std::move(residuals)), mirrored_(mirrored) {
  for (const auto& r : residuals_)
    check_argument(r.size() == mean_.size(), "SampleList", "residuals",
                   "must have the size of the mean");
}

int SampleList::size() const {
  return static_cast<int>(residuals_.size()) * (mirrored_ ? 2 : 1);
}

Field SampleList::sample(int k) const {
  check_argument(k >= 0 && k < size(), "SampleList::sample", "k", "is out of range");
  if (!mirrored_) return Field(mean_.space(), mean_.values() + residuals_[k]);
  const auto& r = residuals_[k / 2];
  return Field(mean_.space(), k % 2 == 0 ? Eigen::VectorXd(mean_.values() + r)
                                         : Eigen::VectorXd(mean_.values() - r));
}

std::vector<Eigen::VectorXd> SampleList::signed_residuals() const {
  std::vector<Eigen::VectorXd> out;
  for (const auto& r : residuals_) {
    out.push_back(r);
    if (mirrored_) out.push_back(-r);
  }
  return out;
}

SampleList::Statistics SampleList::statistics(const Operator& op) const {
  check_same_space(op.domain(), mean_.space(), "SampleList::statistics", "op's domain");
  const int n = size();
  check_argument(n > 0, "SampleList::statistics", "samples", "must not be empty");
  std::vector<Eigen::VectorXd> values(n);
  tbb::parallel_for(0, n, [&](int k) { values[k] = op.evaluate(sample(k).values()); });
  Eigen::VectorXd mean = Eigen::VectorXd::Zero(op.target().size());
  for (const auto& v : values) mean += v;  // fixed order: thread-count independent
  mean /= n;
  Eigen::VectorXd var = Eigen::VectorXd::Zero(mean.size());
  for (const auto& v : values) var += (v - mean).cwiseAbs2();
  if (n > 1) var /= (n - 1);
  return {Field(op.target(), std::move(mean)), Field(op.target(), var.cwiseSqrt())};
}

// ---- Sampling ------------------------------------------------------------------------------------

void SamplingOptions::validate() const {
  check_argument(pairs >= 1, "SamplingOptions", "pairs", "must be at least 1");
  cg.validate();
}

namespace {

std::mt19937_64 sample_stream(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  std::seed_seq seq{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32),
                    static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32),
                    static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32)};
  return std::mt19937_64(seq);
}

/// Which entries of the flat position are sampled (all but the point-estimated keys).
std::vector<bool> sampled_entries(const Space& space, const std::vector<std::string>& keys) {
  std::vector<bool> keep(space.size(), true);
  if (keys.empty()) return keep;
  const MultiDomain& md = space.multi();  // throws if point estimates are given for a plain field
  for (const auto& key : keys) {
    const auto& e = md.at(key);
    std::fill(keep.begin() + e.offset, keep.begin() + e.offset + e.domain.size(), false);
  }
  return keep;
}

void summarise_cg(std::vector<ConjugateGradientSummary> cg, SamplingSummary& summary) {
  summary = {};
  for (const auto& s : cg) {
    summary.cg_iterations += s.iterations;
    summary.cg_not_converged += s.converged() ? 0 : 1;
  }
  summary.per_sample = std::move(cg);
}

/// The samples of pairs [begin, end) (pair i from the random stream (seed, stream, i)): one
/// residual per pair for MGVI (mirrored), two for geoVI (plus and minus, each refined).
struct DrawnSamples {
  std::vector<Eigen::VectorXd> residuals;
  bool mirrored = true;
  SamplingSummary summary;
};

/// geoVI: linear samples from the expansion's metric, each sample and its mirror then refined.
DrawnSamples draw_geovi_pairs(const StandardHamiltonian& hamiltonian, const Field& position,
                              const SamplingOptions& options, std::uint64_t seed,
                              std::uint64_t stream, int begin, int end) {
  const GeoVIExpansion expansion(hamiltonian, position,
                                 sampled_entries(position.space(), options.point_estimates));
  const int pairs = end - begin;
  std::vector<Eigen::VectorXd> metric_samples(pairs), linear(pairs);
  std::vector<ConjugateGradientSummary> cg(pairs);
  tbb::parallel_for(0, pairs, [&](int i) {
    std::mt19937_64 rng = sample_stream(seed, stream, static_cast<std::uint64_t>(begin + i));
    metric_samples[i] = expansion.draw_metric_sample(rng, &linear[i]);
    cg[i] = conjugate_gradient(*expansion.metric(), metric_samples[i], linear[i], options.cg);
  });
  DrawnSamples out;
  out.mirrored = false;
  out.residuals.resize(2 * pairs);
  std::vector<MinimizerSummary> refined(2 * pairs);
  tbb::parallel_for(0, 2 * pairs, [&](int k) {
    const double sign = k % 2 == 0 ? 1.0 : -1.0;
    Eigen::VectorXd residual = sign * linear[k / 2];
    refined[k] = expansion.refine(sign * metric_samples[k / 2], residual,
                                  *options.nonlinear_minimizer);
    out.residuals[k] = expansion.embed(residual);
  });
  summarise_cg(std::move(cg), out.summary);
  for (const auto& r : refined) {
    out.summary.nonlinear_iterations += r.iterations;
    out.summary.nonlinear_not_converged += r.converged() ? 0 : 1;
  }
  out.summary.nonlinear_per_sample = std::move(refined);
  return out;
}

/// M = J^T F J + 1 at the model's linearisation `lin`: the metric MGVI's samples solve with.
LinearOperatorPtr mgvi_metric(const StandardHamiltonian& hamiltonian, const FlatLinearization& lin) {
  return sandwich(lin.jacobian, hamiltonian.likelihood()->metric(lin.value)) +
         identity_operator(hamiltonian.domain());
}

/// MGVI: M delta = theta by CG for each pair.
DrawnSamples draw_mgvi_pairs(const StandardHamiltonian& hamiltonian, const Field& position,
                             const SamplingOptions& options, std::uint64_t seed,
                             std::uint64_t stream, int begin, int end) {
  // One linearisation at the expansion point serves every sample and every metric product.
  const FlatLinearization lin = hamiltonian.model()->linearize_flat(position.values());
  const LinearOperatorPtr metric = mgvi_metric(hamiltonian, lin);
  const std::vector<bool> keep = sampled_entries(position.space(), options.point_estimates);
  const bool restricted = std::find(keep.begin(), keep.end(), false) != keep.end();
  LinearOperatorPtr projection, solve_metric = metric;
  if (restricted) {
    projection = mask_operator(position.space(), keep);
    solve_metric = compose(projection, metric, adjoint(projection));
  }

  const int pairs = end - begin;
  DrawnSamples out;
  out.residuals.resize(pairs);
  std::vector<ConjugateGradientSummary> cg(pairs);
  tbb::parallel_for(0, pairs, [&](int i) {
    std::mt19937_64 rng = sample_stream(seed, stream, static_cast<std::uint64_t>(begin + i));
    // CG starts at eta, the prior part of theta, as NIFTy's SamplingEnabler does: directions the
    // data do not constrain then already carry their prior variance, so a CG truncated by its
    // iteration limit still gives samples as wide as the prior there (from 0 it would give
    // samples that are too narrow exactly where the data are missing).
    Eigen::VectorXd eta;
    Eigen::VectorXd theta = hamiltonian.draw_metric_sample(*lin.jacobian, lin.value, rng, &eta);
    if (!restricted) {
      out.residuals[i] = std::move(eta);
      cg[i] = conjugate_gradient(*solve_metric, theta, out.residuals[i], options.cg);
      return;
    }
    Eigen::VectorXd theta_r = projection->evaluate(theta);
    Eigen::VectorXd delta_r = projection->evaluate(eta);
    cg[i] = conjugate_gradient(*solve_metric, theta_r, delta_r, options.cg);
    out.residuals[i] = Eigen::VectorXd(theta.size());
    projection->apply_adjoint(delta_r, out.residuals[i]);
  });
  summarise_cg(std::move(cg), out.summary);
  return out;
}

DrawnSamples draw_pairs(const StandardHamiltonian& hamiltonian, const Field& position,
                        const SamplingOptions& options, std::uint64_t seed, std::uint64_t stream,
                        int begin, int end) {
  return options.nonlinear_minimizer
             ? draw_geovi_pairs(hamiltonian, position, options, seed, stream, begin, end)
             : draw_mgvi_pairs(hamiltonian, position, options, seed, stream, begin, end);
}

}  // namespace

SampleList draw_samples(const StandardHamiltonian& hamiltonian, const Field& position,
                        const SamplingOptions& options, std::uint64_t seed, std::uint64_t stream,
                        SamplingSummary* summary) {
  options.validate();
  check_same_space(hamiltonian.domain(), position.space(), "draw_samples", "position");
  check_finite(position.values(), "draw_samples", "position");
  DrawnSamples drawn = draw_pairs(hamiltonian, position, options, seed, stream, 0, options.pairs);
  if (summary) *summary = std::move(drawn.summary);
  return SampleList(position, std::move(drawn.residuals), drawn.mirrored);
}

Eigen::VectorXd mgvi_residual(const StandardHamiltonian& hamiltonian, const Field& position,
                              ConstVectorRef n, ConstVectorRef eta,
                              const ConjugateGradientOptions& cg,
                              ConjugateGradientSummary* summary) {
  constexpr std::string_view fn = "mgvi_residual";
  check_same_space(hamiltonian.domain(), position.space(), fn, "position");
  check_finite(position.values(), fn, "position");
  const OperatorPtr transformation = hamiltonian.transformation();
  if (!transformation || !hamiltonian.likelihood()->transformation_is_exact())
    throw InvalidArgument(std::string(fn) + ": the likelihood " +
                          hamiltonian.likelihood()->name() +
                          " has no exact transformation (the square root of its metric)");
  check_argument(n.size() == transformation->target().size(), fn, "n",
                 "must have the size of the likelihood transformation's target");
  check_argument(eta.size() == position.size(), fn, "eta", "must have the size of the position");
  check_finite(n, fn, "n");
  check_finite(eta, fn, "eta");
  // theta = J^T J_f^T n + eta: J_f^T n ~ N(0, F) where J_f^T J_f = F, as the likelihood's own
  // draw_metric_sample gives.
  const FlatLinearization sqrt_metric = transformation->linearize_flat(position.values());
  Eigen::VectorXd theta(position.size());
  sqrt_metric.jacobian->apply_adjoint(n, theta);
  theta += eta;
  // The metric and the CG start (eta) exactly as draw_samples uses them.
  const FlatLinearization lin = hamiltonian.model()->linearize_flat(position.values());
  const LinearOperatorPtr metric = mgvi_metric(hamiltonian, lin);
  Eigen::VectorXd delta = eta;
  const ConjugateGradientSummary result = conjugate_gradient(*metric, theta, delta, cg);
  if (summary) *summary = result;
  return delta;
}

// ---- Sampled KL ----------------------------------------------------------------------------------
namespace {

/// The sum over samples of per-sample vectors, the same bits for any number of ranks: samples
/// are grouped into items (the pairs 2i, 2i + 1 when the count is even, else single samples), each
/// item's samples added in order, and the items along Communicator::tree_sum's fixed tree.
Eigen::VectorXd sum_over_samples(const std::vector<Eigen::VectorXd>& per_sample, int total_samples,
                                 const Communicator& communicator, Eigen::Index length) {
  const int group = total_samples % 2 == 0 ? 2 : 1;
  std::vector<Eigen::VectorXd> items(per_sample.size() / group);
  for (std::size_t i = 0; i < items.size(); ++i) {
    items[i] = per_sample[group * i];
    for (int j = 1; j < group; ++j) items[i] += per_sample[group * i + j];
  }
  return communicator.tree_sum(items, total_samples / group, length);
}

/// (1/K) sum_k M_k: this rank's samples in parallel, then summed over all samples (all ranks).
class AveragedMetric final : public LinearOperator {
 public:
  AveragedMetric(const Space& space, std::vector<LinearOperatorPtr> metrics,
                 Communicator communicator, int total)
      : LinearOperator(space, space), metrics_(std::move(metrics)),
        communicator_(std::move(communicator)), total_(total) {}
  std::string name() const override { return "AveragedMetric"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override { average(x, out); }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override { average(y, out); }

 private:
  void average(ConstVectorRef x, VectorRef out) const {
    const int k = static_cast<int>(metrics_.size());
    std::vector<Eigen::VectorXd> parts(k, Eigen::VectorXd(x.size()));
    tbb::parallel_for(0, k, [&](int i) { metrics_[i]->apply_times(x, parts[i]); });
    out = sum_over_samples(parts, total_, communicator_, x.size()) / total_;
  }
  std::vector<LinearOperatorPtr> metrics_;
  Communicator communicator_;
  int total_;
};

}  // namespace

SampledKL::SampledKL(std::shared_ptr<const StandardHamiltonian> hamiltonian,
                     std::vector<Eigen::VectorXd> signed_residuals, Communicator communicator,
                     int total_samples)
    : Energy(hamiltonian ? hamiltonian->domain() : Space()), hamiltonian_(std::move(hamiltonian)),
      residuals_(std::move(signed_residuals)), communicator_(std::move(communicator)),
      total_samples_(total_samples) {
  constexpr std::string_view fn = "SampledKL";
  check_argument(hamiltonian_ != nullptr, fn, "hamiltonian", "must not be null");
  if (total_samples_ < 0) {
    check_argument(communicator_.size() == 1, fn, "total_samples",
                   "must be given over several ranks (the number of samples on all of them)");
    total_samples_ = static_cast<int>(residuals_.size());
  }
  if (communicator_.size() > 1 && total_samples_ > 0) {
    // Ranks hold whole pairs: this rank's share of the pairs, two samples each.
    check_argument(total_samples_ % 2 == 0, fn, "total_samples",
                   "must be even over several ranks (pairs of samples are dealt to ranks)");
    const auto [begin, end] = communicator_.share(total_samples_ / 2);
    check_argument(static_cast<int>(residuals_.size()) == 2 * (end - begin), fn,
                   "signed_residuals", "must be this rank's share of the pairs, two per pair");
  }
  check_argument(static_cast<int>(residuals_.size()) <= total_samples_, fn, "total_samples",
                 "is smaller than this rank's number of samples");
  if (total_samples_ == 0) {
    // No samples anywhere: the Hamiltonian itself (a MAP step), evaluated alike on every rank.
    communicator_ = Communicator();
    residuals_.assign(1, Eigen::VectorXd::Zero(domain().size()));
    total_samples_ = 1;
  }
  for (const auto& r : residuals_)
    check_argument(r.size() == domain().size(), fn, "signed_residuals",
                   "must have the size of the domain");
}

EnergyEvaluation SampledKL::evaluate(ConstVectorRef x, unsigned request) const {
  const int k = static_cast<int>(residuals_.size());
  std::vector<EnergyEvaluation> parts(k);
  tbb::parallel_for(0, k, [&](int i) {
    parts[i] = hamiltonian_->evaluate(x + residuals_[i], request);
  });
  // Value and gradient as one vector per sample, summed over all samples (all ranks).
  const Eigen::Index n = domain().size();
  const Eigen::Index length = (request & kGradient) ? n + 1 : 1;
  std::vector<Eigen::VectorXd> per_sample(k, Eigen::VectorXd(length));
  for (int i = 0; i < k; ++i) {
    per_sample[i][0] = parts[i].value;
    if (request & kGradient) per_sample[i].tail(n) = parts[i].gradient;
  }
  const Eigen::VectorXd sums = sum_over_samples(per_sample, total_samples_, communicator_, length);
  EnergyEvaluation out;
  out.value = sums[0] / total_samples_;
  if (request & kGradient) out.gradient = sums.tail(n) / total_samples_;
  if (request & kMetric) {
    std::vector<LinearOperatorPtr> metrics;
    for (auto& p : parts) metrics.push_back(std::move(p.metric));
    out.metric = std::make_shared<AveragedMetric>(domain(), std::move(metrics), communicator_,
                                                  total_samples_);
  }
  return out;
}

// ---- Checkpoints ---------------------------------------------------------------------------------
namespace {

// Version 2 added geoVI: the residuals' mirrored flag and the reports' non-linear sampling
// counts. Version 1 checkpoints (MGVI only, always mirrored) are still read.
constexpr char kCheckpointMagic[8] = {'I', 'N', 'F', 'K', 'L', 'C', 'K', '2'};
constexpr char kCheckpointMagicV1[8] = {'I', 'N', 'F', 'K', 'L', 'C', 'K', '1'};

std::uint64_t fnv1a(const std::string& bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

class Writer {
 public:
  template <typename T>
  void put(const T& v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void put_string(const std::string& s) {
    put<std::uint64_t>(s.size());
    out_.append(s);
  }
  void put_vector(const Eigen::VectorXd& v) {
    put<std::uint64_t>(static_cast<std::uint64_t>(v.size()));
    out_.append(reinterpret_cast<const char*>(v.data()), sizeof(double) * v.size());
  }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(std::string bytes, std::filesystem::path path) : in_(std::move(bytes)), path_(std::move(path)) {}
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string get_string() {
    const auto n = get<std::uint64_t>();
    need(n);
    std::string s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  Eigen::VectorXd get_vector() {
    const auto n = get<std::uint64_t>();
    need_doubles(n);
    Eigen::VectorXd v(static_cast<Eigen::Index>(n));
    std::memcpy(v.data(), in_.data() + pos_, n * sizeof(double));
    pos_ += n * sizeof(double);
    return v;
  }
  bool at_end() const { return pos_ == in_.size(); }
  [[noreturn]] void fail(const std::string& why) const {
    throw FileError("optimize_kl: checkpoint " + path_.string() + " " + why);
  }

 private:
  void need(std::uint64_t n) const {
    if (n > in_.size() - pos_) fail("is truncated");
  }
  void need_doubles(std::uint64_t n) const {  // n * 8 could wrap: compare counts instead
    if (n > (in_.size() - pos_) / sizeof(double)) fail("is truncated");
  }
  std::string in_;
  std::size_t pos_ = 0;
  std::filesystem::path path_;
};

void put_report(Writer& w, const GlobalIterationReport& r) {
  w.put<std::int32_t>(r.iteration);
  w.put<std::int32_t>(r.samples);
  w.put(r.kl_value);
  w.put(r.gradient_norm);
  w.put(r.kl_standard_error);
  w.put(r.kl_with_entropy);
  w.put<std::int32_t>(r.sampling_cg_iterations);
  w.put<std::int32_t>(r.sampling_cg_not_converged);
  w.put<std::int32_t>(static_cast<std::int32_t>(r.minimizer.status));
  w.put<std::int32_t>(r.minimizer.iterations);
  w.put<std::int32_t>(r.minimizer.energy_evaluations);
  w.put<std::int32_t>(r.minimizer.cg_iterations);
  w.put<std::int32_t>(r.minimizer.cg_not_converged);
  w.put(r.minimizer.initial_value);
  w.put(r.minimizer.final_value);
  w.put(r.minimizer.gradient_norm);
  w.put_string(r.minimizer.message);
  w.put(r.seconds_sampling);
  w.put(r.seconds_minimizing);
  w.put<std::uint8_t>(r.nonlinear_sampling ? 1 : 0);
  w.put<std::int32_t>(r.nonlinear_sampling_iterations);
  w.put<std::int32_t>(r.nonlinear_sampling_not_converged);
}

GlobalIterationReport get_report(Reader& in, int version) {
  GlobalIterationReport r;
  r.iteration = in.get<std::int32_t>();
  r.samples = in.get<std::int32_t>();
  r.kl_value = in.get<double>();
  r.gradient_norm = in.get<double>();
  r.kl_standard_error = in.get<double>();
  r.kl_with_entropy = in.get<double>();
  r.sampling_cg_iterations = in.get<std::int32_t>();
  r.sampling_cg_not_converged = in.get<std::int32_t>();
  const auto status = in.get<std::int32_t>();
  if (status < 0 || status > static_cast<int>(MinimizerStatus::kNumericalError))
    in.fail("has an invalid minimizer status");
  r.minimizer.status = static_cast<MinimizerStatus>(status);
  r.minimizer.iterations = in.get<std::int32_t>();
  r.minimizer.energy_evaluations = in.get<std::int32_t>();
  r.minimizer.cg_iterations = in.get<std::int32_t>();
  r.minimizer.cg_not_converged = in.get<std::int32_t>();
  r.minimizer.initial_value = in.get<double>();
  r.minimizer.final_value = in.get<double>();
  r.minimizer.gradient_norm = in.get<double>();
  r.minimizer.message = in.get_string();
  r.seconds_sampling = in.get<double>();
  r.seconds_minimizing = in.get<double>();
  if (version >= 2) {
    const auto nonlinear = in.get<std::uint8_t>();
    if (nonlinear > 1) in.fail("has an invalid sampling method");
    r.nonlinear_sampling = nonlinear == 1;
    r.nonlinear_sampling_iterations = in.get<std::int32_t>();
    r.nonlinear_sampling_not_converged = in.get<std::int32_t>();
  }
  return r;
}

struct Checkpoint {
  std::string space;
  std::string run_id;
  std::uint64_t seed = 0;
  Eigen::VectorXd position;
  std::vector<GlobalIterationReport> reports;
  std::vector<Eigen::VectorXd> residuals;  // of the last iteration
  bool mirrored = true;  // residuals are mirrored pairs (MGVI) or one per sample (geoVI)
};

void write_checkpoint(const std::filesystem::path& path, const Checkpoint& c) {
  Writer w;
  w.put_string(c.space);
  w.put_string(c.run_id);
  w.put(c.seed);
  w.put_vector(c.position);
  w.put<std::uint64_t>(c.reports.size());
  for (const auto& r : c.reports) put_report(w, r);
  w.put<std::uint64_t>(c.residuals.size());
  for (const auto& r : c.residuals) w.put_vector(r);
  w.put<std::uint8_t>(c.mirrored ? 1 : 0);
  std::string content(kCheckpointMagic, sizeof kCheckpointMagic);
  content += w.bytes();
  const std::uint64_t sum = fnv1a(content);
  content.append(reinterpret_cast<const char*>(&sum), sizeof sum);

  // Temp file, fsync, rename, fsync of the directory: a killed run or a power loss leaves
  // either the old or the new checkpoint, never half of one.
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw FileError("optimize_kl: cannot write checkpoint " + tmp.string());
  std::size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n <= 0) break;
    written += static_cast<std::size_t>(n);
  }
  const bool ok = written == content.size() && ::fsync(fd) == 0;
  ::close(fd);
  std::error_code ec;
  if (!ok) {
    std::filesystem::remove(tmp, ec);
    throw FileError("optimize_kl: cannot write checkpoint " + tmp.string());
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw FileError("optimize_kl: cannot rename " + tmp.string() + " to " + path.string());
  }
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

/// The checkpoint's bytes, read by the root rank and sent to every rank; nothing when there is no
/// file. A read error on the root is thrown on every rank.
std::optional<std::string> read_checkpoint_bytes(const std::filesystem::path& path,
                                                 const Communicator& communicator) {
  std::string message;  // first byte: 'n' no checkpoint, 'e' error (then its text), 'c' content
  if (communicator.is_root()) {
    if (!std::filesystem::exists(path)) {
      message = "n";
    } else {
      std::ifstream in(path, std::ios::binary);
      if (!in)
        message = "ecannot open checkpoint " + path.string();
      else
        message = "c" + std::string((std::istreambuf_iterator<char>(in)),
                                    std::istreambuf_iterator<char>());
    }
  }
  communicator.broadcast(message);
  if (message.empty() || message[0] == 'n') return std::nullopt;
  if (message[0] == 'e') throw FileError("optimize_kl: " + message.substr(1));
  return message.substr(1);  // possibly empty: a truncated file, which parsing rejects
}

Checkpoint parse_checkpoint(std::string content, const std::filesystem::path& path) {
  Reader check(content, path);
  if (content.size() < sizeof kCheckpointMagic + sizeof(std::uint64_t))
    check.fail("is not an Infield KL checkpoint (too short)");
  int version = 0;
  if (std::memcmp(content.data(), kCheckpointMagic, sizeof kCheckpointMagic) == 0)
    version = 2;
  else if (std::memcmp(content.data(), kCheckpointMagicV1, sizeof kCheckpointMagicV1) == 0)
    version = 1;
  else
    check.fail("is not an Infield KL checkpoint (bad magic)");
  std::uint64_t stored;
  std::memcpy(&stored, content.data() + content.size() - sizeof stored, sizeof stored);
  content.resize(content.size() - sizeof stored);
  if (fnv1a(content) != stored) check.fail("is corrupt (checksum mismatch)");
  Reader r(content.substr(sizeof kCheckpointMagic), path);
  Checkpoint c;
  c.space = r.get_string();
  c.run_id = r.get_string();
  c.seed = r.get<std::uint64_t>();
  c.position = r.get_vector();
  const auto n_reports = r.get<std::uint64_t>();
  for (std::uint64_t i = 0; i < n_reports; ++i) c.reports.push_back(get_report(r, version));
  const auto n_residuals = r.get<std::uint64_t>();
  for (std::uint64_t i = 0; i < n_residuals; ++i) c.residuals.push_back(r.get_vector());
  if (version >= 2) {
    const auto mirrored = r.get<std::uint8_t>();
    if (mirrored > 1) r.fail("has an invalid mirrored flag");
    c.mirrored = mirrored == 1;
  }
  if (!r.at_end()) r.fail("has trailing bytes");
  for (const auto& res : c.residuals)
    if (res.size() != c.position.size()) r.fail("has residuals of the wrong size");
  return c;
}

/// The standard error of the KL from its pairs of samples (2i, 2i + 1): MGVI's mirrored pairs or
/// geoVI's refined plus and minus samples; each rank evaluates its own pairs.
double pair_standard_error(const StandardHamiltonian& h, const Eigen::VectorXd& x,
                           const std::vector<Eigen::VectorXd>& signed_residuals,
                           const Communicator& communicator) {
  const int local = static_cast<int>(signed_residuals.size()) / 2;
  std::vector<Eigen::VectorXd> local_means(local, Eigen::VectorXd(1));
  tbb::parallel_for(0, local, [&](int i) {
    local_means[i][0] = 0.5 * (h.evaluate(x + signed_residuals[2 * i], kValue).value +
                               h.evaluate(x + signed_residuals[2 * i + 1], kValue).value);
  });
  const std::vector<Eigen::VectorXd> means = communicator.all_gather(local_means, 1);
  const int pairs = static_cast<int>(means.size());
  if (pairs < 2) return 0.0;
  Eigen::VectorXd pair_mean(pairs);
  for (int i = 0; i < pairs; ++i) pair_mean[i] = means[i][0];
  const double mean = pair_mean.mean();
  return std::sqrt((pair_mean.array() - mean).square().sum() / (pairs - 1) / pairs);
}

/// 0.5 log det of a metric restricted to the entries `keep`, from a dense Cholesky factorisation
/// (n metric products); NaN if the factorisation fails.
double half_log_det(const LinearOperator& metric, const std::vector<bool>& keep) {
  std::vector<Eigen::Index> index;
  for (std::size_t i = 0; i < keep.size(); ++i)
    if (keep[i]) index.push_back(static_cast<Eigen::Index>(i));
  const auto n = static_cast<Eigen::Index>(index.size());
  const Eigen::Index size = metric.domain().size();
  Eigen::MatrixXd dense(n, n);
  tbb::parallel_for(Eigen::Index{0}, n, [&](Eigen::Index j) {
    Eigen::VectorXd unit = Eigen::VectorXd::Zero(size), column(size);
    unit[index[j]] = 1.0;
    metric.apply_times(unit, column);
    for (Eigen::Index i = 0; i < n; ++i) dense(i, j) = column[index[i]];
  });
  Eigen::LLT<Eigen::MatrixXd> llt(dense);
  if (llt.info() != Eigen::Success) return std::numeric_limits<double>::quiet_NaN();
  return llt.matrixLLT().diagonal().array().log().sum();
}

/// The entropy of the sample distribution up to a constant (see GlobalIterationReport), or NaN.
double sample_entropy(const StandardHamiltonian& h, const Field& position,
                      const std::vector<bool>& keep, const GlobalIterationSettings& settings,
                      const std::vector<Eigen::VectorXd>& signed_residuals, int total_samples,
                      const Communicator& communicator) {
  if (!settings.nonlinear_sampling_minimizer)
    return -half_log_det(*h.evaluate(position.values(), kValue | kMetric).metric, keep);
  const GeoVIExpansion expansion(h, position, keep);
  const std::vector<bool> all(expansion.sampled_space().size(), true);
  const double half_log_det_metric = half_log_det(*expansion.metric(), all);
  double mean_log_det = 0.0;
  const LinearOperatorPtr mask = std::find(keep.begin(), keep.end(), false) == keep.end()
                                     ? nullptr
                                     : mask_operator(position.space(), keep);
  std::vector<Eigen::VectorXd> log_dets(signed_residuals.size(), Eigen::VectorXd(1));
  for (std::size_t k = 0; k < signed_residuals.size(); ++k)
    log_dets[k][0] = expansion.log_abs_det_jacobian(
        mask ? Eigen::VectorXd(mask->evaluate(signed_residuals[k])) : signed_residuals[k]);
  mean_log_det = sum_over_samples(log_dets, total_samples, communicator, 1)[0] / total_samples;
  return half_log_det_metric - mean_log_det;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

// ---- Driver --------------------------------------------------------------------------------------

void OptimizeKLOptions::validate() const {
  check_argument(global_iterations >= 1, "OptimizeKLOptions", "global_iterations",
                 "must be at least 1");
  check_argument(!resume || !checkpoint.empty(), "OptimizeKLOptions", "resume",
                 "needs a checkpoint path");
}

std::string GlobalIterationReport::progress_line() const {
  std::ostringstream out;
  out << "KL iteration " << iteration + 1 << ": KL " << std::setprecision(8) << kl_value
      << std::setprecision(3) << " +- " << kl_standard_error;
  if (std::isfinite(kl_with_entropy))
    out << " (with entropy " << std::setprecision(8) << kl_with_entropy << std::setprecision(3)
        << ")";
  out << "  |grad| " << gradient_norm << "  samples " << samples
      << "  sampling CG " << sampling_cg_iterations << " it";
  if (sampling_cg_not_converged > 0) out << " (" << sampling_cg_not_converged << " NOT CONVERGED)";
  if (nonlinear_sampling) {
    out << "  geoVI " << nonlinear_sampling_iterations << " it";
    if (nonlinear_sampling_not_converged > 0)
      out << " (" << nonlinear_sampling_not_converged << " NOT CONVERGED)";
  }
  out << "  minimizer " << minimizer.iterations << " it";
  if (minimizer.cg_iterations > 0) out << ", " << minimizer.cg_iterations << " CG it";
  if (!minimizer.converged()) out << " (" << to_string(minimizer.status) << ")";
  out << std::fixed << std::setprecision(3) << "  " << seconds_sampling + seconds_minimizing
      << " s";
  return out.str();
}

bool OptimizeKLSummary::all_converged() const {
  for (const auto& r : iterations)
    if (r.sampling_cg_not_converged > 0 || r.nonlinear_sampling_not_converged > 0 ||
        !r.minimizer.converged())
      return false;
  return true;
}

OptimizeKLSummary optimize_kl(std::shared_ptr<const StandardHamiltonian> hamiltonian,
                              Field initial_position, const OptimizeKLOptions& options) {
  options.validate();
  check_argument(hamiltonian != nullptr, "optimize_kl", "hamiltonian", "must not be null");
  check_same_space(hamiltonian->domain(), initial_position.space(), "optimize_kl",
                   "initial_position");
  check_finite(initial_position.values(), "optimize_kl", "initial_position");

  const Communicator& communicator = options.communicator;
  OptimizeKLSummary summary;
  Field position = std::move(initial_position);
  std::vector<Eigen::VectorXd> residuals;  // all ranks' (gathered), as in the checkpoint
  bool mirrored = true;
  const std::string space = position.space().to_string();
  if (options.resume) {
    std::optional<std::string> bytes = read_checkpoint_bytes(options.checkpoint, communicator);
    if (bytes) {
      Checkpoint c = parse_checkpoint(std::move(*bytes), options.checkpoint);
      auto mismatch = [&](const std::string& what) {
        throw FileError("optimize_kl: checkpoint " + options.checkpoint.string() +
                        " belongs to another run: " + what);
      };
      if (c.space != space) mismatch("its space is " + c.space + ", this run's is " + space);
      if (c.seed != options.seed) mismatch("its seed differs");
      if (c.run_id != options.run_id)
        mismatch("its run id is '" + c.run_id + "', this run's is '" + options.run_id + "'");
      if (c.position.size() != position.size()) mismatch("its position has another size");
      if (static_cast<int>(c.reports.size()) > options.global_iterations)
        mismatch("it has more iterations than this run asks for");
      position.values() = c.position;
      summary.iterations = std::move(c.reports);
      residuals = std::move(c.residuals);
      mirrored = c.mirrored;
      summary.resumed_iterations = static_cast<int>(summary.iterations.size());
    }
  }

  for (int it = static_cast<int>(summary.iterations.size()); it < options.global_iterations; ++it) {
    const GlobalIterationSettings settings = options.schedule ? options.schedule(it) : options.settings;
    check_argument(settings.sample_pairs >= 0, "optimize_kl", "sample_pairs", "must be >= 0");
    GlobalIterationReport report;
    report.iteration = it;
    auto start = std::chrono::steady_clock::now();
    mirrored = !settings.nonlinear_sampling_minimizer;
    report.nonlinear_sampling = !mirrored;
    // This rank's pairs; their samples, signed (MGVI's mirrored pairs unfolded).
    const auto [first_pair, end_pair] = communicator.share(settings.sample_pairs);
    std::vector<Eigen::VectorXd> local;
    SamplingOptions sampling;
    sampling.pairs = std::max(settings.sample_pairs, 1);
    sampling.cg = settings.sampling_cg;
    sampling.point_estimates = settings.point_estimates;
    sampling.nonlinear_minimizer = settings.nonlinear_sampling_minimizer;
    sampling.validate();  // on every rank, before any rank may skip drawing
    // A failure while drawing (a likelihood without a transformation, a non-finite model) must
    // reach the ranks that drew nothing too, or they would wait for the others in the sums.
    std::exception_ptr failure;
    if (end_pair > first_pair) {
      try {
        DrawnSamples drawn = draw_pairs(*hamiltonian, position, sampling, options.seed,
                                        static_cast<std::uint64_t>(it), first_pair, end_pair);
        local = std::move(drawn.residuals);
        report.sampling_cg_iterations = drawn.summary.cg_iterations;
        report.sampling_cg_not_converged = drawn.summary.cg_not_converged;
        report.nonlinear_sampling_iterations = drawn.summary.nonlinear_iterations;
        report.nonlinear_sampling_not_converged = drawn.summary.nonlinear_not_converged;
      } catch (...) {
        failure = std::current_exception();
      }
    }
    if (communicator.any(failure != nullptr)) {
      if (failure) std::rethrow_exception(failure);
      throw std::runtime_error("optimize_kl: drawing samples failed on another rank");
    }
    for (int* count : {&report.sampling_cg_iterations, &report.sampling_cg_not_converged,
                       &report.nonlinear_sampling_iterations,
                       &report.nonlinear_sampling_not_converged})
      *count = static_cast<int>(communicator.sum(static_cast<std::int64_t>(*count)));
    const std::vector<Eigen::VectorXd> signed_residuals =
        SampleList(position, local, mirrored).signed_residuals();
    const int total_samples = 2 * settings.sample_pairs;
    const std::vector<bool> keep = sampled_entries(position.space(), settings.point_estimates);
    const auto sampled = std::count(keep.begin(), keep.end(), true);
    double entropy = std::numeric_limits<double>::quiet_NaN();
    if (settings.sample_pairs > 0 && sampled <= options.dense_entropy_limit)
      entropy = sample_entropy(*hamiltonian, position, keep, settings, signed_residuals,
                               total_samples, communicator);
    report.seconds_sampling = seconds_since(start);
    start = std::chrono::steady_clock::now();
    SampledKL kl(hamiltonian, signed_residuals, communicator, total_samples);
    report.samples = total_samples;
    MinimizerPtr minimizer = settings.minimizer ? settings.minimizer : newton_cg();
    report.minimizer = minimizer->minimize(kl, position.values());
    report.kl_value = report.minimizer.final_value;
    report.kl_standard_error =
        pair_standard_error(*hamiltonian, position.values(), signed_residuals, communicator);
    report.kl_with_entropy = report.kl_value - entropy;
    report.gradient_norm = report.minimizer.gradient_norm;
    report.seconds_minimizing = seconds_since(start);
    residuals = communicator.all_gather(local, position.size());
    summary.iterations.push_back(report);
    if (communicator.is_root()) {
      if (options.progress) {
        if (settings.sample_pairs > 0 && settings.sample_pairs < communicator.size())
          *options.progress << "optimize_kl: " << communicator.size() << " ranks for "
                            << settings.sample_pairs << " sample pairs: ranks "
                            << settings.sample_pairs << " to " << communicator.size() - 1
                            << " have no samples in iteration " << it + 1 << " and only join the sums"
                            << std::endl;
        *options.progress << report.progress_line() << std::endl;
      }
    }
    if (!options.checkpoint.empty()) {
      // The root writes; a failure there must stop every rank, not leave them waiting for it.
      std::string failure;
      if (communicator.is_root()) {
        try {
          write_checkpoint(options.checkpoint, {space, options.run_id, options.seed,
                                                position.values(), summary.iterations, residuals,
                                                mirrored});
        } catch (const FileError& e) {
          failure = e.what();
        }
      }
      communicator.broadcast(failure);
      if (!failure.empty()) throw FileError(failure);
    }
    if (options.callback) options.callback(report, SampleList(position, residuals, mirrored));
  }
  summary.samples = SampleList(position, std::move(residuals), mirrored);
  return summary;
}

}  // namespace infield

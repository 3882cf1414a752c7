// `infield reconstruct`: MGVI with a correlated-field prior on a periodic regular grid, from masked
// noisy data of a pointwise response of the field.

#include <fmt/core.h>
#include <tbb/global_control.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "correlated_field_flags.h"
#include "infield/inference/mgvi.h"
#include "infield/infield.h"
#include "infield/models/correlated_field.h"
#include "json_output.h"
#include "matrix_io.h"
#include "png_image.h"
#include "sampling_method_flags.h"

namespace infield::apps {
namespace {

constexpr std::string_view kFn = "infield reconstruct";

struct ReconstructOptions {
  std::string data, mask, truth, out;
  std::string response = "sigmoid";
  CorrelatedFieldFlags prior;  // the grid and the correlated-field prior, in NIFTy's meaning
  double noise_std = 0.0;
  int samples = 8;
  int iterations = 5;
  std::uint64_t seed = 42;
  int threads = 0;
  bool resume = false;
  // Schedule (NIFTy's demo settings).
  double sampling_delta_energy = 0.05;
  int sampling_cg_max = 100;
  int newton_steps = 10;
  double newton_delta_energy = 0.5;
  double newton_cg_reduction = 0.1;
  int newton_cg_max = 200;
  double initial_scale = 0.1;
  SamplingMethodFlags sampling;
};

OperatorPtr apply_response(const std::string& name, OperatorPtr field) {
  if (name == "identity") return field;
  if (name == "exp") return exp(std::move(field));
  // NIFTy's sigmoid: 0.5 (1 + tanh f), the cf2d benchmark's response.
  if (name == "sigmoid") return add_constant(scale(0.5, tanh(std::move(field))), 0.5);
  detail::throw_invalid_argument(kFn, "--response",
                                 "must be sigmoid, identity or exp, got '" + name + "'");
}

double rms(const Eigen::VectorXd& diff, const std::vector<bool>& select, bool want) {
  double sum = 0.0;
  Eigen::Index n = 0;
  for (Eigen::Index i = 0; i < diff.size(); ++i)
    if (select[static_cast<std::size_t>(i)] == want) {
      sum += diff[i] * diff[i];
      ++n;
    }
  return n ? std::sqrt(sum / static_cast<double>(n)) : 0.0;
}

int run_reconstruct(const ReconstructOptions& opt) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  check_argument(opt.samples >= 2 && opt.samples % 2 == 0, kFn, "--samples",
                 "must be an even number >= 2 (samples come in mirrored pairs), got " +
                     std::to_string(opt.samples));
  check_argument(opt.iterations >= 1, kFn, "--iterations", "must be at least 1");
  check_argument(opt.threads >= 0, kFn, "--threads", "must be >= 0 (0: all cores)");
  check_positive(opt.noise_std, kFn, "--noise-std");
  check_argument(opt.sampling_cg_max >= 1, kFn, "--sampling-cg-max", "must be at least 1");
  check_argument(opt.newton_steps >= 1, kFn, "--newton-steps", "must be at least 1");
  check_argument(opt.sampling_delta_energy >= 0, kFn, "--sampling-delta-energy", "must be >= 0");
  check_argument(opt.newton_delta_energy >= 0, kFn, "--newton-delta-energy", "must be >= 0");
  check_argument(opt.newton_cg_reduction >= 0, kFn, "--newton-cg-reduction", "must be >= 0");
  check_argument(opt.newton_cg_max >= 1, kFn, "--newton-cg-max", "must be at least 1");
  check_argument(opt.initial_scale >= 0, kFn, "--initial-scale", "must be >= 0");
  std::unique_ptr<tbb::global_control> threads;
  if (opt.threads > 0)
    threads = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    opt.threads);

  // Grid and inputs.
  const auto subdomain_shapes = opt.prior.subdomain_shapes(kFn);
  check_argument(subdomain_shapes.size() == 1, kFn, "--shape",
                 "must be one grid (no '/'): reconstruct reports one power spectrum, got '" +
                     opt.prior.shape + "'");
  const std::vector<Eigen::Index> shape = subdomain_shapes[0];
  DomainPtr grid = regular_grid(shape);  // the unit box, as NIFTy's RGSpace default
  const Eigen::Index pixels = grid->size();

  NpyArray mask_array = read_npy(opt.mask);
  check_argument(mask_array.values.size() == pixels, kFn, "--mask",
                 opt.mask + " has " + std::to_string(mask_array.values.size()) +
                     " values, the grid " + opt.prior.shape + " has " + std::to_string(pixels));
  std::vector<bool> observed(static_cast<std::size_t>(pixels));
  Eigen::Index n_observed = 0;
  for (Eigen::Index i = 0; i < pixels; ++i) {
    const double m = mask_array.values[i];
    check_argument(m == 0.0 || m == 1.0, kFn, "--mask",
                   "must hold booleans (0 or 1), " + opt.mask + " has " + std::to_string(m) +
                       " at index " + std::to_string(i));
    observed[static_cast<std::size_t>(i)] = m == 1.0;
    n_observed += m == 1.0;
  }
  check_argument(n_observed > 0, kFn, "--mask", "observes no pixel");
  NpyArray data = read_npy(opt.data);
  check_finite(data.values, kFn, "--data");
  check_argument(data.values.size() == n_observed, kFn, "--data",
                 opt.data + " has " + std::to_string(data.values.size()) +
                     " values, the mask observes " + std::to_string(n_observed) + " pixels");
  Eigen::VectorXd truth;
  if (!opt.truth.empty()) {
    truth = read_npy(opt.truth).values;
    check_argument(truth.size() == pixels, kFn, "--truth",
                   opt.truth + " has " + std::to_string(truth.size()) + " values, the grid has " +
                       std::to_string(pixels));
    check_finite(truth, kFn, "--truth");
  }

  // Model: d = M response(cf(xi)) + n.
  const CorrelatedField cf = opt.prior.maker(kFn).finalize();
  const OperatorPtr signal = apply_response(opt.response, cf.field());
  const OperatorPtr model = compose(mask_operator(grid, observed), signal);
  auto hamiltonian = standard_hamiltonian(
      gaussian_likelihood(Field(model->target(), data.values), opt.noise_std), model);

  std::filesystem::create_directories(opt.out);
  const std::filesystem::path out(opt.out);
  OptimizeKLOptions options;
  std::uint64_t h = kFnv1aBasis;
  h = fnv1a(h, data.values.data(), sizeof(double) * data.values.size());
  h = fnv1a(h, mask_array.values.data(), sizeof(double) * mask_array.values.size());
  h = fnv1a(h, opt.response.data(), opt.response.size());
  for (const std::string& s : opt.prior.fingerprint()) h = fnv1a(h, s.data(), s.size());
  for (double v : {opt.noise_std, opt.prior.offset_mean, opt.sampling_delta_energy,
                   opt.newton_delta_energy, opt.initial_scale})
    h = fnv1a(h, &v, sizeof v);
  for (double v : {opt.newton_cg_reduction}) h = fnv1a(h, &v, sizeof v);
  for (int v : {opt.samples, opt.sampling_cg_max, opt.newton_steps, opt.newton_cg_max})
    h = fnv1a(h, &v, sizeof v);
  h = opt.sampling.fingerprint(h);
  options.run_id = fmt::format("reconstruct:{:016x}", h);
  options.global_iterations = opt.iterations;
  options.settings.sample_pairs = opt.samples / 2;
  // NIFTy's AbsDeltaEnergyController for the sampling CG: stop when an iteration changes the
  // CG energy by less than delta (the residual criterion is effectively off).
  options.settings.sampling_cg = {1e-12, opt.sampling_delta_energy, opt.sampling_cg_max};
  NewtonCGOptions newton;
  newton.max_iterations = opt.newton_steps;
  newton.absolute_energy_change = opt.newton_delta_energy;
  newton.convergence_level = 2;  // as NIFTy's demo: one small step (an inexact one) is not enough
  newton.gradient_tolerance = 1e-7;
  newton.cg = {1e-6, 0.0, opt.newton_cg_max};
  newton.energy_reduction_factor = opt.newton_cg_reduction;  // inexact Newton, as NIFTy's
  options.settings.minimizer = newton_cg(newton);
  options.settings.nonlinear_sampling_minimizer = opt.sampling.nonlinear_sampling_minimizer();
  options.seed = opt.seed;
  options.checkpoint = out / "kl.ckpt";
  options.resume = opt.resume;
  options.progress = &std::cerr;
  options.dense_entropy_limit = 0;  // 16k-dimensional: no dense log-determinant
  options.communicator = Communicator::world();  // the ranks of mpirun, or this process

  std::mt19937_64 rng(opt.seed ^ 0x5eedULL);
  Field initial = Field::normal(cf.excitations(), rng);
  initial *= opt.initial_scale;
  const auto setup_done = Clock::now();
  OptimizeKLSummary result = optimize_kl(hamiltonian, std::move(initial), options);
  const auto mgvi_done = Clock::now();
  // Budgets (iteration limits) are the schedule; a numerical failure is an error.
  int status = 0;
  for (const auto& it : result.iterations)
    if (it.minimizer.status == MinimizerStatus::kNumericalError) status = 3;
  if (!options.communicator.is_root()) return status;  // the root rank writes the results

  // Posterior statistics.
  const SampleList& samples = result.samples;
  auto stats = samples.statistics(*signal);
  // NIFTy's power spectrum: bin 0 is (V azm)^2 with V = 1 for the unit box.
  auto spectrum_stats = samples.statistics(*cf.power_spectrum());
  const Eigen::VectorXd power_mean = spectrum_stats.mean.values();
  const auto& ps = dynamic_cast<const PowerSpace&>(*cf.power_space(0));
  write_npy(out / "mean.npy", shape, stats.mean.values());
  write_npy(out / "std.npy", shape, stats.std.values());
  write_npy(out / "power_mean.npy", {ps.size()}, power_mean);
  write_npy(out / "power_k.npy", {ps.size()}, ps.k());

  // Figures (2-D grids only): mean and data on the same colour scale, std on its own.
  if (shape.size() == 2) {
    Eigen::VectorXd data_image = Eigen::VectorXd::Constant(pixels, std::nan(""));
    for (Eigen::Index i = 0, j = 0; i < pixels; ++i)
      if (observed[static_cast<std::size_t>(i)]) data_image[i] = data.values[j++];
    const double lo = std::min(stats.mean.values().minCoeff(), data.values.minCoeff());
    const double hi = std::max(stats.mean.values().maxCoeff(), data.values.maxCoeff());
    const int scale_px = shape[0] < 256 ? 4 : 2;
    write_png_colormap(out / "mean.png", stats.mean.values(), shape[0], shape[1], lo, hi, scale_px);
    write_png_colormap(out / "data.png", data_image, shape[0], shape[1], lo, hi, scale_px);
    write_png_colormap(out / "std.png", stats.std.values(), shape[0], shape[1], 0.0,
                       stats.std.values().maxCoeff(), scale_px);
    if (truth.size())
      write_png_colormap(out / "truth.png", truth, shape[0], shape[1], lo, hi, scale_px);
  }

  // Cost of one Jacobian application of the model (JVP, VJP) at the posterior mean.
  double seconds_jvp = 0.0, seconds_vjp = 0.0;
  {
    const FlatLinearization lin = model->linearize_flat(samples.mean().values());
    Eigen::VectorXd v = Eigen::VectorXd::Ones(model->domain().size());
    Eigen::VectorXd u = Eigen::VectorXd::Ones(model->target().size());
    Eigen::VectorXd jv(u.size()), ju(v.size());
    constexpr int kRepeats = 20;
    auto t0 = Clock::now();
    for (int r = 0; r < kRepeats; ++r) lin.jacobian->apply_mode(LinearOperator::kTimes, v, jv);
    auto t1 = Clock::now();
    for (int r = 0; r < kRepeats; ++r)
      lin.jacobian->apply_mode(LinearOperator::kAdjointTimes, u, ju);
    auto t2 = Clock::now();
    seconds_jvp = std::chrono::duration<double>(t1 - t0).count() / kRepeats;
    seconds_vjp = std::chrono::duration<double>(t2 - t1).count() / kRepeats;
  }
  const double seconds_total = std::chrono::duration<double>(Clock::now() - start).count();
  nlohmann::json summary = {
      {"command", "reconstruct"},
      {"shape", shape},
      {"response", opt.response},
      {"method", opt.sampling.method},
      {"ranks", options.communicator.size()},
      {"seed", opt.seed},
      {"samples", samples.size()},
      {"threads", opt.threads},
      {"resumed_iterations", result.resumed_iterations},
      {"all_converged", result.all_converged()},
      {"seconds_setup", std::chrono::duration<double>(setup_done - start).count()},
      {"seconds_mgvi", std::chrono::duration<double>(mgvi_done - setup_done).count()},
      {"seconds_total", seconds_total},
      {"mean_posterior_std", stats.std.values().mean()},
      {"seconds_per_jvp", seconds_jvp},
      {"seconds_per_vjp", seconds_vjp},
      {"iterations", nlohmann::json::array()}};
  for (const auto& it : result.iterations) {
    nlohmann::json iteration =
        {{"iteration", it.iteration},
         {"kl", it.kl_value},
         {"kl_standard_error", it.kl_standard_error},
         {"gradient_norm", it.gradient_norm},
         {"sampling_cg_iterations", it.sampling_cg_iterations},
         {"sampling_cg_not_converged", it.sampling_cg_not_converged},
         {"newton_steps", it.minimizer.iterations},
         {"newton_cg_iterations", it.minimizer.cg_iterations},
         {"minimizer", it.minimizer.brief_report()},
         {"seconds_sampling", it.seconds_sampling},
         {"seconds_minimizing", it.seconds_minimizing}};
    add_sampling_report(iteration, it);
    summary["iterations"].push_back(std::move(iteration));
  }
  if (truth.size()) {
    const Eigen::VectorXd diff = stats.mean.values() - truth;
    summary["rms_error"] = {{"all", std::sqrt(diff.squaredNorm() / static_cast<double>(pixels))},
                            {"observed", rms(diff, observed, true)},
                            {"unobserved", rms(diff, observed, false)}};
    // Calibration: the fraction of pixels whose truth lies within one posterior std of the mean
    // (68% for a calibrated Gaussian posterior).
    summary["truth_within_one_std"] =
        (diff.array().abs() <= stats.std.values().array()).cast<double>().mean();
  }
  // Posterior mean and std of the spectrum's parameters (NIFTy's prior transforms).
  {
    const MultiDomain& multi = cf.excitations();
    const std::string key_prefix = opt.prior.prefix + opt.prior.names;
    auto parameter = [&](const std::string& name, const std::optional<PriorMoments>& prior,
                         bool positive) {
      const std::string key = (name == "zeromode" ? opt.prior.prefix : key_prefix) + name;
      if (!prior || !multi.contains(key)) return;
      OperatorPtr xi = field_adapter(multi, key);
      OperatorPtr op = positive ? lognormal_prior(xi, prior->mean, prior->std)
                                : normal_prior(xi, prior->mean, prior->std);
      auto st = samples.statistics(*op);
      summary["parameters"][name] = {{"mean", st.mean.values()[0]}, {"std", st.std.values()[0]}};
    };
    if (opt.prior.matern.empty()) {
      const FluctuationSettings fluct = opt.prior.fluctuation_settings(0, 1, kFn);
      parameter("fluctuations", fluct.fluctuations, true);
      parameter("flexibility", fluct.flexibility, true);
      parameter("asperity", fluct.asperity, true);
      parameter("loglogavgslope", fluct.loglogavgslope, false);
    } else {
      const MaternSettings m = opt.prior.matern_settings(0, 1, kFn);
      parameter("scale", m.scale, true);
      parameter("cutoff", m.cutoff, true);
      parameter("loglogslope", m.loglogslope, false);
    }
    parameter("zeromode", parse_moments(opt.prior.offset_std, kFn, "--offset-std"), true);
  }
  write_json_atomic(out / "summary.json", summary, kFn);
  fmt::print("wrote {}/mean.npy, std.npy, power_mean.npy, power_k.npy, summary.json{} in {:.2f} s\n",
             opt.out, shape.size() == 2 ? ", mean.png, std.png, data.png" : "", seconds_total);
  if (truth.size())
    fmt::print("rms error of the posterior mean: {:.4f} (observed {:.4f}, unobserved {:.4f}); "
               "truth within one posterior std in {:.1f}% of the pixels\n",
               summary["rms_error"]["all"].get<double>(),
               summary["rms_error"]["observed"].get<double>(),
               summary["rms_error"]["unobserved"].get<double>(),
               100 * summary["truth_within_one_std"].get<double>());

  for (const auto& it : result.iterations) {
    if (it.sampling_cg_not_converged > 0)
      fmt::print(stderr, "{}: iteration {}: {} sampling CG solves stopped at the iteration limit\n",
                 kFn, it.iteration + 1, it.sampling_cg_not_converged);
    if (it.nonlinear_sampling_not_converged > 0)
      fmt::print(stderr, "{}: iteration {}: {} geoVI samples stopped at the step limit\n", kFn,
                 it.iteration + 1, it.nonlinear_sampling_not_converged);
    if (it.minimizer.status == MinimizerStatus::kNumericalError)
      fmt::print(stderr, "{}: iteration {}: minimizer failed: {}\n", kFn, it.iteration + 1,
                 it.minimizer.brief_report());
  }
  return status;
}

}  // namespace

std::function<int()> register_reconstruct_command(CLI::App& app) {
  auto opt = std::make_shared<ReconstructOptions>();
  CLI::App* cmd = app.add_subcommand(
      "reconstruct", "MGVI with a correlated-field prior on a periodic grid (the unit box)");
  cmd->add_option("--data", opt->data, "observed values (.npy, one per observed pixel, C order)")
      ->required();
  cmd->add_option("--mask", opt->mask, "observed pixels (.npy of booleans, the grid's shape)")
      ->required();
  cmd->add_option("--noise-std", opt->noise_std, "Gaussian noise standard deviation")->required();
  cmd->add_option("--response", opt->response,
                  "pointwise response of the field: sigmoid (0.5 + 0.5 tanh f), identity, exp")
      ->capture_default_str();
  cmd->add_option("--samples", opt->samples, "posterior samples (even: mirrored pairs)")
      ->capture_default_str();
  cmd->add_option("--iterations", opt->iterations, "global MGVI iterations")->capture_default_str();
  cmd->add_option("--seed", opt->seed, "random seed")->capture_default_str();
  cmd->add_option("--threads", opt->threads, "threads (0: all cores)")->capture_default_str();
  cmd->add_option("--truth", opt->truth, "true signal (.npy) to report the RMS error against");
  opt->prior.add_to(cmd);
  cmd->add_option("--sampling-delta-energy", opt->sampling_delta_energy,
                  "sampling CG stops when an iteration changes its energy by less")
      ->capture_default_str();
  cmd->add_option("--sampling-cg-max", opt->sampling_cg_max, "sampling CG iteration limit")
      ->capture_default_str();
  cmd->add_option("--newton-steps", opt->newton_steps, "Newton-CG steps per global iteration")
      ->capture_default_str();
  cmd->add_option("--newton-delta-energy", opt->newton_delta_energy,
                  "Newton-CG stops when a step lowers the KL by less")
      ->capture_default_str();
  cmd->add_option("--newton-cg-reduction", opt->newton_cg_reduction,
                  "inexact Newton: a step's CG stops when an iteration gains less than this "
                  "times the previous step's KL decrease (0: solve to --newton-cg-max)")
      ->capture_default_str();
  cmd->add_option("--newton-cg-max", opt->newton_cg_max, "CG iteration limit per Newton step")
      ->capture_default_str();
  cmd->add_option("--initial-scale", opt->initial_scale,
                  "start at this times N(0, 1) excitations")
      ->capture_default_str();
  // NIFTy's getting_started_3 (correlated field, geoVI): deltaE 0.5, at most 15 steps per sample.
  opt->sampling.geovi_steps = 15;
  opt->sampling.geovi_delta_energy = 0.5;
  opt->sampling.add_to(cmd);
  cmd->add_flag("--resume", opt->resume, "continue from OUT/kl.ckpt");
  cmd->add_option("--out", opt->out, "output directory")->required();
  return [opt] { return run_reconstruct(*opt); };
}

}  // namespace infield::apps

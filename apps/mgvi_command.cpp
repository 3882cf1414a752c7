// `infield mgvi linear`: MGVI on the linear-Gaussian model d = R A xi + n from .npy inputs.

#include <fmt/core.h>
#include <tbb/global_control.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "json_output.h"
#include "matrix_io.h"
#include "sampling_method_flags.h"
#include "infield/inference/mgvi.h"
#include "infield/infield.h"

namespace infield::apps {
namespace {

struct MgviLinearOptions {
  std::string response, prior_sqrt, data, out;
  double noise_std = 1.0;
  int samples = 8;
  int iterations = 2;
  std::uint64_t seed = 42;
  int threads = 0;
  int cg_max_iterations = 500;
  bool resume = false;
  SamplingMethodFlags sampling;
};

/// FNV-1a over the model's response to a fixed probe, the data and the options that shape the run.
std::uint64_t fingerprint(const OperatorPtr& model, const OperatorPtr& prior,
                          const Eigen::VectorXd& data, const MgviLinearOptions& opt) {
  std::uint64_t h = kFnv1aBasis;
  auto mix = [&h](const void* p, std::size_t n) { h = fnv1a(h, p, n); };
  Eigen::VectorXd probe = Eigen::VectorXd::LinSpaced(model->domain().size(), -1.0, 2.0);
  for (const auto& op : {model, prior}) {
    Eigen::VectorXd response = op->evaluate(probe);
    mix(response.data(), sizeof(double) * response.size());
  }
  mix(data.data(), sizeof(double) * data.size());
  mix(&opt.noise_std, sizeof opt.noise_std);
  mix(&opt.samples, sizeof opt.samples);
  mix(&opt.cg_max_iterations, sizeof opt.cg_max_iterations);
  return opt.sampling.fingerprint(h);
}

nlohmann::json report_json(const GlobalIterationReport& r) {
  nlohmann::json json = {{"iteration", r.iteration},
          {"samples", r.samples},
          {"kl", r.kl_value},
          {"kl_standard_error", r.kl_standard_error},
          {"kl_with_entropy", std::isfinite(r.kl_with_entropy) ? nlohmann::json(r.kl_with_entropy)
                                                               : nlohmann::json(nullptr)},
          {"gradient_norm", r.gradient_norm},
          {"sampling_cg_iterations", r.sampling_cg_iterations},
          {"sampling_cg_not_converged", r.sampling_cg_not_converged},
          {"minimizer", r.minimizer.brief_report()},
          {"minimizer_converged", r.minimizer.converged()},
          {"seconds_sampling", r.seconds_sampling},
          {"seconds_minimizing", r.seconds_minimizing}};
  add_sampling_report(json, r);
  return json;
}

int run_mgvi_linear(const MgviLinearOptions& opt) {
  constexpr std::string_view fn = "infield mgvi linear";
  check_argument(opt.samples >= 2 && opt.samples % 2 == 0, fn, "--samples",
                 "must be an even number >= 2 (samples come in mirrored pairs), got " +
                     std::to_string(opt.samples));
  check_argument(opt.iterations >= 1, fn, "--iterations", "must be at least 1");
  check_argument(opt.threads >= 0, fn, "--threads", "must be >= 0 (0: all cores)");
  check_argument(opt.cg_max_iterations >= 1, fn, "--cg-max-iterations", "must be at least 1");
  check_positive(opt.noise_std, fn, "--noise-std");
  std::unique_ptr<tbb::global_control> threads;
  if (opt.threads > 0)
    threads = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    opt.threads);

  Eigen::MatrixXd r = read_npy_matrix(opt.response, fn, "--response", "data x signal");
  Eigen::MatrixXd a = read_npy_matrix(opt.prior_sqrt, fn, "--prior-sqrt", "signal x latent");
  NpyArray d = read_npy(opt.data);
  check_finite(d.values, fn, "--data");
  check_argument(r.cols() == a.rows(), fn, "--response, --prior-sqrt",
                 "do not chain: R is " + std::to_string(r.rows()) + " x " +
                     std::to_string(r.cols()) + ", A is " + std::to_string(a.rows()) + " x " +
                     std::to_string(a.cols()) + " (need R columns = A rows)");
  check_argument(d.values.size() == r.rows(), fn, "--data",
                 "has " + std::to_string(d.values.size()) + " values, R has " +
                     std::to_string(r.rows()) + " rows");

  auto latent = unstructured(a.cols());
  auto signal_space = unstructured(a.rows());
  auto data_space = unstructured(r.rows());
  auto prior = matrix_operator(latent, signal_space, std::move(a));
  auto model = compose(matrix_operator(signal_space, data_space, std::move(r)), prior);
  auto hamiltonian =
      standard_hamiltonian(gaussian_likelihood(Field(data_space, d.values), opt.noise_std), model);

  std::filesystem::create_directories(opt.out);
  OptimizeKLOptions options;
  // The checkpoint must belong to these inputs and options: fingerprint them.
  options.run_id = fmt::format("mgvi-linear:{:016x}", fingerprint(model, prior, d.values, opt));
  options.global_iterations = opt.iterations;
  options.settings.sample_pairs = opt.samples / 2;
  options.settings.sampling_cg.max_iterations = opt.cg_max_iterations;
  // geoVI on this linear-Gaussian problem gives MGVI's samples (to the solver tolerance): a check
  // of the machinery more than a choice.
  options.settings.nonlinear_sampling_minimizer = opt.sampling.nonlinear_sampling_minimizer();
  NewtonCGOptions newton;
  newton.cg.max_iterations = opt.cg_max_iterations;
  options.settings.minimizer = newton_cg(newton);
  options.seed = opt.seed;
  options.checkpoint = std::filesystem::path(opt.out) / "kl.ckpt";
  options.resume = opt.resume;
  options.progress = &std::cerr;
  options.communicator = Communicator::world();  // the ranks of mpirun, or this process
  OptimizeKLSummary result = optimize_kl(hamiltonian, Field::zeros(latent), options);
  if (!options.communicator.is_root()) return result.all_converged() ? 0 : 3;  // root writes

  const SampleList& samples = result.samples;
  auto stats = samples.statistics(*prior);
  Eigen::MatrixXd rows(samples.size(), signal_space->size());
  for (int k = 0; k < samples.size(); ++k)
    rows.row(k) = prior->evaluate(samples.sample(k).values()).transpose();
  const std::filesystem::path out(opt.out);
  const auto n = signal_space->size();
  write_npy(out / "mean.npy", {n}, stats.mean.values());
  write_npy(out / "std.npy", {n}, stats.std.values());
  write_npy_rows(out / "samples.npy", rows);

  nlohmann::json summary = {{"command", "mgvi linear"},
                            {"method", opt.sampling.method},
                            {"ranks", options.communicator.size()},
                            {"seed", opt.seed},
                            {"samples", samples.size()},
                            {"resumed_iterations", result.resumed_iterations},
                            {"all_converged", result.all_converged()},
                            {"iterations", nlohmann::json::array()}};
  for (const auto& it : result.iterations) summary["iterations"].push_back(report_json(it));
  write_json_atomic(out / "summary.json", summary, "infield mgvi linear");
  fmt::print("wrote {}/mean.npy, std.npy, samples.npy ({} x {}), summary.json\n", opt.out,
             samples.size(), n);
  if (!result.all_converged()) {
    for (const auto& it : result.iterations) {
      if (it.sampling_cg_not_converged > 0)
        fmt::print(stderr, "infield mgvi linear: iteration {}: {} sampling CG solves did not converge\n",
                   it.iteration + 1, it.sampling_cg_not_converged);
      if (it.nonlinear_sampling_not_converged > 0)
        fmt::print(stderr,
                   "infield mgvi linear: iteration {}: {} geoVI samples did not converge\n",
                   it.iteration + 1, it.nonlinear_sampling_not_converged);
      if (!it.minimizer.converged())
        fmt::print(stderr, "infield mgvi linear: iteration {}: minimizer {}\n", it.iteration + 1,
                   it.minimizer.brief_report());
    }
    return 3;
  }
  return 0;
}

}  // namespace

std::function<int()> register_mgvi_command(CLI::App& app) {
  auto opt = std::make_shared<MgviLinearOptions>();
  CLI::App* mgvi = app.add_subcommand("mgvi", "Metric Gaussian Variational Inference");
  mgvi->require_subcommand(1);
  CLI::App* cmd = mgvi->add_subcommand("linear", "MGVI on d = R A xi + n with Gaussian noise");
  cmd->add_option("--response", opt->response, "R as a 2-D .npy (data x signal)")->required();
  cmd->add_option("--prior-sqrt", opt->prior_sqrt, "A as a 2-D .npy (signal x latent)")->required();
  cmd->add_option("--noise-std", opt->noise_std, "noise standard deviation")->required();
  cmd->add_option("--data", opt->data, "d as a .npy")->required();
  cmd->add_option("--samples", opt->samples, "posterior samples (even: mirrored pairs)")
      ->capture_default_str();
  cmd->add_option("--iterations", opt->iterations, "global MGVI iterations")->capture_default_str();
  cmd->add_option("--seed", opt->seed, "random seed")->capture_default_str();
  cmd->add_option("--threads", opt->threads, "threads (0: all cores)")->capture_default_str();
  cmd->add_option("--cg-max-iterations", opt->cg_max_iterations,
                  "iteration limit of every CG (sampling and Newton)")
      ->capture_default_str();
  opt->sampling.add_to(cmd);
  cmd->add_flag("--resume", opt->resume, "continue from OUT/kl.ckpt");
  cmd->add_option("--out", opt->out, "output directory")->required();
  return [opt] { return run_mgvi_linear(*opt); };
}

}  // namespace infield::apps

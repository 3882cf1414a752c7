#include "infield/models/latent_inference.h"

#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <string>

#include "infield/domain.h"
#include "infield/error.h"
#include "infield/inference/mgvi.h"
#include "infield/likelihood.h"

namespace infield::neural {

void LatentInferenceOptions::validate() const {
  constexpr std::string_view fn = "LatentInferenceOptions";
  check_argument(samples >= 2 && samples % 2 == 0, fn, "samples",
                 "must be even and at least 2 (mirrored pairs), got " + std::to_string(samples));
  check_argument(iterations >= 1, fn, "iterations", "must be at least 1");
  check_argument(newton_steps >= 1, fn, "newton_steps", "must be at least 1");
  check_argument(threads >= 1, fn, "threads", "must be at least 1");
}

Eigen::Index LatentPosteriors::not_converged() const {
  return static_cast<Eigen::Index>(std::count(converged.begin(), converged.end(), false));
}

LatentPosteriors infer_latents(const DenseNetwork& decoder, double noise_std,
                               const Matrix<double>& images, const Matrix<double>& start,
                               const LatentInferenceOptions& options) {
  constexpr std::string_view fn = "infer_latents";
  options.validate();
  check_argument(decoder.network != nullptr && decoder.parameters != nullptr, fn, "decoder",
                 "needs a network and its parameters");
  const Eigen::Index n = images.rows(), d = decoder.network->input_size(),
                     k = decoder.network->output_size();
  check_argument(images.cols() == k, fn, "images",
                 "have " + std::to_string(images.cols()) + " values per row, the decoder makes " +
                     std::to_string(k));
  check_argument(start.rows() == n && start.cols() == d, fn, "start",
                 "must be one latent (" + std::to_string(d) + " values) per image");
  check_argument(std::isfinite(noise_std) && noise_std > 0, fn, "noise_std",
                 "must be positive and finite");
  check_finite(Eigen::Map<const Eigen::VectorXd>(images.data(), images.size()), fn, "images");
  check_finite(Eigen::Map<const Eigen::VectorXd>(start.data(), start.size()), fn, "start");

  const OperatorPtr model = network_operator(decoder, "Decoder");
  OptimizeKLOptions kl;
  kl.global_iterations = options.iterations;
  kl.settings.sample_pairs = options.samples / 2;
  NewtonCGOptions newton;
  newton.max_iterations = options.newton_steps;
  // Energies are in nats, and the sampled KL's Monte Carlo error is of order one: a Newton step
  // that changes it by less than 1e-3 is at its minimum for every purpose here. A ReLU decoder
  // makes the KL piecewise smooth, so the gradient need not vanish at the minimum (a kink).
  newton.absolute_energy_change = 1e-3;
  newton.gradient_tolerance = 1e-9;
  kl.settings.minimizer = newton_cg(newton);
  kl.dense_entropy_limit = 0;

  LatentPosteriors out;
  out.mean.resize(n, d);
  out.covariance.resize(n, d * d);
  out.converged.assign(static_cast<std::size_t>(n), false);
  std::mutex progress_mutex;
  Eigen::Index done = 0;
  tbb::task_arena arena(options.threads);
  arena.execute([&] {
    tbb::parallel_for(Eigen::Index{0}, n, [&](Eigen::Index i) {
      const auto hamiltonian = standard_hamiltonian(
          gaussian_likelihood(Field(model->target(), images.row(i).transpose()), noise_std),
          model);
      OptimizeKLOptions mine = kl;
      // Distinct streams per datum: (seed, i) through a 64-bit mix (splitmix64's constant).
      mine.seed = options.seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(i);
      const OptimizeKLSummary summary =
          optimize_kl(hamiltonian, Field(model->domain(), start.row(i).transpose()), mine);
      const SampleList& samples = summary.samples;
      out.mean.row(i) = samples.mean().values().transpose();
      Eigen::MatrixXd c = Eigen::MatrixXd::Zero(d, d);
      for (const Eigen::VectorXd& r : samples.signed_residuals()) c.noalias() += r * r.transpose();
      c /= static_cast<double>(samples.size() - 1);
      out.covariance.row(i) = Eigen::Map<const Eigen::RowVectorXd>(c.data(), d * d);
      out.converged[static_cast<std::size_t>(i)] = summary.all_converged();
      if (options.progress) {
        std::lock_guard lock(progress_mutex);
        options.progress(++done, n);
      }
    });
  });
  return out;
}

}  // namespace infield::neural

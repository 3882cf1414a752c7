#include "sampling_method_flags.h"

#include "infield/inference/geovi.h"
#include "matrix_io.h"

namespace infield::apps {

void SamplingMethodFlags::add_to(CLI::App* cmd) {
  cmd->add_option("--method", method,
                  "mgvi: linear samples; geovi: each sample refined through geoVI's coordinate "
                  "transformation (curved posteriors)")
      ->check(CLI::IsMember({"mgvi", "geovi"}))
      ->capture_default_str();
  cmd->add_option("--geovi-steps", geovi_steps,
                  "Newton steps per geoVI sample (the refinement's iteration limit)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--geovi-delta-energy", geovi_delta_energy,
                  "a geoVI sample is converged when two successive Newton steps lower its energy "
                  "by less than this")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

MinimizerPtr SamplingMethodFlags::nonlinear_sampling_minimizer() const {
  return method == "geovi" ? geovi_sample_minimizer(geovi_steps, geovi_delta_energy) : nullptr;
}

std::uint64_t SamplingMethodFlags::fingerprint(std::uint64_t h) const {
  h = fnv1a(h, method.data(), method.size());
  if (method == "geovi") {
    h = fnv1a(h, &geovi_steps, sizeof geovi_steps);
    h = fnv1a(h, &geovi_delta_energy, sizeof geovi_delta_energy);
  }
  return h;
}

void add_sampling_report(nlohmann::json& iteration, const GlobalIterationReport& report) {
  iteration["method"] = report.nonlinear_sampling ? "geovi" : "mgvi";
  if (!report.nonlinear_sampling) return;
  iteration["geovi_newton_steps"] = report.nonlinear_sampling_iterations;
  iteration["geovi_not_converged"] = report.nonlinear_sampling_not_converged;
}

}  // namespace infield::apps

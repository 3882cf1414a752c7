#pragma once
// `--method mgvi|geovi` and `--geovi-steps N`, shared by `infield reconstruct`, `infield mgvi
// linear` and `infield mkde fit`: the sampling of every global iteration, MGVI's linear samples or
// geoVI's refined ones (<infield/inference/geovi.h>).

#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "infield/inference/mgvi.h"

namespace infield::apps {

struct SamplingMethodFlags {
  std::string method = "mgvi";
  int geovi_steps = 20;
  /// The refinement stops when two successive Newton steps lower the sample energy by less than
  /// this (NIFTy's AbsDeltaEnergyController deltaE); commands set their default before add_to().
  double geovi_delta_energy = 1e-8;

  /// Registers the flags on `cmd`.
  void add_to(CLI::App* cmd);
  /// geoVI's sample minimiser (geovi_sample_minimizer with --geovi-steps), or null for MGVI.
  MinimizerPtr nonlinear_sampling_minimizer() const;
  /// Mixes the method into a run fingerprint: a checkpoint of one method is not resumed by the
  /// other.
  std::uint64_t fingerprint(std::uint64_t h) const;
};

/// The sampling fields of one global iteration's JSON report: the method and, for geoVI, the
/// refinement's Newton steps (summed over samples) and the samples that did not converge.
void add_sampling_report(nlohmann::json& iteration, const GlobalIterationReport& report);

}  // namespace infield::apps

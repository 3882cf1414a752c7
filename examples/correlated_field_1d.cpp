// A correlated field with an inferred power spectrum, reconstructed from gappy noisy data by MGVI.
#include <infield/inference/mgvi.h>
#include <infield/infield.h>
#include <infield/models/correlated_field.h>

#include <cstdio>

using namespace infield;

int main() {
  auto grid = regular_grid({256});  // the unit interval, periodic
  FluctuationSettings spectrum;     // NIFTy's defaults: fluctuations (1, 0.8), slope (-3, 1), ...
  spectrum.loglogavgslope = {-4.0, 1.0};  // the power spectrum falls as k^-4
  CorrelatedField cf =
      CorrelatedFieldMaker().add_fluctuations(grid, spectrum).set_offset(0.0, {0.1, 0.05}).finalize();

  // Truth drawn from the prior; data on the pixels outside [0.4, 0.6), noise std 0.1.
  std::mt19937_64 rng(3);
  Field truth = cf.field()->apply(Field::normal(cf.excitations(), rng));
  std::vector<bool> seen(256);
  for (int i = 0; i < 256; ++i) seen[i] = i < 102 || i >= 154;
  auto response = mask_operator(grid, seen);
  Field data = response->times(truth);
  data.values() += 0.1 * standard_normal_vector(data.size(), rng);

  auto hamiltonian =
      standard_hamiltonian(gaussian_likelihood(data, 0.1), compose(response, cf.field()));
  OptimizeKLOptions options;
  options.global_iterations = 4;
  options.settings.sample_pairs = 4;
  NewtonCGOptions newton;
  newton.energy_reduction_factor = 0.1;  // inexact Newton, as NIFTy's
  options.settings.minimizer = newton_cg(newton);
  OptimizeKLSummary result =
      optimize_kl(hamiltonian, Field::zeros(cf.excitations()), options);

  // Posterior of the field and of its power spectrum.
  auto field = result.samples.statistics(*cf.field());
  auto power = result.samples.statistics(*cf.power_spectrum());
  const double rms = (field.mean.values() - truth.values()).norm() / 16.0;
  std::printf("rms error %.3f, mean posterior std %.3f, power at the lowest k %.3g +- %.2g\n", rms,
              field.std.values().mean(), power.mean.values()[1], power.std.values()[1]);
  return rms < 0.2 ? 0 : 1;
}

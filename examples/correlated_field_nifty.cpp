// Our correlated field at NIFTy 8's excitations equals NIFTy's field, value by value.
// Usage: example_correlated_field_nifty [DIR]   (DIR: a cf-forward case, default sq64)
#include <infield/infield.h>
#include <infield/models/correlated_field.h>

#include <cstdio>
#include <string>

using namespace infield;

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : INFIELD_SOURCE_DIR "/tests/data/cf-forward/sq64";
  // NIFTy: cfm = CorrelatedFieldMaker("cf"); cfm.add_fluctuations(RGSpace((64, 64), 1/64),
  //   (1.0, 0.8), (2.0, 1.0), (0.5, 0.4), (-3.0, 1.0)); cfm.set_amplitude_total_offset(0.0,
  //   (1e-3, 1e-6)); the same (mean, std) pairs are FluctuationSettings' defaults.
  CorrelatedField cf = CorrelatedFieldMaker("cf")
                           .add_fluctuations(regular_grid({64, 64}), FluctuationSettings{})
                           .set_offset(0.0, {1e-3, 1e-6})
                           .finalize();

  // NIFTy's excitations: one .npy per key (cfxi, cfzeromode, cffluctuations, ...).
  Field xi = Field::zeros(cf.excitations());
  for (const std::string& key : cf.excitations().keys())
    xi.part(key) = read_npy(dir + "/" + key + ".npy").values;

  const Eigen::VectorXd ours = cf.field()->apply(xi).values();
  const Eigen::VectorXd nifty = read_npy(dir + "/field.npy").values;
  const double error = (ours - nifty).cwiseAbs().maxCoeff() / nifty.cwiseAbs().maxCoeff();
  const Eigen::VectorXd power = cf.power_spectrum()->apply(xi).values();
  const Eigen::VectorXd nifty_power = read_npy(dir + "/power.npy").values;
  const double power_error =
      (power - nifty_power).cwiseQuotient(nifty_power).cwiseAbs().maxCoeff();
  std::printf("field: max |ours - NIFTy| / max |NIFTy| = %.1e; power spectrum: %.1e per bin\n",
              error, power_error);
  return error <= 1e-10 && power_error <= 1e-10 ? 0 : 1;
}

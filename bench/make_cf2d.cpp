// Generates a cf2d-like problem (../shared/benchmarks/README.md) at any resolution: a prior sample
// of NIFTy's correlated field with the cf2d hyperparameters on the unit square, s = 0.5 + 0.5
// tanh(f), a random half of the pixels observed except an unobserved rectangle (rows 1/4 to 1/2,
// columns 70/128 to 109/128 of the box, as in the 128 x 128 mask), Gaussian noise of std 0.05.
//
//   make_cf2d --n 256 --seed 1 --out DIR   ->  DIR/data.npy, DIR/mask.npy, DIR/truth_signal.npy

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>

#include "infield/infield.h"
#include "infield/models/correlated_field.h"

int main(int argc, char** argv) {
  using namespace infield;
  Eigen::Index n = 256;
  std::uint64_t seed = 1;
  std::filesystem::path out = "cf2d_256";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--n") n = std::stol(argv[i + 1]);
    else if (flag == "--seed") seed = std::stoull(argv[i + 1]);
    else if (flag == "--out") out = argv[i + 1];
    else {
      std::cerr << "make_cf2d: unknown flag " << flag << "\n";
      return 2;
    }
  }
  if (n < 16) {
    std::cerr << "make_cf2d: --n must be at least 16\n";
    return 2;
  }
  try {
    const DomainPtr grid = regular_grid({n, n});
    const CorrelatedField cf = CorrelatedFieldMaker()
                                   .add_fluctuations(grid, FluctuationSettings{})
                                   .set_offset(0.0, {1e-3, 1e-6})
                                   .finalize();
    std::mt19937_64 rng(seed);
    const Field xi = Field::normal(cf.excitations(), rng);
    const Eigen::VectorXd f = cf.field()->apply(xi).values();
    const Eigen::VectorXd s = (0.5 + 0.5 * f.array().tanh()).matrix();
    std::bernoulli_distribution coin(0.5);
    std::normal_distribution<double> noise(0.0, 0.05);
    Eigen::VectorXd mask(n * n);
    std::vector<double> data;
    for (Eigen::Index r = 0; r < n; ++r)
      for (Eigen::Index c = 0; c < n; ++c) {
        const bool hole = 4 * r >= n && 2 * r < n && 128 * c >= 70 * n && 128 * c < 109 * n;
        const bool seen = !hole && coin(rng);
        mask[r * n + c] = seen;
        if (seen) data.push_back(s[r * n + c] + noise(rng));
      }
    std::filesystem::create_directories(out);
    write_npy(out / "truth_signal.npy", {n, n}, s);
    write_npy(out / "mask.npy", {n, n}, mask);
    write_npy(out / "data.npy", {static_cast<Eigen::Index>(data.size())},
              Eigen::Map<const Eigen::VectorXd>(data.data(), static_cast<Eigen::Index>(data.size())));
    std::cout << "wrote " << out.string() << ": " << data.size() << " of " << n * n
              << " pixels observed\n";
  } catch (const std::exception& e) {
    std::cerr << "make_cf2d: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

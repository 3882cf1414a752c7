// A user operator composed into a model and checked: the program of docs/tutorial-custom-model.md.
#include <infield/infield.h>

#include <cstdio>

using namespace infield;

int main() {
  auto grid = regular_grid({64});
  // A saturating detector r(s) = s / (1 + s), given by its value, JVP and VJP.
  auto saturate = make_operator(
      grid, grid, [](ConstVectorRef s) { return (s.array() / (1 + s.array())).matrix().eval(); },
      [](ConstVectorRef s, ConstVectorRef v) {
        return (v.array() / (1 + s.array()).square()).matrix().eval();
      },
      [](ConstVectorRef s, ConstVectorRef u) {
        return (u.array() / (1 + s.array()).square()).matrix().eval();
      },
      "Saturate");
  // The generative story: excitations xi -> log-normal signal -> detector -> every other pixel.
  auto signal = exp(scaling_operator(grid, 0.8));
  std::vector<bool> every_other(64);
  for (std::size_t i = 0; i < every_other.size(); ++i) every_other[i] = i % 2 == 0;
  auto model = compose(mask_operator(grid, every_other), saturate, signal);

  std::mt19937_64 rng(7);
  Field xi = Field::normal(grid, rng);
  CheckReport detector = check_jacobian(*saturate, signal->apply(xi));
  CheckReport whole = check_jacobian(*model, xi);
  std::printf("detector: %s\nmodel:    %s\n", detector.summary().c_str(), whole.summary().c_str());
  std::printf("model maps %s -> %s\n", model->domain().to_string().c_str(),
              model->target().to_string().c_str());
  return detector.passed && whole.passed ? 0 : 1;
}

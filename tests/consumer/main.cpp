// A program outside the Infield tree: builds against the installed package and checks an operator.
#include <infield/inference/conjugate_gradient.h>
#include <infield/infield.h>

#include <cstdio>

int main() {
  auto grid = infield::regular_grid({16});
  auto model = infield::exp(infield::scale(0.5, infield::identity_operator(grid)));
  std::mt19937_64 rng(1);
  auto report = infield::check_jacobian(*model, infield::Field::normal(grid, rng));
  std::printf("consumer: check_jacobian %s\n", report.summary().c_str());
  return report.passed ? 0 : 1;
}

// Data-parallel training's exchange alone (issue: MPI): per step, each rank writes a gradient of
// `length` floats into ShardedReduction's contribution buffer (as the backward pass does), the
// reduce-scatter reads every rank's share of its shard and hands the sum to a consumer that
// writes it into the parameters, and the all-gather assembles the parameters. No model, so the
// time is what moving the vector between the ranks' caches costs on this machine; the same loop
// in one process (no exchange) is printed for comparison.
//
//   mpirun -np 2 --bind-to none build/release/bench/exchange_bench [length] [steps]
//
// Defaults: FisherNet D = 5's 1,513,238 parameters, 500 steps; medians over the steps, rank 0.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "infield/inference/communicator.h"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace infield;
  using Clock = std::chrono::steady_clock;
  MpiSession session(&argc, &argv);
  const Eigen::Index length = argc > 1 ? std::stol(argv[1]) : 1513238;
  const int steps = argc > 2 ? std::stoi(argv[2]) : 500;
  const Communicator world = Communicator::world();
  ShardedReduction exchange(world, length);
  Eigen::VectorXf params = Eigen::VectorXf::Zero(length), gradient(length);
  float* const contribution =
      exchange.contribution_buffer() != nullptr ? exchange.contribution_buffer() : gradient.data();
  std::vector<double> write_ms, reduce_ms, gather_ms;
  for (int s = 0; s < steps; ++s) {
    world.barrier();
    const auto t0 = Clock::now();
    // This rank's gradient, fresh in its own cache as after a backward pass.
    Eigen::Map<Eigen::VectorXf>(contribution, length).setConstant(1e-3F * float(s % 7));
    const auto t1 = Clock::now();
    exchange.reduce_scatter(contribution, [&](Eigen::Index offset, const float* sum,
                                              Eigen::Index n) {
      params.segment(offset, n) -= Eigen::Map<const Eigen::VectorXf>(sum, n);
    });
    const auto t2 = Clock::now();
    exchange.all_gather(params.data());
    const auto t3 = Clock::now();
    write_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    reduce_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    gather_ms.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
  }
  if (world.is_root()) {
    const double mb = 4.0 * double(length) / 1e6;
    std::printf("%d rank(s), %lld floats (%.1f MB), %d steps, %s; median ms per step:\n",
                world.size(), static_cast<long long>(length), mb, steps,
                exchange.shared_memory() ? "shared memory" : "messages or one process");
    std::printf("  write the gradient %.3f, reduce-scatter + update %.3f, all-gather %.3f\n",
                median(write_ms), median(reduce_ms), median(gather_ms));
  }
  return 0;
}

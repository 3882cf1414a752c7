// Abstraction overhead of Infield's operators against the same passes written by hand with Eigen.
// Each Infield benchmark has a hand-written twin; bench/ratios.py turns a JSON run into ratios.
//
//   build/release/bench/operator_overhead_bench --benchmark_format=json > /tmp/b.json
//   python3 bench/ratios.py /tmp/b.json
#include <benchmark/benchmark.h>

#include <random>

#include "infield/infield.h"

namespace {

using infield::ConstVectorRef;
using infield::Field;
using Eigen::VectorXd;

constexpr Eigen::Index kValues = 1'000'000;

// The ten pointwise functions of the chain, all finite for any real input.
infield::OperatorPtr ten_pointwise_chain(const infield::Space& s) {
  using namespace infield;
  OperatorPtr op = tanh(s);
  op = exp(op);
  op = sqrt(op);
  op = log(op);
  op = sigmoid(op);
  op = softplus(op);
  op = relu(op);
  op = power(op, 3.0);
  op = clip(op, -1.0, 1.0);
  return tanh(op);
}

// The same chain by hand: one temporary per step, the same formulas.
VectorXd chain_by_hand(const VectorXd& x) {
  VectorXd y1 = x.array().tanh();
  VectorXd y2 = y1.array().exp();
  VectorXd y3 = y2.array().sqrt();
  VectorXd y4 = y3.array().log();
  VectorXd y5 = 0.5 * (1.0 + (0.5 * y4.array()).tanh());
  VectorXd y6 = y5.array().max(0.0) + (-y5.array().abs()).exp().log1p();
  VectorXd y7 = y6.array().max(0.0);
  VectorXd y8 = y7.array().pow(3.0);
  VectorXd y9 = y8.array().max(-1.0).min(1.0);
  return y9.array().tanh();
}

// Forward pass keeping the ten derivatives, by hand.
std::vector<VectorXd> derivatives_by_hand(const VectorXd& x) {
  std::vector<VectorXd> d;
  VectorXd y1 = x.array().tanh();
  d.push_back(1.0 - y1.array().square());
  VectorXd y2 = y1.array().exp();
  d.push_back(y2);
  VectorXd y3 = y2.array().sqrt();
  d.push_back(0.5 / y3.array());
  VectorXd y4 = y3.array().log();
  d.push_back(y3.array().inverse());
  VectorXd y5 = 0.5 * (1.0 + (0.5 * y4.array()).tanh());
  d.push_back(y5.array() * (1.0 - y5.array()));
  VectorXd y6 = y5.array().max(0.0) + (-y5.array().abs()).exp().log1p();
  d.push_back(0.5 * (1.0 + (0.5 * y5.array()).tanh()));
  VectorXd y7 = y6.array().max(0.0);
  d.push_back((y6.array() > 0.0).cast<double>());
  VectorXd y8 = y7.array().pow(3.0);
  d.push_back(3.0 * y7.array().pow(2.0));
  VectorXd y9 = y8.array().max(-1.0).min(1.0);
  d.push_back(((y8.array() > -1.0) && (y8.array() < 1.0)).cast<double>());
  VectorXd y10 = y9.array().tanh();
  d.push_back(1.0 - y10.array().square());
  return d;
}

VectorXd random_values(Eigen::Index n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g;
  VectorXd v(n);
  for (auto& x : v) x = g(rng);
  return v;
}

void BM_ChainForward_Infield(benchmark::State& state) {
  auto space = infield::Space(infield::unstructured(kValues));
  auto chain = ten_pointwise_chain(space);
  Field x(space, random_values(kValues, 1));
  for (auto _ : state) benchmark::DoNotOptimize(chain->apply(x));
}
void BM_ChainForward_Eigen(benchmark::State& state) {
  VectorXd x = random_values(kValues, 1);
  for (auto _ : state) benchmark::DoNotOptimize(chain_by_hand(x));
}

void BM_ChainLinearize_Infield(benchmark::State& state) {
  auto space = infield::Space(infield::unstructured(kValues));
  auto chain = ten_pointwise_chain(space);
  Field x(space, random_values(kValues, 1));
  for (auto _ : state) benchmark::DoNotOptimize(chain->linearize(x));
}
void BM_ChainLinearize_Eigen(benchmark::State& state) {
  VectorXd x = random_values(kValues, 1);
  for (auto _ : state) benchmark::DoNotOptimize(derivatives_by_hand(x));
}

void BM_ChainJvp_Infield(benchmark::State& state) {
  auto space = infield::Space(infield::unstructured(kValues));
  auto chain = ten_pointwise_chain(space);
  auto lin = chain->linearize(Field(space, random_values(kValues, 1)));
  Field v(space, random_values(kValues, 2));
  for (auto _ : state) benchmark::DoNotOptimize(lin.jacobian->times(v));
}
void BM_ChainJvp_Eigen(benchmark::State& state) {
  auto d = derivatives_by_hand(random_values(kValues, 1));
  VectorXd v = random_values(kValues, 2);
  for (auto _ : state) {
    VectorXd t = d[0].cwiseProduct(v);
    for (std::size_t k = 1; k < d.size(); ++k) {
      VectorXd next = d[k].cwiseProduct(t);  // one temporary per step
      t.swap(next);
    }
    benchmark::DoNotOptimize(t);
  }
}

void BM_ChainVjp_Infield(benchmark::State& state) {
  auto space = infield::Space(infield::unstructured(kValues));
  auto chain = ten_pointwise_chain(space);
  auto lin = chain->linearize(Field(space, random_values(kValues, 1)));
  Field u(space, random_values(kValues, 3));
  for (auto _ : state) benchmark::DoNotOptimize(lin.jacobian->adjoint_times(u));
}
void BM_ChainVjp_Eigen(benchmark::State& state) {
  auto d = derivatives_by_hand(random_values(kValues, 1));
  VectorXd u = random_values(kValues, 3);
  for (auto _ : state) {
    VectorXd t = d.back().cwiseProduct(u);
    for (std::size_t k = d.size() - 1; k-- > 0;) {
      VectorXd next = d[k].cwiseProduct(t);
      t.swap(next);
    }
    benchmark::DoNotOptimize(t);
  }
}

// A dense layer on a batch: relu(W x_b) for 64 data of 448 values, W 448 x 448.
constexpr Eigen::Index kBatch = 64, kWidth = 448;

void BM_DenseLayer_Infield(benchmark::State& state) {
  using namespace infield;
  Eigen::MatrixXd w = Eigen::MatrixXd::Random(kWidth, kWidth);
  auto batch = unstructured(kBatch);
  auto width = unstructured(kWidth);
  auto layer = relu(batch_matrix_operator(batch, width, width, w));
  Field x(layer->domain(), random_values(kBatch * kWidth, 4));
  for (auto _ : state) benchmark::DoNotOptimize(layer->apply(x));
}
void BM_DenseLayer_Eigen(benchmark::State& state) {
  Eigen::MatrixXd w = Eigen::MatrixXd::Random(kWidth, kWidth);
  infield::RowMajorMatrix x =
      Eigen::Map<const infield::RowMajorMatrix>(random_values(kBatch * kWidth, 4).data(), kBatch, kWidth);
  for (auto _ : state) {
    infield::RowMajorMatrix y(kBatch, kWidth);
    y.noalias() = x * w.transpose();
    y = y.cwiseMax(0.0);
    benchmark::DoNotOptimize(y);
  }
}

BENCHMARK(BM_ChainForward_Infield)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ChainForward_Eigen)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ChainLinearize_Infield)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ChainLinearize_Eigen)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ChainJvp_Infield)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ChainJvp_Eigen)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ChainVjp_Infield)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ChainVjp_Eigen)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DenseLayer_Infield)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DenseLayer_Eigen)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();

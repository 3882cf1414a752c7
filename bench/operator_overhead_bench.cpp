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

VectorXd sigmoid_by_hand(const VectorXd& x) {
  auto a = x.array();
  return (a >= 0.0).select((1.0 + (-a).exp()).inverse(), a.exp() / (1.0 + a.exp())).matrix();
}

// The same chain by hand with the same formulas, each pass written over the previous result: the
// fastest plain-Eigen version (the baseline allows one temporary per step).
VectorXd chain_by_hand(const VectorXd& x) {
  VectorXd y = x.array().tanh();
  y = y.array().exp();
  y = y.array().sqrt();
  y = y.array().log();
  y = sigmoid_by_hand(y);
  y = y.array().max(0.0) + (-y.array().abs()).exp().log1p();
  y = y.array().max(0.0);
  y = y.array().pow(3.0);
  y = y.array().max(-1.0).min(1.0);
  y = y.array().tanh();
  return y;
}

// The forward pass keeping the ten derivatives, by hand, the value written in place.
std::vector<VectorXd> derivatives_by_hand(const VectorXd& x) {
  std::vector<VectorXd> d;
  d.reserve(10);
  VectorXd y = x.array().tanh();
  d.emplace_back(1.0 - y.array().square());
  y = y.array().exp();
  d.emplace_back(y);
  y = y.array().sqrt();
  d.emplace_back(0.5 / y.array());
  d.emplace_back(y.array().inverse());
  y = y.array().log();
  y = sigmoid_by_hand(y);
  d.emplace_back(y.array() * (1.0 - y.array()));
  d.emplace_back(sigmoid_by_hand(y));
  y = y.array().max(0.0) + (-y.array().abs()).exp().log1p();
  d.emplace_back((y.array() > 0.0).cast<double>());
  y = y.array().max(0.0);
  d.emplace_back(3.0 * y.array().pow(2.0));
  y = y.array().pow(3.0);
  d.emplace_back(((y.array() > -1.0) && (y.array() < 1.0)).cast<double>());
  y = y.array().max(-1.0).min(1.0);
  y = y.array().tanh();
  d.emplace_back(1.0 - y.array().square());
  d.push_back(std::move(y));  // the value, as Infield's linearize returns it
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
  d.pop_back();
  VectorXd v = random_values(kValues, 2);
  for (auto _ : state) {
    VectorXd t = d[0].cwiseProduct(v);
    for (std::size_t k = 1; k < d.size(); ++k) t = d[k].cwiseProduct(t);
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
  d.pop_back();
  VectorXd u = random_values(kValues, 3);
  for (auto _ : state) {
    VectorXd t = d.back().cwiseProduct(u);
    for (std::size_t k = d.size() - 1; k-- > 0;) t = d[k].cwiseProduct(t);
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

void BM_DenseLayerJvp_Infield(benchmark::State& state) {
  using namespace infield;
  auto layer = relu(batch_matrix_operator(unstructured(kBatch), unstructured(kWidth),
                                          unstructured(kWidth), Eigen::MatrixXd::Random(kWidth, kWidth)));
  auto lin = layer->linearize(Field(layer->domain(), random_values(kBatch * kWidth, 4)));
  Field v(layer->domain(), random_values(kBatch * kWidth, 5));
  for (auto _ : state) benchmark::DoNotOptimize(lin.jacobian->times(v));
}
void BM_DenseLayerVjp_Infield(benchmark::State& state) {
  using namespace infield;
  auto layer = relu(batch_matrix_operator(unstructured(kBatch), unstructured(kWidth),
                                          unstructured(kWidth), Eigen::MatrixXd::Random(kWidth, kWidth)));
  auto lin = layer->linearize(Field(layer->domain(), random_values(kBatch * kWidth, 4)));
  Field u(layer->target(), random_values(kBatch * kWidth, 6));
  for (auto _ : state) benchmark::DoNotOptimize(lin.jacobian->adjoint_times(u));
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
BENCHMARK(BM_DenseLayerJvp_Infield)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DenseLayerVjp_Infield)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();

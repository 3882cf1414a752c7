// MGVI and geoVI over MPI ranks. ctest runs this program alone and under `mpiexec -n 2` and
// `-n 3`: every test compares the run over all ranks (Communicator::world()) with the same run in
// one process (a default Communicator) on each rank, so it checks the same on any number of ranks.
// Sums over samples follow one fixed tree whoever computes them: the results must be equal to the
// last bit, not only to rounding (data-parallel training, whose gradient sums depend on how the
// batch is dealt, matches one process to float rounding).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <unistd.h>

#include "infield/error.h"
#include "infield/inference/communicator.h"
#include "infield/inference/mgvi.h"
#include "infield/linear_operators.h"
#include "infield/models/autoencoder.h"
#include "test_problems.h"

namespace infield {
namespace {
using namespace infield::test;
using ::testing::HasSubstr;

const Communicator& world() {
  static const Communicator w = Communicator::world();
  return w;
}

double relative(const Eigen::VectorXd& a, const Eigen::VectorXd& b) {
  return (a - b).norm() / std::max(b.norm(), 1e-300);
}

TEST(Communicator, CollectivesAddInRankOrderAndDealContiguousShares) {
  const int n = world().size(), r = world().rank();
  EXPECT_EQ(world().sum(static_cast<std::int64_t>(r + 1)), std::int64_t{n} * (n + 1) / 2);
  Eigen::VectorXd v = Eigen::VectorXd::Constant(3, 0.5 * (r + 1));
  world().sum_in_place(v);
  EXPECT_EQ(v, Eigen::VectorXd::Constant(3, 0.25 * n * (n + 1)));
  EXPECT_EQ(world().any(r == n - 1), true);
  EXPECT_EQ(world().any(false), false);
  // Rank r contributes r vectors holding r: gathered in rank order.
  std::vector<Eigen::VectorXd> mine(r, Eigen::VectorXd::Constant(2, r));
  const auto all = world().all_gather(mine, 2);
  ASSERT_EQ(static_cast<int>(all.size()), n * (n - 1) / 2);
  std::size_t k = 0;
  for (int q = 0; q < n; ++q)
    for (int i = 0; i < q; ++i) EXPECT_EQ(all[k++], Eigen::VectorXd::Constant(2, q));
  std::string message = world().is_root() ? std::string("from the root\0with a zero", 25) : "";
  world().broadcast(message);
  EXPECT_EQ(message, std::string("from the root\0with a zero", 25));
  // Shares of 7 items: contiguous, covering, sizes differing by at most one.
  const auto [begin, end] = world().share(7);
  const std::int64_t covered = world().sum(static_cast<std::int64_t>(end - begin));
  EXPECT_EQ(covered, 7);
  EXPECT_GE(end - begin, 7 / n);
  EXPECT_LE(end - begin, 7 / n + 1);
  EXPECT_EQ(Communicator().share(7), (std::pair<int, int>{0, 7}));
  EXPECT_THROW(world().all_gather({Eigen::VectorXd(3)}, 2), InvalidArgument);
  // gather: the same concatenation on the root alone, to rank 0 or another.
  const auto at_root = world().gather(mine, 2);
  EXPECT_EQ(at_root, r == 0 ? all : std::vector<Eigen::VectorXd>{});
  const auto at_last = world().gather(mine, 2, n - 1);
  EXPECT_EQ(at_last, r == n - 1 ? all : std::vector<Eigen::VectorXd>{});
  EXPECT_THROW(world().gather(mine, 2, n), InvalidArgument);
  EXPECT_THROW(world().gather({Eigen::VectorXd(3)}, 2), InvalidArgument);
}

// The training exchange: shards cover the vector contiguously, reduce_scatter sums in rank order,
// all_gather assembles every owner's shard; several rounds in a row (the shared-memory path must
// order each round's writes after the previous round's reads), lengths shorter than one block per
// rank (empty shards) and not a multiple of the block.
class ShardedReductionTest : public ::testing::TestWithParam<ShardedReduction::Transport> {};

TEST_P(ShardedReductionTest, SumsShardsAndAssemblesTheVectorOnEveryRank) {
  // No ASSERT here: a rank returning early would leave the others in a collective. Mismatches
  // are counted and reported once per round.
  const int n = world().size(), r = world().rank();
  for (const Eigen::Index length : {Eigen::Index{0}, Eigen::Index{5}, Eigen::Index{37},
                                    Eigen::Index{1000}, Eigen::Index{100003}}) {
    ShardedReduction exchange(world(), length, GetParam());
    EXPECT_LE(exchange.shard_begin(), exchange.shard_end());
    EXPECT_EQ(world().sum(static_cast<std::int64_t>(exchange.shard_size())), length);
    // Shards are contiguous and in rank order.
    Eigen::VectorXd begins = Eigen::VectorXd::Zero(n), ends = Eigen::VectorXd::Zero(n);
    begins[r] = static_cast<double>(exchange.shard_begin());
    ends[r] = static_cast<double>(exchange.shard_end());
    world().sum_in_place(begins);
    world().sum_in_place(ends);
    EXPECT_EQ(begins[0], 0.0);
    EXPECT_EQ(ends[n - 1], static_cast<double>(length));
    for (int q = 1; q < n; ++q) EXPECT_EQ(begins[q], ends[q - 1]);
    for (int round = 0; round < 4; ++round) {
      // Entry i of rank q's vector: (q + 1) * (i % 97) + round / 4 (exact in float): the sum over
      // ranks is n (n + 1) / 2 * (i % 97) + n * round / 4 in any order.
      Eigen::VectorXf mine(length);
      for (Eigen::Index i = 0; i < length; ++i)
        mine[i] = static_cast<float>((r + 1) * (i % 97)) + 0.25F * static_cast<float>(round);
      Eigen::VectorXf shard(exchange.shard_size());
      exchange.reduce_scatter(mine.data(), shard.data());
      Eigen::Index wrong_sums = 0;
      for (Eigen::Index i = 0; i < shard.size(); ++i) {
        const Eigen::Index at = exchange.shard_begin() + i;
        wrong_sums += shard[i] != static_cast<float>(n * (n + 1) / 2 * (at % 97)) +
                                      0.25F * static_cast<float>(n * round);
      }
      EXPECT_EQ(wrong_sums, 0) << "length " << length << ", round " << round;
      // Each owner writes rank + 10 round into its shard; the rest (-1) is overwritten.
      Eigen::VectorXf full = Eigen::VectorXf::Constant(length, -1.0F);
      full.segment(exchange.shard_begin(), exchange.shard_size()).setConstant(
          static_cast<float>(r + 10 * round));
      exchange.all_gather(full.data());
      Eigen::Index wrong_entries = 0;
      for (Eigen::Index i = 0; i < length; ++i) {
        int owner = 0;
        while (owner < n - 1 && i >= static_cast<Eigen::Index>(begins[owner + 1])) ++owner;
        wrong_entries += full[i] != static_cast<float>(owner + 10 * round);
      }
      EXPECT_EQ(wrong_entries, 0) << "length " << length << ", round " << round;
    }
    if (length == 37) exchange.release();  // early and collective; the destructor then does nothing
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, ShardedReductionTest,
                         ::testing::Values(ShardedReduction::Transport::kAutomatic,
                                           ShardedReduction::Transport::kMessages));

TEST(ShardedReduction, SharedMemoryOnOneMachine) {
  ShardedReduction exchange(world(), 10);
  EXPECT_EQ(exchange.shared_memory(), world().size() > 1);
  EXPECT_FALSE(ShardedReduction(world(), 10, ShardedReduction::Transport::kMessages)
                   .shared_memory());
}

TEST(ShardedReduction, ContributionWrittenInPlaceOnCacheLinesThenGathered) {
  // Training's use: the backward pass writes into contribution_buffer(), reduce_scatter reads it
  // in place, then all_gather passes the parameters through the same buffers. No ASSERT before
  // the collectives end (see above).
  const int n = world().size(), r = world().rank();
  const Eigen::Index length = 100003;
  ShardedReduction exchange(world(), length);
  float* const contribution = exchange.contribution_buffer();
  EXPECT_EQ(contribution != nullptr, exchange.shared_memory());
  // On a cache line, as Eigen allocates: its vectorised loops then round alike on every rank and
  // in one process (Open MPI's own placement is 8 bytes past one).
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(contribution) % 64, 0U);
  if (contribution == nullptr) return;  // one process: nothing shared (the same on every rank)
  Eigen::VectorXd begins = Eigen::VectorXd::Zero(n);
  begins[r] = static_cast<double>(exchange.shard_begin());
  world().sum_in_place(begins);
  for (int round = 0; round < 3; ++round) {
    Eigen::Map<Eigen::VectorXf>(contribution, length)
        .setConstant(static_cast<float>(r + 1 + round));
    Eigen::VectorXf full = Eigen::VectorXf::Constant(length, -1.0F);
    Eigen::Index wrong_sums = 0;
    exchange.reduce_scatter(contribution, [&](Eigen::Index offset, const float* sum,
                                              Eigen::Index size) {
      for (Eigen::Index i = 0; i < size; ++i)
        wrong_sums += sum[i] != static_cast<float>(n * (n + 1) / 2 + n * round);
      full.segment(offset, size).setConstant(static_cast<float>(r + 10 * round));
    });
    exchange.all_gather(full.data());
    Eigen::Index wrong_entries = 0;
    int owner = 0;
    for (Eigen::Index i = 0; i < length; ++i) {
      while (owner < n - 1 && i >= static_cast<Eigen::Index>(begins[owner + 1])) ++owner;
      wrong_entries += full[i] != static_cast<float>(owner + 10 * round);
    }
    EXPECT_EQ(wrong_sums, 0) << "round " << round;
    EXPECT_EQ(wrong_entries, 0) << "round " << round;
  }
}

OptimizeKLOptions linear_options(const Communicator& communicator, int pairs) {
  OptimizeKLOptions options;
  options.global_iterations = 2;
  options.settings.sample_pairs = pairs;
  options.settings.sampling_cg = {1e-11, 0.0, 1000};
  options.settings.minimizer = newton_cg(exact_newton());
  options.seed = 9;
  options.communicator = communicator;
  return options;
}

TEST(DistributedMgvi, LinearGaussianGivesTheExactPosteriorAndOneProcesssResultBitForBit) {
  LinearGaussianProblem p(4);
  const auto all = optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n)),
                               linear_options(world(), 5));
  const auto one = optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n)),
                               linear_options(Communicator(), 5));
  EXPECT_LT(relative(all.samples.mean().values(), p.analytic_mean), 1e-8);
  EXPECT_EQ(all.samples.mean().values(), one.samples.mean().values());
  ASSERT_EQ(all.samples.residuals().size(), one.samples.residuals().size());
  for (std::size_t k = 0; k < one.samples.residuals().size(); ++k)
    EXPECT_EQ(all.samples.residuals()[k], one.samples.residuals()[k]) << k;
  for (int it = 0; it < 2; ++it) {
    EXPECT_EQ(all.iterations[it].kl_value, one.iterations[it].kl_value);
    EXPECT_EQ(all.iterations[it].kl_with_entropy, one.iterations[it].kl_with_entropy);
    EXPECT_EQ(all.iterations[it].kl_standard_error, one.iterations[it].kl_standard_error);
    EXPECT_EQ(all.iterations[it].sampling_cg_iterations, one.iterations[it].sampling_cg_iterations);
    EXPECT_EQ(all.iterations[it].samples, 10);
  }
  // Every rank holds the same result, bit for bit.
  Eigen::VectorXd mean = all.samples.mean().values(), rank_mean = mean;
  world().sum_in_place(rank_mean);
  EXPECT_EQ(rank_mean, world().size() * mean);
}

TEST(DistributedMgvi, MoreRanksThanPairsJoinTheSumsAndSayingSo) {
  LinearGaussianProblem p(6);
  std::ostringstream progress;
  OptimizeKLOptions options = linear_options(world(), 1);
  options.progress = &progress;
  const auto all = optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n)), options);
  const auto one = optimize_kl(p.hamiltonian, Field::zeros(unstructured(p.n)),
                               linear_options(Communicator(), 1));
  EXPECT_EQ(all.samples.mean().values(), one.samples.mean().values());
  EXPECT_EQ(all.samples.size(), 2);
  if (world().size() > 1 && world().is_root()) {
    EXPECT_THAT(progress.str(), HasSubstr("have no samples in iteration 1"));
  }
  if (!world().is_root()) {
    EXPECT_EQ(progress.str(), "");  // progress comes from the root only
  }
}

TEST(DistributedMgvi, GeoVIOverRanksIsOneProcesss) {
  LogNormalPoissonProblem p(3);
  auto options = [](const Communicator& c) {
    OptimizeKLOptions o;
    o.global_iterations = 2;
    o.settings.sample_pairs = 3;
    o.settings.nonlinear_sampling_minimizer = geovi_sample_minimizer(40);
    o.communicator = c;
    return o;
  };
  const auto all = optimize_kl(p.hamiltonian, Field::zeros(p.grid), options(world()));
  const auto one = optimize_kl(p.hamiltonian, Field::zeros(p.grid), options(Communicator()));
  EXPECT_FALSE(all.samples.mirrored());
  EXPECT_EQ(all.samples.mean().values(), one.samples.mean().values());
  EXPECT_EQ(all.samples.residuals(), one.samples.residuals());
  EXPECT_EQ(all.iterations[1].nonlinear_sampling_iterations,
            one.iterations[1].nonlinear_sampling_iterations);
  EXPECT_EQ(all.iterations[1].kl_with_entropy, one.iterations[1].kl_with_entropy);
}

TEST(DistributedMgvi, AFailureWhileDrawingReachesEveryRank) {
  // geoVI needs the likelihood's transformation. With one pair only rank 0 draws and fails; the
  // other ranks must fail too instead of waiting for it in the sums.
  auto h = standard_hamiltonian(std::make_shared<OpaqueLikelihood>(),
                                identity_operator(unstructured(1)));
  OptimizeKLOptions options;
  options.global_iterations = 1;
  options.settings.sample_pairs = 1;
  options.settings.nonlinear_sampling_minimizer = geovi_sample_minimizer();
  options.communicator = world();
  if (world().is_root()) {
    EXPECT_THROW(optimize_kl(h, Field::zeros(unstructured(1)), options), InvalidArgument);
  } else {
    EXPECT_THROW(optimize_kl(h, Field::zeros(unstructured(1)), options), std::runtime_error);
  }
}

// Data-parallel training of FisherNet and the VAE: over all ranks, through shared memory (ranks
// on one machine) and through MPI's collectives (the path of ranks on several machines, taken
// here on one), each epoch's loss and test MSE and the final parameters are one process's up to
// float rounding, and every rank ends with the same parameters to the last bit.
TEST(DistributedTraining, BothTransportsFollowOneProcesssTrajectory) {
  using neural::Matrix;
  std::mt19937_64 rng(3);  // the same data on every rank
  std::uniform_real_distribution<float> pixel(0.0F, 1.0F);
  // 97 rows: the last batch holds 1 row, so on 2 or 3 ranks some ranks have none of it.
  Matrix<float> train(97, 36), test(30, 36);
  for (float& v : train.reshaped()) v = pixel(rng);
  for (float& v : test.reshaped()) v = pixel(rng);
  for (neural::AutoencoderKind kind :
       {neural::AutoencoderKind::kFisherNet, neural::AutoencoderKind::kVae}) {
    const neural::Autoencoder model(kind, 36, 3, {20});
    neural::TrainingOptions options;
    options.epochs = 2;
    options.batch = 24;  // 12 or 8 rows per rank on 2 or 3 ranks
    options.learning_rate = 2e-3;
    options.seed = 7;
    const auto one = neural::train_autoencoder(model, options, train, test,
                                               neural::start_training(model, options, 97), {});
    for (ShardedReduction::Transport transport :
         {ShardedReduction::Transport::kAutomatic, ShardedReduction::Transport::kMessages}) {
      SCOPED_TRACE(::testing::Message()
                   << neural::autoencoder_kind_name(kind) << ", transport "
                   << (transport == ShardedReduction::Transport::kMessages ? "messages"
                                                                           : "automatic"));
      neural::TrainingOptions over_ranks = options;
      over_ranks.communicator = world();
      over_ranks.exchange = transport;
      const auto ranks = neural::train_autoencoder(
          model, over_ranks, train, test, neural::start_training(model, over_ranks, 97), {});
      EXPECT_EQ(ranks.history.size(), one.history.size());
      for (std::size_t e = 0; e < std::min(ranks.history.size(), one.history.size()); ++e) {
        EXPECT_NEAR(ranks.history[e].train_loss, one.history[e].train_loss,
                    1e-4 * std::abs(one.history[e].train_loss));
        EXPECT_NEAR(ranks.history[e].test_mse, one.history[e].test_mse,
                    1e-4 * one.history[e].test_mse);
      }
      const Eigen::VectorXd mine = ranks.params.cast<double>();
      EXPECT_LE(relative(mine, one.params.cast<double>()), 1e-4);
      // Adam's moments, each rank's shard gathered at the end of the epoch for the checkpoint.
      EXPECT_LE(relative(ranks.network_m.cast<double>(), one.network_m.cast<double>()), 1e-4);
      EXPECT_LE(relative(ranks.network_v.cast<double>(), one.network_v.cast<double>()), 1e-4);
      for (const Eigen::VectorXd& other : world().all_gather({mine}, mine.size()))
        EXPECT_EQ(other, mine);
    }
  }
}

TEST(DistributedMgvi, CheckpointWrittenByTheRootResumesExactly) {
  LogNormalPoissonProblem p(5);
  // One directory for all ranks (the root's process id, sent to every rank).
  std::string dir_name = world().is_root() ? std::to_string(::getpid()) : "";
  world().broadcast(dir_name);
  const auto dir = std::filesystem::temp_directory_path() / ("infield_distributed_" + dir_name);
  if (world().is_root()) std::filesystem::create_directories(dir);
  world().barrier();
  OptimizeKLOptions options;
  options.global_iterations = 3;
  options.settings.sample_pairs = 3;
  options.checkpoint = dir / "kl.ckpt";
  options.communicator = world();
  const auto full = optimize_kl(p.hamiltonian, Field::zeros(p.grid), options);
  world().barrier();
  if (world().is_root()) std::filesystem::remove(options.checkpoint);
  world().barrier();
  OptimizeKLOptions partial = options;
  partial.global_iterations = 2;
  optimize_kl(p.hamiltonian, Field::zeros(p.grid), partial);
  OptimizeKLOptions resumed = options;
  resumed.resume = true;
  const auto rest = optimize_kl(p.hamiltonian, Field::zeros(p.grid), resumed);
  EXPECT_EQ(rest.resumed_iterations, 2);
  EXPECT_EQ(rest.samples.mean().values(), full.samples.mean().values());
  // A corrupt checkpoint fails on every rank (no rank is left waiting).
  world().barrier();
  if (world().is_root()) {
    std::fstream f(options.checkpoint, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x7f');
  }
  world().barrier();
  EXPECT_THROW(optimize_kl(p.hamiltonian, Field::zeros(p.grid), resumed), FileError);
  world().barrier();
  if (world().is_root()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace infield

int main(int argc, char** argv) {
  infield::MpiSession mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (!infield::Communicator::world().is_root()) {  // one report, from the root
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  return RUN_ALL_TESTS();
}

// Harmonic partners, the Hartley transform, power spaces and the power distributor.
#include "infield/harmonic.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>
#include <thread>

#include "infield/error.h"
#include "infield/linear_operators.h"
#include "infield/testing/matchers.h"

namespace infield {
namespace {

using testing::IsConsistentLinearOperatorWith;

constexpr unsigned kAll = LinearOperator::kTimes | LinearOperator::kAdjointTimes |
                          LinearOperator::kInverseTimes | LinearOperator::kAdjointInverseTimes;

Eigen::VectorXd random_vector(Eigen::Index n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  Eigen::VectorXd v(n);
  for (Eigen::Index i = 0; i < n; ++i) v[i] = normal(rng);
  return v;
}

struct Case {
  std::string name;
  DomainTuple domain;
  std::size_t index;
};

std::vector<Case> cases() {
  return {
      {"1d_even", DomainTuple{regular_grid({16})}, 0},
      {"1d_odd", DomainTuple{regular_grid({15}, {0.3})}, 0},
      {"2d", DomainTuple{regular_grid({8, 6}, {0.5, 2.0})}, 0},
      {"2d_odd", DomainTuple{regular_grid({5, 7})}, 0},
      {"3d", DomainTuple{regular_grid({4, 4, 6})}, 0},
      {"mixed", DomainTuple{unstructured(3), regular_grid({8, 8})}, 1},
      {"mixed_middle", DomainTuple{unstructured(2), regular_grid({6, 5}), unstructured(3)}, 1},
      {"harmonic_side", DomainTuple{harmonic_grid({6, 4}, {0.25, 1.5})}, 0},
  };
}

class Hartley : public ::testing::TestWithParam<Case> {};

TEST_P(Hartley, IsConsistentLinearOperator) {
  const Case& c = GetParam();
  const auto op = hartley_transform(c.domain, c.index);
  EXPECT_EQ(op->capabilities(), kAll);
  LinearCheckOptions options;
  options.tolerance = 1e-9;
  EXPECT_THAT(*op, IsConsistentLinearOperatorWith(options));
  EXPECT_THAT(*adjoint(op), IsConsistentLinearOperatorWith(options));
}

TEST_P(Hartley, TargetHasPartnerAtIndex) {
  const Case& c = GetParam();
  const auto op = hartley_transform(c.domain, c.index);
  const DomainTuple& target = op->target().tuple();
  ASSERT_EQ(target.rank(), c.domain.rank());
  for (std::size_t i = 0; i < target.rank(); ++i) {
    if (i == c.index)
      EXPECT_TRUE(target[i]->equals(*harmonic_partner(c.domain[i])));
    else
      EXPECT_TRUE(target[i]->equals(*c.domain[i]));
  }
  // Transforming back lands on the original tuple exactly.
  EXPECT_EQ(hartley_transform(target, c.index)->target().tuple(), c.domain);
}

TEST_P(Hartley, InverseIsTransformBack) {
  const Case& c = GetParam();
  const auto forward = hartley_transform(c.domain, c.index);
  const auto backward = hartley_transform(forward->target().tuple(), c.index);
  const Field x(c.domain, random_vector(c.domain.size(), 7));
  const Field y = forward->times(x);
  const Field back = backward->times(y);
  EXPECT_LE((back.values() - x.values()).norm(), 1e-12 * x.values().norm());
  EXPECT_LE((forward->inverse_times(y).values() - back.values()).norm(),
            1e-12 * x.values().norm());
  // The adjoint of the forward is vol_x / vol_k times the backward.
  const DomainTuple& target = forward->target().tuple();
  const double ratio = c.domain[c.index]->cell_volume() / target[c.index]->cell_volume();
  const Field z(target, random_vector(target.size(), 8));
  EXPECT_LE((forward->adjoint_times(z).values() - ratio * backward->times(z).values()).norm(),
            1e-12 * ratio * backward->times(z).values().norm());
}

TEST_P(Hartley, Parseval) {
  const Case& c = GetParam();
  const auto op = hartley_transform(c.domain, c.index);
  const Field x(c.domain, random_vector(c.domain.size(), 9));
  const Field y = op->times(x);
  const double vol_x = c.domain[c.index]->cell_volume();
  const double vol_k = op->target().tuple()[c.index]->cell_volume();
  const double lhs = x.values().squaredNorm() * vol_x;
  const double rhs = y.values().squaredNorm() * vol_k;
  EXPECT_NEAR(lhs, rhs, 1e-12 * lhs);
}

INSTANTIATE_TEST_SUITE_P(Domains, Hartley, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

/// O(n^2) Hartley sum over a single grid: vol * sum_j x_j cas(2 pi sum_i k_i j_i / n_i).
Eigen::VectorXd direct_hartley(const std::vector<Eigen::Index>& shape, double volume,
                               const Eigen::VectorXd& x) {
  const Eigen::Index n = x.size();
  auto unravel = [&](Eigen::Index p) {
    std::vector<Eigen::Index> m(shape.size());
    for (std::size_t a = shape.size(); a-- > 0;) {
      m[a] = p % shape[a];
      p /= shape[a];
    }
    return m;
  };
  Eigen::VectorXd out = Eigen::VectorXd::Zero(n);
  for (Eigen::Index k = 0; k < n; ++k) {
    const auto mk = unravel(k);
    for (Eigen::Index j = 0; j < n; ++j) {
      const auto mj = unravel(j);
      double phase = 0.0;
      for (std::size_t a = 0; a < shape.size(); ++a)
        phase += static_cast<double>(mk[a] * mj[a]) / static_cast<double>(shape[a]);
      phase *= 2.0 * std::numbers::pi;
      out[k] += x[j] * (std::cos(phase) - std::sin(phase));
    }
  }
  return volume * out;
}

TEST(HartleyDirect, MatchesDirectSum) {
  for (const auto& grid : {regular_grid({16}), regular_grid({15}, {0.3}),
                           regular_grid({8, 6}, {0.5, 2.0}), regular_grid({5, 7}),
                           regular_grid({3, 4, 5})}) {
    SCOPED_TRACE(grid->to_string());
    const auto op = hartley_transform(DomainTuple{grid}, 0);
    const Eigen::VectorXd x = random_vector(grid->size(), 11);
    const Eigen::VectorXd expected = direct_hartley(grid->shape(), grid->cell_volume(), x);
    const Field y = op->times(Field(DomainTuple{grid}, x));
    EXPECT_LE((y.values() - expected).norm(), 1e-12 * expected.norm());
  }
}

TEST(HartleyDirect, BatchDimensionsAreIndependent) {
  const auto grid = regular_grid({8, 6}, {0.5, 2.0});
  const DomainTuple tuple{unstructured(3), grid, unstructured(2)};
  const auto op = hartley_transform(tuple, 1);
  const Eigen::VectorXd x = random_vector(tuple.size(), 12);
  const Eigen::VectorXd y = op->times(Field(tuple, x)).values();
  const Eigen::Index n = grid->size();
  for (Eigen::Index o = 0; o < 3; ++o)
    for (Eigen::Index i = 0; i < 2; ++i) {
      Eigen::VectorXd slice(n), got(n);
      for (Eigen::Index p = 0; p < n; ++p) {
        slice[p] = x[(o * n + p) * 2 + i];
        got[p] = y[(o * n + p) * 2 + i];
      }
      const Eigen::VectorXd expected = direct_hartley(grid->shape(), grid->cell_volume(), slice);
      EXPECT_LE((got - expected).norm(), 1e-12 * expected.norm());
    }
}

TEST(HartleyDirect, ConcurrentPlanningAndApplication) {
  // Planning is serialised by a mutex; execution with new arrays is thread-safe.
  const auto grid = regular_grid({12, 10});
  const DomainTuple tuple{grid};
  const Eigen::VectorXd x = random_vector(grid->size(), 13);
  const Eigen::VectorXd expected = direct_hartley(grid->shape(), grid->cell_volume(), x);
  const auto shared_op = hartley_transform(tuple, 0);
  std::vector<double> errors(8, 1.0);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < errors.size(); ++t)
    threads.emplace_back([&, t] {
      double worst = 0.0;
      for (int r = 0; r < 20; ++r) {
        const auto own = hartley_transform(tuple, 0);
        const auto& op = r % 2 ? own : shared_op;
        worst = std::max(worst, (op->times(Field(tuple, x)).values() - expected).norm());
      }
      errors[t] = worst;
    });
  for (auto& thread : threads) thread.join();
  for (double e : errors) EXPECT_LE(e, 1e-12 * expected.norm());
}

TEST(HarmonicPartner, Geometry) {
  const auto grid = regular_grid({8, 5}, {0.5, 0.3});
  const auto k = harmonic_partner(grid);
  const auto* h = dynamic_cast<const HarmonicGrid*>(k.get());
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->shape(), (std::vector<Eigen::Index>{8, 5}));
  EXPECT_DOUBLE_EQ(h->distances()[0], 1.0 / (8 * 0.5));
  EXPECT_DOUBLE_EQ(h->distances()[1], 1.0 / (5 * 0.3));
  EXPECT_DOUBLE_EQ(h->cell_volume() * grid->cell_volume() * static_cast<double>(grid->size()),
                   1.0);
  EXPECT_EQ(harmonic_grid({2}, {0.5})->to_string(), "HarmonicGrid(shape=[2], distances=[0.5])");
  EXPECT_FALSE(k->equals(*grid));
  EXPECT_FALSE(grid->equals(*k));
  EXPECT_TRUE(k->equals(*harmonic_grid({8, 5}, {1.0 / (8 * 0.5), 1.0 / (5 * 0.3)})));
}

TEST(HarmonicPartner, RoundTrip) {
  for (const auto& grid : {regular_grid({7}), regular_grid({8, 5}, {0.5, 0.3}),
                           regular_grid({3, 9, 4}, {0.1, 0.7, 1.3})}) {
    EXPECT_TRUE(harmonic_partner(harmonic_partner(grid))->equals(*grid)) << grid->to_string();
  }
  const auto k = harmonic_grid({6, 4}, {0.25, 1.5});
  EXPECT_TRUE(harmonic_partner(harmonic_partner(k))->equals(*k));
}

TEST(HarmonicPartner, KLengths) {
  const auto k = harmonic_grid({4, 3}, {0.5, 2.0});
  const Eigen::VectorXd lengths = k_lengths(k);
  ASSERT_EQ(lengths.size(), 12);
  // Axis 0 folds to 0, 1, -2, -1; axis 1 to 0, 1, -1.
  const double k0[] = {0.0, 0.5, -1.0, -0.5};
  const double k1[] = {0.0, 2.0, -2.0};
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 3; ++b)
      EXPECT_DOUBLE_EQ(lengths[a * 3 + b], std::hypot(k0[a], k1[b]));
}

TEST(PowerSpace, BinsOfDistinctK) {
  const auto k = harmonic_grid({8}, {1.0});
  const auto p = power_space(k);
  const auto* power = dynamic_cast<const PowerSpace*>(p.get());
  ASSERT_NE(power, nullptr);
  ASSERT_EQ(power->size(), 5);  // |k| = 0, 1, 2, 3, 4
  for (Eigen::Index i = 0; i < 5; ++i) EXPECT_DOUBLE_EQ(power->k()[i], static_cast<double>(i));
  EXPECT_EQ(power->bin_counts(), (Eigen::VectorXd(5) << 1, 2, 2, 2, 1).finished());
  EXPECT_TRUE(p->equals(*power_space(harmonic_grid({8}, {1.0}))));
  EXPECT_FALSE(p->equals(*power_space(harmonic_grid({8}, {2.0}))));

  // In 2D, |k| = 5 is reached by (3, 4), (4, 3) and (5, 0) with rounding; they share one bin.
  const auto p2 = power_space(harmonic_grid({10, 10}, {0.1, 0.1}));
  const auto* power2 = dynamic_cast<const PowerSpace*>(p2.get());
  const Eigen::VectorXd lengths = k_lengths(power2->harmonic_grid());
  for (Eigen::Index i = 0; i < lengths.size(); ++i) {
    const double centre = power2->k()[power2->pixel_bins()[static_cast<std::size_t>(i)]];
    EXPECT_NEAR(lengths[i], centre, 1e-10 * centre);
  }
  for (Eigen::Index b = 1; b < power2->size(); ++b)
    EXPECT_GT(power2->k()[b], power2->k()[b - 1] * (1.0 + 1e-10));
}

TEST(PowerDistributor, ConsistentAndProjectionCountsPixels) {
  const auto k = harmonic_grid({8, 6}, {0.25, 0.5});
  for (const auto& [tuple, index] :
       std::vector<std::pair<DomainTuple, std::size_t>>{{DomainTuple{k}, 0},
                                                        {DomainTuple{unstructured(3), k}, 1},
                                                        {DomainTuple{k, unstructured(2)}, 0}}) {
    SCOPED_TRACE(tuple.to_string());
    const auto dist = power_distributor(tuple, index);
    EXPECT_EQ(dist->target().tuple(), tuple);
    EXPECT_THAT(*dist, testing::IsConsistentLinearOperator());
    const auto proj = power_projection(tuple, index);
    EXPECT_THAT(*proj, testing::IsConsistentLinearOperator());

    const auto* power = dynamic_cast<const PowerSpace*>(dist->domain().tuple()[index].get());
    ASSERT_NE(power, nullptr);
    const Field counts = proj->times(Field(tuple, Eigen::VectorXd::Ones(tuple.size())));
    const Eigen::Index batch = tuple.size() / k->size();
    Eigen::VectorXd expected(batch * power->size());
    // Batch and bins are laid out (outer, bins, inner); each entry is the bin's pixel count.
    const Eigen::Index inner = index == 0 ? batch : 1;
    const Eigen::Index outer = index == 0 ? 1 : batch;
    for (Eigen::Index o = 0; o < outer; ++o)
      for (Eigen::Index b = 0; b < power->size(); ++b)
        for (Eigen::Index i = 0; i < inner; ++i)
          expected[(o * power->size() + b) * inner + i] = power->bin_counts()[b];
    EXPECT_EQ(counts.values(), expected);
    EXPECT_DOUBLE_EQ(power->bin_counts().sum(), static_cast<double>(k->size()));
  }
  // Each pixel gets its bin's value.
  const auto dist = power_distributor(DomainTuple{k}, 0);
  const auto* power = dynamic_cast<const PowerSpace*>(dist->domain().tuple()[0].get());
  const Field spread = dist->times(Field(dist->domain(), power->k()));
  EXPECT_LE((spread.values() - k_lengths(k)).norm(), 1e-10 * k_lengths(k).norm());
}

TEST(HartleySubset, TransformsSeveralDomainsInAnyOrder) {
  const DomainTuple domain{regular_grid({6}, {0.5}), unstructured(3), regular_grid({4, 5})};
  const auto both = hartley_transform(domain, std::vector<std::size_t>{0, 2});
  const auto reversed = hartley_transform(domain, std::vector<std::size_t>{2, 0});
  EXPECT_THAT(*both, IsConsistentLinearOperatorWith(LinearCheckOptions{1e-9, 3, 42}));
  const DomainTuple& target = both->target().tuple();
  EXPECT_TRUE(target[0]->equals(*harmonic_partner(domain[0])));
  EXPECT_TRUE(target[1]->equals(*domain[1]));
  EXPECT_TRUE(target[2]->equals(*harmonic_partner(domain[2])));
  const Field x(domain, random_vector(domain.size(), 31));
  const Field y = both->times(x);
  EXPECT_LE((reversed->times(x).values() - y.values()).norm(), 1e-12 * y.values().norm());
  EXPECT_LE((both->inverse_times(y).values() - x.values()).norm(), 1e-12 * x.values().norm());
  EXPECT_THROW(hartley_transform(domain, std::vector<std::size_t>{}), InvalidArgument);
  EXPECT_THROW(hartley_transform(domain, std::vector<std::size_t>{0, 0}), InvalidArgument);
  EXPECT_THROW(hartley_transform(domain, std::vector<std::size_t>{1}), InvalidArgument);
}

TEST(HartleySubset, TwoConsecutiveGridsEqualTheComposedTransforms) {
  // Two grids from one r2c transform (cas(a) cas(b) = cos(a - b) - sin(a + b)) must equal the
  // per-grid transforms composed: 1D x 1D, 2D x 1D and 1D x 2D (odd and even extents), with
  // batches before and after, from either side.
  for (const DomainTuple& domain :
       {DomainTuple{regular_grid({6}, {0.5}), regular_grid({5}, {0.3})},
        DomainTuple{unstructured(3), regular_grid({6, 3}, {0.5, 1.0}), regular_grid({7}),
                    unstructured(2)},
        DomainTuple{regular_grid({5}), regular_grid({4, 6}, {0.25, 0.5}), unstructured(2)}}) {
    const std::size_t first = domain[0]->shape().size() == 1 &&
                                      dynamic_cast<const RegularGrid*>(domain[0].get()) != nullptr
                                  ? 0
                                  : 1;
    const auto fast = hartley_transform(domain, std::vector<std::size_t>{first, first + 1});
    EXPECT_EQ(fast->name(), "PairHartleyOperator");
    const LinearOperatorPtr one = hartley_transform(domain, first);
    const LinearOperatorPtr composed =
        compose(hartley_transform(one->target().tuple(), first + 1), one);
    EXPECT_THAT(*fast, IsConsistentLinearOperatorWith(LinearCheckOptions{1e-9, 3, 42}));
    ASSERT_EQ(fast->target(), composed->target());
    const Field x(domain, random_vector(domain.size(), 35));
    const Field y = composed->times(x);
    EXPECT_LE((fast->times(x).values() - y.values()).norm(), 1e-12 * y.values().norm());
    const Field u(fast->target(), random_vector(domain.size(), 36));
    EXPECT_LE((fast->adjoint_times(u).values() - composed->adjoint_times(u).values()).norm(),
              1e-12 * u.values().norm());
    EXPECT_LE((fast->inverse_times(y).values() - x.values()).norm(), 1e-12 * x.values().norm());
  }
}

TEST(JointHartley, IsTheTransformOfTheConcatenatedGrid) {
  // Two 1D grids transformed jointly equal the 2D grid's transform of the same values.
  const DomainTuple pair{unstructured(2), regular_grid({6}, {0.5}), regular_grid({4}, {0.25})};
  const DomainTuple grid2d{unstructured(2), regular_grid({6, 4}, {0.5, 0.25})};
  const auto joint = joint_hartley_transform(pair, 1, 2);
  EXPECT_THAT(*joint, IsConsistentLinearOperatorWith(LinearCheckOptions{1e-9, 3, 42}));
  const DomainTuple& target = joint->target().tuple();
  EXPECT_TRUE(target[1]->equals(*harmonic_partner(pair[1])));
  EXPECT_TRUE(target[2]->equals(*harmonic_partner(pair[2])));
  const Eigen::VectorXd x = random_vector(pair.size(), 33);
  const Eigen::VectorXd y = joint->times(Field(pair, x)).values();
  const Eigen::VectorXd y2d = hartley_transform(grid2d, 1)->times(Field(grid2d, x)).values();
  EXPECT_LE((y - y2d).norm(), 1e-12 * y.norm());
  EXPECT_LE((joint->inverse_times(Field(target, y)).values() - x).norm(), 1e-12 * x.norm());
  const double vol_x = 0.5 * 0.25, vol_k = target[1]->cell_volume() * target[2]->cell_volume();
  EXPECT_NEAR(x.squaredNorm() * vol_x, y.squaredNorm() * vol_k, 1e-12 * x.squaredNorm() * vol_x);
  EXPECT_THROW(joint_hartley_transform(pair, 0, 2), InvalidArgument);
  EXPECT_THROW(joint_hartley_transform(pair, 2, 2), InvalidArgument);
  EXPECT_THROW(joint_hartley_transform(pair, SIZE_MAX, 2), InvalidArgument);
}

TEST(ZeroPadding, EmbedsInLowCornerAndSlicingIsItsAdjoint) {
  const DomainTuple domain{unstructured(2), regular_grid({3, 4}, {0.5, 0.25})};
  const auto pad = zero_padding(domain, 1, {5, 6});
  EXPECT_THAT(*pad, IsConsistentLinearOperatorWith(LinearCheckOptions{}));
  const DomainTuple& padded = pad->target().tuple();
  EXPECT_TRUE(padded[1]->equals(*regular_grid({5, 6}, {0.5, 0.25})));
  const Field x(domain, random_vector(domain.size(), 32));
  const Eigen::VectorXd y = pad->times(x).values();
  for (Eigen::Index b = 0; b < 2; ++b)
    for (Eigen::Index i = 0; i < 5; ++i)
      for (Eigen::Index j = 0; j < 6; ++j) {
        const double expected = i < 3 && j < 4 ? x.values()[b * 12 + i * 4 + j] : 0.0;
        EXPECT_EQ(y[b * 30 + i * 6 + j], expected);
      }
  const auto slice = slicing(padded, 1, {3, 4});
  EXPECT_EQ(slice->target().tuple(), domain);
  EXPECT_THAT(*slice, IsConsistentLinearOperatorWith(LinearCheckOptions{}));
  EXPECT_EQ(slice->times(pad->times(x)).values(), x.values());
  EXPECT_THROW(zero_padding(domain, 1, {2, 6}), InvalidArgument);
  EXPECT_THROW(zero_padding(domain, 1, {5}), InvalidArgument);
  EXPECT_THROW(zero_padding(domain, 0, {5}), InvalidArgument);
  EXPECT_THROW(slicing(padded, 1, {6, 6}), InvalidArgument);
}

TEST(Harmonic, BadInputsThrow) {
  const DomainTuple tuple{unstructured(3), regular_grid({4})};
  EXPECT_THROW(hartley_transform(tuple, 2), InvalidArgument);
  EXPECT_THROW(hartley_transform(tuple, 0), InvalidArgument);
  EXPECT_THROW(harmonic_partner(unstructured(3)), InvalidArgument);
  EXPECT_THROW(harmonic_partner(nullptr), InvalidArgument);
  EXPECT_THROW(power_space(regular_grid({4})), InvalidArgument);
  EXPECT_THROW(k_lengths(regular_grid({4})), InvalidArgument);
  EXPECT_THROW(power_distributor(tuple, 1), InvalidArgument);
  EXPECT_THROW(power_distributor(DomainTuple{harmonic_grid({4}, {1.0})}, 1), InvalidArgument);
  EXPECT_THROW(harmonic_grid({4}, {-1.0}), InvalidArgument);
  EXPECT_THROW(harmonic_grid({4, 0}, {1.0, 1.0}), InvalidArgument);
  EXPECT_THROW(harmonic_grid({4}, {1.0, 2.0}), InvalidArgument);
  // Applying to a field on the wrong space is a DomainMismatch.
  const auto op = hartley_transform(DomainTuple{regular_grid({4})}, 0);
  EXPECT_THROW(op->times(Field(DomainTuple{harmonic_partner(regular_grid({4}))},
                               Eigen::VectorXd::Ones(4))),
               DomainMismatch);
}

}  // namespace
}  // namespace infield

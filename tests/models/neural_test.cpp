// Neural layers: forward against a hand computation, JVP and VJP (input and parameters) against
// finite differences through check_jacobian, several tangents at once, products split over
// threads, float vs double, initialisation statistics, the gradient blocks a backward pass
// reports, Adam (also in blocks).
#include "infield/models/neural.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <tbb/task_arena.h>

#include <cmath>
#include <limits>

#include "../../models/layer_kernels.h"  // the products' kernels (private to the models library)
#include "infield/error.h"
#include "infield/testing/matchers.h"

namespace infield {
namespace {

using neural::Activation;
using neural::Matrix;
using neural::Mlp;
using neural::Vector;
using testing::HasConsistentJacobianAtWith;

Matrix<double> random_matrix(Eigen::Index r, Eigen::Index c, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  Matrix<double> m(r, c);
  for (auto& v : m.reshaped()) v = standard_normal_vector(1, rng)[0];
  return m;
}

class MlpActivations : public ::testing::TestWithParam<Activation> {};

TEST_P(MlpActivations, JacobiansInInputAndParametersMatchFiniteDifferences) {
  const Mlp<double> mlp({4, 6, 3}, {GetParam(), Activation::kTanh});
  std::mt19937_64 rng(1);
  Vector<double> params = mlp.initialize(neural::Initialization::kGlorotUniform, rng);
  params.tail(3).setConstant(0.1);  // non-zero biases too
  const Eigen::Index batch = 5;
  const Matrix<double> x = random_matrix(batch, 4, 2);
  const auto in = unstructured(batch * 4), out = unstructured(batch * 3),
             par = unstructured(mlp.parameter_count());
  auto as_matrix = [](ConstVectorRef v, Eigen::Index rows, Eigen::Index cols) {
    return Matrix<double>(Eigen::Map<const Matrix<double>>(v.data(), rows, cols));
  };
  auto flat = [](const Matrix<double>& m) { return Eigen::VectorXd(m.reshaped<Eigen::RowMajor>()); };
  // As an operator of the input.
  auto of_input = make_operator(
      in, out, [&](ConstVectorRef v) { return flat(mlp.forward(params, as_matrix(v, batch, 4))); },
      [&](ConstVectorRef v, ConstVectorRef dv) {
        Mlp<double>::Cache cache;
        mlp.forward(params, as_matrix(v, batch, 4), &cache);
        return flat(mlp.jvp_input(params, cache, as_matrix(dv, batch, 4)));
      },
      [&](ConstVectorRef v, ConstVectorRef u) {
        Mlp<double>::Cache cache;
        mlp.forward(params, as_matrix(v, batch, 4), &cache);
        Vector<double> g = Vector<double>::Zero(mlp.parameter_count());
        return flat(mlp.vjp(params, cache, as_matrix(u, batch, 3), g));
      });
  // As an operator of the parameters (VJP only; JVP by finite differences of the forward pass,
  // so check_jacobian compares the VJP against it through adjointness).
  auto of_params = make_operator(
      par, out, [&](ConstVectorRef p) { return flat(mlp.forward(p, x)); },
      [&](ConstVectorRef p, ConstVectorRef dp) {
        const double h = 1e-6;
        return Eigen::VectorXd((flat(mlp.forward(p + h * dp, x)) - flat(mlp.forward(p - h * dp, x))) /
                               (2 * h));
      },
      [&](ConstVectorRef p, ConstVectorRef u) {
        Mlp<double>::Cache cache;
        mlp.forward(p, x, &cache);
        Vector<double> g = Vector<double>::Zero(mlp.parameter_count());
        mlp.vjp(p, cache, as_matrix(u, batch, 3), g);
        return Eigen::VectorXd(g);
      });
  JacobianCheckOptions options;
  options.linear.tolerance = 1e-7;  // the parameter JVP is itself a finite difference
  EXPECT_THAT(*of_input, HasConsistentJacobianAtWith(Field(in, flat(x)), options));
  EXPECT_THAT(*of_params, HasConsistentJacobianAtWith(Field(par, Eigen::VectorXd(params)), options));
}

INSTANTIATE_TEST_SUITE_P(All, MlpActivations,
                         ::testing::Values(Activation::kIdentity, Activation::kRelu,
                                           Activation::kTanh, Activation::kSigmoid,
                                           Activation::kSoftplus));

TEST(Mlp, OverwritingTheGradientEqualsAccumulatingIntoZeros) {
  const Mlp<double> mlp({4, 6, 5, 3}, {Activation::kRelu, Activation::kTanh, Activation::kIdentity});
  std::mt19937_64 rng(11);
  const Vector<double> params = mlp.initialize(neural::Initialization::kUniformFanIn, rng);
  Mlp<double>::Cache cache;
  mlp.forward(params, random_matrix(7, 4, 12), &cache);
  const Matrix<double> u = random_matrix(7, 3, 13);
  for (bool input_gradient : {true, false}) {
    Vector<double> accumulated = Vector<double>::Zero(mlp.parameter_count());
    mlp.vjp(params, cache, u, accumulated, input_gradient);
    Vector<double> overwritten = Vector<double>::Constant(
        mlp.parameter_count(), std::numeric_limits<double>::quiet_NaN());
    mlp.vjp(params, cache, u, overwritten, input_gradient, neural::GradientWrite::kOverwrite);
    EXPECT_EQ(overwritten, accumulated);
    // Accumulating adds to what is there.
    Vector<double> twice = accumulated;
    mlp.vjp(params, cache, u, twice, input_gradient);
    EXPECT_LE((twice - 2 * accumulated).norm(), 1e-14 * accumulated.norm());
  }
}

TEST(Mlp, ForwardIsTheLayersComposed) {
  const Mlp<double> mlp({2, 3, 1}, {Activation::kRelu, Activation::kIdentity});
  ASSERT_EQ(mlp.parameter_count(), 3 * 2 + 3 + 1 * 3 + 1);
  Vector<double> p(13);
  p << 1, -1, 0.5, 2, -1, 0,  /* W1 */ 0.1, 0.2, 0.3, /* b1 */ 1, -2, 3, /* W2 */ 0.5 /* b2 */;
  Matrix<double> x(1, 2);
  x << 1.0, 2.0;
  // h = relu([1*1 - 1*2 + 0.1, 0.5*1 + 2*2 + 0.2, -1*1 + 0 + 0.3]) = [0, 4.7, 0]
  const Matrix<double> y = mlp.forward(p, x);
  EXPECT_NEAR(y(0, 0), -2 * 4.7 + 0.5, 1e-12);
}

TEST(Mlp, SeveralTangentsAtOnceEqualOneByOne) {
  const Mlp<double> mlp({5, 8, 4}, {Activation::kTanh, Activation::kSigmoid});
  std::mt19937_64 rng(3);
  const Vector<double> params = mlp.initialize(neural::Initialization::kHeNormal, rng);
  const Eigen::Index batch = 6, k = 3;
  Mlp<double>::Cache cache;
  mlp.forward(params, random_matrix(batch, 5, 4), &cache);
  const Matrix<double> tangents = random_matrix(k * batch, 5, 5);
  const Matrix<double> all = mlp.jvp_input(params, cache, tangents);
  for (Eigen::Index t = 0; t < k; ++t) {
    const Matrix<double> one = mlp.jvp_input(params, cache, tangents.middleRows(t * batch, batch));
    EXPECT_LE((all.middleRows(t * batch, batch) - one).norm(), 1e-12 * one.norm());
  }
  EXPECT_THROW(mlp.jvp_input(params, cache, random_matrix(batch + 1, 5, 6)), InvalidArgument);
  // The fused pass gives the same output, tangents and cache.
  const Matrix<double> x = random_matrix(batch, 5, 4);
  Mlp<double>::Cache fused_cache;
  Matrix<double> fused_jvp;
  const Matrix<double> y = mlp.forward_with_jvp(params, x, tangents, fused_jvp, &fused_cache);
  EXPECT_LE((y - mlp.forward(params, x)).norm(), 1e-14 * y.norm());
  EXPECT_LE((fused_jvp - all).norm(), 1e-14 * all.norm());
  // Without the output (a linear last layer): the same tangents, an empty output.
  const Mlp<double> linear_last({5, 8, 4}, {Activation::kTanh, Activation::kIdentity});
  Mlp<double>::Cache linear_cache;
  linear_last.forward(params, x, &linear_cache);
  Matrix<double> tangents_only;
  EXPECT_EQ(linear_last.forward_with_jvp(params, x, tangents, tangents_only, nullptr, false).size(),
            0);
  const Matrix<double> expected = linear_last.jvp_input(params, linear_cache, tangents);
  EXPECT_LE((tangents_only - expected).norm(), 1e-14 * expected.norm());
  for (std::size_t l = 0; l < 2; ++l) {  // one stacked GEMM rounds as the two separate ones
    EXPECT_LE((fused_cache.inputs[l] - cache.inputs[l]).norm(), 1e-14 * cache.inputs[l].norm());
    EXPECT_LE((fused_cache.derivatives[l] - cache.derivatives[l]).norm(),
              1e-14 * cache.derivatives[l].norm());
  }
}

// With several threads a layer's products are split by output columns (a batch) or by rows (a
// tall operand: many tangents, a large batch); either split computes every entry as one thread
// does, up to the blocking of its sums.
TEST(Mlp, ProductsSplitOverThreadsByRowsOrColumnsEqualOneThread) {
  const Mlp<double> mlp({384, 352, 320}, {Activation::kTanh, Activation::kSoftplus});
  std::mt19937_64 rng(11);
  const Vector<double> params = mlp.initialize(neural::Initialization::kGlorotUniform, rng);
  struct Results {
    Matrix<double> y_small, y_large, jvp, jvp_again, input_gradient_small, input_gradient_large;
    Vector<double> gradient_small, gradient_large;
  };
  auto run = [&](int threads) {
    Results r;
    tbb::task_arena arena(threads);
    arena.execute([&] {
      const Matrix<double> small = random_matrix(24, 384, 12);   // 24 rows: split by columns
      const Matrix<double> large = random_matrix(160, 384, 13);  // 160 rows: split by rows
      const Matrix<double> tangents = random_matrix(7 * 24, 384, 14);  // stacked: 192 rows
      Mlp<double>::Cache small_cache, large_cache;
      r.y_small = mlp.forward_with_jvp(params, small, tangents, r.jvp, &small_cache);
      r.jvp_again = mlp.jvp_input(params, small_cache, tangents);
      r.y_large = mlp.forward(params, large, &large_cache);
      r.gradient_small = Vector<double>::Zero(mlp.parameter_count());
      r.gradient_large = Vector<double>::Zero(mlp.parameter_count());
      r.input_gradient_small =
          mlp.vjp(params, small_cache, random_matrix(24, 320, 15), r.gradient_small);
      r.input_gradient_large =
          mlp.vjp(params, large_cache, random_matrix(160, 320, 16), r.gradient_large);
    });
    return r;
  };
  const Results one = run(1), two = run(2);
  auto close = [](const auto& a, const auto& b) { return (a - b).norm() <= 1e-13 * b.norm(); };
  EXPECT_TRUE(close(two.y_small, one.y_small));
  EXPECT_TRUE(close(two.y_large, one.y_large));
  EXPECT_TRUE(close(two.jvp, one.jvp));
  EXPECT_TRUE(close(two.jvp_again, one.jvp_again));
  EXPECT_TRUE(close(two.input_gradient_small, one.input_gradient_small));
  EXPECT_TRUE(close(two.input_gradient_large, one.input_gradient_large));
  EXPECT_TRUE(close(two.gradient_small, one.gradient_small));
  EXPECT_TRUE(close(two.gradient_large, one.gradient_large));
  // and the tangents stacked with the batch are those of the tangents alone
  EXPECT_TRUE(close(two.jvp, two.jvp_again));
}

template <typename T>
void expect_selected_rows_product_is_the_dense_one() {
  // Rows of y from 1 to 28 (one to three row blocks, the narrow and the wide column blocks),
  // widths with and without a tail narrower than a vector packet, none or all rows selected.
  std::mt19937_64 rng(17);
  for (Eigen::Index m : {1, 2, 5, 7, 12, 13, 20, 28})
    for (Eigen::Index n : {3, 16, 45, 64, 100})
      for (double keep : {0.0, 0.4, 1.0})
        for (bool lower : {false, true}) {
          const Eigen::Index h = lower ? n : 37;  // a triangular b is square
          std::vector<int> rows;
          std::bernoulli_distribution take(keep);
          for (Eigen::Index j = 0; j < h; ++j)
            if (take(rng)) rows.push_back(static_cast<int>(j));
          const auto s = static_cast<Eigen::Index>(rows.size());
          const Matrix<T> a = random_matrix(m, s + 3, rng()).cast<T>();  // lda > s
          Matrix<T> b = random_matrix(h, n + 2, rng()).cast<T>();        // ldb > n
          if (lower)
            for (Eigen::Index j = 0; j < h; ++j) b.row(j).segment(j + 1, n + 1 - j).setZero();
          // Two products with b: the selection above, and every other row of it.
          std::vector<int> every_other;
          for (std::size_t i = 0; i < rows.size(); i += 2) every_other.push_back(rows[i]);
          const auto s2 = static_cast<Eigen::Index>(every_other.size());
          const Matrix<T> a2 = random_matrix(m, s2 + 1, rng()).cast<T>();
          // A triangular b goes in through to_lower_triangular_panels, whose panels take nothing
          // from its strictly upper part (NaN here: none may reach a product).
          Matrix<T> b_unread_above = b;
          if (lower)
            for (Eigen::Index j = 0; j < h; ++j)
              b_unread_above.row(j).segment(j + 1, n + 1 - j).setConstant(
                  std::numeric_limits<T>::quiet_NaN());
          const Eigen::Index width = neural::detail::selected_rows_panel_width<T>(m);
          const auto panels =
              lower ? neural::detail::to_lower_triangular_panels(b_unread_above.leftCols(n), width)
                    : neural::detail::to_panels(b.leftCols(n), width);
          // The padding up to whole panels is written (with zeros); the column after it is not.
          const Eigen::Index padded = panels.padded_columns();
          Matrix<T> y = Matrix<T>::Constant(m, padded + 1, T(7)), y2 = y;
          neural::detail::times_selected_rows<T>(
              {{a.data(), a.cols(), s, rows.data(), y.data(), y.cols()},
               {a2.data(), a2.cols(), s2, every_other.data(), y2.data(), y2.cols()}},
              m, panels, lower);
          auto expect_product = [&](const Matrix<T>& a_, const std::vector<int>& rows_,
                                    const Matrix<T>& y_) {
            Matrix<double> expected = Matrix<double>::Zero(m, n);
            for (std::size_t i = 0; i < rows_.size(); ++i)
              expected += a_.col(Eigen::Index(i)).template cast<double>() *
                          b.row(rows_[i]).head(n).template cast<double>();
            const double bound = 10 * double(std::max<std::size_t>(rows_.size(), 1)) *
                                 std::numeric_limits<T>::epsilon() * (1 + expected.norm());
            EXPECT_LE((y_.leftCols(n).template cast<double>() - expected).norm(), bound)
                << "m " << m << " n " << n << " s " << rows_.size() << " lower " << lower;
            EXPECT_TRUE((y_.middleCols(n, padded - n).array() == T(0)).all());
            EXPECT_TRUE((y_.col(padded).array() == T(7)).all());
          };
          expect_product(a, rows, y);
          expect_product(a2, every_other, y2);
          // Panels of a lower triangle only (rows above each panel unset) in a full product.
          if (lower) {
            EXPECT_THROW(neural::detail::times_selected_rows<T>(
                             {{a.data(), a.cols(), s, rows.data(), y.data(), y.cols()}}, m,
                             panels, false),
                         InvalidArgument);
          }
        }
}

TEST(LayerKernels, SelectedRowsProductEqualsTheDenseProductInFloatAndDouble) {
  expect_selected_rows_product_is_the_dense_one<float>();
  expect_selected_rows_product_is_the_dense_one<double>();
}

template <typename T>
void expect_panels_hold_their_matrix() {
  // b stored column by column (W^T of a row-major W, as the tangents' products take it: copied
  // by transposed register blocks) and row by row (copied element by element): each panel
  // element is b's, zeros in the padding; for a lower triangle only from each panel's first
  // row down, zeros above the diagonal, and b's strictly upper part never read (NaN there).
  for (Eigen::Index m : {1, 28})
    for (Eigen::Index rows : {1, 15, 16, 37, 64})
      for (Eigen::Index columns : {3, 16, 45, 64, 100})
        for (bool lower : {false, true}) {
          if (lower && columns != 16) continue;  // a triangle is square: once per size
          const Eigen::Index cols = lower ? rows : columns;
          const Matrix<T> w = random_matrix(cols, rows, std::uint64_t(rows * 1000 + cols)).cast<T>();
          Matrix<T> w_read = w;  // W^T's strictly upper part is W's strictly lower part
          if (lower)
            for (Eigen::Index r = 0; r < cols; ++r)
              for (Eigen::Index c = 0; c < std::min(r, rows); ++c)
                w_read(r, c) = std::numeric_limits<T>::quiet_NaN();
          const Eigen::Map<const Matrix<T>> w_map(w_read.data(), cols, rows);
          const Matrix<T> b_row_major = w_read.transpose();
          const Eigen::Index width = neural::detail::selected_rows_panel_width<T>(m);
          for (bool by_columns : {true, false}) {
            const auto panels =
                lower ? (by_columns
                             ? neural::detail::to_lower_triangular_panels(w_map.transpose(), width)
                             : neural::detail::to_lower_triangular_panels(b_row_major, width))
                      : (by_columns ? neural::detail::to_panels(w_map.transpose(), width)
                                    : neural::detail::to_panels(b_row_major, width));
            ASSERT_EQ(panels.rows, rows);
            ASSERT_EQ(panels.columns, cols);
            Eigen::Index wrong = 0;
            for (Eigen::Index c = 0; c < panels.padded_columns(); ++c)
              for (Eigen::Index r = lower ? c / width * width : 0; r < rows; ++r) {
                const T expected = c < cols && (!lower || r >= c) ? w(c, r) : T(0);
                const T held = panels.data[c / width * width * rows + r * width + c % width];
                wrong += held != expected;  // exact: a copy
              }
            EXPECT_EQ(wrong, 0) << "rows " << rows << " columns " << cols << " width " << width
                                << " lower " << lower << " by columns " << by_columns;
          }
        }
}

TEST(LayerKernels, PanelsHoldTheirMatrixWhateverItsStorageOrder) {
  expect_panels_hold_their_matrix<float>();
  expect_panels_hold_their_matrix<double>();
}

TEST(Mlp, FloatAgreesWithDouble) {
  const Mlp<double> md({10, 16, 7}, {Activation::kSoftplus, Activation::kSigmoid});
  const Mlp<float> mf({10, 16, 7}, {Activation::kSoftplus, Activation::kSigmoid});
  std::mt19937_64 rng(7);
  const Vector<double> pd = md.initialize(neural::Initialization::kGlorotUniform, rng);
  const Vector<float> pf = pd.cast<float>();
  const Matrix<double> x = random_matrix(9, 10, 8);
  const Matrix<double> yd = md.forward(pd, x);
  const Matrix<float> yf = mf.forward(pf, x.cast<float>());
  EXPECT_LE((yf.cast<double>() - yd).norm(), 1e-5 * yd.norm());
}

TEST(Mlp, InitialisationHasTheDocumentedVariance) {
  const Eigen::Index in = 300, out = 200;
  const Mlp<double> mlp({in, out}, {Activation::kIdentity});
  for (auto [init, variance] :
       {std::pair{neural::Initialization::kGlorotUniform, 2.0 / (in + out)},
        std::pair{neural::Initialization::kHeNormal, 2.0 / in}}) {
    std::mt19937_64 rng(9);
    const Vector<double> p = mlp.initialize(init, rng);
    const Eigen::VectorXd w = p.head(in * out);
    EXPECT_TRUE(p.tail(out).isZero());
    const double n = static_cast<double>(w.size());
    const double mean = w.mean(), var = w.squaredNorm() / n;
    // Sample variance: standard error sqrt((kurtosis - 1) / n) * variance, kurtosis 1.8 (uniform)
    // or 3 (normal); 5 standard errors.
    EXPECT_LT(std::abs(mean), 5 * std::sqrt(variance / n));
    EXPECT_LT(std::abs(var - variance), 5 * std::sqrt(2.0 / n) * variance);
  }
  {  // PyTorch's default: weights and biases U(-1/sqrt(in), 1/sqrt(in)), variance 1 / (3 in).
    std::mt19937_64 rng(9);
    const Vector<double> p = mlp.initialize(neural::Initialization::kUniformFanIn, rng);
    const double n = static_cast<double>(p.size()), variance = 1.0 / (3.0 * in);
    EXPECT_LE(p.cwiseAbs().maxCoeff(), 1.0 / std::sqrt(double(in)));
    EXPECT_LT(std::abs(p.mean()), 5 * std::sqrt(variance / n));
    EXPECT_LT(std::abs(p.squaredNorm() / n - variance), 5 * std::sqrt(0.8 / n) * variance);
    EXPECT_FALSE(p.tail(out).isZero());
  }
  EXPECT_THROW(Mlp<double>({4}, {}), InvalidArgument);
  EXPECT_THROW(Mlp<double>({4, 0}, {Activation::kRelu}), InvalidArgument);
  EXPECT_THROW(Mlp<double>({4, 3}, {}), InvalidArgument);
}

TEST(Adam, BiasCorrectedFirstStepAndConvergence) {
  neural::Adam<double>::Options o;
  o.learning_rate = 0.01;
  o.epsilon = 1e-12;
  neural::Adam<double> adam(3, o);
  Vector<double> p = Vector<double>::Zero(3);
  Vector<double> g(3);
  g << 2.0, -0.001, 5.0;
  adam.step(p, g);
  // With bias correction the first step is lr * g / |g| in every coordinate.
  EXPECT_NEAR(p[0], -0.01, 1e-9);
  EXPECT_NEAR(p[1], 0.01, 1e-9);
  EXPECT_NEAR(p[2], -0.01, 1e-9);
  // Minimises a quadratic 0.5 sum c_i (p_i - 1)^2.
  Vector<double> c(3);
  c << 1.0, 10.0, 0.1;
  neural::Adam<double>::Options fast;
  fast.learning_rate = 0.05;
  neural::Adam<double> opt(3, fast);
  p.setZero();
  for (int s = 0; s < 3000; ++s) opt.step(p, c.cwiseProduct(p - Vector<double>::Ones(3)));
  EXPECT_LT((p - Vector<double>::Ones(3)).norm(), 1e-2);
  EXPECT_EQ(opt.steps(), 3000);
  neural::Adam<double>::Options bad;
  bad.beta1 = 1.0;
  EXPECT_THROW(neural::Adam<double>(3, bad), InvalidArgument);
  EXPECT_THROW(opt.step(p, Vector<double>::Zero(2)), InvalidArgument);
}

TEST(Adam, AStepInBlocksEqualsOneStep) {
  // Blocks of odd sizes at odd offsets (as a network's layers are); float, where the vectorised
  // and scalar square roots may round differently at a block's edges.
  const Eigen::Index size = 10007;
  std::mt19937_64 rng(3);
  neural::Adam<float> whole(size, {}), blocks(size, {});
  Vector<float> p_whole = Vector<float>::Zero(size), p_blocks = p_whole;
  std::normal_distribution<float> g(0.0F, 1.0F);
  for (int step = 0; step < 3; ++step) {
    Vector<float> gradient(size);
    for (auto& v : gradient) v = g(rng);
    whole.step(p_whole, gradient, 0.5F);
    blocks.begin_step();
    for (Eigen::Index offset : {Eigen::Index{0}, Eigen::Index{3001}, Eigen::Index{7}}) {
      const Eigen::Index end = offset == 0 ? 7 : offset == 7 ? 3001 : size;
      blocks.update_block(p_blocks.data() + offset, gradient.data() + offset, offset,
                          end - offset, 0.5F);
    }
  }
  EXPECT_EQ(blocks.steps(), 3);
  EXPECT_LE((p_blocks - p_whole).cwiseAbs().maxCoeff(), 1e-6F * p_whole.cwiseAbs().maxCoeff());
  EXPECT_LE((blocks.second_moment() - whole.second_moment()).norm(),
            1e-6F * whole.second_moment().norm());
  EXPECT_THROW(blocks.update_block(p_blocks.data(), p_blocks.data(), size - 2, 3),
               InvalidArgument);
  neural::Adam<float> fresh(4, {});
  EXPECT_THROW(fresh.update_block(p_blocks.data(), p_blocks.data(), 0, 4), InvalidArgument);
  // A restored optimiser needs begin_step() too (else the previous step's bias corrections).
  blocks.restore(blocks.first_moment(), blocks.second_moment(), 7);
  const Vector<float> ones = Vector<float>::Ones(size);
  EXPECT_THROW(blocks.update_block(p_blocks.data(), ones.data(), 0, 2), InvalidArgument);
  blocks.begin_step();
  EXPECT_EQ(blocks.steps(), 8);
}

TEST(Mlp, GradientBlocksAreReportedOnceEachWhenFinalAndTheirParametersNotReadAgain) {
  const Mlp<double> net({5, 7, 6, 3}, {Activation::kRelu, Activation::kTanh, Activation::kIdentity});
  std::mt19937_64 rng(8);
  const Vector<double> params = net.initialize(neural::Initialization::kGlorotUniform, rng);
  const Matrix<double> x = random_matrix(4, 5, 81), u = random_matrix(4, 3, 82);
  Mlp<double>::Cache cache;
  net.forward(params, x, &cache);
  Vector<double> expected(net.parameter_count());
  const Matrix<double> expected_input =
      net.vjp(params, cache, u, expected, true, neural::GradientWrite::kOverwrite);
  for (bool input_gradient : {true, false}) {
    // The callback poisons each reported layer's parameters: results unchanged means the pass
    // did not read them again; the reported gradient must already be the final one.
    Vector<double> poisoned = params, gradient(net.parameter_count());
    std::vector<std::pair<Eigen::Index, Eigen::Index>> blocks;
    const neural::GradientBlockReady<double> ready = [&](Eigen::Index offset, const double* g,
                                                         Eigen::Index size) {
      blocks.emplace_back(offset, size);
      EXPECT_EQ(g, gradient.data() + offset);
      // Final when reported (the bias gradient included): Adam reads it there.
      EXPECT_EQ(Eigen::Map<const Vector<double>>(g, size), expected.segment(offset, size));
      poisoned.segment(offset, size).setConstant(std::nan(""));
    };
    const Matrix<double> input = net.vjp(poisoned, cache, u, gradient, input_gradient,
                                         neural::GradientWrite::kOverwrite, ready);
    EXPECT_EQ(gradient, expected);
    if (input_gradient) {
      EXPECT_EQ(input, expected_input);
    }
    // Last layer first, together covering every parameter once.
    ASSERT_EQ(blocks.size(), 3U);
    Eigen::Index end = net.parameter_count();
    for (const auto& [offset, size] : blocks) {
      EXPECT_EQ(offset + size, end);
      end = offset;
    }
    EXPECT_EQ(end, 0);
  }
}

}  // namespace
}  // namespace infield

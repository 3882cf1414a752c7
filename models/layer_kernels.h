#pragma once
// What dense and convolutional layers share (Mlp in neural.cpp, Sequential in convolution.cpp):
// activations and the layer products split over the threads of the calling task arena.

#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>

#include "infield/models/neural.h"

namespace infield::neural::detail {

/// Value and derivative of an activation, elementwise over a matrix (derivative into `d`).
template <typename T>
inline void activate(Activation a, Matrix<T>& z, Matrix<T>* d) {
  auto za = z.array();
  switch (a) {
    case Activation::kIdentity:
      if (d) d->setOnes(z.rows(), z.cols());
      break;
    case Activation::kRelu:
      if (d) *d = (za > T(0)).template cast<T>().matrix();
      za = za.max(T(0));
      break;
    case Activation::kTanh:
      za = za.tanh();
      if (d) *d = (T(1) - za.square()).matrix();
      break;
    case Activation::kSigmoid: {
      // Stable for both signs: 1 / (1 + e^-x) = e^x / (1 + e^x).
      const auto e = (-za.abs()).exp().eval();
      za = (za >= T(0)).select(T(1) / (T(1) + e), e / (T(1) + e));
      if (d) *d = (za * (T(1) - za)).matrix();
      break;
    }
    case Activation::kSoftplus: {
      // log(1 + e^x) = max(x, 0) + log1p(e^-|x|); derivative sigmoid(x).
      const auto e = (-za.abs()).exp().eval();
      if (d) *d = (za >= T(0)).select(T(1) / (T(1) + e), e / (T(1) + e)).matrix();
      za = za.max(T(0)) + e.log1p();
      break;
    }
  }
}

/// Products of a layer, split over the threads of the calling task arena by blocks of output
/// columns (or rows of the weight gradient): each thread packs its share of the weights and the
/// whole (small) batch. No sum is split between threads, but Eigen blocks a sum by the shape of
/// the product, so a thread count changes results by float rounding.
constexpr double kParallelMinimumMultiplyAdds = 2e6;

/// Calls f(begin, size) on blocks of [0, size) of about equal size, one per thread of the calling
/// arena (one block for small work), with edges on multiples of 16 (two AVX registers of floats).
template <typename F>
inline void for_blocks(Eigen::Index size, double multiply_adds, F&& f) {
  const int threads = tbb::this_task_arena::max_concurrency();
  if (threads <= 1 || multiply_adds < kParallelMinimumMultiplyAdds || size < 32) {
    f(Eigen::Index{0}, size);
    return;
  }
  const Eigen::Index parts = std::min<Eigen::Index>(threads, size / 16);
  tbb::parallel_for(Eigen::Index{0}, parts, [&](Eigen::Index p) {
    const Eigen::Index begin = (size * p / parts) / 16 * 16;
    const Eigen::Index end = p + 1 == parts ? size : (size * (p + 1) / parts) / 16 * 16;
    if (end > begin) f(begin, end - begin);
  }, tbb::static_partitioner());
}

/// The lower triangle of W^T W (h x h for W k x h) into `gram` (its strictly upper part is left
/// as it is), split over the threads by block rows of equal triangle area: each block row is a
/// rank update on the diagonal block and a product left of it.
template <typename W, typename G>
void gram_lower(const W& w, G& gram) {
  const Eigen::Index h = w.cols();
  const int threads = tbb::this_task_arena::max_concurrency();
  const bool parallel =
      threads > 1 && double(h) * double(h) * double(w.rows()) / 2 >= kParallelMinimumMultiplyAdds &&
      h >= 32 * threads;
  const Eigen::Index parts = parallel ? threads : 1;
  // Rows above edge(q) hold the fraction q / parts of the triangle's area.
  auto edge = [&](Eigen::Index q) {
    if (q == parts) return h;
    return Eigen::Index(double(h) * std::sqrt(double(q) / double(parts))) / 16 * 16;
  };
  auto block_row = [&](Eigen::Index p) {
    const Eigen::Index r0 = edge(p), n = edge(p + 1) - r0;
    if (n <= 0) return;
    auto diagonal = gram.block(r0, r0, n, n);
    diagonal.template triangularView<Eigen::Lower>().setZero();
    diagonal.template selfadjointView<Eigen::Lower>().rankUpdate(w.middleCols(r0, n).transpose());
    if (r0 > 0) gram.block(r0, 0, n, r0).noalias() = w.middleCols(r0, n).transpose() * w.leftCols(r0);
  };
  if (parts == 1)
    block_row(0);
  else
    tbb::parallel_for(Eigen::Index{0}, parts, block_row, tbb::static_partitioner());
}

/// s L for a lower-triangular L (its strictly upper part is not read), split over the threads by
/// blocks of rows of s: half the multiply-adds of a full product.
template <typename S, typename L>
auto times_lower_triangular(const S& s, const L& l) {
  Matrix<typename S::Scalar> y(s.rows(), l.cols());
  for_blocks(s.rows(), double(s.rows()) * double(l.rows()) * double(l.cols()) / 2,
             [&](Eigen::Index r0, Eigen::Index n) {
               y.middleRows(r0, n).noalias() =
                   s.middleRows(r0, n) * l.template triangularView<Eigen::Lower>();
             });
  return y;
}

/// A tall operand (the stacked tangents of FisherNet's Jacobians: (D + 1) x batch rows) is split
/// over the threads by its rows, a batch-sized one by output columns. Splitting by columns has
/// every thread pack the whole tall operand (2.4 MB at D = 20: more than a core's L2), splitting
/// by rows each thread its own part: 2 threads, 1344 x 448 x 448, 2,000-2,760 against
/// 2,340-3,710 us on a Xeon (Emerald Rapids); from 128 rows on rows are ahead, at 64 columns are.
/// In training (FisherNet D = 20, 2 threads, 6 interleaved runs) a median +5%, within the noise.
constexpr Eigen::Index kRowSplitMinimumRows = 128;

/// Calls by_rows(r0, n) on blocks of the rows of a rows x columns product when it is tall, else
/// by_columns(c0, n) on blocks of its columns.
template <typename ByRows, typename ByColumns>
void for_product_blocks(Eigen::Index rows, Eigen::Index columns, double multiply_adds,
                        ByRows&& by_rows, ByColumns&& by_columns) {
  if (rows >= kRowSplitMinimumRows)
    for_blocks(rows, multiply_adds, by_rows);
  else
    for_blocks(columns, multiply_adds, by_columns);
}

/// z = h W^T for W (out x in).
template <typename H, typename W>
auto times_transposed(const H& h, const W& w) {
  Matrix<typename W::Scalar> z(h.rows(), w.rows());
  for_product_blocks(
      h.rows(), w.rows(), double(h.rows()) * double(w.rows()) * double(w.cols()),
      [&](Eigen::Index r0, Eigen::Index n) {
        z.middleRows(r0, n).noalias() = h.middleRows(r0, n) * w.transpose();
      },
      [&](Eigen::Index c0, Eigen::Index n) {
        z.middleCols(c0, n).noalias() = h * w.middleRows(c0, n).transpose();
      });
  return z;
}

/// g W (split as times_transposed).
template <typename G, typename W>
auto times(const G& g, const W& w) {
  Matrix<typename W::Scalar> z(g.rows(), w.cols());
  for_product_blocks(
      g.rows(), w.cols(), double(g.rows()) * double(w.rows()) * double(w.cols()),
      [&](Eigen::Index r0, Eigen::Index n) {
        z.middleRows(r0, n).noalias() = g.middleRows(r0, n) * w;
      },
      [&](Eigen::Index c0, Eigen::Index n) {
        z.middleCols(c0, n).noalias() = g * w.middleCols(c0, n);
      });
  return z;
}

/// dst += src, or dst = src with kOverwrite; a product src is evaluated straight into dst.
template <typename D, typename S>
void write_gradient(D&& dst, const S& src, GradientWrite write) {
  if (write == GradientWrite::kOverwrite)
    dst.noalias() = src;
  else
    dst.noalias() += src;
}

/// gw += g^T x (or gw = g^T x with kOverwrite), split over the rows of gw.
template <typename GW, typename G, typename X>
void add_outer(GW& gw, const G& g, const X& x, GradientWrite write = GradientWrite::kAccumulate) {
  for_blocks(gw.rows(), double(g.rows()) * double(gw.rows()) * double(gw.cols()),
                    [&](Eigen::Index r0, Eigen::Index n) {
                      write_gradient(gw.middleRows(r0, n), g.middleCols(r0, n).transpose() * x,
                                     write);
                    });
}

}  // namespace infield::neural::detail

#pragma once
// What dense and convolutional layers share (Mlp in neural.cpp, Sequential in convolution.cpp):
// activations and the layer products split over the threads of the calling task arena.

#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "infield/error.h"
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

/// The upper triangle of W^T W (h x h for W k x h) into `gram` (its strictly lower part is left
/// as it is), split over the threads by block columns of equal triangle area: each block column
/// is a rank update on the diagonal block and a product above it.
template <typename W, typename G>
void gram_upper(const W& w, G& gram) {
  const Eigen::Index h = w.cols();
  const int threads = tbb::this_task_arena::max_concurrency();
  const bool parallel =
      threads > 1 && double(h) * double(h) * double(w.rows()) / 2 >= kParallelMinimumMultiplyAdds &&
      h >= 32 * threads;
  const Eigen::Index parts = parallel ? threads : 1;
  // Columns left of edge(q) hold the fraction q / parts of the triangle's area.
  auto edge = [&](Eigen::Index q) {
    if (q == parts) return h;
    return Eigen::Index(double(h) * std::sqrt(double(q) / double(parts))) / 16 * 16;
  };
  auto block_column = [&](Eigen::Index p) {
    const Eigen::Index c0 = edge(p), n = edge(p + 1) - c0;
    if (n <= 0) return;
    auto diagonal = gram.block(c0, c0, n, n);
    diagonal.template triangularView<Eigen::Upper>().setZero();
    diagonal.template selfadjointView<Eigen::Upper>().rankUpdate(w.middleCols(c0, n).transpose());
    if (c0 > 0)
      gram.block(0, c0, c0, n).noalias() = w.leftCols(c0).transpose() * w.middleCols(c0, n);
  };
  if (parts == 1)
    block_column(0);
  else
    tbb::parallel_for(Eigen::Index{0}, parts, block_column, tbb::static_partitioner());
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

/// One product of times_selected_rows: y (m x n) = a (m x s) times the s rows of b that `rows`
/// selects (increasing row indices); a and y row-major with strides lda and ldy (ldy at least n
/// rounded up to the panel width: the padding columns are written with zeros).
template <typename T>
struct SelectedRowsProduct {
  const T* a;
  Eigen::Index lda;
  Eigen::Index s;
  const int* rows;
  T* y;
  Eigen::Index ldy;
};

/// A matrix b (rows x columns) stored as panels of `width` columns, each panel row-major and
/// contiguous, the last one padded with zero columns: a panel's selected rows then lie in
/// ascending addresses a few cache lines apart, which the hardware prefetchers follow (rows of
/// the plain matrix, a whole row length apart, they do not).
template <typename T>
struct Panels {
  Eigen::Index rows = 0, columns = 0, width = 0;
  Eigen::Matrix<T, Eigen::Dynamic, 1> data;  ///< panel p at data.data() + p * rows * width
  /// Only a lower triangle stored (to_lower_triangular_panels): in each panel the rows above its
  /// first column are unset, and only a lower-triangular product may read it.
  bool lower_triangle_only = false;
  Eigen::Index padded_columns() const { return (columns + width - 1) / width * width; }
};

namespace selected_rows {
namespace ei = Eigen::internal;
template <typename T>
using Packet = typename ei::packet_traits<T>::type;
template <typename T>
constexpr int kPacket = ei::unpacket_traits<Packet<T>>::size;
/// Accumulators held in registers at once (R rows by C packets of columns), leaving room for the
/// C loads of b and a broadcast: 32 vector registers with AVX-512, 16 before (10 accumulators: 5
/// rows by 2 packets, or 2 by 4).
template <typename T>
constexpr int kAccumulators = sizeof(Packet<T>) >= 64 ? 24 : 10;
}  // namespace selected_rows

/// The panel width for products of m rows: four vector packets for few rows (each selected row's
/// loads and index arithmetic then feed more multiply-adds), two otherwise.
template <typename T>
Eigen::Index selected_rows_panel_width(Eigen::Index m) {
  using namespace selected_rows;
  return (m <= kAccumulators<T> / 4 ? 4 : 2) * kPacket<T>;
}

/// Rows [r0, r1) of b's columns [c0, c0 + n) into a panel (row-major, `width` columns, row r0
/// at `panel`), zeros in its columns from n on. Where b is stored column by column, as W^T of a
/// row-major W is, square blocks of one vector packet per side are transposed in registers:
/// element by element, the copy reads b with a stride and took twice as long (2-2.4x, 448 x 448).
template <typename B>
void copy_to_panel(const B& b, Eigen::Index r0, Eigen::Index r1, Eigen::Index c0, Eigen::Index n,
                   typename B::Scalar* panel, Eigen::Index width) {
  using T = typename B::Scalar;
  using Panel = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                           Eigen::OuterStride<>>;
  Panel out(panel, r1 - r0, width, Eigen::OuterStride<>(width));
  out.rightCols(width - n).setZero();
  constexpr bool column_major_storage =
      (int(B::Flags) & Eigen::DirectAccessBit) && !(int(B::Flags) & Eigen::RowMajorBit);
  Eigen::Index r_done = r0, n_done = 0;
  if constexpr (column_major_storage) {
    namespace ei = Eigen::internal;
    using P = selected_rows::Packet<T>;
    constexpr int kP = selected_rows::kPacket<T>;
    if (b.innerStride() == 1 && kP > 1) {
      const T* source = b.data();
      const Eigen::Index stride = b.outerStride();
      n_done = n / kP * kP;
      r_done = r0 + (r1 - r0) / kP * kP;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"  // P's alignment is not part of the type
      ei::PacketBlock<P, kP> block;
#pragma GCC diagnostic pop
      for (Eigen::Index j = 0; j < n_done; j += kP)
        for (Eigen::Index r = r0; r < r_done; r += kP) {
          for (Eigen::Index q = 0; q < kP; ++q)
            block.packet[q] = ei::ploadu<P>(source + (c0 + j + q) * stride + r);
          ei::ptranspose(block);
          for (Eigen::Index q = 0; q < kP; ++q)
            ei::pstoreu(panel + (r - r0 + q) * width + j, block.packet[q]);
        }
    }
  }
  // What the blocks left: the columns past the last whole block, then the rows past it.
  if (n_done < n)
    out.block(0, n_done, r1 - r0, n - n_done) = b.block(r0, c0 + n_done, r1 - r0, n - n_done);
  if (r_done < r1)
    out.block(r_done - r0, 0, r1 - r_done, n_done) = b.block(r_done, c0, r1 - r_done, n_done);
}

/// b as panels of `width` columns.
template <typename B>
Panels<typename B::Scalar> to_panels(const B& b, Eigen::Index width) {
  Panels<typename B::Scalar> p;
  p.rows = b.rows();
  p.columns = b.cols();
  p.width = width;
  p.data.resize(p.rows * p.padded_columns());
  for (Eigen::Index c0 = 0; c0 < p.columns; c0 += width)
    copy_to_panel(b, 0, p.rows, c0, std::min(width, p.columns - c0), p.data.data() + c0 * p.rows,
                  width);
  return p;
}

/// A lower-triangular b as panels for times_selected_rows(..., lower_triangular = true): only
/// what the kernel reads, the rows from each panel's first column down, with zeros above the
/// diagonal; b's strictly upper part is not read (it may be unset), and the panels' rows above
/// are left unset.
template <typename B>
Panels<typename B::Scalar> to_lower_triangular_panels(const B& b, Eigen::Index width) {
  using T = typename B::Scalar;
  Panels<T> p;
  p.rows = b.rows();
  p.columns = b.cols();
  p.width = width;
  p.lower_triangle_only = true;
  p.data.resize(p.rows * p.padded_columns());
  using Panel = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                           Eigen::OuterStride<>>;
  for (Eigen::Index c0 = 0; c0 < p.columns; c0 += width) {
    const Eigen::Index n = std::min(width, p.columns - c0), below = p.rows - c0;
    if (below <= 0) break;
    T* panel = p.data.data() + c0 * p.rows + c0 * width;
    // The diagonal block's lower triangle, zeros above it; the rows below it whole.
    const Eigen::Index diagonal = std::min(n, below);
    Panel top(panel, diagonal, width, Eigen::OuterStride<>(width));
    top.leftCols(n).template triangularView<Eigen::Lower>() = b.block(c0, c0, diagonal, n);
    top.leftCols(n).template triangularView<Eigen::StrictlyUpper>().setZero();
    top.rightCols(width - n).setZero();
    copy_to_panel(b, c0 + diagonal, p.rows, c0, n, panel + diagonal * width, width);
  }
  return p;
}

namespace selected_rows {
/// R rows of y by C packets of columns, over the selected rows [i0, i1) of a panel.
template <typename T, int R, int C>
inline void block(const T* a, Eigen::Index lda, const T* b, const int* rows, Eigen::Index i0,
                  Eigen::Index i1, T* y, Eigen::Index ldy) {
  using P = Packet<T>;
  constexpr int kP = kPacket<T>;
  constexpr Eigen::Index kWidth = Eigen::Index{C} * kP;
  P acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = ei::pset1<P>(T(0));
  for (Eigen::Index i = i0; i < i1; ++i) {
    const T* row = b + Eigen::Index(rows[i]) * kWidth;
    P bc[C];
    for (int c = 0; c < C; ++c) bc[c] = ei::ploadu<P>(row + c * kP);
    for (int r = 0; r < R; ++r) {
      const P x = ei::pset1<P>(a[r * lda + i]);
      for (int c = 0; c < C; ++c) acc[r][c] = ei::pmadd(x, bc[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) ei::pstoreu(y + r * ldy + c * kP, acc[r][c]);
}

/// block<T, r, C> for a run-time r in [1, R].
template <typename T, int R, int C>
inline void block_of(int r, const T* a, Eigen::Index lda, const T* b, const int* rows,
                     Eigen::Index i0, Eigen::Index i1, T* y, Eigen::Index ldy) {
  if constexpr (R > 0) {
    if (r == R) return block<T, R, C>(a, lda, b, rows, i0, i1, y, ldy);
    block_of<T, R - 1, C>(r, a, lda, b, rows, i0, i1, y, ldy);
  }
}

/// Every product, panel by panel.
template <typename T, int C>
void panels(const std::vector<SelectedRowsProduct<T>>& products, Eigen::Index m,
            const Panels<T>& b, bool lower) {
  constexpr int kMaxRows = kAccumulators<T> / C;
  // Row blocks of equal height: 20 rows as 10 + 10, not 12 + 8.
  const Eigen::Index row_blocks = (m + kMaxRows - 1) / kMaxRows;
  const Eigen::Index height = (m + row_blocks - 1) / row_blocks;
  for (Eigen::Index c0 = 0; c0 < b.columns; c0 += b.width) {
    const T* panel = b.data.data() + c0 * b.rows;
    for (const SelectedRowsProduct<T>& p : products) {
      // b lower triangular: rows above c0 are zero from column c0 on (and may not be stored).
      const Eigen::Index i0 =
          lower ? Eigen::Index(std::lower_bound(p.rows, p.rows + p.s, c0) - p.rows) : 0;
      for (Eigen::Index r0 = 0; r0 < m; r0 += height) {
        const int r = static_cast<int>(std::min(height, m - r0));
        block_of<T, kMaxRows, C>(r, p.a + r0 * p.lda, p.lda, panel, p.rows, i0, p.s,
                                 p.y + r0 * p.ldy + c0, p.ldy);
      }
    }
  }
}
}  // namespace selected_rows

/// Products with selected rows of one matrix b, each with its own selection, all with m rows;
/// b in panels of selected_rows_panel_width<T>(m) columns. The selected rows are read in place,
/// not copied: the kernel behind FisherNet's per-datum tangents through the active units of ReLU
/// layers (a datum's tangent is zero at a unit whose activation has zero derivative, so a layer's
/// product needs only the rows of W^T at the previous layer's active units, a different set for
/// every datum). b's panels are the outer loop and the products the inner one, so that each panel
/// is read from cache by all of them. With `lower_triangular`, b is lower triangular (zero above
/// the diagonal): for a panel's columns [c0, c0 + width) the rows above c0 are skipped.
/// Register-blocked like a GEMM micro-kernel: accumulators for up to 12 rows (5 without 32 vector
/// registers) by two vector packets of columns, or 6 (2) by four.
template <typename T>
void times_selected_rows(const std::vector<SelectedRowsProduct<T>>& products, Eigen::Index m,
                         const Panels<T>& b, bool lower_triangular) {
  check_argument(lower_triangular || !b.lower_triangle_only, "times_selected_rows", "b",
                 "holds a lower triangle only: needs lower_triangular");
  check_argument(m > 0, "times_selected_rows", "m", "must be positive");
  check_argument(b.width == selected_rows_panel_width<T>(m), "times_selected_rows", "b",
                 "must be in panels of selected_rows_panel_width(m) columns");
  if (b.width == 4 * selected_rows::kPacket<T>)
    selected_rows::panels<T, 4>(products, m, b, lower_triangular);
  else
    selected_rows::panels<T, 2>(products, m, b, lower_triangular);
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

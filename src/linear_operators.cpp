#include "infield/linear_operators.h"

#include <Eigen/LU>
#include <mutex>
#include <optional>

#include "infield/error.h"

namespace infield {
namespace {

constexpr unsigned kAllModes = LinearOperator::kTimes | LinearOperator::kAdjointTimes |
                               LinearOperator::kInverseTimes |
                               LinearOperator::kAdjointInverseTimes;

class ScalingOperator final : public LinearOperator {
 public:
  ScalingOperator(Space space, double factor) : LinearOperator(space, space), factor_(factor) {}
  unsigned capabilities() const override {
    return factor_ != 0.0 ? kAllModes : (kTimes | kAdjointTimes);
  }
  std::string name() const override { return "ScalingOperator"; }
  bool in_place_safe() const override { return true; }
  void apply_times(ConstVectorRef x, VectorRef out) const override { out = factor_ * x; }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override { out = factor_ * y; }
  void apply_inverse(ConstVectorRef y, VectorRef out) const override { out = y / factor_; }
  void apply_adjoint_inverse(ConstVectorRef x, VectorRef out) const override {
    out = x / factor_;
  }

 private:
  double factor_;
};

class DiagonalOperator final : public LinearOperator {
 public:
  DiagonalOperator(Space space, Eigen::VectorXd diagonal)
      : LinearOperator(space, space), diagonal_(std::move(diagonal)),
        invertible_((diagonal_.array() != 0.0).all()) {}
  unsigned capabilities() const override {
    return invertible_ ? kAllModes : (kTimes | kAdjointTimes);
  }
  std::string name() const override { return "DiagonalOperator"; }
  bool in_place_safe() const override { return true; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    out.array() = diagonal_.array() * x.array();
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override { apply_times(y, out); }
  void apply_inverse(ConstVectorRef y, VectorRef out) const override {
    out.array() = y.array() / diagonal_.array();
  }
  void apply_adjoint_inverse(ConstVectorRef x, VectorRef out) const override {
    apply_inverse(x, out);
  }

 private:
  Eigen::VectorXd diagonal_;
  bool invertible_;
};

class MatrixOperator final : public LinearOperator {
 public:
  MatrixOperator(Space domain, Space target, Eigen::MatrixXd matrix)
      : LinearOperator(std::move(domain), std::move(target)), matrix_(std::move(matrix)) {}
  unsigned capabilities() const override {
    return matrix_.rows() == matrix_.cols() ? kAllModes : (kTimes | kAdjointTimes);
  }
  std::string name() const override { return "MatrixOperator"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    out.noalias() = matrix_ * x;
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    out.noalias() = matrix_.transpose() * y;
  }
  void apply_inverse(ConstVectorRef y, VectorRef out) const override { out = lu().solve(y); }
  void apply_adjoint_inverse(ConstVectorRef x, VectorRef out) const override {
    out = lu().transpose().solve(x);
  }

 private:
  // Factorised on first use: most dense operators are never inverted.
  const Eigen::FullPivLU<Eigen::MatrixXd>& lu() const {
    std::call_once(lu_once_, [this] {
      lu_.emplace(matrix_);
    });
    if (!lu_->isInvertible())
      throw UnsupportedOperation("MatrixOperator: the matrix is singular, it has no inverse");
    return *lu_;
  }
  Eigen::MatrixXd matrix_;
  mutable std::once_flag lu_once_;
  mutable std::optional<Eigen::FullPivLU<Eigen::MatrixXd>> lu_;
};

class MaskOperator final : public LinearOperator {
 public:
  MaskOperator(Space domain, std::vector<Eigen::Index> kept)
      : LinearOperator(std::move(domain), unstructured(static_cast<Eigen::Index>(kept.size()))),
        kept_(std::move(kept)) {}
  std::string name() const override { return "MaskOperator"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    for (std::size_t i = 0; i < kept_.size(); ++i) out[static_cast<Eigen::Index>(i)] = x[kept_[i]];
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    out.setZero();
    for (std::size_t i = 0; i < kept_.size(); ++i) out[kept_[i]] = y[static_cast<Eigen::Index>(i)];
  }

 private:
  std::vector<Eigen::Index> kept_;
};

/// Views the domain as (outer, n, inner) in C order and sums over the middle index.
class ContractionOperator final : public LinearOperator {
 public:
  ContractionOperator(const DomainTuple& domain, std::size_t index)
      : LinearOperator(domain, domain.without(index)) {
    outer_ = 1;
    inner_ = 1;
    for (std::size_t i = 0; i < index; ++i) outer_ *= domain[i]->size();
    for (std::size_t i = index + 1; i < domain.rank(); ++i) inner_ *= domain[i]->size();
    n_ = domain[index]->size();
  }
  std::string name() const override { return "ContractionOperator"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    for (Eigen::Index o = 0; o < outer_; ++o) {
      auto y = out.segment(o * inner_, inner_);
      y = x.segment(o * n_ * inner_, inner_);
      for (Eigen::Index k = 1; k < n_; ++k) y += x.segment((o * n_ + k) * inner_, inner_);
    }
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    for (Eigen::Index o = 0; o < outer_; ++o)
      for (Eigen::Index k = 0; k < n_; ++k)
        out.segment((o * n_ + k) * inner_, inner_) = y.segment(o * inner_, inner_);
  }

 private:
  Eigen::Index outer_, n_, inner_;
};

class BlockDiagonalOperator final : public LinearOperator {
 public:
  BlockDiagonalOperator(DomainPtr batch, DomainPtr in, DomainPtr out, Eigen::MatrixXd blocks)
      : LinearOperator(DomainTuple{batch, in}, DomainTuple{batch, out}),
        batch_(batch->size()), n_in_(in->size()), n_out_(out->size()), blocks_(std::move(blocks)) {}
  unsigned capabilities() const override {
    return n_in_ == n_out_ ? kAllModes : (kTimes | kAdjointTimes);
  }
  std::string name() const override { return "BlockDiagonalOperator"; }
  // Blocks are stored side by side in one matrix: block b is columns [b n_in, (b+1) n_in).
  auto block(Eigen::Index b) const { return blocks_.middleCols(b * n_in_, n_in_); }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    for (Eigen::Index b = 0; b < batch_; ++b)
      out.segment(b * n_out_, n_out_).noalias() = block(b) * x.segment(b * n_in_, n_in_);
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    for (Eigen::Index b = 0; b < batch_; ++b)
      out.segment(b * n_in_, n_in_).noalias() =
          block(b).transpose() * y.segment(b * n_out_, n_out_);
  }
  void apply_inverse(ConstVectorRef y, VectorRef out) const override {
    const auto& f = factors();
    for (Eigen::Index b = 0; b < batch_; ++b)
      out.segment(b * n_in_, n_in_) = f[b].solve(y.segment(b * n_out_, n_out_));
  }
  void apply_adjoint_inverse(ConstVectorRef x, VectorRef out) const override {
    const auto& f = factors();
    for (Eigen::Index b = 0; b < batch_; ++b)
      out.segment(b * n_out_, n_out_) = f[b].transpose().solve(x.segment(b * n_in_, n_in_));
  }

 private:
  const std::vector<Eigen::FullPivLU<Eigen::MatrixXd>>& factors() const {
    std::call_once(once_, [this] {
      std::vector<Eigen::FullPivLU<Eigen::MatrixXd>> factors;  // all or nothing, if this throws
      for (Eigen::Index b = 0; b < batch_; ++b) factors.emplace_back(Eigen::MatrixXd(block(b)));
      factors_ = std::move(factors);
    });
    for (Eigen::Index b = 0; b < batch_; ++b)
      if (!factors_[b].isInvertible())
        throw UnsupportedOperation("BlockDiagonalOperator: block " + std::to_string(b) +
                                   " is singular, it has no inverse");
    return factors_;
  }
  Eigen::Index batch_, n_in_, n_out_;
  Eigen::MatrixXd blocks_;
  mutable std::once_flag once_;
  mutable std::vector<Eigen::FullPivLU<Eigen::MatrixXd>> factors_;
};

class BatchMatrixOperator final : public LinearOperator {
 public:
  BatchMatrixOperator(DomainPtr batch, DomainPtr in, DomainPtr out, Eigen::MatrixXd matrix)
      : LinearOperator(DomainTuple{batch, in}, DomainTuple{batch, out}),
        batch_(batch->size()), matrix_(std::move(matrix)) {}
  std::string name() const override { return "BatchMatrixOperator"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    rows(out, matrix_.rows()).noalias() = rows(x, matrix_.cols()) * matrix_.transpose();
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    rows(out, matrix_.cols()).noalias() = rows(y, matrix_.rows()) * matrix_;
  }

 private:
  Eigen::Map<const RowMajorMatrix> rows(ConstVectorRef v, Eigen::Index cols) const {
    return {v.data(), batch_, cols};
  }
  Eigen::Map<RowMajorMatrix> rows(VectorRef v, Eigen::Index cols) const {
    return {v.data(), batch_, cols};
  }
  Eigen::Index batch_;
  Eigen::MatrixXd matrix_;
};

class FieldAdapter final : public LinearOperator {
 public:
  FieldAdapter(const MultiDomain& multi, const std::string& key)
      : LinearOperator(multi, multi.at(key).domain), key_(key),
        offset_(multi.at(key).offset), size_(multi.at(key).domain.size()) {}
  std::string name() const override { return "FieldAdapter(" + key_ + ")"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    out = x.segment(offset_, size_);
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    out.setZero();
    out.segment(offset_, size_) = y;
  }

 private:
  std::string key_;
  Eigen::Index offset_, size_;
};

/// The parts of a MultiField named by a smaller MultiDomain, as a MultiField on it.
class SubMultiFieldAdapter final : public LinearOperator {
 public:
  SubMultiFieldAdapter(const MultiDomain& multi, const MultiDomain& sub)
      : LinearOperator(multi, sub) {
    for (const auto& e : sub.entries())
      copies_.push_back({multi.at(e.key).offset, e.offset, e.domain.size()});
  }
  std::string name() const override { return "SubMultiFieldAdapter"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    for (const Copy& c : copies_) out.segment(c.sub, c.size) = x.segment(c.multi, c.size);
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    out.setZero();
    for (const Copy& c : copies_) out.segment(c.multi, c.size) = y.segment(c.sub, c.size);
  }

 private:
  struct Copy {
    Eigen::Index multi, sub, size;
  };
  std::vector<Copy> copies_;
};

}  // namespace

LinearOperatorPtr scaling_operator(Space space, double factor) {
  check_finite(factor, "scaling_operator", "factor");
  return std::make_shared<ScalingOperator>(std::move(space), factor);
}

LinearOperatorPtr identity_operator(Space space) {
  return std::make_shared<ScalingOperator>(std::move(space), 1.0);
}

LinearOperatorPtr diagonal_operator(Space space, Eigen::VectorXd diagonal) {
  check_argument(diagonal.size() == space.size(), "diagonal_operator", "diagonal",
                 "has " + std::to_string(diagonal.size()) + " entries, the space " +
                     space.to_string() + " has " + std::to_string(space.size()));
  check_finite(diagonal, "diagonal_operator", "diagonal");
  return std::make_shared<DiagonalOperator>(std::move(space), std::move(diagonal));
}

LinearOperatorPtr matrix_operator(Space domain, Space target, Eigen::MatrixXd matrix) {
  check_argument(matrix.rows() == target.size() && matrix.cols() == domain.size(),
                 "matrix_operator", "matrix",
                 "is " + std::to_string(matrix.rows()) + " x " + std::to_string(matrix.cols()) +
                     " but must be target size x domain size = " + std::to_string(target.size()) +
                     " x " + std::to_string(domain.size()));
  check_finite(matrix, "matrix_operator", "matrix");
  return std::make_shared<MatrixOperator>(std::move(domain), std::move(target), std::move(matrix));
}

LinearOperatorPtr mask_operator(Space domain, const std::vector<bool>& keep) {
  check_argument(static_cast<Eigen::Index>(keep.size()) == domain.size(), "mask_operator", "keep",
                 "has " + std::to_string(keep.size()) + " entries, the domain " +
                     domain.to_string() + " has " + std::to_string(domain.size()));
  std::vector<Eigen::Index> kept;
  for (std::size_t i = 0; i < keep.size(); ++i)
    if (keep[i]) kept.push_back(static_cast<Eigen::Index>(i));
  check_argument(!kept.empty(), "mask_operator", "keep", "must keep at least one entry");
  return std::make_shared<MaskOperator>(std::move(domain), std::move(kept));
}

LinearOperatorPtr contraction_operator(const DomainTuple& domain, std::size_t index) {
  check_argument(index < domain.rank(), "contraction_operator", "index",
                 "is " + std::to_string(index) + " but " + domain.to_string() + " has rank " +
                     std::to_string(domain.rank()));
  return std::make_shared<ContractionOperator>(domain, index);
}

LinearOperatorPtr broadcast_operator(const DomainTuple& domain, std::size_t index) {
  return adjoint(contraction_operator(domain, index));
}

LinearOperatorPtr block_diagonal_operator(DomainPtr batch, DomainPtr in, DomainPtr out,
                                          std::vector<Eigen::MatrixXd> blocks) {
  constexpr std::string_view fn = "block_diagonal_operator";
  check_argument(batch && in && out, fn, "batch, in, out", "must not be null");
  check_argument(static_cast<Eigen::Index>(blocks.size()) == batch->size(), fn, "blocks",
                 "has " + std::to_string(blocks.size()) + " blocks for a batch of " +
                     std::to_string(batch->size()));
  Eigen::MatrixXd stacked(out->size(), in->size() * batch->size());
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    check_argument(blocks[b].rows() == out->size() && blocks[b].cols() == in->size(), fn, "blocks",
                   "block " + std::to_string(b) + " is " + std::to_string(blocks[b].rows()) +
                       " x " + std::to_string(blocks[b].cols()) + ", expected " +
                       std::to_string(out->size()) + " x " + std::to_string(in->size()));
    check_finite(blocks[b], fn, "blocks");
    stacked.middleCols(static_cast<Eigen::Index>(b) * in->size(), in->size()) = blocks[b];
  }
  return std::make_shared<BlockDiagonalOperator>(std::move(batch), std::move(in), std::move(out),
                                                 std::move(stacked));
}

LinearOperatorPtr batch_matrix_operator(DomainPtr batch, DomainPtr in, DomainPtr out,
                                        Eigen::MatrixXd matrix) {
  constexpr std::string_view fn = "batch_matrix_operator";
  check_argument(batch && in && out, fn, "batch, in, out", "must not be null");
  check_argument(matrix.rows() == out->size() && matrix.cols() == in->size(), fn, "matrix",
                 "is " + std::to_string(matrix.rows()) + " x " + std::to_string(matrix.cols()) +
                     ", expected out x in = " + std::to_string(out->size()) + " x " +
                     std::to_string(in->size()));
  check_finite(matrix, fn, "matrix");
  return std::make_shared<BatchMatrixOperator>(std::move(batch), std::move(in), std::move(out),
                                               std::move(matrix));
}

LinearOperatorPtr field_adapter(const MultiDomain& multi, const std::string& key) {
  multi.at(key);  // throws with the known keys if absent
  return std::make_shared<FieldAdapter>(multi, key);
}

LinearOperatorPtr field_adapter(const MultiDomain& multi, const MultiDomain& sub) {
  for (const auto& e : sub.entries()) {
    const auto& entry = multi.at(e.key);  // throws with the known keys if absent
    check_argument(entry.domain == e.domain, "field_adapter", "sub",
                   "part '" + e.key + "' is on " + e.domain.to_string() + ", in multi on " +
                       entry.domain.to_string());
  }
  return std::make_shared<SubMultiFieldAdapter>(multi, sub);
}

LinearOperatorPtr sandwich(LinearOperatorPtr bun, LinearOperatorPtr cheese) {
  check_argument(bun != nullptr, "sandwich", "bun", "must not be null");
  if (!cheese) return compose(adjoint(bun), bun);
  return compose(adjoint(bun), compose(std::move(cheese), bun));
}

}  // namespace infield

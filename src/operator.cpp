#include "infield/operator.h"

#include <algorithm>
#include <utility>

#include "infield/error.h"
#include "infield/linear_operators.h"

namespace infield {

Operator::Operator(Space domain, Space target)
    : domain_(std::move(domain)), target_(std::move(target)) {}

Field Operator::apply(const Field& x) const {
  check_same_space(domain_, x.space(), name() + "::apply", "x");
  return Field(target_, evaluate(x.values()));
}

Linearization Operator::linearize(const Field& x) const {
  check_same_space(domain_, x.space(), name() + "::linearize", "x");
  FlatLinearization lin = linearize_flat(x.values());
  return {Field(target_, std::move(lin.value)), std::move(lin.jacobian)};
}

// ---- LinearOperator ---------------------------------------------------------------------------

const Space& LinearOperator::input_space(Mode mode) const {
  return (mode == kTimes || mode == kAdjointInverseTimes) ? domain() : target();
}

const Space& LinearOperator::output_space(Mode mode) const {
  return (mode == kTimes || mode == kAdjointInverseTimes) ? target() : domain();
}

void LinearOperator::apply_mode(Mode mode, ConstVectorRef x, VectorRef out) const {
  if (!supports(mode)) [[unlikely]] {
    static constexpr const char* kNames[] = {"", "times", "adjoint_times", "", "inverse_times",
                                             "", "", "", "adjoint_inverse_times"};
    throw UnsupportedOperation(name() + ": does not support " + kNames[mode]);
  }
  switch (mode) {
    case kTimes: apply_times(x, out); break;
    case kAdjointTimes: apply_adjoint(x, out); break;
    case kInverseTimes: apply_inverse(x, out); break;
    case kAdjointInverseTimes: apply_adjoint_inverse(x, out); break;
  }
}

namespace {
Field apply_checked(const LinearOperator& op, LinearOperator::Mode mode, const Field& x,
                    const char* mode_name) {
  check_same_space(op.input_space(mode), x.space(), op.name() + "::" + mode_name, "x");
  Eigen::VectorXd out(op.output_space(mode).size());
  op.apply_mode(mode, x.values(), out);
  return Field(op.output_space(mode), std::move(out));
}
}  // namespace

Field LinearOperator::times(const Field& x) const { return apply_checked(*this, kTimes, x, "times"); }
Field LinearOperator::adjoint_times(const Field& y) const {
  return apply_checked(*this, kAdjointTimes, y, "adjoint_times");
}
Field LinearOperator::inverse_times(const Field& y) const {
  return apply_checked(*this, kInverseTimes, y, "inverse_times");
}
Field LinearOperator::adjoint_inverse_times(const Field& x) const {
  return apply_checked(*this, kAdjointInverseTimes, x, "adjoint_inverse_times");
}

void LinearOperator::apply_inverse(ConstVectorRef, VectorRef) const {
  throw UnsupportedOperation(name() + ": does not support inverse_times");
}
void LinearOperator::apply_adjoint_inverse(ConstVectorRef, VectorRef) const {
  throw UnsupportedOperation(name() + ": does not support adjoint_inverse_times");
}

Eigen::VectorXd LinearOperator::evaluate(ConstVectorRef x) const {
  Eigen::VectorXd y(target().size());
  apply_times(x, y);
  return y;
}

FlatLinearization LinearOperator::linearize_flat(ConstVectorRef x) const {
  return {evaluate(x), self()};
}

Eigen::VectorXd LinearOperator::evaluate_consuming(Eigen::VectorXd&& x) const {
  if (!in_place_safe() || target().size() != x.size()) return evaluate(x);
  apply_times(x, x);
  return std::move(x);
}

FlatLinearization LinearOperator::linearize_consuming(Eigen::VectorXd&& x) const {
  return {evaluate_consuming(std::move(x)), self()};
}

LinearOperatorPtr LinearOperator::self() const {
  return std::static_pointer_cast<const LinearOperator>(shared_from_this());
}

// ---- Linear combinators -------------------------------------------------------------------------
namespace {

unsigned swap_adjoint_bits(unsigned caps) {
  unsigned out = 0;
  if (caps & LinearOperator::kTimes) out |= LinearOperator::kAdjointTimes;
  if (caps & LinearOperator::kAdjointTimes) out |= LinearOperator::kTimes;
  if (caps & LinearOperator::kInverseTimes) out |= LinearOperator::kAdjointInverseTimes;
  if (caps & LinearOperator::kAdjointInverseTimes) out |= LinearOperator::kInverseTimes;
  return out;
}

unsigned swap_inverse_bits(unsigned caps) {
  unsigned out = 0;
  if (caps & LinearOperator::kTimes) out |= LinearOperator::kInverseTimes;
  if (caps & LinearOperator::kInverseTimes) out |= LinearOperator::kTimes;
  if (caps & LinearOperator::kAdjointTimes) out |= LinearOperator::kAdjointInverseTimes;
  if (caps & LinearOperator::kAdjointInverseTimes) out |= LinearOperator::kAdjointTimes;
  return out;
}

/// ops[0] ∘ ops[1] ∘ ... ∘ ops[n-1]; flattened so that long chains are one object.
class ChainLinearOperator final : public LinearOperator {
 public:
  explicit ChainLinearOperator(const std::vector<LinearOperatorPtr>& ops)
      : LinearOperator(ops.back()->domain(), ops.front()->target()) {
    for (const auto& op : ops) {  // flattened, so that in-place runs see every step
      if (const auto* chain = dynamic_cast<const ChainLinearOperator*>(op.get()))
        ops_.insert(ops_.end(), chain->ops_.begin(), chain->ops_.end());
      else
        ops_.push_back(op);
    }
    caps_ = kTimes | kAdjointTimes | kInverseTimes | kAdjointInverseTimes;
    for (const auto& op : ops_) caps_ &= op->capabilities();
  }
  unsigned capabilities() const override { return caps_; }
  std::string name() const override { return "ChainLinearOperator"; }
  const std::vector<LinearOperatorPtr>& ops() const { return ops_; }

  void apply_times(ConstVectorRef x, VectorRef out) const override { run(kTimes, x, out, true); }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    run(kAdjointTimes, y, out, false);
  }
  void apply_inverse(ConstVectorRef y, VectorRef out) const override {
    run(kInverseTimes, y, out, false);
  }
  void apply_adjoint_inverse(ConstVectorRef x, VectorRef out) const override {
    run(kAdjointInverseTimes, x, out, true);
  }

 private:
  // Forward modes run from the innermost operator (the back) outwards; the others the other way.
  void run(Mode mode, ConstVectorRef x, VectorRef out, bool from_back) const {
    const std::size_t n = ops_.size();
    auto op_at = [&](std::size_t k) -> const LinearOperator& {
      return *(from_back ? ops_[n - 1 - k] : ops_[k]);
    };
    if (n == 1) return op_at(0).apply_mode(mode, x, out);
    // When every later step maps out.size() values to as many and may work in place, the whole
    // chain runs inside `out` with no allocation (chains of diagonal Jacobians do).
    bool in_place = op_at(0).output_space(mode).size() == out.size();
    for (std::size_t k = 1; k < n && in_place; ++k)
      in_place = op_at(k).in_place_safe() && op_at(k).input_space(mode).size() == out.size() &&
                 op_at(k).output_space(mode).size() == out.size();
    if (in_place) {
      op_at(0).apply_mode(mode, x, out);
      for (std::size_t k = 1; k < n; ++k) op_at(k).apply_mode(mode, out, out);
      return;
    }
    // Otherwise two buffers alternate, so a chain allocates at most twice per application.
    Eigen::VectorXd current(op_at(0).output_space(mode).size()), next;
    op_at(0).apply_mode(mode, x, current);
    for (std::size_t k = 1; k + 1 < n; ++k) {
      next.resize(op_at(k).output_space(mode).size());
      op_at(k).apply_mode(mode, current, next);
      current.swap(next);
    }
    op_at(n - 1).apply_mode(mode, current, out);
  }
  std::vector<LinearOperatorPtr> ops_;
  unsigned caps_;
};

/// sum_k c_k A_k.
class LinearCombination final : public LinearOperator {
 public:
  explicit LinearCombination(std::vector<std::pair<double, LinearOperatorPtr>> terms)
      : LinearOperator(terms.front().second->domain(), terms.front().second->target()),
        terms_(std::move(terms)) {
    caps_ = kTimes | kAdjointTimes;
    for (const auto& [c, op] : terms_) caps_ &= op->capabilities();
    if (terms_.size() == 1 && terms_[0].first != 0.0)  // c A is invertible when A is
      caps_ |= terms_[0].second->capabilities() & (kInverseTimes | kAdjointInverseTimes);
  }
  unsigned capabilities() const override { return caps_; }
  std::string name() const override { return "LinearCombination"; }
  const std::vector<std::pair<double, LinearOperatorPtr>>& terms() const { return terms_; }

  void apply_times(ConstVectorRef x, VectorRef out) const override { run(kTimes, x, out); }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    run(kAdjointTimes, y, out);
  }
  void apply_inverse(ConstVectorRef y, VectorRef out) const override {
    terms_[0].second->apply_mode(kInverseTimes, y, out);
    out /= terms_[0].first;
  }
  void apply_adjoint_inverse(ConstVectorRef x, VectorRef out) const override {
    terms_[0].second->apply_mode(kAdjointInverseTimes, x, out);
    out /= terms_[0].first;
  }

 private:
  void run(Mode mode, ConstVectorRef x, VectorRef out) const {
    terms_[0].second->apply_mode(mode, x, out);
    if (terms_[0].first != 1.0) out *= terms_[0].first;
    if (terms_.size() == 1) return;
    Eigen::VectorXd tmp(out.size());
    for (std::size_t k = 1; k < terms_.size(); ++k) {
      terms_[k].second->apply_mode(mode, x, tmp);
      out += terms_[k].first * tmp;
    }
  }
  std::vector<std::pair<double, LinearOperatorPtr>> terms_;
  unsigned caps_;
};

class AdjointView final : public LinearOperator {
 public:
  explicit AdjointView(LinearOperatorPtr op)
      : LinearOperator(op->target(), op->domain()), op_(std::move(op)) {}
  unsigned capabilities() const override { return swap_adjoint_bits(op_->capabilities()); }
  std::string name() const override { return "Adjoint(" + op_->name() + ")"; }
  const LinearOperatorPtr& base() const { return op_; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    op_->apply_mode(kAdjointTimes, x, out);
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    op_->apply_mode(kTimes, y, out);
  }
  void apply_inverse(ConstVectorRef y, VectorRef out) const override {
    op_->apply_mode(kAdjointInverseTimes, y, out);
  }
  void apply_adjoint_inverse(ConstVectorRef x, VectorRef out) const override {
    op_->apply_mode(kInverseTimes, x, out);
  }

 private:
  LinearOperatorPtr op_;
};

class InverseView final : public LinearOperator {
 public:
  explicit InverseView(LinearOperatorPtr op)
      : LinearOperator(op->target(), op->domain()), op_(std::move(op)) {}
  unsigned capabilities() const override { return swap_inverse_bits(op_->capabilities()); }
  std::string name() const override { return "Inverse(" + op_->name() + ")"; }
  const LinearOperatorPtr& base() const { return op_; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    op_->apply_mode(kInverseTimes, x, out);
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    op_->apply_mode(kAdjointInverseTimes, y, out);
  }
  void apply_inverse(ConstVectorRef y, VectorRef out) const override {
    op_->apply_mode(kTimes, y, out);
  }
  void apply_adjoint_inverse(ConstVectorRef x, VectorRef out) const override {
    op_->apply_mode(kAdjointTimes, x, out);
  }

 private:
  LinearOperatorPtr op_;
};

void check_not_null(const void* p, std::string_view function, std::string_view argument) {
  check_argument(p != nullptr, function, argument, "must not be null");
}

}  // namespace

LinearOperatorPtr compose(LinearOperatorPtr outer, LinearOperatorPtr inner) {
  check_not_null(outer.get(), "compose", "outer");
  check_not_null(inner.get(), "compose", "inner");
  check_same_space(outer->domain(), inner->target(), "compose",
                   "inner's target vs outer's domain:");
  std::vector<LinearOperatorPtr> ops{std::move(outer), std::move(inner)};
  return std::make_shared<ChainLinearOperator>(std::move(ops));
}

namespace {
LinearOperatorPtr combine(double ca, LinearOperatorPtr a, double cb, LinearOperatorPtr b,
                          std::string_view fn) {
  check_not_null(a.get(), fn, "left");
  check_not_null(b.get(), fn, "right");
  check_same_space(a->domain(), b->domain(), fn, "right operand's domain");
  check_same_space(a->target(), b->target(), fn, "right operand's target");
  return std::make_shared<LinearCombination>(
      std::vector<std::pair<double, LinearOperatorPtr>>{{ca, std::move(a)}, {cb, std::move(b)}});
}
}  // namespace

LinearOperatorPtr operator+(LinearOperatorPtr a, LinearOperatorPtr b) {
  return combine(1.0, std::move(a), 1.0, std::move(b), "operator+");
}
LinearOperatorPtr operator-(LinearOperatorPtr a, LinearOperatorPtr b) {
  return combine(1.0, std::move(a), -1.0, std::move(b), "operator-");
}

LinearOperatorPtr scale(double factor, LinearOperatorPtr op) {
  check_not_null(op.get(), "scale", "op");
  check_finite(factor, "scale", "factor");
  return std::make_shared<LinearCombination>(
      std::vector<std::pair<double, LinearOperatorPtr>>{{factor, std::move(op)}});
}

LinearOperatorPtr adjoint(LinearOperatorPtr op) {
  check_not_null(op.get(), "adjoint", "op");
  if (const auto* view = dynamic_cast<const AdjointView*>(op.get())) return view->base();
  return std::make_shared<AdjointView>(std::move(op));
}

LinearOperatorPtr inverse(LinearOperatorPtr op) {
  check_not_null(op.get(), "inverse", "op");
  if (!op->supports(LinearOperator::kInverseTimes))
    throw UnsupportedOperation("inverse: op " + op->name() +
                               " has no closed-form inverse (use an inverse by conjugate gradient)");
  if (const auto* view = dynamic_cast<const InverseView*>(op.get())) return view->base();
  return std::make_shared<InverseView>(std::move(op));
}

// ---- Nonlinear combinators ----------------------------------------------------------------------
namespace {

class ChainOperator final : public Operator {
 public:
  explicit ChainOperator(std::vector<OperatorPtr> ops)
      : Operator(ops.back()->domain(), ops.front()->target()), ops_(std::move(ops)) {}
  std::string name() const override { return "ChainOperator"; }
  const std::vector<OperatorPtr>& ops() const { return ops_; }

  Eigen::VectorXd evaluate(ConstVectorRef x) const override {
    return run_evaluate(ops_.back()->evaluate(x));
  }
  Eigen::VectorXd evaluate_consuming(Eigen::VectorXd&& x) const override {
    return run_evaluate(ops_.back()->evaluate_consuming(std::move(x)));
  }
  FlatLinearization linearize_flat(ConstVectorRef x) const override {
    return run_linearize(ops_.back()->linearize_flat(x));
  }
  FlatLinearization linearize_consuming(Eigen::VectorXd&& x) const override {
    return run_linearize(ops_.back()->linearize_consuming(std::move(x)));
  }

 private:
  // Each intermediate is consumed by the next operator, which may reuse its storage.
  Eigen::VectorXd run_evaluate(Eigen::VectorXd current) const {
    for (std::size_t k = ops_.size() - 1; k-- > 0;)
      current = ops_[k]->evaluate_consuming(std::move(current));
    return current;
  }
  FlatLinearization run_linearize(FlatLinearization lin) const {
    std::vector<LinearOperatorPtr> jacobians{std::move(lin.jacobian)};
    for (std::size_t k = ops_.size() - 1; k-- > 0;) {
      FlatLinearization next = ops_[k]->linearize_consuming(std::move(lin.value));
      jacobians.push_back(std::move(next.jacobian));
      lin.value = std::move(next.value);
    }
    std::reverse(jacobians.begin(), jacobians.end());
    lin.jacobian = std::make_shared<ChainLinearOperator>(std::move(jacobians));
    return lin;
  }

  std::vector<OperatorPtr> ops_;
};

class SumOperator final : public Operator {
 public:
  SumOperator(OperatorPtr a, double cb, OperatorPtr b)
      : Operator(a->domain(), a->target()), a_(std::move(a)), b_(std::move(b)), cb_(cb) {}
  std::string name() const override { return "SumOperator"; }
  Eigen::VectorXd evaluate(ConstVectorRef x) const override {
    Eigen::VectorXd y = a_->evaluate(x);
    y += cb_ * b_->evaluate(x);
    return y;
  }
  FlatLinearization linearize_flat(ConstVectorRef x) const override {
    FlatLinearization la = a_->linearize_flat(x), lb = b_->linearize_flat(x);
    la.value += cb_ * lb.value;
    la.jacobian = std::make_shared<LinearCombination>(std::vector<std::pair<double, LinearOperatorPtr>>{
        {1.0, std::move(la.jacobian)}, {cb_, std::move(lb.jacobian)}});
    return la;
  }

 private:
  OperatorPtr a_, b_;
  double cb_;
};

class ScaledOperator final : public Operator {
 public:
  ScaledOperator(double factor, OperatorPtr op)
      : Operator(op->domain(), op->target()), op_(std::move(op)), factor_(factor) {}
  std::string name() const override { return "ScaledOperator"; }
  Eigen::VectorXd evaluate(ConstVectorRef x) const override {
    Eigen::VectorXd y = op_->evaluate(x);
    y *= factor_;
    return y;
  }
  FlatLinearization linearize_flat(ConstVectorRef x) const override {
    FlatLinearization lin = op_->linearize_flat(x);
    lin.value *= factor_;
    lin.jacobian = scale(factor_, std::move(lin.jacobian));
    return lin;
  }

 private:
  OperatorPtr op_;
  double factor_;
};

/// Jacobian of f * g: v -> g .* (Jf v) + f .* (Jg v); adjoint u -> Jf^T (g .* u) + Jg^T (f .* u).
class ProductJacobian final : public LinearOperator {
 public:
  ProductJacobian(Space domain, Space target, Eigen::VectorXd f, Eigen::VectorXd g,
                  LinearOperatorPtr jf, LinearOperatorPtr jg)
      : LinearOperator(std::move(domain), std::move(target)),
        f_(std::move(f)), g_(std::move(g)), jf_(std::move(jf)), jg_(std::move(jg)) {}
  std::string name() const override { return "ProductJacobian"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    Eigen::VectorXd tmp(out.size());
    jf_->apply_times(x, out);
    jg_->apply_times(x, tmp);
    out.array() = out.array() * g_.array() + tmp.array() * f_.array();
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    Eigen::VectorXd weighted = y.cwiseProduct(g_), tmp(out.size());
    jf_->apply_adjoint(weighted, out);
    weighted = y.cwiseProduct(f_);
    jg_->apply_adjoint(weighted, tmp);
    out += tmp;
  }

 private:
  Eigen::VectorXd f_, g_;
  LinearOperatorPtr jf_, jg_;
};

class ProductOperator final : public Operator {
 public:
  ProductOperator(OperatorPtr f, OperatorPtr g)
      : Operator(f->domain(), f->target()), f_(std::move(f)), g_(std::move(g)) {}
  std::string name() const override { return "ProductOperator"; }
  Eigen::VectorXd evaluate(ConstVectorRef x) const override {
    Eigen::VectorXd y = f_->evaluate(x);
    y.array() *= g_->evaluate(x).array();
    return y;
  }
  FlatLinearization linearize_flat(ConstVectorRef x) const override {
    FlatLinearization lf = f_->linearize_flat(x), lg = g_->linearize_flat(x);
    Eigen::VectorXd value = lf.value.cwiseProduct(lg.value);
    auto jac = std::make_shared<ProductJacobian>(domain(), target(), std::move(lf.value),
                                                 std::move(lg.value), std::move(lf.jacobian),
                                                 std::move(lg.jacobian));
    return {std::move(value), std::move(jac)};
  }

 private:
  OperatorPtr f_, g_;
};

std::vector<OperatorPtr> flatten_chain(const OperatorPtr& op) {
  if (const auto* chain = dynamic_cast<const ChainOperator*>(op.get())) return chain->ops();
  return {op};
}

}  // namespace

OperatorPtr compose(OperatorPtr outer, OperatorPtr inner) {
  check_not_null(outer.get(), "compose", "outer");
  check_not_null(inner.get(), "compose", "inner");
  if (outer->is_linear() && inner->is_linear())
    return compose(std::static_pointer_cast<const LinearOperator>(std::move(outer)),
                   std::static_pointer_cast<const LinearOperator>(std::move(inner)));
  check_same_space(outer->domain(), inner->target(), "compose",
                   "inner's target vs outer's domain:");
  std::vector<OperatorPtr> ops = flatten_chain(outer);
  std::vector<OperatorPtr> rest = flatten_chain(inner);
  ops.insert(ops.end(), rest.begin(), rest.end());
  return std::make_shared<ChainOperator>(std::move(ops));
}

namespace {
OperatorPtr add(OperatorPtr a, double cb, OperatorPtr b, std::string_view fn) {
  check_not_null(a.get(), fn, "left");
  check_not_null(b.get(), fn, "right");
  if (a->is_linear() && b->is_linear())
    return combine(1.0, std::static_pointer_cast<const LinearOperator>(std::move(a)), cb,
                   std::static_pointer_cast<const LinearOperator>(std::move(b)), fn);
  check_same_space(a->domain(), b->domain(), fn, "right operand's domain");
  check_same_space(a->target(), b->target(), fn, "right operand's target");
  return std::make_shared<SumOperator>(std::move(a), cb, std::move(b));
}
}  // namespace

OperatorPtr operator+(OperatorPtr a, OperatorPtr b) {
  return add(std::move(a), 1.0, std::move(b), "operator+");
}
OperatorPtr operator-(OperatorPtr a, OperatorPtr b) {
  return add(std::move(a), -1.0, std::move(b), "operator-");
}

OperatorPtr scale(double factor, OperatorPtr op) {
  check_not_null(op.get(), "scale", "op");
  check_finite(factor, "scale", "factor");
  if (op->is_linear()) return scale(factor, std::static_pointer_cast<const LinearOperator>(op));
  return std::make_shared<ScaledOperator>(factor, std::move(op));
}

OperatorPtr multiply(OperatorPtr f, OperatorPtr g) {
  check_not_null(f.get(), "multiply", "f");
  check_not_null(g.get(), "multiply", "g");
  check_same_space(f->domain(), g->domain(), "multiply", "g's domain");
  check_same_space(f->target(), g->target(), "multiply", "g's target");
  return std::make_shared<ProductOperator>(std::move(f), std::move(g));
}

namespace {
/// op(x) + c: the Jacobian is op's.
class ShiftedOperator final : public Operator {
 public:
  ShiftedOperator(OperatorPtr op, Eigen::VectorXd constant)
      : Operator(op->domain(), op->target()), op_(std::move(op)), constant_(std::move(constant)) {}
  std::string name() const override { return "ShiftedOperator"; }
  Eigen::VectorXd evaluate(ConstVectorRef x) const override {
    Eigen::VectorXd y = op_->evaluate(x);
    y += constant_;
    return y;
  }
  Eigen::VectorXd evaluate_consuming(Eigen::VectorXd&& x) const override {
    Eigen::VectorXd y = op_->evaluate_consuming(std::move(x));
    y += constant_;
    return y;
  }
  FlatLinearization linearize_flat(ConstVectorRef x) const override {
    FlatLinearization lin = op_->linearize_flat(x);
    lin.value += constant_;
    return lin;
  }
  FlatLinearization linearize_consuming(Eigen::VectorXd&& x) const override {
    FlatLinearization lin = op_->linearize_consuming(std::move(x));
    lin.value += constant_;
    return lin;
  }

 private:
  OperatorPtr op_;
  Eigen::VectorXd constant_;
};
}  // namespace

OperatorPtr add_constant(OperatorPtr op, Eigen::VectorXd constant) {
  check_not_null(op.get(), "add_constant", "op");
  check_argument(constant.size() == op->target().size(), "add_constant", "constant",
                 "has " + std::to_string(constant.size()) + " entries, the target " +
                     op->target().to_string() + " has " + std::to_string(op->target().size()));
  check_finite(constant, "add_constant", "constant");
  return std::make_shared<ShiftedOperator>(std::move(op), std::move(constant));
}

OperatorPtr add_constant(OperatorPtr op, double constant) {
  check_not_null(op.get(), "add_constant", "op");
  return add_constant(op, Eigen::VectorXd::Constant(op->target().size(), constant));
}

// ---- User-defined operators ---------------------------------------------------------------------
namespace {

class UserLinearOperator final : public LinearOperator {
 public:
  UserLinearOperator(Space domain, Space target, LinearFunction times, LinearFunction adjoint,
                     std::string name)
      : LinearOperator(std::move(domain), std::move(target)),
        times_(std::move(times)), adjoint_(std::move(adjoint)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    Eigen::VectorXd y = times_(x);
    check_argument(y.size() == out.size(), name_, "times", "returned a vector of the wrong size");
    out = y;
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    Eigen::VectorXd x = adjoint_(y);
    check_argument(x.size() == out.size(), name_, "adjoint_times",
                   "returned a vector of the wrong size");
    out = x;
  }

 private:
  LinearFunction times_, adjoint_;
  std::string name_;
};

class UserOperator final : public Operator {
 public:
  UserOperator(Space domain, Space target, ValueFunction value, DerivativeFunction jvp,
               DerivativeFunction vjp, std::string name)
      : Operator(std::move(domain), std::move(target)),
        value_(std::move(value)), jvp_(std::move(jvp)), vjp_(std::move(vjp)),
        name_(std::move(name)) {}
  std::string name() const override { return name_; }
  Eigen::VectorXd evaluate(ConstVectorRef x) const override {
    Eigen::VectorXd y = value_(x);
    check_argument(y.size() == target().size(), name_, "value",
                   "returned " + std::to_string(y.size()) + " entries, the target " +
                       target().to_string() + " has " + std::to_string(target().size()));
    return y;
  }
  FlatLinearization linearize_flat(ConstVectorRef x) const override {
    auto point = std::make_shared<const Eigen::VectorXd>(x);
    auto jac = std::make_shared<UserLinearOperator>(
        domain(), target(), [jvp = jvp_, point](ConstVectorRef v) { return jvp(*point, v); },
        [vjp = vjp_, point](ConstVectorRef u) { return vjp(*point, u); }, name_ + "Jacobian");
    return {evaluate(x), std::move(jac)};
  }

 private:
  ValueFunction value_;
  DerivativeFunction jvp_, vjp_;
  std::string name_;
};

}  // namespace

OperatorPtr make_operator(Space domain, Space target, ValueFunction value, DerivativeFunction jvp,
                          DerivativeFunction vjp, std::string name) {
  check_argument(value && jvp && vjp, "make_operator", "value, jvp, vjp", "must all be given");
  return std::make_shared<UserOperator>(std::move(domain), std::move(target), std::move(value),
                                        std::move(jvp), std::move(vjp), std::move(name));
}

LinearOperatorPtr make_linear_operator(Space domain, Space target, LinearFunction times,
                                       LinearFunction adjoint_times, std::string name) {
  check_argument(times && adjoint_times, "make_linear_operator", "times, adjoint_times",
                 "must both be given");
  return std::make_shared<UserLinearOperator>(std::move(domain), std::move(target),
                                              std::move(times), std::move(adjoint_times),
                                              std::move(name));
}

}  // namespace infield

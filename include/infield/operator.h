#pragma once
/// @file operator.h
/// @brief Differentiable operators, linear operators and their combinators.
///
/// An Operator maps a Field on its domain() to a Field on its target(). `linearize(x)` returns the
/// value together with the Jacobian at x as a LinearOperator: `times` is the Jacobian-vector product
/// (JVP) and `adjoint_times` the vector-Jacobian product (VJP). Jacobians are built from what the
/// forward pass kept (e.g. a pointwise function keeps its derivative), so applying one never
/// re-evaluates the model.
///
/// Operators are immutable and shared: create them with the factory functions and hold them as
/// OperatorPtr / LinearOperatorPtr. Every combinator checks spaces when it is built and throws
/// DomainMismatch naming both spaces.

#include <Eigen/Core>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "infield/field.h"

namespace infield {

class Operator;
class LinearOperator;
using OperatorPtr = std::shared_ptr<const Operator>;
using LinearOperatorPtr = std::shared_ptr<const LinearOperator>;

/// Value and Jacobian of an operator at a point.
struct Linearization {
  Field value;
  LinearOperatorPtr jacobian;
};

/// Value and Jacobian on flat vectors; what operators exchange internally.
struct FlatLinearization {
  Eigen::VectorXd value;
  LinearOperatorPtr jacobian;
};

/// A differentiable map from domain() to target().
class Operator : public std::enable_shared_from_this<Operator> {
 public:
  Operator(Space domain, Space target);
  virtual ~Operator() = default;
  Operator(const Operator&) = delete;
  Operator& operator=(const Operator&) = delete;

  const Space& domain() const { return domain_; }
  const Space& target() const { return target_; }
  /// True for LinearOperator and its subclasses.
  virtual bool is_linear() const { return false; }

  /// f(x). Throws DomainMismatch if x is not on domain().
  Field apply(const Field& x) const;
  /// f(x) and its Jacobian at x. Throws DomainMismatch if x is not on domain().
  Linearization linearize(const Field& x) const;

  /// Extension points on flat vectors of size domain().size(). Called by apply/linearize and by
  /// combinators after the spaces were checked once.
  virtual Eigen::VectorXd evaluate(ConstVectorRef x) const = 0;
  virtual FlatLinearization linearize_flat(ConstVectorRef x) const = 0;
  /// As evaluate / linearize_flat, for an input the caller no longer needs: an operator may reuse
  /// its storage for the result (pointwise functions do), so chains run without allocating.
  virtual Eigen::VectorXd evaluate_consuming(Eigen::VectorXd&& x) const { return evaluate(x); }
  virtual FlatLinearization linearize_consuming(Eigen::VectorXd&& x) const {
    return linearize_flat(x);
  }

  /// A short description of the operator, for error messages and debugging.
  virtual std::string name() const { return "Operator"; }

 private:
  Space domain_;
  Space target_;
};

/// A linear operator A: domain -> target with the modes times (A x), adjoint_times (A^T y) and,
/// where it exists in closed form, inverse_times (A^{-1} y) and adjoint_inverse_times (A^{-T} x).
class LinearOperator : public Operator {
 public:
  /// Capability bits, see capabilities().
  enum Mode : unsigned {
    kTimes = 1u,
    kAdjointTimes = 2u,
    kInverseTimes = 4u,
    kAdjointInverseTimes = 8u,
  };

  using Operator::Operator;
  bool is_linear() const final { return true; }
  /// Bitwise OR of the Modes this operator supports (times and adjoint at least).
  virtual unsigned capabilities() const { return kTimes | kAdjointTimes; }
  bool supports(Mode mode) const { return (capabilities() & mode) != 0; }
  /// True if every supported mode may be called with `out` aliasing `x` exactly (diagonal-like
  /// operators); chains of such operators then run in one buffer.
  virtual bool in_place_safe() const { return false; }

  Field times(const Field& x) const;
  Field adjoint_times(const Field& y) const;
  Field inverse_times(const Field& y) const;
  Field adjoint_inverse_times(const Field& x) const;

  /// out = op(x) for the given mode; `out` is preallocated with the right size and must not alias
  /// `x`. Throws UnsupportedOperation for a mode not in capabilities().
  void apply_mode(Mode mode, ConstVectorRef x, VectorRef out) const;
  /// The space a mode reads from / writes to.
  const Space& input_space(Mode mode) const;
  const Space& output_space(Mode mode) const;

  // Extension points (see apply_mode).
  virtual void apply_times(ConstVectorRef x, VectorRef out) const = 0;
  virtual void apply_adjoint(ConstVectorRef y, VectorRef out) const = 0;
  virtual void apply_inverse(ConstVectorRef y, VectorRef out) const;
  virtual void apply_adjoint_inverse(ConstVectorRef x, VectorRef out) const;

  Eigen::VectorXd evaluate(ConstVectorRef x) const final;
  FlatLinearization linearize_flat(ConstVectorRef x) const final;
  Eigen::VectorXd evaluate_consuming(Eigen::VectorXd&& x) const final;
  FlatLinearization linearize_consuming(Eigen::VectorXd&& x) const final;
  std::string name() const override { return "LinearOperator"; }

  /// This operator as a shared pointer (operators are always owned by shared pointers).
  LinearOperatorPtr self() const;
};

// ---- Combinators ------------------------------------------------------------------------------

/// outer ∘ inner (apply inner first); requires inner->target() == outer->domain().
LinearOperatorPtr compose(LinearOperatorPtr outer, LinearOperatorPtr inner);
OperatorPtr compose(OperatorPtr outer, OperatorPtr inner);
/// compose(a, compose(b, c, ...)).
template <typename A, typename B, typename C, typename... Rest>
auto compose(A a, B b, C c, Rest... rest) {
  return compose(std::move(a), compose(std::move(b), std::move(c), std::move(rest)...));
}

/// Sum of operators on the same domain and target.
LinearOperatorPtr operator+(LinearOperatorPtr a, LinearOperatorPtr b);
LinearOperatorPtr operator-(LinearOperatorPtr a, LinearOperatorPtr b);
OperatorPtr operator+(OperatorPtr a, OperatorPtr b);
OperatorPtr operator-(OperatorPtr a, OperatorPtr b);
/// c * op.
LinearOperatorPtr scale(double factor, LinearOperatorPtr op);
OperatorPtr scale(double factor, OperatorPtr op);
/// Pointwise product f(x) * g(x) of two operators with the same domain and target (DomainTuples).
OperatorPtr multiply(OperatorPtr f, OperatorPtr g);

/// x -> op(x) + constant (one entry per target value, finite); the Jacobian is op's.
OperatorPtr add_constant(OperatorPtr op, Eigen::VectorXd constant);
/// x -> op(x) + constant in every entry.
OperatorPtr add_constant(OperatorPtr op, double constant);

/// The adjoint A^T as an operator (a view; adjoint(adjoint(A)) is A).
LinearOperatorPtr adjoint(LinearOperatorPtr op);
/// The inverse A^{-1} as an operator; requires A to support inverse_times.
LinearOperatorPtr inverse(LinearOperatorPtr op);

// ---- User-defined operators -------------------------------------------------------------------

/// y = f(x).
using ValueFunction = std::function<Eigen::VectorXd(ConstVectorRef x)>;
/// dy = J(x) dx (JVP) or dx = J(x)^T dy (VJP).
using DerivativeFunction = std::function<Eigen::VectorXd(ConstVectorRef x, ConstVectorRef v)>;
/// y = A x or x = A^T y.
using LinearFunction = std::function<Eigen::VectorXd(ConstVectorRef v)>;

/// A differentiable operator from its value, JVP and VJP. The Jacobian of linearize(x) keeps a
/// copy of x and calls jvp/vjp with it. Check it with check_jacobian().
OperatorPtr make_operator(Space domain, Space target, ValueFunction value, DerivativeFunction jvp,
                          DerivativeFunction vjp, std::string name = "UserOperator");
/// A linear operator from its forward and adjoint products. Check it with check_linear_operator().
LinearOperatorPtr make_linear_operator(Space domain, Space target, LinearFunction times,
                                       LinearFunction adjoint_times,
                                       std::string name = "UserLinearOperator");

}  // namespace infield

#pragma once
/// @file linear_operators.h
/// @brief The library of linear operators. Each factory checks its arguments (shapes, finiteness)
/// and throws InvalidArgument or DomainMismatch with the argument's name.

#include <Eigen/Core>
#include <string>
#include <vector>

#include "infield/operator.h"

namespace infield {

/// x -> c x on `space`; inverse 1/c when c != 0.
LinearOperatorPtr scaling_operator(Space space, double factor);
/// The identity on `space`.
LinearOperatorPtr identity_operator(Space space);
/// x -> diag .* x; inverse where no entry is zero.
LinearOperatorPtr diagonal_operator(Space space, Eigen::VectorXd diagonal);
/// x -> M x with a dense matrix (rows = target size, columns = domain size). A square M offers the
/// inverse modes, computed through an LU factorisation on first use; applying them to a singular
/// M throws UnsupportedOperation then (the factorisation is not paid for at construction).
LinearOperatorPtr matrix_operator(Space domain, Space target, Eigen::MatrixXd matrix);
/// Keeps the entries of a field (on `domain`, a DomainTuple) where `keep` is true, in increasing
/// index order; the target is Unstructured(count). The adjoint scatters back, zeros elsewhere.
LinearOperatorPtr mask_operator(Space domain, const std::vector<bool>& keep);
/// Sums a field on a DomainTuple over its domain number `index` (e.g. over the batch of
/// batch x pixels); the target is the tuple without that domain.
LinearOperatorPtr contraction_operator(const DomainTuple& domain, std::size_t index);
/// The adjoint of the contraction: copies a field on domain.without(index) along domain `index`.
LinearOperatorPtr broadcast_operator(const DomainTuple& domain, std::size_t index);
/// A batch of small dense blocks: domain (batch, in), target (batch, out), y_b = B_b x_b.
/// `blocks` holds one out x in matrix per batch entry; inverse per block when square.
LinearOperatorPtr block_diagonal_operator(DomainPtr batch, DomainPtr in, DomainPtr out,
                                          std::vector<Eigen::MatrixXd> blocks);
/// The same dense matrix applied to every datum of a batch: domain (batch, in), target
/// (batch, out), y_b = W x_b. Evaluated as one GEMM, Y = X W^T, with X and Y the batch-first
/// row-major matrices of the fields.
LinearOperatorPtr batch_matrix_operator(DomainPtr batch, DomainPtr in, DomainPtr out,
                                        Eigen::MatrixXd matrix);
/// The part `key` of a MultiField on `multi` (the adjoint embeds a field, zeros elsewhere).
LinearOperatorPtr field_adapter(const MultiDomain& multi, const std::string& key);
/// The parts of a MultiField on `multi` named by `sub` (same keys and domains), as a MultiField on
/// `sub`; the adjoint embeds them, zeros elsewhere. Models use it to run their small parameter
/// chains on `sub`, so that their adjoints build small vectors and embed once.
LinearOperatorPtr field_adapter(const MultiDomain& multi, const MultiDomain& sub);
/// bun^T cheese bun (cheese defaults to the identity): self-adjoint when cheese is.
LinearOperatorPtr sandwich(LinearOperatorPtr bun, LinearOperatorPtr cheese = nullptr);

}  // namespace infield

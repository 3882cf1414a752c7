#pragma once
/// @file prior_transforms.h
/// @brief Prior transforms: differentiable operators that map standard-normal excitations xi to
/// samples of a prior distribution, pointwise, by the quantile method
///
///     x = Q(Phi(xi)),
///
/// with Q the quantile function of the prior and Phi the standard-normal CDF. If xi ~ N(0, 1) then
/// x follows the prior exactly, so a model can keep a white standard-normal prior on xi and put the
/// shape of the prior into the operator (the standardisation of NIFTy).
///
/// Each transform acts on every value of a Space (a DomainTuple or a MultiDomain alike); its
/// Jacobian is the diagonal operator diag(dx/dxi) with
///
///     dx/dxi = phi(xi) / p(x),
///
/// phi the standard-normal density and p the prior's density, kept from the forward pass.
///
/// Numerics: for xi > 0 the upper tail is used, x = Q_c(Phi(-xi)) with Q_c the complementary
/// quantile, so that Phi(xi) is never rounded to 1 (at xi = 8, 1 - Phi(xi) = 6.2e-16 would keep
/// one significant digit); the tail Phi(-|xi|) and phi(xi) are accurate to a few ulps; closed forms
/// are used where they exist, and densities that underflow are handled in logs. Values stay finite
/// and inside the support, with finite positive derivatives, for every |xi| <= 8 (the inverse
/// gamma: unless its exact quantile exceeds the double range, for shape_alpha below ~0.05). The
/// uniform and Laplace values stay finite and inside the support for every finite xi. Beyond
/// |xi| ~ 37.5, where Phi(-|xi|) underflows (a standard-normal draw lands there with probability
/// 1e-300), the uniform's derivative underflows to 0 and the inverse gamma saturates at 0 and +inf.
///
/// Every function exists in two forms, as in pointwise.h: `lognormal_prior(space, ...)` is the
/// transform on a space and `lognormal_prior(op, ...)` is `compose(lognormal_prior(op->target(),
/// ...), op)`. Bad parameters throw InvalidArgument naming the argument, e.g.
/// `lognormal_prior: std must be positive, got -1.000000`.

#include "infield/operator.h"

namespace infield {

/// Normal prior N(mean, std^2):
///
///     x = mean + std * xi,    dx/dxi = std.
///
/// Requires mean finite and std > 0 (finite).
OperatorPtr normal_prior(Space space, double mean, double std);

/// Log-normal prior with the given mean and standard deviation *of x* (not of log x):
///
///     x = exp(mu + sigma * xi),   dx/dxi = sigma * x,
///     sigma^2 = log(1 + std^2 / mean^2),   mu = log(mean) - sigma^2 / 2,
///
/// so that E[x] = mean and sd[x] = std. Requires mean > 0 and std > 0 (both finite).
OperatorPtr lognormal_prior(Space space, double mean, double std);

/// Uniform prior on (lower, upper):
///
///     x = lower + (upper - lower) Phi(xi)     for xi <= 0,
///     x = upper - (upper - lower) Phi(-xi)    for xi > 0,
///     dx/dxi = (upper - lower) phi(xi).
///
/// Values are kept strictly inside (lower, upper): where the exact value is closer to a bound than
/// the spacing of doubles (|xi| > ~8.3 on the unit interval) the nearest double inside is returned.
/// Requires lower, upper and upper - lower finite, and lower < upper.
OperatorPtr uniform_prior(Space space, double lower, double upper);

/// Inverse-gamma prior with shape alpha and scale beta, density
///
///     p(x) = beta^alpha / Gamma(alpha) x^(-alpha-1) exp(-beta / x),   x > 0,
///
/// (1/x is Gamma-distributed with shape alpha and rate beta):
///
///     x = Q(Phi(xi)) for xi <= 0,   x = Q_c(Phi(-xi)) for xi > 0,
///     dx/dxi = phi(xi) / p(x),
///
/// with Q, Q_c the inverse-gamma quantile and complementary quantile of Boost.Math; the
/// derivative is evaluated as exp(log phi(xi) - log p(x)) where either density underflows.
/// Requires shape_alpha > 0 and scale_beta > 0 (both finite).
OperatorPtr inverse_gamma_prior(Space space, double shape_alpha, double scale_beta);

/// Laplace prior with density p(x) = exp(-|x - location| / scale) / (2 scale), in closed form:
///
///     x = location - scale * sign(xi) * log(2 Phi(-|xi|)),
///     dx/dxi = scale * phi(xi) / Phi(-|xi|),
///
/// with log Phi(-|xi|) and the ratio phi/Phi evaluated from the asymptotic series for |xi| > 30,
/// so values and derivatives stay finite for every finite xi. Requires location finite and
/// scale > 0 (finite).
OperatorPtr laplace_prior(Space space, double location, double scale);

/// The transforms applied after an operator: compose(prior(op->target(), ...), op).
/// Throw InvalidArgument for a null op or bad parameters.
OperatorPtr normal_prior(OperatorPtr op, double mean, double std);
OperatorPtr lognormal_prior(OperatorPtr op, double mean, double std);
OperatorPtr uniform_prior(OperatorPtr op, double lower, double upper);
OperatorPtr inverse_gamma_prior(OperatorPtr op, double shape_alpha, double scale_beta);
OperatorPtr laplace_prior(OperatorPtr op, double location, double scale);

}  // namespace infield

#include "infield/models/correlated_field.h"

#include <cmath>
#include <set>

#include "infield/error.h"
#include "infield/linear_operators.h"
#include "infield/pointwise.h"
#include "infield/prior_transforms.h"

namespace infield {
namespace {

void check_moments(const PriorMoments& m, bool positive, std::string_view fn,
                   std::string_view argument) {
  check_finite(m.mean, fn, argument);
  if (positive) check_positive(m.mean, fn, argument);
  check_positive(m.std, fn, argument);
}

/// A scalar (the empty tuple) copied to every entry of `target`; the adjoint sums.
LinearOperatorPtr scalar_broadcast(const DomainTuple& target) {
  const Eigen::Index n = target.size();
  return make_linear_operator(
      DomainTuple(), target,
      [n](ConstVectorRef x) { return Eigen::VectorXd::Constant(n, x[0]).eval(); },
      [](ConstVectorRef y) { return Eigen::VectorXd::Constant(1, y.sum()).eval(); },
      "ScalarBroadcast");
}

/// log k_j - log k_1 for the bins j >= 1 of a power space, 0 for bin 0.
Eigen::VectorXd relative_log_k(const PowerSpace& ps) {
  const Eigen::VectorXd& k = ps.k();
  Eigen::VectorXd out = Eigen::VectorXd::Zero(k.size());
  for (Eigen::Index j = 1; j < k.size(); ++j) out[j] = std::log(k[j]) - std::log(k[1]);
  return out;
}

/// log k_{t+2} - log k_{t+1}, t = 0 .. bins - 3: the widths of the log-k intervals.
Eigen::VectorXd log_volumes(const PowerSpace& ps) {
  const Eigen::VectorXd& k = ps.k();
  const Eigen::Index m = k.size() - 2;
  Eigen::VectorXd out(m);
  for (Eigen::Index t = 0; t < m; ++t) out[t] = std::log(k[t + 2]) - std::log(k[t + 1]);
  return out;
}

/// Integrates twice over log k: from (2, m) excitations x = (x0, x1), already scaled by their
/// standard deviations, to the power space (m + 2 bins):
///   c_t = sum_{s <= t} x1_s,  y_t = (c_t + c_{t-1}) / 2 * dlogk_t + x0_t,  out_{t+2} = sum_{s<=t} y_s,
/// with out_0 = out_1 = 0: an integrated Wiener process (x1, the slope's increments, integrated by
/// the trapezoid rule) plus a random walk (x0).
LinearOperatorPtr two_log_integrations(const DomainTuple& excitation, const DomainTuple& power,
                                       Eigen::VectorXd dlogk) {
  const Eigen::Index m = dlogk.size();
  auto times = [m, dlogk](ConstVectorRef x) {
    Eigen::VectorXd out = Eigen::VectorXd::Zero(m + 2);
    double c_prev = 0.0, c = 0.0, acc = 0.0;
    for (Eigen::Index t = 0; t < m; ++t) {
      c += x[m + t];
      acc += 0.5 * (c + c_prev) * dlogk[t] + x[t];
      out[t + 2] = acc;
      c_prev = c;
    }
    return out;
  };
  auto adjoint_times = [m, dlogk](ConstVectorRef u) {
    Eigen::VectorXd out(2 * m);
    // U_t = sum_{s >= t} u_{s+2}: the adjoint of the outer cumulative sum.
    Eigen::VectorXd big_u(m + 1);
    big_u[m] = 0.0;
    for (Eigen::Index t = m; t-- > 0;) big_u[t] = big_u[t + 1] + u[t + 2];
    out.head(m) = big_u.head(m);
    // g_c_t = U_t dlogk_t / 2 + U_{t+1} dlogk_{t+1} / 2, then the adjoint of the inner cumsum.
    double acc = 0.0;
    for (Eigen::Index t = m; t-- > 0;) {
      const double next = t + 1 < m ? big_u[t + 1] * dlogk[t + 1] : 0.0;
      acc += 0.5 * (big_u[t] * dlogk[t] + next);
      out[m + t] = acc;
    }
    return out;
  };
  return make_linear_operator(excitation, power, times, adjoint_times, "TwoLogIntegrations");
}

/// x_j - x_last * sc_j with sc = relative log k / its last entry: removes the linear trend in
/// log k that the integrations add, so the slope is set by loglogavgslope alone.
LinearOperatorPtr slope_remover(const DomainTuple& power, Eigen::VectorXd relative_logk) {
  const Eigen::Index n = relative_logk.size();
  Eigen::VectorXd sc = relative_logk / relative_logk[n - 1];
  auto times = [sc, n](ConstVectorRef x) {
    Eigen::VectorXd out = x - x[n - 1] * sc;
    return out;
  };
  auto adjoint_times = [sc, n](ConstVectorRef u) {
    Eigen::VectorXd out = u;
    out[n - 1] -= u.dot(sc);
    return out;
  };
  return make_linear_operator(power, power, times, adjoint_times, "SlopeRemover");
}

/// n_j = e^{a_j} / sqrt(S), S = sum_{j >= 1} counts_j e^{2 a_j}: the amplitude whose modes k != 0
/// have unit total variance (bin 0 is excluded from S and set by the zero mode instead).
OperatorPtr normalization(const DomainTuple& power, Eigen::VectorXd counts) {
  counts[0] = 0.0;
  auto value = [counts](ConstVectorRef a) {
    Eigen::VectorXd e = a.array().exp();
    const double s = counts.dot(e.cwiseAbs2());
    return (e / std::sqrt(s)).eval();
  };
  // With w_i = counts_i e^{2 a_i} / S: dn_j = n_j (da_j - w . da).
  auto weights = [counts](ConstVectorRef a, Eigen::VectorXd& n) {
    Eigen::VectorXd e = a.array().exp();
    Eigen::VectorXd w = counts.cwiseProduct(e.cwiseAbs2());
    const double s = w.sum();
    n = e / std::sqrt(s);
    return (w / s).eval();
  };
  auto jvp = [weights](ConstVectorRef a, ConstVectorRef v) {
    Eigen::VectorXd n;
    Eigen::VectorXd w = weights(a, n);
    return (n.array() * (v.array() - w.dot(v))).matrix().eval();
  };
  auto vjp = [weights](ConstVectorRef a, ConstVectorRef u) {
    Eigen::VectorXd n;
    Eigen::VectorXd w = weights(a, n);
    return (n.cwiseProduct(u) - w * n.dot(u)).eval();
  };
  return make_operator(power, power, value, jvp, vjp, "SpectrumNormalization");
}

/// Diagonal operator that zeroes bin 0 of a power-space field.
LinearOperatorPtr drop_zero_mode(const DomainTuple& power) {
  Eigen::VectorXd d = Eigen::VectorXd::Ones(power.size());
  d[0] = 0.0;
  return diagonal_operator(power, std::move(d));
}

/// The excitation of a product of sub-domains on the harmonic tuple, A .* xi, with
///   A(p) = azm * prod_i n_i[bin_i(p_i)],
/// p_i the pixel of sub-domain i, bin_i its |k| bin and n_i NIFTy's normalised amplitudes (n_i(0)
/// the sub-domain's volume, a constant). The n_i and azm are operators on the small MultiDomain of
/// the spectrum's parameters (`select` picks it from the excitations). Built from broadcasts and
/// pointwise products this took 2m full-size passes with temporaries per Jacobian application and
/// kept A three times per linearisation; here the JVP is
/// A .* (dazm / azm + sum_i (dn_i / n_i)[bin_i]) .* xi + A .* dxi and the VJP bins u .* xi .* A / n_i
/// per sub-domain, one vectorised pass per sub-domain over contiguous blocks, and a linearisation
/// keeps A and xi only. The n_i and azm are positive (exponentials times positive scales), so the
/// ratios are defined, as long as no amplitude underflows to 0 in double precision (a spectrum
/// below 1e-308: its derivatives would then be NaN instead of 0).
class SeparableExcitation final : public Operator {
 public:
  SeparableExcitation(std::vector<OperatorPtr> factors, OperatorPtr azm, LinearOperatorPtr select,
                      const MultiDomain& excitations, const std::string& xi_key,
                      const DomainTuple& harmonic, std::vector<std::vector<Eigen::Index>> bins)
      : Operator(excitations, harmonic), factors_(std::move(factors)), azm_(std::move(azm)),
        select_(std::move(select)), xi_offset_(excitations.at(xi_key).offset),
        bins_(std::move(bins)) {
    const std::size_t m = bins_.size();
    extents_.resize(m);
    outer_.assign(m, 1);
    inner_.assign(m, 1);
    for (std::size_t i = 0; i < m; ++i) extents_[i] = static_cast<Eigen::Index>(bins_[i].size());
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < m; ++j) {
        if (j < i) outer_[i] *= extents_[j];
        if (j > i) inner_[i] *= extents_[j];
      }
  }
  std::string name() const override { return "SeparableExcitation"; }

  /// The xi part of an excitations vector.
  Eigen::VectorBlock<const ConstVectorRef> xi(const ConstVectorRef& x) const {
    return x.segment(xi_offset_, target().size());
  }

  Eigen::VectorXd evaluate(ConstVectorRef x) const override {
    const Eigen::VectorXd params = select_->evaluate(x);
    std::vector<Eigen::VectorXd> r;
    for (const auto& f : factors_) r.push_back(f->evaluate(params));
    Eigen::VectorXd a = amplitude(r, azm_->evaluate(params)[0]);
    a.array() *= xi(x).array();
    return a;
  }

  FlatLinearization linearize_flat(ConstVectorRef x) const override;

  /// fn(bin, offset, length) for every contiguous block of the tuple on which sub-domain i is
  /// constant (C order: sub-domains before i are outer, those after inner).
  template <typename Fn>
  void for_blocks(std::size_t i, Fn&& fn) const {
    const Eigen::Index n = extents_[i], inner = inner_[i];
    for (Eigen::Index o = 0; o < outer_[i]; ++o)
      for (Eigen::Index q = 0; q < n; ++q)
        fn(bins_[i][static_cast<std::size_t>(q)], (o * n + q) * inner, inner);
  }

  /// y[p] op= v[bin_i(p)] for every pixel p: `combine(y_p, v_b)`. Where sub-domain i is the
  /// innermost (blocks of one pixel: one sub-domain, or the last axis of a product) a direct
  /// gather loop, not a block per pixel.
  template <typename Combine>
  void spread(std::size_t i, const Eigen::VectorXd& v, VectorRef y, Combine combine) const {
    if (inner_[i] == 1) {
      const Eigen::Index n = extents_[i];
      const Eigen::Index* bins = bins_[i].data();
      double* out = y.data();
      const double* values = v.data();
      for (Eigen::Index o = 0; o < outer_[i]; ++o, out += n)
        for (Eigen::Index q = 0; q < n; ++q) combine(out[q], values[bins[q]]);
      return;
    }
    for_blocks(i, [&](Eigen::Index b, Eigen::Index off, Eigen::Index len) {
      for (Eigen::Index k = off; k < off + len; ++k) combine(y[k], v[b]);
    });
  }

  /// g[b] = sum over the pixels of bin b of sub-domain i of w (the adjoint of spread).
  Eigen::VectorXd bin_sums(std::size_t i, const Eigen::VectorXd& w, Eigen::Index bins) const {
    Eigen::VectorXd g = Eigen::VectorXd::Zero(bins);
    if (inner_[i] == 1) {
      const Eigen::Index n = extents_[i];
      const Eigen::Index* bin = bins_[i].data();
      const double* in = w.data();
      for (Eigen::Index o = 0; o < outer_[i]; ++o, in += n)
        for (Eigen::Index q = 0; q < n; ++q) g[bin[q]] += in[q];
      return g;
    }
    for_blocks(i, [&](Eigen::Index b, Eigen::Index off, Eigen::Index len) {
      g[b] += w.segment(off, len).sum();
    });
    return g;
  }

  Eigen::VectorXd amplitude(const std::vector<Eigen::VectorXd>& n, double azm) const {
    Eigen::VectorXd a = Eigen::VectorXd::Constant(target().size(), azm);
    for (std::size_t i = 0; i < n.size(); ++i)
      spread(i, n[i], a, [](double& y, double v) { y *= v; });
    return a;
  }

  Eigen::Index xi_offset() const { return xi_offset_; }
  const LinearOperatorPtr& select() const { return select_; }

 private:
  std::vector<OperatorPtr> factors_;
  OperatorPtr azm_;
  LinearOperatorPtr select_;
  Eigen::Index xi_offset_;
  std::vector<std::vector<Eigen::Index>> bins_;
  std::vector<Eigen::Index> extents_, outer_, inner_;
};

class SeparableExcitationJacobian final : public LinearOperator {
 public:
  SeparableExcitationJacobian(std::shared_ptr<const SeparableExcitation> op, Eigen::VectorXd a,
                              Eigen::VectorXd xi, std::vector<Eigen::VectorXd> r,
                              std::vector<LinearOperatorPtr> jr, double azm,
                              LinearOperatorPtr jazm)
      : LinearOperator(op->domain(), op->target()), op_(std::move(op)), a_(std::move(a)),
        xi_(std::move(xi)), r_(std::move(r)), jr_(std::move(jr)), azm_(azm),
        jazm_(std::move(jazm)) {}
  std::string name() const override { return "SeparableExcitationJacobian"; }

  void apply_times(ConstVectorRef v, VectorRef out) const override {
    const Eigen::VectorXd dparams = op_->select()->evaluate(v);
    for (std::size_t i = 0; i < r_.size(); ++i) {
      Eigen::VectorXd ratio(r_[i].size());
      jr_[i]->apply_times(dparams, ratio);
      ratio.array() /= r_[i].array();
      if (i == 0)
        op_->spread(i, ratio, out, [](double& y, double v) { y = v; });
      else
        op_->spread(i, ratio, out, [](double& y, double v) { y += v; });
    }
    Eigen::VectorXd dazm(1);
    jazm_->apply_times(dparams, dazm);
    // dA = A .* (dazm / azm + sum_i ratio_i), then d(A .* xi) = dA .* xi + A .* dxi (one pass).
    out.array() =
        a_.array() * ((out.array() + dazm[0] / azm_) * xi_.array() + op_->xi(v).array());
  }

  void apply_adjoint(ConstVectorRef u, VectorRef out) const override {
    // The parameters' part: g_i[b] = sum over bin b of u .* xi .* A / n_i; azm's sum(w) / azm.
    const Eigen::VectorXd w = u.cwiseProduct(xi_).cwiseProduct(a_);
    const Space& params = op_->select()->target();
    Eigen::VectorXd gparams(params.size());
    jazm_->apply_adjoint(Eigen::VectorXd::Constant(1, w.sum() / azm_), gparams);
    Eigen::VectorXd tmp(params.size());
    for (std::size_t i = 0; i < r_.size(); ++i) {
      Eigen::VectorXd g = op_->bin_sums(i, w, r_[i].size());
      g.array() /= r_[i].array();
      jr_[i]->apply_adjoint(g, tmp);
      gparams += tmp;
    }
    op_->select()->apply_adjoint(gparams, out);  // zeros outside the parameters
    out.segment(op_->xi_offset(), a_.size()) = u.cwiseProduct(a_);
  }

 private:
  std::shared_ptr<const SeparableExcitation> op_;
  Eigen::VectorXd a_, xi_;
  std::vector<Eigen::VectorXd> r_;
  std::vector<LinearOperatorPtr> jr_;
  double azm_;
  LinearOperatorPtr jazm_;
};

FlatLinearization SeparableExcitation::linearize_flat(ConstVectorRef x) const {
  const Eigen::VectorXd params = select_->evaluate(x);
  std::vector<Eigen::VectorXd> r;
  std::vector<LinearOperatorPtr> jr;
  for (const auto& f : factors_) {
    FlatLinearization lin = f->linearize_flat(params);
    r.push_back(std::move(lin.value));
    jr.push_back(std::move(lin.jacobian));
  }
  FlatLinearization lazm = azm_->linearize_flat(params);
  Eigen::VectorXd a = amplitude(r, lazm.value[0]);
  Eigen::VectorXd excitation = xi(x);
  Eigen::VectorXd value = a.cwiseProduct(excitation);
  auto self = std::static_pointer_cast<const SeparableExcitation>(shared_from_this());
  auto jac = std::make_shared<SeparableExcitationJacobian>(
      std::move(self), std::move(a), std::move(excitation), std::move(r), std::move(jr),
      lazm.value[0], std::move(lazm.jacobian));
  return {std::move(value), std::move(jac)};
}

OperatorPtr scalar_parameter(const MultiDomain& multi, const std::string& key,
                             const PriorMoments& m, bool positive) {
  OperatorPtr xi = field_adapter(multi, key);
  return positive ? lognormal_prior(xi, m.mean, m.std) : normal_prior(xi, m.mean, m.std);
}

/// A sub-domain's amplitude spectrum: the operator for the bins k != 0 (bin 0 zeroed) and the
/// constant a(0) (NIFTy's Adder(vol0) after a mask).
struct SpectrumAmplitude {
  OperatorPtr off_zero;
  double at_zero;
};

SpectrumAmplitude with_zero_mode(OperatorPtr a, const DomainTuple& power, double at_zero) {
  return {compose(drop_zero_mode(power), std::move(a)), at_zero};
}

/// NIFTy's _Amplitude: a(0) = V, a(k) = V fluctuations sqrt(e^{x(k)} / sum_{k' != 0} e^{x(k')})
/// with x the log power spectrum (slope, integrated Wiener process and random walk).
SpectrumAmplitude non_parametric_amplitude(const MultiDomain& multi, const std::string& key_prefix,
                                     const FluctuationSettings& s, const PowerSpace& ps,
                                     const DomainTuple& power, double volume) {
  const Eigen::VectorXd rel_logk = relative_log_k(ps);
  OperatorPtr slope = scalar_parameter(multi, key_prefix + "loglogavgslope", s.loglogavgslope,
                                       false);
  OperatorPtr log_power =
      compose(diagonal_operator(power, rel_logk), scalar_broadcast(power), slope);
  if (s.flexibility) {
    const Eigen::VectorXd dlogk = log_volumes(ps);
    const Eigen::Index m = dlogk.size();
    const DomainTuple excitation{unstructured(2), unstructured(m)};
    OperatorPtr flex = scalar_parameter(multi, key_prefix + "flexibility", *s.flexibility, true);
    // Standard deviations of the increments: flex * sqrt(dlogk) * sqrt(dlogk^2 / 12 + asp) for
    // the direct walk of x (row 0; dlogk^2 / 12 is the integrated part's own variance over an
    // interval, asp the roughness), flex * sqrt(dlogk) for the slope's walk (row 1), which the
    // integrations turn into the integrated Wiener process.
    Eigen::VectorXd flex_scale(2 * m);
    flex_scale << dlogk.cwiseSqrt(), dlogk.cwiseSqrt();
    OperatorPtr sigma =
        compose(diagonal_operator(excitation, flex_scale), scalar_broadcast(excitation), flex);
    Eigen::VectorXd shift(2 * m);
    shift << dlogk.cwiseAbs2() / 12.0, Eigen::VectorXd::Ones(m);
    if (s.asperity) {
      OperatorPtr asp = scalar_parameter(multi, key_prefix + "asperity", *s.asperity, true);
      Eigen::VectorXd asp_mask(2 * m);
      asp_mask << Eigen::VectorXd::Ones(m), Eigen::VectorXd::Zero(m);
      OperatorPtr asp_term = sqrt(add_constant(
          compose(diagonal_operator(excitation, asp_mask), scalar_broadcast(excitation), asp),
          shift));
      sigma = multiply(sigma, asp_term);
    } else {
      sigma = compose(diagonal_operator(excitation, shift.cwiseSqrt()), sigma);
    }
    OperatorPtr increments = multiply(sigma, field_adapter(multi, key_prefix + "spectrum"));
    OperatorPtr smooth = compose(slope_remover(power, rel_logk),
                                 two_log_integrations(excitation, power, dlogk), increments);
    log_power = log_power + smooth;
  }
  // normalization(a) = e^a / sqrt(sum counts e^{2a}); at a = x / 2 it is sqrt(e^x / sum e^x).
  OperatorPtr normalized =
      compose(normalization(power, ps.bin_counts()), scale(0.5, std::move(log_power)));
  OperatorPtr fluct = scalar_parameter(multi, key_prefix + "fluctuations", s.fluctuations, true);
  return with_zero_mode(
      multiply(compose(scalar_broadcast(power), scale(volume, fluct)), normalized), power,
      volume);
}

/// NIFTy's _AmplitudeMatern: a(0) = V, a(k) = sqrt(V) scale (1 + k^2 / cutoff^2)^(slope / 4)
/// (V = 1 without adjust_for_volume), or Infield's variant renormalised to `scale`.
SpectrumAmplitude matern_amplitude(const MultiDomain& multi, const std::string& key_prefix,
                             const MaternSettings& s, const PowerSpace& ps,
                             const DomainTuple& power, double volume) {
  const Eigen::VectorXd k2 = ps.k().cwiseAbs2();
  // cutoff^-2 = exp(-2 log cutoff) with log cutoff = mu + sigma xi (the log-normal's parameters).
  const double sigma2 = std::log1p((s.cutoff.std / s.cutoff.mean) * (s.cutoff.std / s.cutoff.mean));
  const double mu = std::log(s.cutoff.mean) - 0.5 * sigma2;
  OperatorPtr inv_cutoff2 =
      exp(add_constant(scale(-2.0 * std::sqrt(sigma2),
                             OperatorPtr(field_adapter(multi, key_prefix + "cutoff"))),
                       -2.0 * mu));
  // log shape = slope / 4 * log(1 + k^2 / cutoff^2): the log of the amplitude's shape.
  OperatorPtr log_term =
      log(add_constant(compose(diagonal_operator(power, k2), scalar_broadcast(power), inv_cutoff2),
                       1.0));
  OperatorPtr slope = scalar_parameter(multi, key_prefix + "loglogslope", s.loglogslope, false);
  OperatorPtr log_shape =
      multiply(scale(0.25, compose(scalar_broadcast(power), slope)), log_term);
  OperatorPtr amplitude_scale =
      compose(scalar_broadcast(power), scalar_parameter(multi, key_prefix + "scale", s.scale, true));
  if (s.normalization == MaternNormalization::kFluctuationStd)
    return with_zero_mode(multiply(scale(volume, amplitude_scale),
                                   compose(normalization(power, ps.bin_counts()), log_shape)),
                          power, volume);
  const double v = s.adjust_for_volume ? volume : 1.0;
  return with_zero_mode(multiply(scale(std::sqrt(v), amplitude_scale), exp(log_shape)), power, v);
}

}  // namespace

void FluctuationSettings::validate() const {
  constexpr std::string_view fn = "FluctuationSettings";
  check_moments(fluctuations, true, fn, "fluctuations");
  if (flexibility) check_moments(*flexibility, true, fn, "flexibility");
  if (asperity) {
    check_argument(flexibility.has_value(), fn, "asperity",
                   "needs flexibility (asperity roughens the flexible part of the spectrum)");
    check_moments(*asperity, true, fn, "asperity");
  }
  check_moments(loglogavgslope, false, fn, "loglogavgslope");
}

void MaternSettings::validate() const {
  constexpr std::string_view fn = "MaternSettings";
  check_moments(scale, true, fn, "scale");
  check_moments(cutoff, true, fn, "cutoff");
  check_moments(loglogslope, false, fn, "loglogslope");
}

const OperatorPtr& CorrelatedField::normalized_amplitude(std::size_t i) const {
  check_argument(i < normalized_amplitudes_.size(), "CorrelatedField::normalized_amplitude", "i",
                 "is " + std::to_string(i) + ", the field has " +
                     std::to_string(normalized_amplitudes_.size()) + " sub-domains");
  return normalized_amplitudes_[i];
}

OperatorPtr CorrelatedField::amplitude() const {
  check_argument(amplitude_ != nullptr, "CorrelatedField::amplitude", "sub-domains",
                 "are " + std::to_string(normalized_amplitudes_.size()) +
                     ": a product's amplitudes have only relative scales (use "
                     "normalized_amplitude(i))");
  return amplitude_;
}

OperatorPtr CorrelatedField::power_spectrum() const { return power(amplitude(), 2.0); }

const DomainPtr& CorrelatedField::power_space(std::size_t i) const {
  check_argument(i < power_spaces_.size(), "CorrelatedField::power_space", "i",
                 "is " + std::to_string(i) + ", the field has " +
                     std::to_string(power_spaces_.size()) + " sub-domains");
  return power_spaces_[i];
}

CorrelatedFieldMaker::CorrelatedFieldMaker(std::string prefix) : prefix_(std::move(prefix)) {}

namespace {
void check_grid(const DomainPtr& grid, std::string_view fn) {
  check_argument(grid != nullptr, fn, "grid", "must not be null");
  check_argument(dynamic_cast<const RegularGrid*>(grid.get()) != nullptr, fn, "grid",
                 "must be a RegularGrid, got " + grid->to_string());
}
}  // namespace

CorrelatedFieldMaker& CorrelatedFieldMaker::add_fluctuations(DomainPtr grid,
                                                             const FluctuationSettings& settings,
                                                             std::string name) {
  constexpr std::string_view fn = "CorrelatedFieldMaker::add_fluctuations";
  check_grid(grid, fn);
  settings.validate();
  const PowerSpace ps(harmonic_partner(grid));
  check_argument(ps.size() >= 3, fn, "grid",
                 "needs at least 3 distinct |k| (a spectrum to integrate), " + grid->to_string() +
                     " has " + std::to_string(ps.size()));
  subdomains_.push_back({std::move(grid), std::move(name), settings, std::nullopt});
  return *this;
}

CorrelatedFieldMaker& CorrelatedFieldMaker::add_matern_fluctuations(DomainPtr grid,
                                                                    const MaternSettings& settings,
                                                                    std::string name) {
  constexpr std::string_view fn = "CorrelatedFieldMaker::add_matern_fluctuations";
  check_grid(grid, fn);
  settings.validate();
  const PowerSpace ps(harmonic_partner(grid));
  check_argument(ps.size() >= 2, fn, "grid",
                 "needs at least one mode k != 0, " + grid->to_string() + " has none");
  subdomains_.push_back({std::move(grid), std::move(name), std::nullopt, settings});
  return *this;
}

CorrelatedFieldMaker& CorrelatedFieldMaker::set_offset(double mean, PriorMoments zero_mode_std) {
  constexpr std::string_view fn = "CorrelatedFieldMaker::set_offset";
  check_finite(mean, fn, "mean");
  check_moments(zero_mode_std, true, fn, "zero_mode_std");
  offset_mean_ = mean;
  zero_mode_std_ = zero_mode_std;
  return *this;
}

CorrelatedField CorrelatedFieldMaker::finalize() const {
  constexpr std::string_view fn = "CorrelatedFieldMaker::finalize";
  check_argument(!subdomains_.empty(), fn, "subdomains",
                 "none were added (call add_fluctuations or add_matern_fluctuations)");
  check_argument(offset_mean_.has_value(), fn, "offset", "was not set (call set_offset)");

  // The excitation space.
  std::vector<DomainPtr> grids, harmonics;
  std::vector<std::shared_ptr<const PowerSpace>> power_spaces;
  std::vector<std::pair<std::string, DomainTuple>> keys;
  std::set<std::string> names;
  for (const Subdomain& sub : subdomains_) {
    check_argument(names.insert(sub.name).second, fn, "name",
                   "'" + sub.name + "' is used by two sub-domains; give each its own name");
    grids.push_back(sub.grid);
    harmonics.push_back(harmonic_partner(sub.grid));
    power_spaces.push_back(std::make_shared<const PowerSpace>(harmonics.back()));
    const std::string p = prefix_ + sub.name;
    if (sub.fluctuations) {
      keys.emplace_back(p + "fluctuations", DomainTuple());
      keys.emplace_back(p + "loglogavgslope", DomainTuple());
      if (sub.fluctuations->flexibility) {
        keys.emplace_back(p + "flexibility", DomainTuple());
        keys.emplace_back(p + "spectrum",
                          DomainTuple{unstructured(2), unstructured(power_spaces.back()->size() - 2)});
      }
      if (sub.fluctuations->asperity) keys.emplace_back(p + "asperity", DomainTuple());
    } else {
      keys.emplace_back(p + "scale", DomainTuple());
      keys.emplace_back(p + "cutoff", DomainTuple());
      keys.emplace_back(p + "loglogslope", DomainTuple());
    }
  }
  const DomainTuple harmonic(harmonics);
  keys.emplace_back(prefix_ + "xi", harmonic);
  keys.emplace_back(prefix_ + "zeromode", DomainTuple());
  std::set<std::string> unique;
  for (const auto& [key, domain] : keys)
    check_argument(unique.insert(key).second, fn, "prefix, names",
                   "give the excitation key '" + key + "' twice; choose distinct names");
  const MultiDomain multi(keys);

  // The spectrum's parameters run on the MultiDomain without xi, so that their adjoints build
  // small vectors and the embedding into the excitations costs one pass.
  std::vector<std::pair<std::string, DomainTuple>> parameter_keys;
  for (const auto& [key, domain] : keys)
    if (key != prefix_ + "xi") parameter_keys.emplace_back(key, domain);
  const MultiDomain params(parameter_keys);
  const LinearOperatorPtr select_params = field_adapter(multi, params);

  CorrelatedField result;
  result.excitations_ = multi;
  result.target_ = DomainTuple(grids);
  OperatorPtr azm = scalar_parameter(params, prefix_ + "zeromode", zero_mode_std_, true);
  result.zero_mode_std_ = compose(azm, select_params);

  // Per sub-domain amplitudes a_i (a_i(0) = V_i, or 1) and NIFTy's normalised amplitudes n_i.
  const std::size_t m = subdomains_.size();
  std::vector<OperatorPtr> normalized_amplitudes;  // n_i on params
  for (std::size_t i = 0; i < m; ++i) {
    const Subdomain& sub = subdomains_[i];
    const PowerSpace& ps = *power_spaces[i];
    const DomainTuple pspace{power_spaces[i]};
    const double volume = static_cast<double>(sub.grid->size()) * sub.grid->cell_volume();
    const std::string p = prefix_ + sub.name;
    const SpectrumAmplitude a =
        sub.fluctuations
            ? non_parametric_amplitude(params, p, *sub.fluctuations, ps, pspace, volume)
            : matern_amplitude(params, p, *sub.matern, ps, pspace, volume);
    // n_i = a_i / azm off the zero mode; bin 0 keeps a_i(0), a constant.
    Eigen::VectorXd a0 = Eigen::VectorXd::Zero(pspace.size());
    a0[0] = a.at_zero;
    OperatorPtr inverse_azm = compose(scalar_broadcast(pspace), power(azm, -1.0));
    OperatorPtr n = add_constant(multiply(a.off_zero, inverse_azm), a0);
    if (m == 1) {
      // NIFTy's `amplitude`: azm n, i.e. a with bin 0 replaced by a(0) azm.
      result.amplitude_ = compose(
          a.off_zero + compose(diagonal_operator(pspace, a0), scalar_broadcast(pspace), azm),
          select_params);
    }
    normalized_amplitudes.push_back(n);
    result.normalized_amplitudes_.push_back(compose(std::move(n), select_params));
    result.power_spaces_.push_back(power_spaces[i]);
  }

  // The amplitude A = azm prod_i n_i on the harmonic tuple times xi, in one pass per sub-domain
  // (for one sub-domain: a gather from its power space).
  std::vector<std::vector<Eigen::Index>> bins;
  for (std::size_t i = 0; i < m; ++i) bins.push_back(power_spaces[i]->pixel_bins());
  const OperatorPtr excitation = std::make_shared<SeparableExcitation>(
      normalized_amplitudes, azm, select_params, multi, prefix_ + "xi", harmonic,
      std::move(bins));
  // One Hartley transform per sub-domain, as NIFTy's chain of HarmonicTransformOperators: across
  // sub-domains the transform factorises (cas(a) cas(b), not cas(a + b)).
  std::vector<std::size_t> all(m);
  for (std::size_t i = 0; i < m; ++i) all[i] = i;
  result.field_ = add_constant(compose(hartley_transform(harmonic, all), excitation),
                               *offset_mean_);
  return result;
}

}  // namespace infield

#pragma once
/// @file energy.h
/// @brief Energies: scalar functions of a position with a gradient and, where defined, a metric
/// (positive definite LinearOperator), as minimizers and MGVI consume them.
///
/// `StandardHamiltonian` is the energy of a generative model with a standard-normal prior:
///   H(xi) = L(R(xi)) + 0.5 |xi|^2,  grad = J^T grad L + xi,  metric M = J^T F J + 1,
/// with J the model's Jacobian at xi and F the likelihood's Fisher metric. It linearises the model
/// once per evaluation and the metric reuses that Jacobian for every product.

#include <memory>
#include <random>

#include "infield/likelihood.h"
#include "infield/operator.h"

namespace infield {

/// What an energy evaluation must compute (bitwise OR).
enum EnergyRequest : unsigned {
  kValue = 1u,
  kGradient = 2u,
  kMetric = 4u,
};

struct EnergyEvaluation {
  double value = 0.0;
  Eigen::VectorXd gradient;   ///< Set when kGradient was requested.
  LinearOperatorPtr metric;   ///< Set when kMetric was requested.
};

class Energy {
 public:
  explicit Energy(Space domain) : domain_(std::move(domain)) {}
  virtual ~Energy() = default;
  Energy(const Energy&) = delete;
  Energy& operator=(const Energy&) = delete;

  const Space& domain() const { return domain_; }
  /// True if evaluate() can return a metric (needed by Newton-CG).
  virtual bool has_metric() const { return false; }
  /// Evaluates at x what `request` asks for; the value is always computed.
  virtual EnergyEvaluation evaluate(ConstVectorRef x, unsigned request) const = 0;

 private:
  Space domain_;
};

using EnergyPtr = std::shared_ptr<const Energy>;

/// The likelihood of a model as an energy on the model's input: L(model(xi)), gradient
/// J^T grad L, metric J^T F J (positive semi-definite; no prior term).
class LikelihoodEnergy final : public Energy {
 public:
  LikelihoodEnergy(LikelihoodPtr likelihood, OperatorPtr model);
  bool has_metric() const override { return true; }
  EnergyEvaluation evaluate(ConstVectorRef xi, unsigned request) const override;

 private:
  LikelihoodPtr likelihood_;
  OperatorPtr model_;
};

/// `likelihood` composed with `model`: an energy on the model's input.
std::shared_ptr<const LikelihoodEnergy> likelihood_energy(LikelihoodPtr likelihood,
                                                          OperatorPtr model);

/// L(model(xi)) + 0.5 |xi|^2. Requires likelihood->domain() == model->target().
class StandardHamiltonian final : public Energy {
 public:
  StandardHamiltonian(LikelihoodPtr likelihood, OperatorPtr model);
  bool has_metric() const override { return true; }
  EnergyEvaluation evaluate(ConstVectorRef xi, unsigned request) const override;

  const LikelihoodPtr& likelihood() const { return likelihood_; }
  const OperatorPtr& model() const { return model_; }
  /// The likelihood's coordinate transformation after the model, xi -> f(R(xi)); with the prior's
  /// identity beside it, the Jacobian of xi -> (f(R(xi)), xi) squares to the metric M (exactly
  /// where the likelihood's transformation is exact). Null if the likelihood has none. geoVI's
  /// samples are built from it (<infield/inference/geovi.h>).
  OperatorPtr transformation() const;
  /// A draw theta = J^T n + eta with n ~ N(0, F) and eta ~ N(0, 1): Cov(theta) = M (at xi).
  /// `jacobian` and `model_value` are the linearisation at xi.
  /// When `prior_part` is not null it receives eta (metric sampling starts its CG there).
  Eigen::VectorXd draw_metric_sample(const LinearOperator& jacobian, ConstVectorRef model_value,
                                     std::mt19937_64& rng,
                                     Eigen::VectorXd* prior_part = nullptr) const;

 private:
  LikelihoodPtr likelihood_;
  OperatorPtr model_;
};

/// The standard Hamiltonian of `likelihood` applied to `model`.
std::shared_ptr<const StandardHamiltonian> standard_hamiltonian(LikelihoodPtr likelihood,
                                                                OperatorPtr model);

}  // namespace infield

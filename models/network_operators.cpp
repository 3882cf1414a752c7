#include "infield/models/network_operators.h"

#include <string>
#include <utility>

#include "infield/domain.h"
#include "infield/error.h"

namespace infield::neural {
namespace {

using RowMatrix = Matrix<double>;
using ConstRowMap = Eigen::Map<const RowMatrix>;

/// The input of `rows` data as the network's row-major batch (a copy: Mlp takes matrices).
RowMatrix as_batch(ConstVectorRef x, Eigen::Index rows, Eigen::Index width) {
  return ConstRowMap(x.data(), rows, width);
}

void write_flat(const RowMatrix& m, VectorRef out) {
  out = Eigen::Map<const Eigen::VectorXd>(m.data(), m.size());
}

Eigen::VectorXd to_flat(RowMatrix&& m) {
  return Eigen::Map<const Eigen::VectorXd>(m.data(), m.size());
}

Space datum_space(Eigen::Index width, Eigen::Index batch) {
  if (batch == 0) return Space(unstructured(width));
  return Space(DomainTuple{unstructured(batch), unstructured(width)});
}

/// J_x of a fixed-parameter network at the cached point: times = JVP, adjoint = VJP.
class NetworkJacobian final : public LinearOperator {
 public:
  NetworkJacobian(Space domain, Space target, DenseNetwork net, Mlp<double>::Cache cache)
      : LinearOperator(std::move(domain), std::move(target)), net_(std::move(net)),
        cache_(std::move(cache)), rows_(cache_.inputs.front().rows()) {}
  std::string name() const override { return "NetworkJacobian"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    write_flat(net_.network->jvp_input(*net_.parameters, cache_,
                                       as_batch(x, rows_, net_.network->input_size())),
               out);
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    write_flat(net_.network->vjp_input(*net_.parameters, cache_,
                                       as_batch(y, rows_, net_.network->output_size())),
               out);
  }

 private:
  DenseNetwork net_;
  Mlp<double>::Cache cache_;
  Eigen::Index rows_;
};

class NetworkOperator final : public Operator {
 public:
  NetworkOperator(DenseNetwork net, Eigen::Index batch, std::string name)
      : Operator(datum_space(net.network->input_size(), batch),
                 datum_space(net.network->output_size(), batch)),
        net_(std::move(net)), rows_(batch == 0 ? 1 : batch), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  Eigen::VectorXd evaluate(ConstVectorRef x) const override {
    return to_flat(net_.network->forward(*net_.parameters, input(x)));
  }
  FlatLinearization linearize_flat(ConstVectorRef x) const override {
    Mlp<double>::Cache cache;
    Eigen::VectorXd value = to_flat(net_.network->forward(*net_.parameters, input(x), &cache));
    return {std::move(value),
            std::make_shared<NetworkJacobian>(domain(), target(), net_, std::move(cache))};
  }

 private:
  RowMatrix input(ConstVectorRef x) const {
    return as_batch(x, rows_, net_.network->input_size());
  }
  DenseNetwork net_;
  Eigen::Index rows_;
  std::string name_;
};

/// The Jacobian of (x, theta) -> f(x; theta) at a point: theta and the forward cache are kept.
class ParametricNetworkJacobian final : public LinearOperator {
 public:
  ParametricNetworkJacobian(Space domain, Space target, std::shared_ptr<const Mlp<double>> network,
                            Eigen::VectorXd params, Mlp<double>::Cache cache,
                            Eigen::Index input_offset, Eigen::Index params_offset)
      : LinearOperator(std::move(domain), std::move(target)), network_(std::move(network)),
        params_(std::move(params)), cache_(std::move(cache)), rows_(cache_.inputs.front().rows()),
        input_offset_(input_offset), params_offset_(params_offset) {}
  std::string name() const override { return "ParametricNetworkJacobian"; }
  void apply_times(ConstVectorRef x, VectorRef out) const override {
    const Eigen::Index p = network_->parameter_count();
    write_flat(network_->jvp_parameters(
                   params_, cache_, x.segment(params_offset_, p),
                   as_batch(x.segment(input_offset_, rows_ * network_->input_size()), rows_,
                            network_->input_size())),
               out);
  }
  void apply_adjoint(ConstVectorRef y, VectorRef out) const override {
    const Eigen::Index p = network_->parameter_count();
    const RowMatrix input_gradient = network_->vjp(
        params_, cache_, as_batch(y, rows_, network_->output_size()),
        out.segment(params_offset_, p), true, GradientWrite::kOverwrite);
    out.segment(input_offset_, input_gradient.size()) =
        Eigen::Map<const Eigen::VectorXd>(input_gradient.data(), input_gradient.size());
  }

 private:
  std::shared_ptr<const Mlp<double>> network_;
  Eigen::VectorXd params_;
  Mlp<double>::Cache cache_;
  Eigen::Index rows_, input_offset_, params_offset_;
};

class ParametricNetworkOperator final : public Operator {
 public:
  ParametricNetworkOperator(std::shared_ptr<const Mlp<double>> network, const std::string& key,
                            Eigen::Index batch, std::string name)
      : Operator(MultiDomain{{key, datum_space(network->input_size(), batch).tuple()},
                             {kParametersKey, DomainTuple(unstructured(network->parameter_count()))}},
                 datum_space(network->output_size(), batch)),
        network_(std::move(network)), rows_(batch == 0 ? 1 : batch), name_(std::move(name)),
        input_offset_(domain().multi().at(key).offset),
        params_offset_(domain().multi().at(kParametersKey).offset) {}
  std::string name() const override { return name_; }
  Eigen::VectorXd evaluate(ConstVectorRef x) const override {
    return to_flat(network_->forward(params(x), input(x)));
  }
  FlatLinearization linearize_flat(ConstVectorRef x) const override {
    Mlp<double>::Cache cache;
    Eigen::VectorXd value = to_flat(network_->forward(params(x), input(x), &cache));
    return {std::move(value),
            std::make_shared<ParametricNetworkJacobian>(domain(), target(), network_,
                                                        Eigen::VectorXd(params(x)), std::move(cache),
                                                        input_offset_, params_offset_)};
  }

 private:
  ConstVectorRef params(ConstVectorRef x) const {
    return x.segment(params_offset_, network_->parameter_count());
  }
  RowMatrix input(ConstVectorRef x) const {
    return as_batch(x.segment(input_offset_, rows_ * network_->input_size()), rows_,
                    network_->input_size());
  }
  std::shared_ptr<const Mlp<double>> network_;
  Eigen::Index rows_;
  std::string name_;
  Eigen::Index input_offset_, params_offset_;
};

void check_network(const DenseNetwork& net, std::string_view fn) {
  check_argument(net.network != nullptr && net.parameters != nullptr, fn, "net",
                 "needs a network and its parameters");
}

}  // namespace

DenseNetwork dense_network(Mlp<double> network, Eigen::VectorXd params) {
  if (params.size() != network.parameter_count())
    throw InvalidArgument("dense_network: the network has " +
                          std::to_string(network.parameter_count()) + " parameters, got " +
                          std::to_string(params.size()));
  if (!params.allFinite())
    throw InvalidArgument("dense_network: the parameters are not all finite");
  return {std::make_shared<const Mlp<double>>(std::move(network)),
          std::make_shared<const Eigen::VectorXd>(std::move(params))};
}

DenseNetwork to_double(const Mlp<float>& network, const Eigen::Ref<const Vector<float>>& params) {
  return dense_network(Mlp<double>(network.widths(), network.activations()),
                       params.cast<double>());
}

OperatorPtr network_operator(DenseNetwork net, std::string name) {
  check_network(net, "network_operator");
  return std::make_shared<NetworkOperator>(std::move(net), 0, std::move(name));
}

OperatorPtr network_batch_operator(DenseNetwork net, Eigen::Index batch, std::string name) {
  check_network(net, "network_batch_operator");
  check_argument(batch >= 1, "network_batch_operator", "batch", "must be at least 1");
  return std::make_shared<NetworkOperator>(std::move(net), batch, std::move(name));
}

OperatorPtr parametric_network_operator(std::shared_ptr<const Mlp<double>> network,
                                        std::string input_key, Eigen::Index batch,
                                        std::string name) {
  constexpr std::string_view fn = "parametric_network_operator";
  check_argument(network != nullptr, fn, "network", "must not be null");
  check_argument(batch >= 0, fn, "batch", "must be 0 (one datum) or positive");
  check_argument(!input_key.empty() && input_key != kParametersKey, fn, "input_key",
                 "must be a non-empty key other than \"parameters\"");
  return std::make_shared<ParametricNetworkOperator>(std::move(network), input_key, batch,
                                                     std::move(name));
}

namespace {
void check_dense_run(const Autoencoder& model, const Vector<float>& params, std::string_view fn) {
  if (model.kind() == AutoencoderKind::kCvae)
    throw InvalidArgument(std::string(fn) +
                          ": the CVAE's encoder and decoder are convolutional, not dense networks");
  if (params.size() != model.parameter_count())
    throw InvalidArgument(std::string(fn) + ": the model has " +
                          std::to_string(model.parameter_count()) + " parameters, got " +
                          std::to_string(params.size()));
}
}  // namespace

DenseNetwork decoder_network(const Autoencoder& model, const Vector<float>& params) {
  check_dense_run(model, params, "decoder_network");
  return to_double(model.decoder(),
                   params.segment(model.encoder_parameter_count(), model.decoder_parameter_count()));
}

DenseNetwork encoder_network(const Autoencoder& model, const Vector<float>& params) {
  check_dense_run(model, params, "encoder_network");
  return to_double(model.encoder(), params.head(model.encoder_parameter_count()));
}

}  // namespace infield::neural

#pragma once
/// @file models/network_operators.h
/// @brief Dense networks as Infield operators: a trained decoder or encoder becomes an `Operator`
/// that check_jacobian, standard_hamiltonian and optimize_kl take like any other model, and the
/// network as a parametric operator of (input, parameters), the paper's f_theta(z) with theta a
/// field of its own.
///
/// The operators run in double precision (training runs in float): to_double() makes the one
/// double copy of the parameters, which every operator built from it shares; no call copies the
/// weights. Their Jacobians are the network's own JVP and VJP (Mlp::jvp_input, vjp_input,
/// jvp_parameters) from the forward pass's cache, so applying one never re-evaluates the network.
///
/// Layouts: a datum is an unstructured domain of the network's width; a batch is the DomainTuple
/// (unstructured(batch), unstructured(width)), row b of the row-major batch matrix is datum b
/// (C order, the layout of Mlp's batches).

#include <memory>
#include <string>

#include "infield/models/autoencoder.h"
#include "infield/models/neural.h"
#include "infield/operator.h"

namespace infield::neural {

/// A network with fixed parameters, in double precision, shared by the operators built on it.
struct DenseNetwork {
  std::shared_ptr<const Mlp<double>> network;
  std::shared_ptr<const Eigen::VectorXd> parameters;
};

/// The double-precision twin of a float network with its parameters (params must have
/// network.parameter_count() entries, else InvalidArgument).
DenseNetwork to_double(const Mlp<float>& network, const Eigen::Ref<const Vector<float>>& params);
/// A double-precision network with its parameters (checked as above).
DenseNetwork dense_network(Mlp<double> network, Eigen::VectorXd params);

/// x -> f(x) for one datum: unstructured(input_size) -> unstructured(output_size).
OperatorPtr network_operator(DenseNetwork net, std::string name = "Network");
/// The same for a batch of `batch` data: (unstructured(batch), unstructured(input_size)) ->
/// (unstructured(batch), unstructured(output_size)); the data are independent, so the Jacobian
/// is block diagonal. One GEMM per layer for the whole batch.
OperatorPtr network_batch_operator(DenseNetwork net, Eigen::Index batch,
                                   std::string name = "NetworkBatch");

/// Key of the parameters in a parametric network operator's MultiDomain.
inline constexpr const char* kParametersKey = "parameters";
/// (x, theta) -> f(x; theta) on the MultiDomain {input_key: the input, "parameters":
/// unstructured(parameter_count())}, the input one datum (batch = 0) or a batch as above; the
/// target is network_operator's (batch 0) or network_batch_operator's. Its Jacobian has both
/// blocks: J_x dx + J_theta dtheta forward, (J_x^T u, J_theta^T u) adjoint.
OperatorPtr parametric_network_operator(std::shared_ptr<const Mlp<double>> network,
                                        std::string input_key, Eigen::Index batch = 0,
                                        std::string name = "ParametricNetwork");

/// A FisherNet or VAE run's decoder (latents -> images) and encoder (images -> FisherNet's mean
/// mu, or the VAE's [mu, log variance]) with the parameters of `params` (the layout
/// [encoder, decoder, zeta_N]). Throw InvalidArgument for the CVAE, whose layers are
/// convolutional, and for a parameter vector of the wrong size.
DenseNetwork decoder_network(const Autoencoder& model, const Vector<float>& params);
DenseNetwork encoder_network(const Autoencoder& model, const Vector<float>& params);

}  // namespace infield::neural

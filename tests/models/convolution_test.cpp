// Convolutional layers: im2col and col2im adjoint, convolution against the direct sum, the
// transposed convolution as the adjoint of the convolution, gradients of a Sequential network
// and of the CVAE loss against finite differences (float64), the CVAE's shapes.
#include "infield/models/convolution.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "infield/error.h"
#include "infield/models/autoencoder.h"
#include "network_test_data.h"

namespace infield {
namespace {

using neural::Activation;
using neural::ConvGeometry;
using neural::LayerSpec;
using neural::Matrix;
using neural::Sequential;
using neural::Vector;

Matrix<double> normal_matrix(Eigen::Index r, Eigen::Index c, std::mt19937_64& rng) {
  return test::normal_matrix<double>(r, c, rng);
}

TEST(Convolution, Im2colAndCol2imAreAdjoint) {
  std::mt19937_64 rng(1);
  for (const ConvGeometry g : {ConvGeometry{2, 7, 6, 3, 3, 2, 1}, ConvGeometry{1, 5, 5, 2, 3, 1, 1},
                               ConvGeometry{3, 8, 8, 1, 2, 2, 0}}) {
    const Matrix<double> x = normal_matrix(3, g.large_size(), rng);
    const Matrix<double> cols = neural::im2col(g, x);
    const Matrix<double> c = normal_matrix(cols.rows(), cols.cols(), rng);
    const double lhs = (cols.array() * c.array()).sum();
    const double rhs = (x.array() * neural::col2im(g, c, 3).array()).sum();
    EXPECT_NEAR(lhs, rhs, 1e-10 * std::abs(lhs)) << g.rows << g.stride;
  }
}

TEST(Convolution, MatchesTheDirectSum) {
  const ConvGeometry g{2, 6, 5, 3, 3, 2, 1};
  const Sequential<double> net({LayerSpec::conv(g, Activation::kIdentity)});
  std::mt19937_64 rng(2);
  const Vector<double> p = net.initialize(rng);
  const Matrix<double> x = normal_matrix(2, g.large_size(), rng);
  const Matrix<double> y = net.forward(p, x);
  ASSERT_EQ(y.cols(), 3 * 3 * 3);
  const Eigen::Index window = 2 * 9;
  for (Eigen::Index b = 0; b < 2; ++b)
    for (Eigen::Index co = 0; co < 3; ++co)
      for (Eigen::Index oh = 0; oh < 3; ++oh)
        for (Eigen::Index ow = 0; ow < 3; ++ow) {
          double sum = p[3 * window + co];  // bias
          for (Eigen::Index ci = 0; ci < 2; ++ci)
            for (Eigen::Index ki = 0; ki < 3; ++ki)
              for (Eigen::Index kj = 0; kj < 3; ++kj) {
                const Eigen::Index ih = oh * 2 - 1 + ki, iw = ow * 2 - 1 + kj;
                if (ih < 0 || ih >= 6 || iw < 0 || iw >= 5) continue;
                sum += p[co * window + (ci * 3 + ki) * 3 + kj] * x(b, ci * 30 + ih * 5 + iw);
              }
          EXPECT_NEAR(y(b, co * 9 + oh * 3 + ow), sum, 1e-12) << b << co << oh << ow;
        }
}

TEST(Convolution, TransposedIsTheAdjointOfTheConvolution) {
  const ConvGeometry g{3, 8, 8, 4, 3, 2, 1};
  const Sequential<double> conv({LayerSpec::conv(g, Activation::kIdentity)});
  const Sequential<double> transposed({LayerSpec::conv_transpose(g, Activation::kIdentity)});
  std::mt19937_64 rng(3);
  // Shared weights, zero biases: <conv x, y> = <x, conv^T y>.
  Vector<double> pc = conv.initialize(rng);
  Vector<double> pt = Vector<double>::Zero(transposed.parameter_count());
  const Eigen::Index weights = 4 * 3 * 9;
  pc.tail(pc.size() - weights).setZero();
  pt.head(weights) = pc.head(weights);
  const Matrix<double> x = normal_matrix(2, g.large_size(), rng), y = normal_matrix(2, g.small_size(), rng);
  const double lhs = (conv.forward(pc, x).array() * y.array()).sum();
  const double rhs = (x.array() * transposed.forward(pt, y).array()).sum();
  EXPECT_NEAR(lhs, rhs, 1e-10 * std::abs(lhs));
}

TEST(Convolution, SequentialGradientsMatchFiniteDifferences) {
  const Sequential<double> net({LayerSpec::conv({1, 8, 8, 2, 3, 2, 1}, Activation::kRelu),
                                LayerSpec::dense(2 * 16, 2 * 16, Activation::kRelu),
                                LayerSpec::conv_transpose({3, 8, 8, 2, 3, 2, 1}, Activation::kRelu),
                                LayerSpec::conv_transpose({1, 8, 8, 3, 3, 1, 1},
                                                          Activation::kIdentity)});
  std::mt19937_64 rng(4);
  const Vector<double> p = net.initialize(rng);
  const Matrix<double> x = normal_matrix(3, 64, rng), u = normal_matrix(3, 64, rng);
  Sequential<double>::Cache cache;
  const Matrix<double> y = net.forward(p, x, &cache);
  Vector<double> gp = Vector<double>::Zero(p.size());
  const Matrix<double> gx = net.vjp(p, cache, u, gp);
  // Overwriting a vector full of NaN gives the gradient accumulated into zeros, bit for bit.
  Vector<double> overwritten =
      Vector<double>::Constant(p.size(), std::numeric_limits<double>::quiet_NaN());
  net.vjp(p, cache, u, overwritten, true, neural::GradientWrite::kOverwrite);
  EXPECT_EQ(overwritten, gp);
  auto value = [&](const Vector<double>& q, const Matrix<double>& xx) {
    return (net.forward(q, xx).array() * u.array()).sum();
  };
  const double h = 1e-6;
  Eigen::VectorXd fd(p.size());
  for (Eigen::Index i = 0; i < p.size(); ++i) {
    Vector<double> a = p, b = p;
    a[i] += h;
    b[i] -= h;
    fd[i] = (value(a, x) - value(b, x)) / (2 * h);
  }
  EXPECT_LE((gp - fd).norm(), 1e-6 * fd.norm());
  Matrix<double> fdx(3, 64);
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    Matrix<double> a = x, b = x;
    a.data()[i] += h;
    b.data()[i] -= h;
    fdx.data()[i] = (value(p, a) - value(p, b)) / (2 * h);
  }
  EXPECT_LE((gx - fdx).norm(), 1e-6 * fdx.norm());
  EXPECT_THROW(Sequential<double>({LayerSpec::dense(3, 4, Activation::kRelu),
                                   LayerSpec::dense(5, 2, Activation::kRelu)}),
               InvalidArgument);
}

TEST(Cvae, LossGradientMatchesFiniteDifferencesAndShapesFit) {
  const Sequential<double> encoder(neural::cvae_encoder_layers(8, 8, 2));
  const Sequential<double> decoder(neural::cvae_decoder_layers(8, 8, 2));
  EXPECT_EQ(encoder.input_size(), 64);
  EXPECT_EQ(encoder.output_size(), 4);
  EXPECT_EQ(decoder.input_size(), 2);
  EXPECT_EQ(decoder.output_size(), 64);
  std::mt19937_64 rng(5);
  Vector<double> params(encoder.parameter_count() + decoder.parameter_count() + 1);
  params << encoder.initialize(rng), decoder.initialize(rng), -0.3;
  const Matrix<double> data = (normal_matrix(2, 64, rng).array() * 0.2 + 0.5).matrix();
  const Matrix<double> eps = normal_matrix(2, 2, rng);
  const auto loss = neural::vae_loss(encoder, decoder, params, data, eps, 20);
  const double h = 1e-6;
  // About 150 parameters spread over every layer (all 40,000 take a minute), and the noise.
  double err = 0.0, norm = 0.0;
  const Eigen::Index stride = params.size() / 150;
  std::vector<Eigen::Index> checked;
  for (Eigen::Index i = 0; i < params.size() - 1; i += stride) checked.push_back(i);
  checked.push_back(params.size() - 1);
  for (const Eigen::Index i : checked) {
    Vector<double> a = params, b = params;
    a[i] += h;
    b[i] -= h;
    const double fd = (neural::vae_loss(encoder, decoder, a, data, eps, 20).value -
                       neural::vae_loss(encoder, decoder, b, data, eps, 20).value) /
                      (2 * h);
    err += (loss.gradient[i] - fd) * (loss.gradient[i] - fd);
    norm += fd * fd;
  }
  EXPECT_LE(std::sqrt(err), 1e-6 * std::sqrt(norm));
  // The Appendix A model on Fashion-MNIST's 28 x 28 images.
  const neural::Autoencoder cvae(neural::AutoencoderKind::kCvae, 784, 5);
  EXPECT_EQ(cvae.conv_encoder().output_size(), 10);
  EXPECT_EQ(cvae.conv_decoder().output_size(), 784);
  EXPECT_THROW(neural::Autoencoder(neural::AutoencoderKind::kCvae, 30 * 30, 5), InvalidArgument);
  EXPECT_THROW(cvae.encoder(), InvalidArgument);
}

}  // namespace
}  // namespace infield

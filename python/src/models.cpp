// Bindings of the models: the correlated field (NIFTy's CorrelatedFieldMaker keywords), MKDE, and
// FisherNet / VAE training on numpy arrays or IDX folders.

#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>
#include <tbb/task_arena.h>

#include <iostream>
#include <optional>
#include <random>
#include <tuple>

#include "bindings.h"
#include "infield/error.h"
#include "infield/models/autoencoder.h"
#include "infield/models/correlated_field.h"
#include "infield/models/idx.h"
#include "infield/models/mkde.h"

namespace infield::python {
namespace {

using Moments = std::optional<std::tuple<double, double>>;

std::optional<PriorMoments> moments(const Moments& m) {
  if (!m) return std::nullopt;
  return PriorMoments{std::get<0>(*m), std::get<1>(*m)};
}

const DomainPtr& single_domain(py::handle h, const char* what) {
  if (!py::isinstance<PyDomain>(h))
    throw py::type_error(std::string(what) + ": expected a Domain (e.g. regular_grid(...))");
  return h.cast<const PyDomain&>().ptr;
}

/// NIFTy's CorrelatedFieldMaker: add_fluctuations / add_fluctuations_matern, then
/// set_amplitude_total_offset, then finalize (the field operator); afterwards the amplitude and
/// the power spectrum.
struct PyCorrelatedFieldMaker {
  CorrelatedFieldMaker maker;
  std::optional<CorrelatedField> field;
  const CorrelatedField& finalized(const char* what) const {
    if (!field) throw py::value_error(std::string(what) + ": call finalize() first");
    return *field;
  }
};

using FloatMatrix = neural::Matrix<float>;

FloatMatrix images_of(py::handle h, Eigen::Index columns, const char* what) {
  auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(h);
  if (!a) throw py::type_error(std::string(what) + ": expected a numpy array of images");
  if (a.ndim() < 2) throw py::value_error(std::string(what) + ": expected N x pixels images");
  const Eigen::Index n = a.shape(0), pixels = a.size() / std::max<Eigen::Index>(n, 1);
  if (columns > 0 && pixels != columns)
    throw py::value_error(std::string(what) + ": the images have " + std::to_string(pixels) +
                          " pixels, the model's data size is " + std::to_string(columns));
  FloatMatrix m = Eigen::Map<const FloatMatrix>(a.data(), n, pixels);
  if (!all_finite(m)) throw py::value_error(std::string(what) + ": the images hold non-finite values");
  return m;
}

py::array_t<double> to_numpy(const Eigen::MatrixXd& m) {
  py::array_t<double> out({m.rows(), m.cols()});
  auto r = out.mutable_unchecked<2>();
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) r(i, j) = m(i, j);
  return out;
}

/// A trained (or training) autoencoder: the model, its parameters and the training history.
struct PyAutoencoder {
  std::shared_ptr<neural::Autoencoder> model;
  neural::TrainingCheckpoint state;
};

py::list history_list(const std::vector<neural::EpochRecord>& history) {
  py::list out;
  for (const auto& r : history) {
    py::dict d;
    d["epoch"] = r.epoch;
    d["train_loss"] = r.train_loss;
    d["test_mse"] = r.test_mse;
    d["noise_std"] = r.noise_std;
    d["seconds"] = r.seconds;
    d["images_per_s"] = r.images_per_s;
    out.append(d);
  }
  return out;
}

}  // namespace

void bind_models(py::module_& m) {
  // ---- Correlated fields ----
  py::class_<PyCorrelatedFieldMaker>(m, "CorrelatedFieldMaker",
                                     "NIFTy 8's CorrelatedFieldMaker: the same keywords, the same "
                                     "excitation keys and the same fields for the same excitations")
      .def(py::init([](std::string prefix) { return PyCorrelatedFieldMaker{CorrelatedFieldMaker(prefix), {}}; }),
           py::arg("prefix") = "")
      .def("add_fluctuations",
           [](PyCorrelatedFieldMaker& self, py::handle target_subdomain, Moments fluctuations,
              Moments flexibility, Moments asperity, Moments loglogavgslope, std::string prefix) {
             FluctuationSettings s;
             if (!fluctuations || !loglogavgslope)
               throw py::value_error("add_fluctuations: fluctuations and loglogavgslope are required");
             s.fluctuations = *moments(fluctuations);
             s.flexibility = moments(flexibility);
             s.asperity = moments(asperity);
             s.loglogavgslope = *moments(loglogavgslope);
             self.maker.add_fluctuations(single_domain(target_subdomain, "add_fluctuations"), s,
                                         std::move(prefix));
             return &self;
           },
           py::arg("target_subdomain"), py::arg("fluctuations"), py::arg("flexibility"),
           py::arg("asperity"), py::arg("loglogavgslope"), py::arg("prefix") = "",
           py::return_value_policy::reference_internal,
           "(mean, std) pairs; flexibility and asperity may be None (a pure power law)")
      .def("add_fluctuations_matern",
           [](PyCorrelatedFieldMaker& self, py::handle target_subdomain, Moments scale,
              Moments cutoff, Moments loglogslope, bool adjust_for_volume, std::string prefix) {
             MaternSettings s;
             if (!scale || !cutoff || !loglogslope)
               throw py::value_error("add_fluctuations_matern: scale, cutoff and loglogslope are required");
             s.scale = *moments(scale);
             s.cutoff = *moments(cutoff);
             s.loglogslope = *moments(loglogslope);
             s.adjust_for_volume = adjust_for_volume;
             self.maker.add_matern_fluctuations(
                 single_domain(target_subdomain, "add_fluctuations_matern"), s, std::move(prefix));
             return &self;
           },
           py::arg("target_subdomain"), py::arg("scale"), py::arg("cutoff"), py::arg("loglogslope"),
           py::arg("adjust_for_volume") = true, py::arg("prefix") = "",
           py::return_value_policy::reference_internal)
      .def("set_amplitude_total_offset",
           [](PyCorrelatedFieldMaker& self, double offset_mean, Moments offset_std) {
             if (!offset_std) throw py::value_error("set_amplitude_total_offset: offset_std is required");
             self.maker.set_offset(offset_mean, *moments(offset_std));
             return &self;
           },
           py::arg("offset_mean"), py::arg("offset_std"), py::return_value_policy::reference_internal)
      .def("finalize",
           [](PyCorrelatedFieldMaker& self) {
             self.field = self.maker.finalize();
             return wrap(self.field->field());
           },
           "the field operator, excitations -> field")
      .def_property_readonly("amplitude",
                             [](const PyCorrelatedFieldMaker& s) { return wrap(s.finalized("amplitude").amplitude()); })
      .def_property_readonly("power_spectrum",
                             [](const PyCorrelatedFieldMaker& s) {
                               return wrap(s.finalized("power_spectrum").power_spectrum());
                             })
      .def("normalized_amplitude",
           [](const PyCorrelatedFieldMaker& s, std::size_t i) {
             return wrap(s.finalized("normalized_amplitude").normalized_amplitude(i));
           })
      .def("power_space",
           [](const PyCorrelatedFieldMaker& s, std::size_t i) {
             return PyDomain{s.finalized("power_space").power_space(i)};
           },
           py::arg("index") = 0)
      .def_property_readonly("zero_mode_std",
                             [](const PyCorrelatedFieldMaker& s) { return wrap(s.finalized("zero_mode_std").zero_mode_std()); });

  // ---- MKDE ----
  py::class_<Mkde>(m, "_Mkde")
      .def_static("fit",
                  [](Eigen::MatrixXd points, std::vector<Eigen::Index> cells,
                     std::optional<double> padding, double margin, double log_density_std,
                     int global_iterations, int sample_pairs, int newton_steps, std::uint64_t seed,
                     int threads, bool progress, py::object communicator) {
                    MkdeOptions o;
                    o.communicator = checked_communicator(communicator, "Mkde.fit");
                    o.cells = std::move(cells);
                    o.padding = padding;
                    o.margin = margin;
                    o.log_density_std = log_density_std;
                    o.global_iterations = global_iterations;
                    o.sample_pairs = sample_pairs;
                    o.newton_steps = newton_steps;
                    o.seed = seed;
                    if (progress && o.communicator.is_root()) o.progress = &std::cerr;
                    py::gil_scoped_release release;
                    tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);
                    return arena.execute([&] { return Mkde::fit(points, o); });
                  })
      .def_static("load", [](const std::filesystem::path& dir) { return Mkde::load(dir); })
      .def("save", [](const Mkde& k, const std::filesystem::path& dir) { k.save(dir); })
      .def("log_density",
           [](const Mkde& k, Eigen::MatrixXd points) {
             if (points.cols() != k.dimensions())
               throw py::value_error("Mkde: points have " + std::to_string(points.cols()) +
                                     " columns, the density has " + std::to_string(k.dimensions()) +
                                     " dimensions");
             py::gil_scoped_release release;
             return Eigen::VectorXd(k.log_density(points));
           })
      .def("sample",
           [](const Mkde& k, Eigen::Index n, std::uint64_t seed) {
             std::mt19937_64 rng(seed);
             return to_numpy(k.sample(n, rng));
           })
      .def_property_readonly("dimensions", &Mkde::dimensions)
      .def_property_readonly("cells", &Mkde::cells)
      .def_property_readonly("bounds", &Mkde::bounds)
      .def_property_readonly("density_mean", &Mkde::density_mean)
      .def_property_readonly("density_std", &Mkde::density_std)
      .def_property_readonly("fit_log", &Mkde::fit_log);

  // ---- FisherNet, VAE, CVAE ----
  py::class_<PyAutoencoder>(m, "_Autoencoder")
      .def_property_readonly("kind", [](const PyAutoencoder& a) { return neural::autoencoder_kind_name(a.model->kind()); })
      .def_property_readonly("latent", [](const PyAutoencoder& a) { return a.model->latent(); })
      .def_property_readonly("history", [](const PyAutoencoder& a) { return history_list(a.state.history); })
      .def_property_readonly("noise_std", [](const PyAutoencoder& a) { return a.model->noise_std(a.state.params); })
      .def_property_readonly("parameters", [](const PyAutoencoder& a) { return Eigen::VectorXf(a.state.params); })
      .def("encode",
           [](const PyAutoencoder& a, py::handle images) {
             const FloatMatrix x = images_of(images, a.model->data_size(), "encode");
             py::gil_scoped_release release;
             const FloatMatrix mean = a.model->encode_mean(a.state.params, x);
             const FloatMatrix cov = a.model->latent_covariances(a.state.params, x);
             py::gil_scoped_acquire gil;
             py::array_t<double> c({cov.rows(), a.model->latent(), a.model->latent()});
             std::copy(cov.data(), cov.data() + cov.size(), c.mutable_data());
             return py::make_tuple(to_numpy(mean.cast<double>()), c);
           },
           "(latent means N x D, latent covariances N x D x D)")
      .def("decode",
           [](const PyAutoencoder& a, py::handle z) {
             const FloatMatrix latents = images_of(z, a.model->latent(), "decode");
             return to_numpy(a.model->decode(a.state.params, latents).cast<double>());
           })
      .def("test_mse",
           [](const PyAutoencoder& a, py::handle images, int threads) {
             const FloatMatrix x = images_of(images, a.model->data_size(), "test_mse");
             py::gil_scoped_release release;
             return neural::test_mse(*a.model, a.state.params, x, threads);
           },
           py::arg("images"), py::arg("threads") = 1)
      .def("save", [](const PyAutoencoder& a, const std::filesystem::path& p) { neural::save_checkpoint(p, a.state); })
      .def_static("load", [](const std::filesystem::path& p) {
        PyAutoencoder a;
        a.state = neural::load_checkpoint(p);
        a.model = std::make_shared<neural::Autoencoder>(a.state.kind, a.state.data_size, a.state.latent, a.state.hidden);
        return a;
      });

  m.def("_train_autoencoder",
        [](const std::string& model, Eigen::Index latent, py::handle train, py::handle test,
           std::vector<Eigen::Index> hidden, int epochs, Eigen::Index batch, double learning_rate,
           double noise_learning_rate, std::uint64_t seed, int threads, py::object on_epoch,
           py::object communicator) {
          const FloatMatrix x = images_of(train, 0, "train");
          const FloatMatrix t = images_of(test, x.cols(), "test");
          PyAutoencoder a;
          a.model = std::make_shared<neural::Autoencoder>(neural::parse_autoencoder_kind(model),
                                                          x.cols(), latent, hidden);
          neural::TrainingOptions o;
          o.epochs = epochs;
          o.batch = batch;
          o.learning_rate = learning_rate;
          o.noise_learning_rate = noise_learning_rate;
          o.seed = seed;
          o.threads = threads;
          o.communicator = checked_communicator(communicator, "train_autoencoder");
          neural::TrainingCallbacks callbacks;
          std::optional<py::error_already_set> stop;
          callbacks.on_epoch = [&](const neural::TrainingCheckpoint& c) {
            {
              py::gil_scoped_acquire gil;
              if (PyErr_CheckSignals() != 0) {
                stop.emplace();
              } else if (!on_epoch.is_none()) {
                try {
                  on_epoch(history_list(c.history)[c.history.size() - 1]);
                } catch (py::error_already_set& e) {
                  stop.emplace(std::move(e));
                }
              }
            }
            // Over ranks every rank stops after the same epoch (one alone would leave the others
            // waiting in the next step's exchange).
            if (o.communicator.any(stop.has_value())) {
              if (!stop) {
                py::gil_scoped_acquire gil;
                PyErr_SetString(PyExc_RuntimeError,
                                "train_autoencoder: stopped with another rank, whose on_epoch "
                                "raised or which was interrupted");
                stop.emplace();
              }
              throw std::runtime_error("stopped");
            }
          };
          try {
            py::gil_scoped_release release;
            a.state = neural::train_autoencoder(*a.model, o, x, t,
                                                neural::start_training(*a.model, o, x.rows()), callbacks);
          } catch (const std::runtime_error&) {
            if (stop) throw std::move(*stop);
            throw;
          }
          return a;
        },
        py::arg("model"), py::arg("latent"), py::arg("train"), py::arg("test"), py::arg("hidden"),
        py::arg("epochs"), py::arg("batch"), py::arg("learning_rate"),
        py::arg("noise_learning_rate"), py::arg("seed"), py::arg("threads"), py::arg("on_epoch"),
        py::arg("communicator"));

  m.def("read_image_dataset",
        [](const std::filesystem::path& dir, const std::string& split) {
          const ImageDataset set = read_image_dataset(dir, split);
          py::array_t<double> images({set.images.rows(), set.images.cols()});
          std::copy(set.images.data(), set.images.data() + set.images.size(), images.mutable_data());
          return py::make_tuple(images, py::array(py::cast(set.labels)));
        },
        py::arg("directory"), py::arg("split"),
        "(images N x pixels in [0, 1], labels) of an IDX folder's split ('train' or 't10k')");
}

}  // namespace infield::python

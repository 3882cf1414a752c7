// Bindings of likelihoods, Hamiltonians and the inference layer (optimize_kl with MGVI or geoVI,
// sample lists).

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <tbb/task_arena.h>

#include <signal.h>

#include <atomic>
#include <csignal>
#include <functional>
#include <iostream>
#include <optional>

#include "bindings.h"
#include "infield/energy.h"
#include "infield/error.h"
#include "infield/inference/geovi.h"
#include "infield/inference/mgvi.h"
#include "infield/likelihood.h"

namespace infield::python {
namespace {

/// A likelihood as Python builds it: data and parameters now, the space when it meets a model.
/// A plain array carries no domain, so the likelihood takes its model's target (or `domain`).
struct PyLikelihood {
  std::string name;
  Eigen::VectorXd data;
  std::vector<py::ssize_t> data_shape;
  std::function<LikelihoodPtr(const Field&)> make;
  std::optional<Space> domain;
  /// The data's space for a model with this target: the target itself, or its "mean" part for
  /// the variable-covariance Gaussian.
  bool on_mean_part = false;

  LikelihoodPtr on(const Space& target) const {
    Space space = domain ? *domain : target;
    if (on_mean_part) {
      if (!space.is_multi() || !space.multi().contains("mean"))
        throw py::value_error(name + ": the model's target must be a MultiDomain with parts "
                              "'mean' and 'inverse_variance', got " + space.to_string());
      space = Space(space.multi().at("mean").domain);
    }
    if (space.is_multi())
      throw py::value_error(name + ": the data are one array, the model's target is " +
                            space.to_string());
    const std::vector<py::ssize_t> want = numpy_shape(space.tuple());
    if (want != data_shape) {
      std::string got, expected;
      for (auto n : data_shape) got += std::to_string(n) + ",";
      for (auto n : want) expected += std::to_string(n) + ",";
      throw py::value_error(name + ": the data have shape (" + got + "), the model's target " +
                            space.to_string() + " has shape (" + expected + ")");
    }
    return make(Field(space, data));
  }
};

PyLikelihood likelihood_spec(std::string name, py::handle data, std::optional<py::handle> domain) {
  py::array array = py::array::ensure(data);
  if (!array) throw py::type_error(name + ": data must be a numpy array");
  const char kind = array.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
    throw py::type_error(name + ": data must hold real numbers, got dtype " +
                         std::string(py::str(array.dtype())));
  auto values = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(array);
  PyLikelihood l;
  l.name = std::move(name);
  l.data = Eigen::Map<const Eigen::VectorXd>(values.data(), values.size());
  l.data_shape.assign(values.shape(), values.shape() + values.ndim());
  if (domain && !domain->is_none()) l.domain = to_space(*domain);
  return l;
}

/// The Hamiltonian as Python holds it.
struct PyHamiltonian {
  std::shared_ptr<const StandardHamiltonian> h;
};

/// Samples and their mean as Python holds them.
struct PySampleList {
  SampleList samples;
};

py::dict report_dict(const GlobalIterationReport& r) {
  py::dict d;
  d["iteration"] = r.iteration;
  d["samples"] = r.samples;
  d["kl"] = r.kl_value;
  d["kl_standard_error"] = r.kl_standard_error;
  d["kl_with_entropy"] = r.kl_with_entropy;
  d["gradient_norm"] = r.gradient_norm;
  d["sampling_cg_iterations"] = r.sampling_cg_iterations;
  d["sampling_cg_not_converged"] = r.sampling_cg_not_converged;
  d["nonlinear_sampling"] = r.nonlinear_sampling;
  d["nonlinear_sampling_iterations"] = r.nonlinear_sampling_iterations;
  d["nonlinear_sampling_not_converged"] = r.nonlinear_sampling_not_converged;
  d["minimizer_status"] = to_string(r.minimizer.status);
  d["minimizer_iterations"] = r.minimizer.iterations;
  d["minimizer_cg_iterations"] = r.minimizer.cg_iterations;
  d["minimizer_converged"] = r.minimizer.converged();
  d["seconds_sampling"] = r.seconds_sampling;
  d["seconds_minimizing"] = r.seconds_minimizing;
  d["progress_line"] = r.progress_line();
  return d;
}

/// Ctrl-C during optimize_kl: a C-level handler only notes it (Python's own handler would raise
/// KeyboardInterrupt inside whatever Python operator runs at that moment, in the middle of an
/// iteration); the run stops at the next iteration's end, after its checkpoint.
std::atomic<bool> interrupt_requested{false};
extern "C" void note_interrupt(int) { interrupt_requested = true; }

class InterruptGuard {
 public:
  InterruptGuard() {
    interrupt_requested = false;
    struct sigaction action {};
    action.sa_handler = note_interrupt;
    sigemptyset(&action.sa_mask);
    installed_ = sigaction(SIGINT, &action, &previous_) == 0;
  }
  ~InterruptGuard() {
    if (installed_) sigaction(SIGINT, &previous_, nullptr);
  }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  struct sigaction previous_ {};
  bool installed_ = false;
};

/// Thrown by optimize_kl's callback when Python must take over (Ctrl-C, or the user's callback
/// raised): the Python error is restored when control is back in Python.
struct StopRequested {
  py::error_already_set error;
};

}  // namespace

void bind_inference(py::module_& m) {
  // ---- Likelihoods ----
  py::class_<PyLikelihood>(m, "Likelihood",
                           "A likelihood of data; it takes its space from the model it is "
                           "combined with (standard_hamiltonian) unless a domain was given")
      .def_readonly("name", &PyLikelihood::name)
      .def("energy",
           [](const PyLikelihood& l, py::handle s, std::optional<py::handle> domain) {
             const Space space = domain ? to_space(*domain)
                                 : l.domain ? *l.domain
                                            : Space(unstructured(l.data.size()));
             const LikelihoodPtr lh = l.on(space);
             return lh->value(to_field(lh->domain(), s, "s"));
           },
           py::arg("s"), py::arg("domain") = py::none(), "the energy (negative log-likelihood) at s")
      .def("__repr__", [](const PyLikelihood& l) { return "<" + l.name + ">"; });

  m.def("gaussian_likelihood",
        [](py::handle data, std::optional<double> noise_std, std::optional<py::handle> noise_variance,
           std::optional<py::handle> inverse_covariance,
           std::optional<py::handle> inverse_covariance_factor, std::optional<py::handle> domain) {
          PyLikelihood l = likelihood_spec("gaussian_likelihood", data, domain);
          const int given = noise_std.has_value() + (noise_variance && !noise_variance->is_none()) +
                            (inverse_covariance && !inverse_covariance->is_none());
          if (given != 1)
            throw py::value_error("gaussian_likelihood: give exactly one of noise_std, "
                                  "noise_variance and inverse_covariance");
          if (noise_std) {
            const double s = *noise_std;
            l.make = [s](const Field& d) { return gaussian_likelihood(d, s); };
          } else if (noise_variance && !noise_variance->is_none()) {
            auto var = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(*noise_variance);
            if (!var) throw py::type_error("gaussian_likelihood: noise_variance must be an array");
            Eigen::VectorXd v = Eigen::Map<const Eigen::VectorXd>(var.data(), var.size());
            l.make = [v](const Field& d) { return gaussian_likelihood(d, v); };
          } else {
            const OperatorPtr n_inv = op_of(*inverse_covariance, "gaussian_likelihood");
            if (!inverse_covariance_factor || inverse_covariance_factor->is_none())
              throw py::value_error("gaussian_likelihood: inverse_covariance needs "
                                    "inverse_covariance_factor L with L L^T = N^-1");
            const OperatorPtr factor = op_of(*inverse_covariance_factor, "gaussian_likelihood");
            auto a = std::dynamic_pointer_cast<const LinearOperator>(n_inv);
            auto b = std::dynamic_pointer_cast<const LinearOperator>(factor);
            if (!a || !b) throw py::type_error("gaussian_likelihood: the covariance operators must be linear");
            l.make = [a, b](const Field& d) { return gaussian_likelihood(d, a, b); };
          }
          return l;
        },
        py::arg("data"), py::kw_only(), py::arg("noise_std") = py::none(),
        py::arg("noise_variance") = py::none(), py::arg("inverse_covariance") = py::none(),
        py::arg("inverse_covariance_factor") = py::none(), py::arg("domain") = py::none(),
        "0.5 |d - s|^2 / sigma^2 (or with a diagonal or operator covariance).");
  m.def("poisson_likelihood",
        [](py::handle counts, std::optional<py::handle> domain) {
          PyLikelihood l = likelihood_spec("poisson_likelihood", counts, domain);
          l.make = [](const Field& d) { return poisson_likelihood(d); };
          return l;
        },
        py::arg("counts"), py::kw_only(), py::arg("domain") = py::none());
  m.def("student_t_likelihood",
        [](py::handle data, double noise_std, double dof, std::optional<py::handle> domain) {
          PyLikelihood l = likelihood_spec("student_t_likelihood", data, domain);
          l.make = [noise_std, dof](const Field& d) { return student_t_likelihood(d, noise_std, dof); };
          return l;
        },
        py::arg("data"), py::kw_only(), py::arg("noise_std"), py::arg("dof"),
        py::arg("domain") = py::none());
  m.def("bernoulli_likelihood",
        [](py::handle data, std::optional<py::handle> domain) {
          PyLikelihood l = likelihood_spec("bernoulli_likelihood", data, domain);
          l.make = [](const Field& d) { return bernoulli_likelihood(d); };
          return l;
        },
        py::arg("data"), py::kw_only(), py::arg("domain") = py::none());
  m.def("variable_covariance_gaussian_likelihood",
        [](py::handle data, std::optional<py::handle> domain) {
          PyLikelihood l = likelihood_spec("variable_covariance_gaussian_likelihood", data, domain);
          l.on_mean_part = true;
          l.make = [](const Field& d) { return variable_covariance_gaussian_likelihood(d); };
          return l;
        },
        py::arg("data"), py::kw_only(), py::arg("domain") = py::none(),
        "For a model whose target has parts 'mean' and 'inverse_variance'.");
  m.def("inverse_gamma_likelihood",
        [](py::handle data, double alpha, std::optional<py::handle> domain) {
          PyLikelihood l = likelihood_spec("inverse_gamma_likelihood", data, domain);
          l.make = [alpha](const Field& d) { return inverse_gamma_likelihood(d, alpha); };
          return l;
        },
        py::arg("data"), py::kw_only(), py::arg("alpha"), py::arg("domain") = py::none());

  // ---- Hamiltonians ----
  py::class_<PyHamiltonian>(m, "StandardHamiltonian",
                            "L(model(xi)) + 0.5 |xi|^2 with a standard-normal prior on xi")
      .def_property_readonly("domain", [](const PyHamiltonian& h) { return PySpace{h.h->domain()}; })
      .def_property_readonly("model", [](const PyHamiltonian& h) { return wrap(h.h->model()); })
      .def("energy",
           [](const PyHamiltonian& h, py::handle x) {
             Field f = to_field(h.h->domain(), x, "x");
             return without_gil([&] { return h.h->evaluate(f.values(), kValue).value; });
           })
      .def("gradient",
           [](const PyHamiltonian& h, py::handle x) {
             Field f = to_field(h.h->domain(), x, "x");
             EnergyEvaluation e = without_gil([&] { return h.h->evaluate(f.values(), kGradient); });
             return py::make_tuple(e.value, from_values(h.h->domain(), std::move(e.gradient)));
           },
           "(energy, gradient) at x")
      .def("metric",
           [](const PyHamiltonian& h, py::handle x) {
             Field f = to_field(h.h->domain(), x, "x");
             EnergyEvaluation e = without_gil([&] { return h.h->evaluate(f.values(), kMetric); });
             return wrap(e.metric);
           },
           "the metric J^T F J + 1 at x as a LinearOperator");
  m.def("standard_hamiltonian",
        [](const PyLikelihood& likelihood, py::handle model) {
          const OperatorPtr op = op_of(model, "standard_hamiltonian");
          return PyHamiltonian{standard_hamiltonian(likelihood.on(op->target()), op)};
        },
        py::arg("likelihood"), py::arg("model"));

  // ---- Samples ----
  py::class_<PySampleList>(m, "SampleList", "Posterior samples: mean +- residuals")
      .def_property_readonly("mean", [](const PySampleList& s) { return from_field(s.samples.mean()); })
      .def("__len__", [](const PySampleList& s) { return s.samples.size(); })
      .def_property_readonly("mirrored", [](const PySampleList& s) { return s.samples.mirrored(); })
      .def("sample",
           [](const PySampleList& s, int k) {
             if (k < 0 || k >= s.samples.size())
               throw py::index_error("sample " + std::to_string(k) + " of " +
                                     std::to_string(s.samples.size()));
             return from_field(s.samples.sample(k));
           })
      .def("__iter__",
           [](const PySampleList& s) {
             py::list out;
             for (int k = 0; k < s.samples.size(); ++k) out.append(from_field(s.samples.sample(k)));
             return py::iter(out);
           })
      .def("statistics",
           [](const PySampleList& s, py::handle op) {
             const OperatorPtr o = op_of(op, "statistics");
             SampleList::Statistics st = without_gil([&] { return s.samples.statistics(*o); });
             return py::make_tuple(from_field(std::move(st.mean)), from_field(std::move(st.std)));
           },
           py::arg("op"), "(mean, std) over the samples of op(sample); std divides by n - 1");

  // ---- optimize_kl ----
  m.def(
      "_optimize_kl",
      [](const PyHamiltonian& h, py::object initial, int global_iterations, int sample_pairs,
         std::uint64_t seed, int threads, std::string checkpoint, bool resume, py::object callback,
         std::string method, int geovi_steps, double geovi_delta_energy,
         double sampling_cg_tolerance, double sampling_cg_delta_energy, int sampling_cg_max,
         int newton_steps, double newton_delta_energy, int newton_convergence_level,
         double newton_gradient_tolerance, double newton_cg_tolerance, int newton_cg_max,
         double newton_cg_reduction, std::vector<std::string> point_estimates, std::string run_id,
         bool progress, long dense_entropy_limit, py::object communicator) {
        if (method != "mgvi" && method != "geovi")
          throw py::value_error("optimize_kl: method must be 'mgvi' or 'geovi', got '" + method + "'");
        Field start = initial.is_none() ? Field::zeros(h.h->domain())
                                        : to_field(h.h->domain(), initial, "initial");
        OptimizeKLOptions o;
        o.global_iterations = global_iterations;
        o.settings.sample_pairs = sample_pairs;
        o.settings.sampling_cg = {sampling_cg_tolerance, sampling_cg_delta_energy, sampling_cg_max};
        o.settings.point_estimates = std::move(point_estimates);
        NewtonCGOptions newton;
        newton.max_iterations = newton_steps;
        newton.absolute_energy_change = newton_delta_energy;
        newton.convergence_level = newton_convergence_level;
        newton.gradient_tolerance = newton_gradient_tolerance;
        newton.cg = {newton_cg_tolerance, 0.0, newton_cg_max};
        newton.energy_reduction_factor = newton_cg_reduction;
        o.settings.minimizer = newton_cg(newton);
        if (method == "geovi")
          o.settings.nonlinear_sampling_minimizer =
              geovi_sample_minimizer(geovi_steps, geovi_delta_energy);
        o.seed = seed;
        o.checkpoint = checkpoint;
        o.resume = resume;
        o.run_id = std::move(run_id);
        o.dense_entropy_limit = dense_entropy_limit;
        o.communicator = checked_communicator(communicator, "optimize_kl");
        if (progress && o.communicator.is_root()) o.progress = &std::cerr;
        // Between global iterations (the checkpoint is written by then): Python's signal
        // handlers run, and the user's callback. Either may stop the run.
        o.callback = [&callback, &o](const GlobalIterationReport& r, const SampleList& samples) {
          std::optional<StopRequested> stop;
          {
            py::gil_scoped_acquire gil;
            if (interrupt_requested) {
              PyErr_SetNone(PyExc_KeyboardInterrupt);
              stop.emplace(StopRequested{py::error_already_set()});
            } else if (PyErr_CheckSignals() != 0) {
              stop.emplace(StopRequested{py::error_already_set()});
            } else if (!callback.is_none()) {
              try {
                callback(report_dict(r), PySampleList{samples});
              } catch (py::error_already_set& e) {
                stop.emplace(StopRequested{std::move(e)});
              }
            }
          }
          // Over ranks every rank stops after the same iteration: one rank stopping alone would
          // leave the others waiting in the next iteration's sums.
          const bool any_stop = o.communicator.any(stop.has_value());
          if (stop) throw std::move(*stop);
          if (any_stop) {
            py::gil_scoped_acquire gil;
            PyErr_SetString(PyExc_RuntimeError,
                            "optimize_kl: stopped with another rank, whose callback raised or "
                            "which was interrupted");
            throw StopRequested{py::error_already_set()};
          }
        };
        std::optional<OptimizeKLSummary> summary;
        std::optional<StopRequested> stop;
        {
          // Only the main thread may take over SIGINT (it is where Python handles signals).
          std::optional<InterruptGuard> guard;
          if (PyGILState_Check() && py::module_::import("threading").attr("current_thread")().is(
                  py::module_::import("threading").attr("main_thread")()))
            guard.emplace();
          py::gil_scoped_release release;
          tbb::task_arena arena(threads > 0 ? threads : tbb::task_arena::automatic);
          arena.execute([&] {
            try {
              summary = optimize_kl(h.h, std::move(start), o);
            } catch (StopRequested& s) {
              stop.emplace(std::move(s));
            }
          });
        }
        if (stop) throw std::move(stop->error);
        if (interrupt_requested.exchange(false)) {  // after the last iteration's callback
          PyErr_SetNone(PyExc_KeyboardInterrupt);
          throw py::error_already_set();
        }
        py::dict out;
        py::list reports;
        for (const auto& r : summary->iterations) reports.append(report_dict(r));
        out["reports"] = reports;
        out["samples"] = PySampleList{summary->samples};
        out["resumed_iterations"] = summary->resumed_iterations;
        out["all_converged"] = summary->all_converged();
        return out;
      },
      py::arg("hamiltonian"), py::arg("initial"), py::arg("global_iterations"),
      py::arg("sample_pairs"), py::arg("seed"), py::arg("threads"), py::arg("checkpoint"),
      py::arg("resume"), py::arg("callback"), py::arg("method"), py::arg("geovi_steps"),
      py::arg("geovi_delta_energy"), py::arg("sampling_cg_tolerance"),
      py::arg("sampling_cg_delta_energy"), py::arg("sampling_cg_max"), py::arg("newton_steps"),
      py::arg("newton_delta_energy"), py::arg("newton_convergence_level"),
      py::arg("newton_gradient_tolerance"), py::arg("newton_cg_tolerance"),
      py::arg("newton_cg_max"), py::arg("newton_cg_reduction"), py::arg("point_estimates"),
      py::arg("run_id"), py::arg("progress"), py::arg("dense_entropy_limit"),
      py::arg("communicator"));
}

}  // namespace infield::python

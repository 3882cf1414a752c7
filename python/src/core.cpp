// Bindings of the core layer: domains and spaces, operators (C++ ones and ones written in Python)
// and the consistency checks.

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>
#include <tbb/task_arena.h>

#include <optional>
#include <random>
#include <sstream>

#include "bindings.h"
#include "conversions.h"
#include "infield/checks.h"
#include "infield/energy.h"
#include "infield/error.h"
#include "infield/harmonic.h"
#include "infield/inference/geovi.h"
#include "infield/inference/mgvi.h"
#include "infield/likelihood.h"
#include "infield/linear_operators.h"
#include "infield/pointwise.h"

namespace infield::python {
namespace {

// ---- Operators written in Python ---------------------------------------------------------------

/// Raised in C++ when a Python callback failed; carries the Python error's text (the Python
/// exception object itself must not outlive the GIL on a worker thread).
class PythonCallbackError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Calls a Python function with numpy views of the arguments and converts its result to the
/// values of `result_space`, all under the GIL.
Eigen::VectorXd call_python(const py::function& fn, const std::string& what,
                            const Space& result_space,
                            const std::vector<std::pair<const Space*, ConstVectorRef>>& args) {
  py::gil_scoped_acquire gil;
  try {
    py::tuple py_args(args.size());
    for (std::size_t i = 0; i < args.size(); ++i)
      py_args[i] = from_values(*args[i].first, Eigen::VectorXd(args[i].second));
    py::object result = fn(*py_args);
    return to_field(result_space, result, what).values();
  } catch (py::error_already_set& e) {
    throw PythonCallbackError(what + " raised " + e.what());
  } catch (const py::builtin_exception& e) {
    throw PythonCallbackError(std::string(e.what()));
  }
}

OperatorPtr make_python_operator(py::handle domain, py::handle target, py::function value,
                                 py::function jvp, py::function vjp, const std::string& name) {
  const Space d = to_space(domain), t = to_space(target);
  // The callables are Python objects: copies and destruction need the GIL, so they live in a
  // shared holder that is released under the GIL.
  struct Callables {
    py::function value, jvp, vjp;
    ~Callables() {
      py::gil_scoped_acquire gil;
      value.release().dec_ref();
      jvp.release().dec_ref();
      vjp.release().dec_ref();
    }
  };
  auto fns = std::shared_ptr<Callables>(new Callables{std::move(value), std::move(jvp), std::move(vjp)});
  return make_operator(
      d, t,
      [fns, d, t, name](ConstVectorRef x) {
        return call_python(fns->value, name + ".value", t, {{&d, x}});
      },
      [fns, d, t, name](ConstVectorRef x, ConstVectorRef v) {
        return call_python(fns->jvp, name + ".jvp", t, {{&d, x}, {&d, v}});
      },
      [fns, d, t, name](ConstVectorRef x, ConstVectorRef u) {
        return call_python(fns->vjp, name + ".vjp", d, {{&d, x}, {&t, u}});
      },
      name);
}

LinearOperatorPtr make_python_linear_operator(py::handle domain, py::handle target,
                                              py::function times, py::function adjoint_times,
                                              const std::string& name) {
  const Space d = to_space(domain), t = to_space(target);
  struct Callables {
    py::function times, adjoint;
    ~Callables() {
      py::gil_scoped_acquire gil;
      times.release().dec_ref();
      adjoint.release().dec_ref();
    }
  };
  auto fns = std::shared_ptr<Callables>(new Callables{std::move(times), std::move(adjoint_times)});
  return make_linear_operator(
      d, t,
      [fns, d, t, name](ConstVectorRef v) {
        return call_python(fns->times, name + ".times", t, {{&d, v}});
      },
      [fns, d, t, name](ConstVectorRef u) {
        return call_python(fns->adjoint, name + ".adjoint_times", d, {{&t, u}});
      },
      name);
}

// ---- Helpers -----------------------------------------------------------------------------------

LinearOperatorPtr linear_of(const PyOperator& op, const char* what) {
  auto l = std::dynamic_pointer_cast<const LinearOperator>(op.op);
  if (!l) throw py::type_error(std::string(what) + ": " + op.op->name() + " is not linear");
  return l;
}

py::dict check_report_dict(const CheckReport& r) {
  py::dict d;
  d["passed"] = r.passed;
  d["failures"] = r.failures;
  d["details"] = r.details;
  return d;
}

}  // namespace

void bind_core(py::module_& m) {
  py::register_exception<PythonCallbackError>(m, "CallbackError", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const FileError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    } catch (const UnsupportedOperation& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });

  // ---- Domains and spaces ----
  py::class_<PyDomain>(m, "Domain", "One factor of a space: a regular grid, unstructured points, ...")
      .def_property_readonly("shape", [](const PyDomain& d) { return py::tuple(py::cast(d.ptr->shape())); })
      .def_property_readonly("size", [](const PyDomain& d) { return d.ptr->size(); })
      .def_property_readonly("cell_volume", [](const PyDomain& d) { return d.ptr->cell_volume(); })
      .def_property_readonly("distances", [](const PyDomain& d) -> py::object {
        if (auto g = std::dynamic_pointer_cast<const RegularGrid>(d.ptr)) return py::cast(g->distances());
        return py::none();
      })
      .def_property_readonly("k", [](const PyDomain& d) -> py::object {
        if (auto p = std::dynamic_pointer_cast<const PowerSpace>(d.ptr)) return py::cast(Eigen::VectorXd(p->k()));
        return py::none();
      }, "a power space's |k| per bin (None for other domains)")
      .def("__eq__", [](const PyDomain& a, const PyDomain& b) { return a.ptr->equals(*b.ptr); })
      .def("__repr__", [](const PyDomain& d) { return d.ptr->to_string(); });

  py::class_<PySpace>(m, "Space",
                      "What fields live on: a product of domains (values as one numpy array) or "
                      "a MultiDomain (a dict of arrays)")
      .def(py::init([](py::handle h) { return PySpace{to_space(h)}; }), py::arg("space"))
      .def_property_readonly("is_multi", [](const PySpace& s) { return s.space.is_multi(); })
      .def_property_readonly("size", [](const PySpace& s) { return s.space.size(); })
      .def_property_readonly("shape", [](const PySpace& s) -> py::object {
        if (!s.space.is_multi()) return py::tuple(py::cast(numpy_shape(s.space.tuple())));
        py::dict d;
        for (const auto& e : s.space.multi().entries())
          d[py::str(e.key)] = py::tuple(py::cast(numpy_shape(e.domain)));
        return std::move(d);
      })
      .def("keys", [](const PySpace& s) {
        return s.space.is_multi() ? s.space.multi().keys() : std::vector<std::string>{};
      })
      .def("__getitem__", [](const PySpace& s, const std::string& key) {
        return PySpace{Space(s.space.multi().at(key).domain)};
      })
      .def("__eq__", [](const PySpace& a, py::handle b) { return a.space == to_space(b); })
      .def("__repr__", [](const PySpace& s) { return s.space.to_string(); });

  m.def("regular_grid",
        [](std::vector<Eigen::Index> shape, std::optional<std::vector<double>> distances) {
          return PyDomain{regular_grid(std::move(shape), distances.value_or(std::vector<double>{}))};
        },
        py::arg("shape"), py::arg("distances") = py::none(),
        "A regular grid; distances default to 1 / shape per axis (the unit box, as NIFTy's).");
  m.def("unstructured", [](Eigen::Index n) { return PyDomain{unstructured(n)}; }, py::arg("n"),
        "n points without geometry.");
  m.def("harmonic_partner", [](const PyDomain& d) { return PyDomain{harmonic_partner(d.ptr)}; });
  m.def("power_space", [](const PyDomain& d) { return PyDomain{power_space(d.ptr)}; });
  m.def("k_lengths", [](const PyDomain& d) { return k_lengths(d.ptr); });
  m.def("product", [](py::args domains) { return PySpace{to_space(domains)}; },
        "The product of domains (C order: the last varies fastest).");
  m.def("multi_domain", [](py::dict parts) { return PySpace{to_space(parts)}; },
        "A MultiDomain from a dict of space-likes.");
  m.def("space", [](py::handle h) { return PySpace{to_space(h)}; });

  m.def("normal",
        [](py::handle space, std::uint64_t seed) {
          std::mt19937_64 rng(seed);
          return from_field(Field::normal(to_space(space), rng));
        },
        py::arg("space"), py::arg("seed"),
        "Standard-normal values on a space from the generator seeded by `seed` (the command "
        "line's start 0.1 N(0, 1) of `reconstruct --seed S` is 0.1 * normal(xi, S ^ 0x5EED)).");

  // ---- Operators ----
  py::class_<PyOperator>(m, "Operator", "A differentiable map from domain to target")
      .def_property_readonly("domain", [](const PyOperator& o) { return PySpace{o.op->domain()}; })
      .def_property_readonly("target", [](const PyOperator& o) { return PySpace{o.op->target()}; })
      .def_property_readonly("name", [](const PyOperator& o) { return o.op->name(); })
      .def_property_readonly("is_linear", [](const PyOperator& o) { return o.op->is_linear(); })
      .def("__call__",
           [](const PyOperator& o, py::handle x) {
             Field f = to_field(o.op->domain(), x, "x");
             return from_field(without_gil([&] { return o.op->apply(f); }));
           },
           py::arg("x"))
      .def("linearize",
           [](const PyOperator& o, py::handle x) {
             Field f = to_field(o.op->domain(), x, "x");
             Linearization lin = without_gil([&] { return o.op->linearize(f); });
             return py::make_tuple(from_field(std::move(lin.value)), wrap(lin.jacobian));
           },
           py::arg("x"), "(value, Jacobian as a LinearOperator) at x")
      .def("__matmul__", [](const PyOperator& a, const PyOperator& b) {
        auto la = std::dynamic_pointer_cast<const LinearOperator>(a.op);
        auto lb = std::dynamic_pointer_cast<const LinearOperator>(b.op);
        if (la && lb) return wrap(compose(la, lb));
        return wrap(compose(a.op, b.op));
      })
      .def("__add__", [](const PyOperator& a, py::handle b) {
        if (py::isinstance<PyOperator>(b)) {
          const OperatorPtr& ob = b.cast<const PyOperator&>().op;
          auto la = std::dynamic_pointer_cast<const LinearOperator>(a.op);
          auto lb = std::dynamic_pointer_cast<const LinearOperator>(ob);
          if (la && lb) return wrap(la + lb);
          return wrap(a.op + ob);
        }
        if (py::isinstance<py::float_>(b) || py::isinstance<py::int_>(b))
          return wrap(add_constant(a.op, b.cast<double>()));
        return wrap(add_constant(a.op, to_field(a.op->target(), b, "constant").values()));
      })
      .def("__radd__", [](const PyOperator& a, double c) { return wrap(add_constant(a.op, c)); })
      .def("__sub__", [](const PyOperator& a, py::handle b) {
        if (py::isinstance<PyOperator>(b)) {
          const OperatorPtr& ob = b.cast<const PyOperator&>().op;
          auto la = std::dynamic_pointer_cast<const LinearOperator>(a.op);
          auto lb = std::dynamic_pointer_cast<const LinearOperator>(ob);
          if (la && lb) return wrap(la - lb);
          return wrap(a.op - ob);
        }
        if (py::isinstance<py::float_>(b) || py::isinstance<py::int_>(b))
          return wrap(add_constant(a.op, -b.cast<double>()));
        return wrap(add_constant(a.op, -to_field(a.op->target(), b, "constant").values()));
      })
      .def("__neg__", [](const PyOperator& a) {
        if (auto l = std::dynamic_pointer_cast<const LinearOperator>(a.op)) return wrap(scale(-1.0, l));
        return wrap(scale(-1.0, a.op));
      })
      .def("__mul__", [](const PyOperator& a, py::handle b) {
        if (py::isinstance<PyOperator>(b)) return wrap(multiply(a.op, b.cast<const PyOperator&>().op));
        const double c = b.cast<double>();
        if (auto l = std::dynamic_pointer_cast<const LinearOperator>(a.op)) return wrap(scale(c, l));
        return wrap(scale(c, a.op));
      })
      .def("__rmul__", [](const PyOperator& a, double c) {
        if (auto l = std::dynamic_pointer_cast<const LinearOperator>(a.op)) return wrap(scale(c, l));
        return wrap(scale(c, a.op));
      })
      .def("exp", [](const PyOperator& a) { return wrap(exp(a.op)); })
      .def("log", [](const PyOperator& a) { return wrap(log(a.op)); })
      .def("sqrt", [](const PyOperator& a) { return wrap(sqrt(a.op)); })
      .def("sigmoid", [](const PyOperator& a) { return wrap(sigmoid(a.op)); },
           "the logistic function 1 / (1 + exp(-x))")
      .def("tanh", [](const PyOperator& a) { return wrap(tanh(a.op)); })
      .def("softplus", [](const PyOperator& a) { return wrap(softplus(a.op)); })
      .def("relu", [](const PyOperator& a) { return wrap(relu(a.op)); })
      .def("power", [](const PyOperator& a, double e) { return wrap(power(a.op, e)); })
      .def("clip", [](const PyOperator& a, double lo, double hi) { return wrap(clip(a.op, lo, hi)); })
      .def("__repr__", [](const PyOperator& o) {
        return "<" + o.op->name() + ": " + o.op->domain().to_string() + " -> " +
               o.op->target().to_string() + ">";
      });

  py::class_<PyLinearOperator, PyOperator>(m, "LinearOperator", "A linear operator")
      .def("times",
           [](const PyLinearOperator& o, py::handle x) {
             Field f = to_field(o.linear->domain(), x, "x");
             return from_field(without_gil([&] { return o.linear->times(f); }));
           })
      .def("adjoint_times",
           [](const PyLinearOperator& o, py::handle y) {
             Field f = to_field(o.linear->target(), y, "y");
             return from_field(without_gil([&] { return o.linear->adjoint_times(f); }));
           })
      .def("inverse_times",
           [](const PyLinearOperator& o, py::handle y) {
             Field f = to_field(o.linear->target(), y, "y");
             return from_field(without_gil([&] { return o.linear->inverse_times(f); }));
           })
      .def_property_readonly("T", [](const PyLinearOperator& o) { return wrap(adjoint(o.linear)); })
      .def("adjoint", [](const PyLinearOperator& o) { return wrap(adjoint(o.linear)); })
      .def("inverse", [](const PyLinearOperator& o) { return wrap(inverse(o.linear)); });

  m.def("matrix_operator",
        [](py::handle domain, py::handle target, Eigen::MatrixXd matrix) {
          return wrap(matrix_operator(to_space(domain), to_space(target), std::move(matrix)));
        },
        py::arg("domain"), py::arg("target"), py::arg("matrix"),
        "y = A x with a dense matrix (target.size x domain.size, on the flattened values).");
  m.def("mask_operator",
        [](py::handle domain, py::array_t<bool, py::array::c_style | py::array::forcecast> keep) {
          const Space d = to_space(domain);
          if (keep.size() != d.size())
            throw py::value_error("mask_operator: the mask has " + std::to_string(keep.size()) +
                                  " entries, the domain " + std::to_string(d.size()));
          std::vector<bool> k(keep.data(), keep.data() + keep.size());
          return wrap(mask_operator(d, k));
        },
        py::arg("domain"), py::arg("keep"), "The entries where keep is true, as an unstructured target.");
  m.def("scaling_operator",
        [](py::handle space, double factor) { return wrap(scaling_operator(to_space(space), factor)); },
        py::arg("space"), py::arg("factor"));
  m.def("identity_operator", [](py::handle space) { return wrap(identity_operator(to_space(space))); });
  m.def("diagonal_operator",
        [](py::handle space, py::handle diagonal) {
          const Space s = to_space(space);
          return wrap(diagonal_operator(s, to_field(s, diagonal, "diagonal").values()));
        },
        py::arg("space"), py::arg("diagonal"));
  m.def("hartley_transform",
        [](py::handle domain, std::size_t index) {
          return wrap(hartley_transform(to_space(domain).tuple(), index));
        },
        py::arg("domain"), py::arg("index") = 0,
        "The Hartley transform of factor `index` (a regular grid or its harmonic partner).");
  m.def("power_distributor",
        [](py::handle harmonic, std::size_t index) {
          return wrap(power_distributor(to_space(harmonic).tuple(), index));
        },
        py::arg("harmonic"), py::arg("index") = 0);
  m.def("field_adapter",
        [](py::handle multi, const std::string& key) {
          return wrap(field_adapter(to_space(multi).multi(), key));
        },
        py::arg("multi_domain"), py::arg("key"), "The part `key` of a MultiField.");
  for (const char* name : {"exp", "log", "sqrt", "sigmoid", "tanh", "softplus", "relu"}) {
    const std::string n = name;
    m.def(name, [n](py::handle space) {
      const Space s = to_space(space);
      if (n == "exp") return wrap(exp(s));
      if (n == "log") return wrap(log(s));
      if (n == "sqrt") return wrap(sqrt(s));
      if (n == "sigmoid") return wrap(sigmoid(s));
      if (n == "tanh") return wrap(tanh(s));
      if (n == "softplus") return wrap(softplus(s));
      return wrap(relu(s));
    }, py::arg("space"), ("The pointwise " + n + " on a space.").c_str());
  }

  m.def("make_operator",
        [](py::handle d, py::handle t, py::function value, py::function jvp, py::function vjp,
           const std::string& name) {
          return wrap(make_python_operator(d, t, std::move(value), std::move(jvp), std::move(vjp), name));
        },
        py::arg("domain"), py::arg("target"),
        py::arg("value"), py::arg("jvp"), py::arg("vjp"), py::arg("name") = "PythonOperator",
        "An operator from numpy callables: value(x), jvp(x, v) = J(x) v, vjp(x, u) = J(x)^T u, "
        "arrays of the domain's and target's shapes. Usable anywhere a C++ operator is; the GIL "
        "is taken only around the calls. Check it with check_jacobian.");
  m.def("make_linear_operator",
        [](py::handle d, py::handle t, py::function times, py::function adjoint_times,
           const std::string& name) {
          return wrap(make_python_linear_operator(d, t, std::move(times), std::move(adjoint_times), name));
        },
        py::arg("domain"),
        py::arg("target"), py::arg("times"), py::arg("adjoint_times"),
        py::arg("name") = "PythonLinearOperator");

  // ---- Checks ----
  py::class_<CheckReport>(m, "CheckReport")
      .def_readonly("passed", &CheckReport::passed)
      .def_readonly("failures", &CheckReport::failures)
      .def_readonly("details", &CheckReport::details)
      .def("summary", &CheckReport::summary)
      .def("__bool__", [](const CheckReport& r) { return r.passed; })
      .def("__repr__", [](const CheckReport& r) { return r.summary(); })
      .def("to_dict", &check_report_dict);
  m.def("check_jacobian",
        [](const PyOperator& op, py::handle x, double tolerance, double step, int trials,
           std::uint64_t seed) {
          Field f = to_field(op.op->domain(), x, "x");
          JacobianCheckOptions o;
          o.tolerance = tolerance;
          o.step = step;
          o.trials = trials;
          o.seed = seed;
          py::gil_scoped_release release;
          return check_jacobian(*op.op, f, o);
        },
        py::arg("op"), py::arg("x"), py::arg("tolerance") = 1e-6, py::arg("step") = 1e-5,
        py::arg("trials") = 3, py::arg("seed") = 42,
        "value vs linearize, the JVP against central differences and the VJP as its adjoint.");
  m.def("check_linear_operator",
        [](const PyOperator& op, double tolerance, int trials, std::uint64_t seed) {
          const LinearOperatorPtr l = linear_of(op, "check_linear_operator");
          LinearCheckOptions o;
          o.tolerance = tolerance;
          o.trials = trials;
          o.seed = seed;
          py::gil_scoped_release release;
          return check_linear_operator(*l, o);
        },
        py::arg("op"), py::arg("tolerance") = 1e-10, py::arg("trials") = 3, py::arg("seed") = 42);
}

}  // namespace infield::python

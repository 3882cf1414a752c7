// The compiled core of the `infield` Python package, infield._core (python/infield/__init__.py
// re-exports it): domains, fields as numpy arrays, operators (C++ ones and ones written in
// Python), likelihoods, Hamiltonians, MGVI and geoVI, checks, the correlated field, MKDE and
// FisherNet training, over MPI ranks where Python was started by mpirun.
//
// Threads: every call that evaluates operators releases the GIL; an operator written in Python
// takes it only around its callbacks, from whichever thread oneTBB runs it on.
#include "bindings.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "Infield's C++ core (use the `infield` package)";
  infield::python::bind_core(m);
  infield::python::bind_distributed(m);
  infield::python::bind_inference(m);
  infield::python::bind_models(m);
}

#pragma once
// The parts of the infield._core module and what they share.

#include <pybind11/eigen.h>
#include <pybind11/pybind11.h>

#include <string>

#include "conversions.h"
#include "infield/inference/communicator.h"

namespace infield::python {

/// Runs f with the GIL released (C++ work that may call Python operators from other threads).
template <typename F>
auto without_gil(F&& f) {
  py::gil_scoped_release release;
  return f();
}

/// The C++ operator of a Python Operator argument; TypeError naming `what` otherwise.
inline const OperatorPtr& op_of(py::handle h, const char* what) {
  if (!py::isinstance<PyOperator>(h))
    throw py::type_error(std::string(what) + ": expected an Operator, got " +
                         std::string(py::str(py::type::handle_of(h).attr("__name__"))));
  return h.cast<const PyOperator&>().op;
}

/// The Communicator argument of a call (None: this process alone); TypeError or ValueError (used
/// from a thread other than the one that started MPI) otherwise.
Communicator checked_communicator(py::handle communicator, const char* what);

void bind_core(py::module_& m);
void bind_distributed(py::module_& m);
void bind_inference(py::module_& m);
void bind_models(py::module_& m);

}  // namespace infield::python

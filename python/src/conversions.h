#pragma once
// Python <-> C++ conversions of the bindings: spaces from Python objects, fields from numpy
// arrays (dicts of arrays for MultiDomains) and back, and the wrappers Python holds.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "infield/domain.h"
#include "infield/field.h"
#include "infield/likelihood.h"
#include "infield/operator.h"

namespace infield::python {

namespace py = pybind11;

/// A Domain as Python holds it (pybind11 holders cannot be shared_ptr<const T>).
struct PyDomain {
  DomainPtr ptr;
};

/// A Space (a DomainTuple or a MultiDomain) as Python holds it.
struct PySpace {
  Space space;
};

/// An operator; `linear` is set for linear operators (the Python class LinearOperator).
struct PyOperator {
  OperatorPtr op;
};
struct PyLinearOperator : PyOperator {
  LinearOperatorPtr linear;
};

/// Any space-like Python object: a Domain, a Space, a list or tuple of Domains (a product), or a
/// dict of space-likes (a MultiDomain). Throws TypeError otherwise.
Space to_space(py::handle h);

/// The shape numpy uses for a plain space's values (a scalar space has shape ()).
std::vector<py::ssize_t> numpy_shape(const DomainTuple& tuple);

/// A numpy array (or a dict of arrays for a MultiDomain) as a Field on `space`. Accepts any real
/// numeric dtype (converted to float64); TypeError for other dtypes, ValueError naming the
/// expected and given shape or keys. `what` names the argument in messages.
Field to_field(const Space& space, py::handle obj, const std::string& what);
/// The values of a field as numpy (no copy: the array owns the moved vector), or a dict.
py::object from_field(Field field);
py::object from_values(const Space& space, Eigen::VectorXd values);

/// The Python object for an operator: a LinearOperator where it is linear.
py::object wrap(OperatorPtr op);

}  // namespace infield::python

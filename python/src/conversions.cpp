#include "conversions.h"

#include <pybind11/stl.h>

#include <sstream>

#include "infield/error.h"

namespace infield::python {

namespace {

std::string shape_string(const std::vector<py::ssize_t>& shape) {
  std::ostringstream s;
  s << "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) s << ",";
  s << ")";
  return s.str();
}

/// The array's values as float64 in C order; TypeError for non-real dtypes.
py::array_t<double, py::array::c_style> as_float64(py::handle obj, const std::string& what) {
  py::array array = py::array::ensure(obj);
  if (!array)
    throw py::type_error(what + ": expected a numpy array (or array-like of numbers), got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  const char kind = array.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
    throw py::type_error(what + ": expected real numbers (a float64 array), got dtype " +
                         std::string(py::str(array.dtype())));
  return py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(array);
}

Eigen::VectorXd plain_values(const DomainTuple& tuple, py::handle obj, const std::string& what) {
  auto array = as_float64(obj, what);
  const std::vector<py::ssize_t> want = numpy_shape(tuple);
  std::vector<py::ssize_t> got(array.shape(), array.shape() + array.ndim());
  if (got != want)
    throw py::value_error(what + ": expected an array of shape " + shape_string(want) + " for " +
                          tuple.to_string() + ", got shape " + shape_string(got));
  return Eigen::Map<const Eigen::VectorXd>(array.data(), static_cast<Eigen::Index>(array.size()));
}

}  // namespace

Space to_space(py::handle h) {
  if (py::isinstance<PySpace>(h)) return h.cast<const PySpace&>().space;
  if (py::isinstance<PyDomain>(h)) return Space(h.cast<const PyDomain&>().ptr);
  if (py::isinstance<py::list>(h) || py::isinstance<py::tuple>(h)) {
    std::vector<DomainPtr> domains;
    for (py::handle item : h) {
      if (!py::isinstance<PyDomain>(item))
        throw py::type_error("a product of domains takes Domain objects, got " +
                             std::string(py::str(py::type::handle_of(item).attr("__name__"))));
      domains.push_back(item.cast<const PyDomain&>().ptr);
    }
    return Space(DomainTuple(std::move(domains)));
  }
  if (py::isinstance<py::dict>(h)) {
    std::vector<std::pair<std::string, DomainTuple>> parts;
    for (auto [key, value] : h.cast<py::dict>()) {
      if (!py::isinstance<py::str>(key)) throw py::type_error("MultiDomain keys must be strings");
      const Space part = to_space(value);
      if (part.is_multi()) throw py::type_error("a MultiDomain's parts must not be MultiDomains");
      parts.emplace_back(key.cast<std::string>(), part.tuple());
    }
    return Space(MultiDomain(std::move(parts)));
  }
  throw py::type_error("expected a Domain, a Space, a list of Domains or a dict of them, got " +
                       std::string(py::str(py::type::handle_of(h).attr("__name__"))));
}

std::vector<py::ssize_t> numpy_shape(const DomainTuple& tuple) {
  std::vector<py::ssize_t> shape;
  for (Eigen::Index n : tuple.shape()) shape.push_back(static_cast<py::ssize_t>(n));
  return shape;
}

Field to_field(const Space& space, py::handle obj, const std::string& what) {
  if (!space.is_multi()) {
    if (py::isinstance<py::dict>(obj))
      throw py::type_error(what + ": expected an array for " + space.tuple().to_string() +
                           ", got a dict");
    return Field(space, plain_values(space.tuple(), obj, what));
  }
  const MultiDomain& multi = space.multi();
  if (!py::isinstance<py::dict>(obj))
    throw py::type_error(what + ": expected a dict of arrays with keys " + multi.to_string() +
                         ", got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  const py::dict dict = obj.cast<py::dict>();
  Eigen::VectorXd values(multi.size());
  for (const auto& entry : multi.entries()) {
    if (!dict.contains(entry.key))
      throw py::value_error(what + ": key '" + entry.key + "' is missing; expected the keys of " +
                            multi.to_string());
    values.segment(entry.offset, entry.domain.size()) =
        plain_values(entry.domain, dict[py::str(entry.key)], what + "['" + entry.key + "']");
  }
  for (auto [key, value] : dict) {
    const std::string k = py::str(key);
    if (!multi.contains(k))
      throw py::value_error(what + ": unknown key '" + k + "'; expected the keys of " +
                            multi.to_string());
  }
  return Field(space, std::move(values));
}

py::object from_values(const Space& space, Eigen::VectorXd values) {
  auto array_of = [](const DomainTuple& tuple, const double* data, py::handle owner) {
    return py::array_t<double>(numpy_shape(tuple), data, owner);
  };
  auto* owned = new Eigen::VectorXd(std::move(values));
  py::capsule owner(owned, [](void* p) { delete static_cast<Eigen::VectorXd*>(p); });
  if (!space.is_multi()) return array_of(space.tuple(), owned->data(), owner);
  py::dict out;
  for (const auto& entry : space.multi().entries())
    out[py::str(entry.key)] = array_of(entry.domain, owned->data() + entry.offset, owner);
  return std::move(out);
}

py::object from_field(Field field) {
  const Space space = field.space();
  return from_values(space, std::move(field).values());
}

py::object wrap(OperatorPtr op) {
  if (op->is_linear()) {
    PyLinearOperator l;
    l.linear = std::dynamic_pointer_cast<const LinearOperator>(op);
    l.op = std::move(op);
    return py::cast(std::move(l));
  }
  return py::cast(PyOperator{std::move(op)});
}

}  // namespace infield::python

// Bindings of the MPI layer (inference/communicator.h): `Communicator.world()` starts MPI when the
// interpreter was started by an MPI launcher (mpirun -np K python3 script.py) and is the single
// process otherwise; optimize_kl, Mkde.fit and train_autoencoder take it as `communicator=`.
// MPI is initialised "funneled": every MPI call must come from the thread that started it, which
// `checked_communicator` enforces for the calls that take a communicator.

#include <pybind11/stl.h>

#include <cstdio>
#include <optional>
#include <thread>

#include "bindings.h"
#include "infield/inference/communicator.h"

namespace infield::python {
namespace {

std::optional<MpiSession> session;
bool finalized = false;
std::thread::id session_thread;

bool on_main_thread() {
  const py::module_ threading = py::module_::import("threading");
  return threading.attr("current_thread")().is(threading.attr("main_thread")());
}

Communicator world() {
  if (finalized)
    throw py::value_error("Communicator.world(): MPI was finalised when the interpreter began "
                          "to exit");
  if (!session) {
    // MPI_Finalize must run on the thread that started MPI: the main thread runs atexit.
    if (!on_main_thread())
      throw py::value_error("Communicator.world(): the first call must come from the main thread "
                            "(MPI is initialised funneled and finalised at exit)");
    session.emplace(nullptr, nullptr);
    session_thread = std::this_thread::get_id();
    // MPI_Finalize before the interpreter ends (every rank must reach it).
    py::module_::import("atexit").attr("register")(py::cpp_function([] {
      session.reset();
      finalized = true;
    }));
    const Communicator c = Communicator::world();
    if (c.size() > 1) {
      // An exception that ends one rank's script would leave the other ranks waiting in a
      // collective and the job hanging: after Python has printed it, end every rank (as the
      // command line does, and as mpi4py's `python -m mpi4py` does).
      py::module_ sys = py::module_::import("sys");
      py::object previous = sys.attr("excepthook");
      sys.attr("excepthook") = py::cpp_function(
          [previous, c](py::object type, py::object value, py::object traceback) {
            previous(type, value, traceback);
            py::module_::import("sys").attr("stderr").attr("flush")();
            std::fprintf(stderr, "infield: uncaught exception on rank %d of %d: ending every rank\n",
                         c.rank(), c.size());
            c.abort(1);
          });
    }
  }
  return Communicator::world();
}

}  // namespace

Communicator checked_communicator(py::handle communicator, const char* what) {
  if (communicator.is_none()) return Communicator();
  if (!py::isinstance<Communicator>(communicator))
    throw py::type_error(std::string(what) + ": communicator must be an infield.Communicator, got " +
                         std::string(py::str(py::type::handle_of(communicator).attr("__name__"))));
  Communicator c = communicator.cast<Communicator>();
  if (c.size() > 1 && finalized)
    throw py::value_error(std::string(what) + ": MPI was finalised when the interpreter began to "
                          "exit");
  if (c.size() > 1 && std::this_thread::get_id() != session_thread)
    throw py::value_error(std::string(what) +
                          ": MPI may only be used from the thread that called "
                          "Communicator.world() (MPI is initialised funneled)");
  return c;
}

void bind_distributed(py::module_& m) {
  py::class_<Communicator>(m, "Communicator", R"doc(
The processes (MPI ranks) that share a run. ``Communicator()`` is this process alone;
``Communicator.world()`` is every rank of ``mpirun -np K python3 script.py`` (MPI is started on
the first call and finalised at exit) and this process alone when Python was not started by an
MPI launcher. Pass it as ``communicator=`` to ``optimize_kl``, ``Mkde(...).fit`` and
``train_autoencoder``: sample pairs (or batch rows) are dealt to the ranks, and every rank
returns the same result, equal to one process's (bit for bit for MGVI, geoVI and MKDE; to float
rounding for training). Every rank must make the same calls in the same order.)doc")
      .def(py::init<>())
      .def_static("world", &world, "Every rank of the MPI job (this process alone without one).")
      .def_static("mpi_supported", &MpiSession::supported,
                  "True if this build can run over MPI ranks (built with INFIELD_WITH_MPI).")
      .def_property_readonly("rank", &Communicator::rank)
      .def_property_readonly("size", &Communicator::size)
      .def_property_readonly("is_root", &Communicator::is_root)
      .def("barrier", [](py::object self) {
        checked_communicator(self, "Communicator.barrier").barrier();
      })
      .def("sum", [](py::object self, double value) {
        return checked_communicator(self, "Communicator.sum").sum(value);
      }, py::arg("value"), "The sum of `value` over the ranks, added in rank order, on every rank.")
      .def("share", &Communicator::share, py::arg("count"),
           "This rank's [begin, end) of `count` items dealt in contiguous blocks.")
      .def("__repr__", [](const Communicator& c) {
        return "Communicator(rank=" + std::to_string(c.rank()) + ", size=" +
               std::to_string(c.size()) + ")";
      });
}

}  // namespace infield::python

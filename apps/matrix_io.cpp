#include "matrix_io.h"

#include "infield/error.h"
#include "infield/field.h"
#include "infield/npy.h"

namespace infield::apps {

Eigen::MatrixXd read_npy_matrix(const std::string& path, std::string_view command,
                                std::string_view flag, std::string_view what) {
  const NpyArray a = read_npy(path);
  check_argument(a.shape.size() == 2, command, flag,
                 path + " must be a 2-D array (" + std::string(what) + "), it has " +
                     std::to_string(a.shape.size()) + " dimensions");
  check_finite(a.values, command, flag);
  // .npy is C order (row-major); Eigen's MatrixXd is column-major.
  return Eigen::Map<const RowMajorMatrix>(a.values.data(), a.shape[0], a.shape[1]);
}

void write_npy_rows(const std::filesystem::path& path, const Eigen::MatrixXd& m) {
  const RowMajorMatrix rm = m;
  write_npy(path, {m.rows(), m.cols()}, Eigen::Map<const Eigen::VectorXd>(rm.data(), rm.size()));
}

}  // namespace infield::apps

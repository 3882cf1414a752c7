#include "image_input.h"

#include <fmt/core.h>

#include <algorithm>
#include <filesystem>

#include "infield/error.h"
#include "infield/models/idx.h"
#include "infield/npy.h"

namespace infield::apps {

namespace fs = std::filesystem;

ImageRows read_image_rows(const std::string& path, Eigen::Index size, Eigen::Index first,
                          std::string_view command) {
  Eigen::Index n = 0, pixels = 0;
  Eigen::VectorXd values;
  if (fs::path(path).extension() == ".npy") {
    NpyArray a = read_npy(path);
    if (a.shape.size() < 2)
      throw InvalidArgument(fmt::format("{}: {} holds an array of {} dimensions; images are N x "
                                        "pixels (or N x rows x columns)",
                                        command, path, a.shape.size()));
    n = a.shape[0];
    pixels = a.values.size() / std::max<Eigen::Index>(n, 1);
    values = std::move(a.values);
  } else {
    const IdxArray raw = read_idx(path);
    if (raw.shape.size() != 3)
      throw InvalidArgument(fmt::format("{}: {} is not a file of images (3 dimensions expected)",
                                        command, path));
    n = raw.shape[0];
    pixels = raw.shape[1] * raw.shape[2];
    values.resize(static_cast<Eigen::Index>(raw.values.size()));
    for (Eigen::Index i = 0; i < values.size(); ++i)
      values[i] = static_cast<double>(raw.values[static_cast<std::size_t>(i)]) / 255.0;
  }
  if (pixels != size)
    throw InvalidArgument(fmt::format("{}: the images in {} have {} pixels, the model's data size "
                                      "is {}",
                                      command, path, pixels, size));
  if (n == 0) throw InvalidArgument(fmt::format("{}: {} holds no images", command, path));
  if (first > n)
    throw InvalidArgument(fmt::format("{}: --first {} is beyond the {} images in {}", command,
                                      first, n, path));
  if (!values.allFinite())
    throw InvalidArgument(fmt::format("{}: {} holds values that are not finite", command, path));
  const Eigen::Index rows = first > 0 ? first : n;
  return Eigen::Map<const ImageRows>(values.data(), n, size).topRows(rows);
}

}  // namespace infield::apps

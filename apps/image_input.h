#pragma once
// Image sets for the commands that take them: an IDX file of images (uint8, scaled by 1/255) or a
// .npy array (N x pixels, or N x rows x columns, values as stored, e.g. `fishernet sample`'s
// samples.npy).

#include <Eigen/Core>
#include <string>
#include <string_view>

namespace infield::apps {

using ImageRows = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The images of `path` as rows, checked to have `pixels` values each (the model's data size) and
/// to be finite; only the first `first` when first > 0 (InvalidArgument when beyond the file).
/// `command` prefixes the messages.
ImageRows read_image_rows(const std::string& path, Eigen::Index pixels, Eigen::Index first,
                          std::string_view command);

}  // namespace infield::apps

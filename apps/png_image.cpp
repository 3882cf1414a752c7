#include "png_image.h"

#include <stb_image_write.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "infield/error.h"

namespace infield::apps {
namespace {

/// viridis (matplotlib's perceptually uniform map) at 0, 0.1, ..., 1; linear in between.
constexpr std::array<std::array<double, 3>, 11> kViridis = {{{68, 1, 84},
                                                             {72, 36, 117},
                                                             {65, 68, 135},
                                                             {53, 95, 141},
                                                             {42, 120, 142},
                                                             {33, 145, 140},
                                                             {34, 168, 132},
                                                             {68, 191, 112},
                                                             {122, 209, 81},
                                                             {189, 223, 38},
                                                             {253, 231, 37}}};

}  // namespace

Rgb viridis(double t) {
  t = std::clamp(t, 0.0, 1.0) * 10.0;
  const int i = std::min(static_cast<int>(t), 9);
  const double f = t - i;
  std::array<unsigned char, 3> rgb{};
  for (int c = 0; c < 3; ++c)
    rgb[c] = static_cast<unsigned char>(
        std::lround(kViridis[i][c] * (1.0 - f) + kViridis[i + 1][c] * f));
  return rgb;
}

void write_png_rgb(const std::filesystem::path& path, int width, int height,
                   const std::vector<unsigned char>& pixels) {
  constexpr std::string_view fn = "write_png_rgb";
  check_argument(width > 0 && height > 0 &&
                     pixels.size() == static_cast<std::size_t>(width) * height * 3,
                 fn, "pixels", "must hold width * height * 3 bytes");
  const std::filesystem::path tmp = path.string() + ".tmp";
  if (stbi_write_png(tmp.c_str(), width, height, 3, pixels.data(), width * 3) == 0)
    throw FileError(std::string(fn) + ": cannot write " + tmp.string());
  std::filesystem::rename(tmp, path);
}

void write_png_colormap(const std::filesystem::path& path, const Eigen::VectorXd& values,
                        Eigen::Index rows, Eigen::Index cols, double lower, double upper,
                        int scale) {
  constexpr std::string_view fn = "write_png_colormap";
  check_argument(rows > 0 && cols > 0 && rows * cols == values.size(), fn, "rows, cols",
                 "must be positive with rows * cols = " + std::to_string(values.size()));
  check_argument(scale >= 1, fn, "scale", "must be at least 1");
  check_finite(lower, fn, "lower");
  check_finite(upper, fn, "upper");
  const double span = upper > lower ? upper - lower : 1.0;
  const Eigen::Index width = cols * scale, height = rows * scale;
  std::vector<unsigned char> pixels(static_cast<std::size_t>(width * height * 3));
  for (Eigen::Index r = 0; r < height; ++r)
    for (Eigen::Index c = 0; c < width; ++c) {
      const double v = values[(r / scale) * cols + c / scale];
      const std::array<unsigned char, 3> rgb =
          std::isnan(v) ? std::array<unsigned char, 3>{128, 128, 128}
                        : viridis((v - lower) / span);
      std::copy(rgb.begin(), rgb.end(), pixels.begin() + (r * width + c) * 3);
    }
  write_png_rgb(path, static_cast<int>(width), static_cast<int>(height), pixels);
}

}  // namespace infield::apps

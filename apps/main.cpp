#include <fmt/core.h>

#include <exception>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"infield: Bayesian inference on fields with MGVI"};
  app.require_subcommand(1);
  auto run_demo = infield::apps::register_demo_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (app.got_subcommand("demo")) return run_demo();
  } catch (const std::exception& e) {
    fmt::print(stderr, "infield: error: {}\n", e.what());
    return 1;
  }
  return 2;
}

#include <malloc.h>

#include <fmt/core.h>

#include <exception>

#include "commands.h"
#include "infield/inference/communicator.h"

int main(int argc, char** argv) {
  // Under mpirun / srun every rank runs this program; alone it is one process.
  infield::MpiSession mpi(&argc, &argv);
  const infield::Communicator world = infield::Communicator::world();
  // Training allocates and frees the same large matrices every step; glibc would map and unmap
  // each (page faults and zeroing: ~10% of a CVAE step). Keeping them in the heap avoids that.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  CLI::App app{"infield: Bayesian inference on fields with MGVI"};
  app.require_subcommand(1);
  auto run_demo = infield::apps::register_demo_command(app);
  auto run_mgvi = infield::apps::register_mgvi_command(app);
  auto run_reconstruct = infield::apps::register_reconstruct_command(app);
  auto run_prior = infield::apps::register_prior_command(app);
  auto run_mkde = infield::apps::register_mkde_command(app);
  auto run_data = infield::apps::register_data_command(app);
  auto run_fishernet = infield::apps::register_fishernet_command(app);
  auto run_classifier = infield::apps::register_classifier_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return world.is_root() ? app.exit(e) : e.get_exit_code();  // every rank saw the same line
  }
  // Only these commands share their work over ranks; any other runs on rank 0 alone (the other
  // ranks would repeat it and write the same files at the same time).
  auto distributed = [&app] {
    if (app.got_subcommand("mgvi") || app.got_subcommand("reconstruct")) return true;
    if (app.got_subcommand("mkde")) return app.get_subcommand("mkde")->got_subcommand("fit");
    if (app.got_subcommand("fishernet"))
      return app.get_subcommand("fishernet")->got_subcommand("train");
    return false;
  };
  if (world.size() > 1 && !world.is_root() && !distributed()) return 0;
  try {
    if (app.got_subcommand("demo")) return run_demo();
    if (app.got_subcommand("mgvi")) return run_mgvi();
    if (app.got_subcommand("reconstruct")) return run_reconstruct();
    if (app.got_subcommand("prior")) return run_prior();
    if (app.got_subcommand("mkde")) return run_mkde();
    if (app.got_subcommand("data")) return run_data();
    if (app.got_subcommand("fishernet")) return run_fishernet();
    if (app.got_subcommand("classifier") || app.got_subcommand("frechet")) return run_classifier();
  } catch (const std::exception& e) {
    if (world.size() == 1) {
      fmt::print(stderr, "infield: error: {}\n", e.what());
      return 1;
    }
    // The other ranks may be waiting for this one in a collective: end them all.
    fmt::print(stderr, "infield: error on rank {} of {}: {}\n", world.rank(), world.size(),
               e.what());
    world.abort(1);
  }
  return 2;
}

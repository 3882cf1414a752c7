#pragma once
// Subcommands of the `infield` program; each registers itself on the CLI11 app and runs when
// chosen. A command returns the process exit status.

#include <CLI/CLI.hpp>
#include <functional>

namespace infield::apps {

/// Registers `infield demo`; returns the function that runs it after parsing.
std::function<int()> register_demo_command(CLI::App& app);
/// Registers `infield mgvi linear`.
std::function<int()> register_mgvi_command(CLI::App& app);
/// Registers `infield reconstruct`.
std::function<int()> register_reconstruct_command(CLI::App& app);
/// Registers `infield prior`.
std::function<int()> register_prior_command(CLI::App& app);
/// Registers `infield mkde fit | sample | logpdf`.
std::function<int()> register_mkde_command(CLI::App& app);
/// Registers `infield data fashion-mnist`.
std::function<int()> register_data_command(CLI::App& app);
/// Registers `infield fishernet train | evaluate | encode | sample | infer | report`.
std::function<int()> register_fishernet_command(CLI::App& app);
/// Registers `infield classifier train` and `infield frechet`.
std::function<int()> register_classifier_command(CLI::App& app);

}  // namespace infield::apps

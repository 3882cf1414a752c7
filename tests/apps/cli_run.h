#pragma once
// Runs the `infield` program (path INFIELD_CLI, set by CMake) with arguments and captures its
// exit status and combined stdout/stderr, for the command-line tests.

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace infield::testing {

struct CliRun {
  int status;
  std::string output;
};

/// Runs a shell command line, capturing its status and combined stdout/stderr.
inline CliRun run_shell(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  while (std::fgets(buf.data(), buf.size(), pipe)) out += buf.data();
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

inline CliRun run_cli(const std::string& args) {
  return run_shell(std::string(INFIELD_CLI) + " " + args);
}

}  // namespace infield::testing

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

inline CliRun run_cli(const std::string& args) {
  const std::string cmd = std::string(INFIELD_CLI) + " " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  while (std::fgets(buf.data(), buf.size(), pipe)) out += buf.data();
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace infield::testing

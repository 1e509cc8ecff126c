// Running the graft program from a test: its exit status and everything it printed.
// Shared by the end-to-end suites (cli_test, recipe_test, ...); testing::slurp reads a file
// back whole.
#pragma once
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "tests/testing.h"

namespace graft::testing {

struct ProgramResult {
  int status = -1;     // exit status; -1 when it did not exit normally
  std::string output;  // stdout and stderr
};

// Runs a shell command line, stdout and stderr together.
inline ProgramResult run_command(const std::string& command) {
  ProgramResult r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, got);
  const int raw = ::pclose(p);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

inline ProgramResult run_graft(const std::string& args) { return run_command(std::string(GRAFT_BINARY) + " " + args); }

}  // namespace graft::testing

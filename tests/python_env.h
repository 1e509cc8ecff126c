// Running Python from a test, for the interop suites that read graft's files with the
// reference readers (tensorboard's EventAccumulator, MlflowClient, onnx.checker,
// onnxruntime). The interpreter is build/python-env's (tools/python-env.sh, made by
// tools/test.sh); its absence fails the test by name rather than skipping it.
#pragma once
#include <filesystem>
#include <string>

#include "tests/graft_program.h"

namespace graft::testing {

// The venv's python3, or "" after a test failure that says how to make it.
inline std::string interop_python() {
  const std::string python = GRAFT_TEST_PYTHON;
  if (!std::filesystem::exists(python)) {
    ADD_FAILURE() << "no Python environment for the interop tests at " << python
                  << ": run tools/python-env.sh (tools/test.sh does)";
    return "";
  }
  return python;
}

// Runs `python script args` (stdout and stderr together, the exit status).
inline ProgramResult run_python(const std::string& script, const std::string& args) {
  ProgramResult r;
  const std::string python = interop_python();
  if (python.empty()) return r;
  FILE* p = ::popen((python + " " + script + " " + args + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, got);
  const int raw = ::pclose(p);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

}  // namespace graft::testing

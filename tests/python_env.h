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
  const std::string python = interop_python();
  if (python.empty()) return {};
  return run_command(python + " " + script + " " + args);
}

}  // namespace graft::testing

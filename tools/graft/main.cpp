// graft: fine-tune pretrained networks from the command line.
//   graft info  --model fmnist_cnn --freeze 'conv*' --batch 64
//   graft train --model fmnist_cnn --data fashion-mnist --classes 0-4 --epochs 2 --save source.safetensors
//   graft eval  --model fmnist_cnn --data fashion-mnist --classes 5-9 --checkpoint target.safetensors
// Exit status: 0 on success, 1 on a reported error, 2 on bad flags, 130/143 after an
// interrupt (SIGINT/SIGTERM) that saved a resumable checkpoint.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <iostream>

#include "runtime/backend_registry.h"
#include "base/error.h"
#if defined(GRAFT_HAVE_CUDA)
#include "runtime/cuda/backend.h"
#endif
#include "runtime/interrupt.h"
#include "tools/graft/config_file.h"
#include "tools/graft/options.h"

namespace {

// What the run printed so far comes first, so a piped log reads in order.
void report(const char* kind, const char* what) {
  std::cout.flush();
  std::fflush(stdout);
  std::fprintf(stderr, "graft: %s: %s\n", kind, what);
}

}  // namespace

int main(int argc, char** argv) {
#if defined(GRAFT_HAVE_CUDA)
  graft::register_cuda_backend();
#endif
  CLI::App app{"graft: a training engine for transfer learning"};
  app.require_subcommand(1);
  // With the CUDA backend, the libraries it found too: a GPU run records what it ran with.
  app.set_version_flag("--version", [] {
    std::string v = "graft 0.1";
    if (const graft::DeviceBackend* cuda = graft::cuda_backend(); cuda && cuda->versions) v += "\n" + cuda->versions();
    return v;
  });
  graft::cli::register_info(app);
  graft::cli::register_train(app);
  graft::cli::register_eval(app);
  graft::cli::register_predict(app);
  graft::cli::register_bench(app);
  graft::cli::register_export(app);
  try {
    // `graft train --config FILE`: the file's flags join the command line's (which win).
    std::vector<std::string> args(argv + 1, argv + argc);
    if (!args.empty() && args[0] == "train")
      args = graft::cli::expand_config(*app.get_subcommand("train"), args);
    std::reverse(args.begin(), args.end());  // CLI11 takes the arguments reversed
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const graft::Error& e) {
    report("error", e.what());
    return 2;
  }
  try {
    for (CLI::App* sub : app.get_subcommands()) {
      if (sub->get_name() == "info") return graft::cli::run_info(*sub);
      if (sub->get_name() == "train") return graft::cli::run_train(*sub);
      if (sub->get_name() == "eval") return graft::cli::run_eval(*sub);
      if (sub->get_name() == "predict") return graft::cli::run_predict(*sub);
      if (sub->get_name() == "bench") return graft::cli::run_bench(*sub);
      if (sub->get_name() == "export") return graft::cli::run_export(*sub);
    }
  } catch (const graft::Interrupted& i) {
    return i.exit_code();
  } catch (const graft::Error& e) {
    report("error", e.what());
    return 1;
  } catch (const std::exception& e) {
    report("unexpected error", e.what());
    return 1;
  }
  return 1;
}

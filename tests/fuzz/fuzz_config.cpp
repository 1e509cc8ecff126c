// libFuzzer target: `graft train --config FILE` (tools/graft/config_file.cpp). The bytes are
// the file; expand_config must either reject it with a graft::Error or give arguments that
// CLI11 then parses or rejects with a ParseError: never crash, hang or leak. yaml-cpp itself
// comes uninstrumented from Debian, so coverage is of graft's side.
//   tools/fuzz.sh fuzz_config 60
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "tools/graft/config_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/graft-fuzz-config-" + std::to_string(::getpid()) + ".yaml";
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  } else {
    return 0;
  }
  CLI::App app{"fuzz"};
  CLI::App* sub = app.add_subcommand("train");
  std::string model, config;
  int epochs = 1;
  float lr = 0;
  bool flag = false;
  std::vector<std::string> freeze;
  sub->add_option("--model", model);
  sub->add_option("--epochs", epochs);
  sub->add_option("--lr", lr);
  sub->add_option("--freeze", freeze);
  sub->add_flag("--check-finite", flag);
  sub->add_option("--config", config);
  try {
    auto args = graft::cli::expand_config(*sub, {"train", "--config", path});
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
    (void)graft::cli::resolved_config(*sub);
  } catch (const graft::Error&) {
  } catch (const CLI::Error&) {
  }
  return 0;
}

// eval and predict rebuild the model a checkpoint was trained as: the flags that shape the
// model (--model, --head, --no-top, --width-divisor, --input, --normalize) default to the
// ones recorded in the checkpoint's configuration, unless given on the command line.
#pragma once
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "runtime/safetensors.h"
#include "tools/graft/options.h"

namespace graft::cli {

void adopt_checkpoint_config(const CLI::App& app, const SafetensorsFile& checkpoint, ModelOptions& model,
                             DataOptions& data);
// The class names of a checkpoint: its class map file beside it, else its metadata.
std::vector<std::string> checkpoint_classes(const std::string& path, const SafetensorsFile& checkpoint);

}  // namespace graft::cli

// Checkpoints: a model's parameters (PyTorch names and layouts), optimizer state and
// progress in one safetensors file, written atomically.
//   <param>                        parameter, e.g. "conv1.weight" (OIHW), "fc1.weight"
//   optimizer.<state>.<param>      e.g. "optimizer.exp_avg.fc1.weight", same layout
//   __metadata__: format, architecture, step, epoch, optimizer, classes (JSON list),
//                 config (the run's resolved configuration, JSON), progress (where a
//                 resumed run continues: JSON written by the trainer)
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/model.h"
#include "runtime/optimizer.h"
#include "runtime/safetensors.h"

namespace graft {

inline constexpr const char* kCheckpointFormat = "graft-checkpoint-1";

struct CheckpointInfo {
  int64_t step = 0;
  int64_t epoch = 0;
  std::vector<std::string> class_names;
  std::string config_json = "{}";
  std::string progress_json;  // the trainer's resumable position (runtime/training_progress.h)
};

// `segments` are the optimizer's segments in its state order (Executor::trainable_segments()).
void save_checkpoint(const std::string& path, const Model& model, const Optimizer* optimizer,
                     const std::vector<ParamSegment>& segments, const CheckpointInfo& info);

struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> not_in_model;    // in the file, no such parameter in the model
  std::vector<std::string> shape_mismatch;  // "fc2.weight: file [5, 128], model [10, 128]"
  std::vector<std::string> not_in_file;     // model parameters the file lacks (keep their init)
  std::vector<std::string> excluded;        // left out by --init-only
};

struct LoadOptions {
  bool strict = false;                // any skip or mismatch is an error
  std::vector<std::string> only;      // layer patterns to load (select_nodes; empty: all)
};

// Loads the parameters whose names and shapes match. Throws (naming the file, tensors and
// shapes) under `strict` when anything was skipped, mismatched or missing.
LoadReport load_parameters(Model& model, const SafetensorsFile& file, const std::string& path,
                           const LoadOptions& options);
// Restores optimizer state saved for the same trainable parameters.
void load_optimizer_state(Optimizer& optimizer, const std::vector<ParamSegment>& segments, const Model& model,
                          const SafetensorsFile& file, const std::string& path);
CheckpointInfo read_checkpoint_info(const SafetensorsFile& file);

// One example's shape as the checkpoint records it (`input_shape`: [H, W, C] or a sequence
// model's [steps, features]); empty when it records none (an older graft's). Throws, naming
// `path`, when the metadata is not 1 to 3 sizes of at least 1.
std::vector<int64_t> checkpoint_input_shape(const SafetensorsFile& file, const std::string& path);

}  // namespace graft

// eval and predict rebuild the model a checkpoint was trained as: the flags that shape the
// model (--model, --head, --no-top, --width-divisor, --input, --normalize) default to the
// ones recorded in the checkpoint's configuration, unless given on the command line. Its
// output count comes from the checkpoint's tensors, and its class names from --classes-file,
// the class map beside it or its metadata; converted weights (torchvision's) have none.
#pragma once
#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "graft/graft.hpp"
#include "runtime/memory_pool.h"
#include "runtime/model.h"
#include "runtime/safetensors.h"
#include "tools/graft/options.h"

namespace graft::cli {

void adopt_checkpoint_config(const CLI::App& app, const SafetensorsFile& checkpoint, ModelOptions& model,
                             DataOptions& data);
// The class names of a checkpoint: its class map file beside it, else its metadata.
std::vector<std::string> checkpoint_classes(const std::string& path, const SafetensorsFile& checkpoint);

// --classes-file FILE on predict and eval.
void add_classes_file_option(CLI::App& app, std::string& file);

// Class names and where they came from, for messages ("--classes-file names.txt").
struct ClassNames {
  std::vector<std::string> names;  // empty: nothing names the classes
  std::string source;
};
// --classes-file when given, else the checkpoint's own (checkpoint_classes).
ClassNames resolve_class_names(const std::string& classes_file, const std::string& path,
                               const SafetensorsFile& checkpoint);

// The model the flags describe with as many outputs as the checkpoint's last layer has:
// built for `classes_guess` classes, and again for the checkpoint's count when its last
// layer's tensor says otherwise (the strict load then names any other mismatch).
std::unique_ptr<Model> make_checkpoint_model(const ModelOptions& m, Shape sample, const SafetensorsFile& checkpoint,
                                             int classes_guess, MemoryPool& pool);

// The same model through the public API (graft::api::Model, what predict runs): built for
// `classes_guess` classes, and again for the checkpoint's count when its last layer's
// tensor says otherwise.
api::Model api_checkpoint_model(const ModelOptions& m, const Shape& sample, const SafetensorsFile& checkpoint,
                                int classes_guess, Device device);

// Without --max-steps, a sequence model built with a flatten pool reads exactly the steps it
// was trained on (the checkpoint's input_shape): eval and predict pad or cut sequence files to
// them (data.max_steps, max_steps_from_model). Any other model, or a checkpoint that does not
// record its shape, leaves `data` as it is.
void adopt_model_steps(const CLI::App& app, const std::string& path, const SafetensorsFile& checkpoint,
                       const ModelOptions& m, DataOptions& data);

// Fails unless `names` count `outputs` classes, naming both numbers, the source and the checkpoint.
void check_class_count(const ClassNames& names, int outputs, const std::string& path);

// The one line predict and eval print when nothing names the classes.
void note_unnamed_classes(const std::string& path, const std::string& how);

}  // namespace graft::cli

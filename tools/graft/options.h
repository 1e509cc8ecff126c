// Flags shared by graft's subcommands, and the steps they share: which data, which model,
// which device. Each subcommand lives in its own cmd_*.cpp.
#pragma once
#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/batch_source.h"
#include "runtime/dataset.h"
#include "runtime/human_bytes.h"
#include "runtime/memory_pool.h"
#include "runtime/model.h"
#include "runtime/sequence_file.h"

namespace graft::cli {

struct DataOptions {
  std::string data = "fashion-mnist";  // or a folder with one subfolder per class
  std::string data_dir = kFashionMnistDir;
  std::string classes;   // fashion-mnist: "" = all
  int per_class = 0;     // fashion-mnist: 0 = all
  uint64_t seed = 0;
  std::string val = "none";  // none | test (fashion-mnist) | a folder
  double val_split = 0;      // image folders: hold out this fraction of --data
  // Image folders.
  int input = 224;
  std::string normalize = "unit";
  float shear = 0, zoom = 0, rotation = 0, shift = 0;
  bool hflip = false, vflip = false, random_resized_crop = false;
  std::string bad_images = "skip";
  std::string decoded_cache = "auto";  // training: auto | memory | off | FILE
  int workers = -1;
  // Sequence files (--data FILE.seq or seq:FILE; runtime/sequence_file.h).
  int max_steps = 0;         // > 0: cut longer sequences to their first max_steps, pad all to it
  bool max_steps_from_model = false;  // max_steps is a flatten model's steps, not the flag's
  std::string classes_file;  // training: the class names (eval and predict have their own flag)
};

struct ModelOptions {
  std::string model = "fmnist_cnn";
  std::string device = "auto";
  std::string kernels = "library";  // CUDA: native (hand-written) or library (cuDNN/cuBLAS)
  bool deterministic = false;       // CUDA: deterministic algorithms only (bitwise-reproducible runs)
  std::string precision = "fp32";   // fp32 | tf32 (CUDA library kernels) | bf16 (bf16 operands, fp32 accumulation)
  int64_t batch = 64;
  std::string head;                 // graft a new head (layers/head.h)
  bool no_top = false;              // the backbone alone
  int width_divisor = 1;
  std::vector<std::string> bn;      // GLOB=train|frozen-stats|frozen
};

void add_data_options(CLI::App& app, DataOptions& o, bool training);
void add_model_options(CLI::App& app, ModelOptions& o);

bool is_image_folder(const DataOptions& o);
// Prints the note on the sequences `o.max_steps` cut from `f`, if any, naming the limit: the
// flag's, or the flatten model's steps (DataOptions::max_steps_from_model).
void note_truncation(const SequenceFile& f, const DataOptions& o);
bool is_sequence_data(const DataOptions& o);  // --data FILE.seq or seq:FILE

// The training source and the validation source (null without --val/--val-split).
struct Sources {
  std::unique_ptr<BatchSource> train, val;
};
Sources open_training_data(const DataOptions& o);
// An evaluation source: the test split (fashion-mnist) or the --data folder, with the
// class list the model was trained on (empty: the data's own).
std::unique_ptr<BatchSource> open_eval_data(const DataOptions& o, const std::vector<std::string>& class_names,
                                            bool train_split);
// Number of classes and the input [H, W, C] the options select, without reading images.
int selected_class_count(const DataOptions& o);
Shape input_shape(const DataOptions& o);

// Builds the model the flags describe (architecture, head, widths) for `classes` outputs.
std::unique_ptr<Model> make_model(const ModelOptions& m, Shape input, int classes, uint64_t seed, MemoryPool& pool);
// Freezes by glob and applies the BatchNorm policy (frozen BN layers default to frozen).
std::vector<bool> freeze_and_policy(Model& model, const std::vector<std::string>& freeze, const ModelOptions& m);

// Resolves --device; prints one line when auto falls back to the CPU. --device cuda without
// a usable device (or without the CUDA backend) is an error that says why.
Device resolve_device(const std::string& flag);
// resolve_device(m.device), and --kernels becomes the default kernel choice.
Device resolve_device(const ModelOptions& m);
// The pool every buffer of a run comes from: the host's, or the device's.
std::unique_ptr<MemoryPool> make_pool(Device device);
// "cpu", or "cuda (library kernels: cuDNN/cuBLAS)" and the like, for graft info.
std::string describe_backend(Device device);

// --freeze (train, info): globs and ranges, as resolve_freeze_patterns reads them.
void add_freeze_option(CLI::App& app, std::vector<std::string>& freeze);

// Checks for whole-number flags. CLI11 2.1's PositiveNumber and NonNegativeNumber name the
// range 0 to DBL_MAX (printed in full) whatever was wrong; these say what the flag needs:
// "--batch: must be a whole number of at least 1, got 0".
const CLI::Validator& at_least_one();
const CLI::Validator& zero_or_more();

using graft::human_bytes;  // runtime/human_bytes.h
std::string join(const std::vector<std::string>& v);
// At most `limit` names: the first and the last few, with the count.
std::string summarize(const std::vector<std::string>& v, size_t limit);

int run_info(CLI::App& app);
int run_train(CLI::App& app);
int run_eval(CLI::App& app);
int run_predict(CLI::App& app);
int run_bench(CLI::App& app);
int run_export(CLI::App& app);

void register_info(CLI::App& app);
void register_train(CLI::App& app);
void register_eval(CLI::App& app);
void register_predict(CLI::App& app);
void register_bench(CLI::App& app);
void register_export(CLI::App& app);

}  // namespace graft::cli

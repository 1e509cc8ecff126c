// Flags shared by graft's subcommands, and the steps they share: which data, which model,
// which device. Each subcommand lives in its own cmd_*.cpp.
#pragma once
#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "runtime/dataset.h"
#include "runtime/memory_pool.h"
#include "runtime/model.h"

namespace graft::cli {

struct DataOptions {
  std::string data = "fashion-mnist";
  std::string data_dir = kFashionMnistDir;
  std::string classes;   // "" = all
  int per_class = 0;     // 0 = all
  uint64_t seed = 0;
};

struct ModelOptions {
  std::string model = "fmnist_cnn";
  std::string device = "auto";
  int64_t batch = 64;
};

void add_data_options(CLI::App& app, DataOptions& o);
void add_model_options(CLI::App& app, ModelOptions& o);

// The selected split with the selected classes (and K per class when asked).
Dataset load_data(const DataOptions& o, bool train_split);
// Number of classes the options select, without loading images.
int selected_class_count(const DataOptions& o);
// Resolves --device; prints one line when auto falls back to the CPU.
Device resolve_device(const std::string& flag);

std::string human_bytes(size_t bytes);

int run_info(CLI::App& app);
int run_train(CLI::App& app);
int run_eval(CLI::App& app);

void register_info(CLI::App& app);
void register_train(CLI::App& app);
void register_eval(CLI::App& app);

}  // namespace graft::cli

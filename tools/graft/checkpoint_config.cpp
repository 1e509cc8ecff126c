// Model flags recorded in a checkpoint; its output count and class names.
#include "tools/graft/checkpoint_config.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "runtime/checkpoint.h"
#include "runtime/class_map.h"
#include "base/error.h"
#include "layers/sequence_spec.h"

namespace graft::cli {

void adopt_checkpoint_config(const CLI::App& app, const SafetensorsFile& checkpoint, ModelOptions& model,
                             DataOptions& data) {
  const CheckpointInfo info = read_checkpoint_info(checkpoint);
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(info.config_json);
  } catch (const std::exception&) {
    return;  // not a graft checkpoint (a converted torchvision file): the flags decide
  }
  if (!config.is_object()) return;
  auto given = [&](const char* flag) { return app.get_option(flag)->count() > 0; };
  auto text = [&](const char* key, std::string& out) {
    if (config.contains(key) && config[key].is_string()) out = config[key].get<std::string>();
  };
  auto number = [&](const char* key, int& out) {
    if (config.contains(key) && config[key].is_string()) out = std::stoi(config[key].get<std::string>());
  };
  if (!given("--model")) text("model", model.model);
  if (!given("--head")) text("head", model.head);
  if (!given("--no-top") && config.contains("no-top") && config["no-top"].is_boolean()) model.no_top = config["no-top"].get<bool>();
  if (!given("--width-divisor")) number("width-divisor", model.width_divisor);
  if (!given("--input")) number("input", data.input);
  if (!given("--normalize")) text("normalize", data.normalize);
}

void adopt_model_steps(const CLI::App& app, const std::string& path, const SafetensorsFile& checkpoint,
                       const ModelOptions& m, DataOptions& data) {
  if (app.get_option("--max-steps")->count() > 0) return;
  if (!is_sequence_spec(m.model) || !sequence_spec_fixes_steps(m.model)) return;
  const auto dims = checkpoint_input_shape(checkpoint, path);
  if (dims.empty()) return;  // an older checkpoint: the strict load names a mismatch, if any
  data.max_steps = int(dims[0]);
  data.max_steps_from_model = true;
}

std::vector<std::string> checkpoint_classes(const std::string& path, const SafetensorsFile& checkpoint) {
  const std::string map = class_map_path(path);
  if (std::filesystem::exists(map)) return read_class_map(map);
  return read_checkpoint_info(checkpoint).class_names;
}

void add_classes_file_option(CLI::App& app, std::string& file) {
  app.add_option("--classes-file", file,
                 "Names the model's classes, in output order: a text file with one name per line, or a class map "
                 "JSON as graft writes beside a checkpoint ({\"classes\": [...]}). Weights without one (converted "
                 "torchvision files) are otherwise named by index ('class 7') in predict, and take the data's "
                 "classes in order in eval");
}

ClassNames resolve_class_names(const std::string& classes_file, const std::string& path,
                               const SafetensorsFile& checkpoint) {
  if (!classes_file.empty()) return {read_class_names_file(classes_file), "--classes-file " + classes_file};
  const std::string map = class_map_path(path);
  if (std::filesystem::exists(map)) return {read_class_map(map), "the class map " + map};
  return {read_checkpoint_info(checkpoint).class_names, "the metadata of " + path};
}

namespace {

// The leading dimension of the checkpoint's tensor for the model's last parameterized layer
// (a dense or convolution weight's outputs), or 0 when the file lacks that tensor.
int64_t checkpoint_last_layer_outputs(const Model& model, const SafetensorsFile& checkpoint) {
  if (model.params().empty()) return 0;
  const int last = model.params().back().node;
  for (const ParamInfo& p : model.params()) {
    if (p.node != last || p.spec.buffer) continue;
    const auto t = checkpoint.tensors.find(p.name);
    if (t == checkpoint.tensors.end() || t->second.shape.empty()) return 0;
    return p.spec.checkpoint_shape.rank() == 0 || p.spec.checkpoint_shape[0] == t->second.shape[0] ? 0 : t->second.shape[0];
  }
  return 0;
}

}  // namespace

std::unique_ptr<Model> make_checkpoint_model(const ModelOptions& m, Shape sample, const SafetensorsFile& checkpoint,
                                             int classes_guess, MemoryPool& pool) {
  auto model = make_model(m, sample, std::max(classes_guess, 1), 0, pool);
  const int64_t outputs = checkpoint_last_layer_outputs(*model, checkpoint);
  if (outputs <= 0) return model;
  model.reset();  // one model's parameters at a time
  return make_model(m, sample, int(outputs), 0, pool);
}

namespace {

api::ModelSpec api_spec(const ModelOptions& m, const Shape& sample, int classes, Device device) {
  api::ModelSpec spec;
  spec.architecture = m.model;
  spec.input = sample.dims;
  spec.classes = classes;
  spec.head = m.head;
  spec.include_top = !m.no_top;
  spec.width_divisor = m.width_divisor;
  spec.device = device == Device::CUDA ? api::Device::Cuda : api::Device::Cpu;
  return spec;
}

// The leading dimension of the checkpoint's tensor for the API model's last parameterized
// layer (its first tensor: a dense or convolution weight's outputs), or 0 when it agrees
// with the model's or the file lacks that tensor.
int64_t checkpoint_outputs(const api::Model& model, const SafetensorsFile& checkpoint) {
  const auto names = model.parameter_names();
  if (names.empty()) return 0;
  const auto node_of = [](const std::string& name) { return name.substr(0, name.rfind('.')); };
  const std::string last = node_of(names.back());
  for (const auto& name : names) {
    if (node_of(name) != last) continue;
    const auto t = checkpoint.tensors.find(name);
    const auto own = model.parameter_shape(name);
    if (t == checkpoint.tensors.end() || t->second.shape.empty() || own.empty()) return 0;
    return t->second.shape[0] == own[0] ? 0 : t->second.shape[0];
  }
  return 0;
}

}  // namespace

api::Model api_checkpoint_model(const ModelOptions& m, const Shape& sample, const SafetensorsFile& checkpoint,
                                int classes_guess, Device device) {
  try {
    auto model = std::make_unique<api::Model>(api_spec(m, sample, std::max(classes_guess, 1), device));
    const int64_t outputs = checkpoint_outputs(*model, checkpoint);
    if (outputs <= 0) return std::move(*model);
    model.reset();  // one model's parameters at a time
    return api::Model(api_spec(m, sample, int(outputs), device));
  } catch (const api::Error& e) {
    fail(e.what());
  }
}

void check_class_count(const ClassNames& names, int outputs, const std::string& path) {
  if (int(names.names.size()) != outputs)
    fail(names.source, " names ", names.names.size(), " classes, but the model in ", path, " has ", outputs,
         " outputs; give a class list with one name per output, in output order");
}

void note_unnamed_classes(const std::string& path, const std::string& how) {
  std::fflush(stdout);
  std::fprintf(stderr, "note: %s names no classes (no class map beside it, none in its metadata, no --classes-file): %s\n",
               path.c_str(), how.c_str());
}

}  // namespace graft::cli

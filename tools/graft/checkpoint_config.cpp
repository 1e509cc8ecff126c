// Model flags recorded in a checkpoint.
#include "tools/graft/checkpoint_config.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "runtime/checkpoint.h"
#include "runtime/class_map.h"

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

std::vector<std::string> checkpoint_classes(const std::string& path, const SafetensorsFile& checkpoint) {
  const std::string map = class_map_path(path);
  if (std::filesystem::exists(map)) return read_class_map(map);
  return read_checkpoint_info(checkpoint).class_names;
}

}  // namespace graft::cli

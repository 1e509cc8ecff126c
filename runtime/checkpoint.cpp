// Checkpoint save and load, with layout conversion at the boundary.
#include "runtime/checkpoint.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "runtime/trace.h"

namespace graft {

namespace {

int param_index(const Model& model, const std::string& name) {
  for (size_t p = 0; p < model.params().size(); ++p)
    if (model.params()[p].name == name) return static_cast<int>(p);
  return -1;
}

HostTensor export_tensor(const Model& model, size_t p, const float* internal) {
  const ParamInfo& info = model.params()[p];
  HostTensor t(info.spec.checkpoint_shape);
  model.nodes()[info.node].layer->to_checkpoint_layout(info.index, internal, t.data());
  return t;
}

}  // namespace

void save_checkpoint(const std::string& path, const Model& model, const Optimizer* optimizer,
                     const std::vector<ParamSegment>& segments, const CheckpointInfo& info) {
  const trace::Range range("checkpoint write");
  std::map<std::string, HostTensor> tensors;
  const float* host = model.host_params();  // a device model's parameters, copied once
  for (size_t p = 0; p < model.params().size(); ++p)
    tensors[model.params()[p].name] = export_tensor(model, p, host + model.params()[p].offset);
  std::map<std::string, std::string> meta{{"format", kCheckpointFormat},
                                          {"architecture", model.architecture()},
                                          {"step", std::to_string(info.step)},
                                          {"epoch", std::to_string(info.epoch)},
                                          {"classes", nlohmann::json(info.class_names).dump()},
                                          {"config", info.config_json},
                                          {"input_shape", nlohmann::json(model.sample_shape().dims).dump()}};
  if (!info.progress_json.empty()) meta["progress"] = info.progress_json;
  if (optimizer) {
    meta["optimizer"] = optimizer->config().kind;
    meta["optimizer_step"] = std::to_string(optimizer->step_count());
    const auto names = optimizer->state_names();
    for (size_t s = 0; s < names.size(); ++s) {
      const float* state = const_cast<Optimizer*>(optimizer)->host_state(s);
      int64_t offset = 0;
      for (const auto& seg : segments) {
        const int p = param_index(model, seg.name);
        GRAFT_ASSERT(p >= 0, "segment ", seg.name, " is a model parameter");
        tensors["optimizer." + names[s] + "." + seg.name] = export_tensor(model, size_t(p), state + offset);
        offset += seg.count;
      }
    }
  }
  write_safetensors(path, tensors, meta);
}

LoadReport load_parameters(Model& model, const SafetensorsFile& file, const std::string& path,
                           const LoadOptions& options) {
  LoadReport r;
  const auto arch = file.metadata.find("architecture");
  const bool foreign = arch != file.metadata.end() && arch->second != model.architecture();
  std::vector<bool> only(model.nodes().size(), options.only.empty());
  for (const auto& pattern : options.only) {
    const auto selected = select_nodes(model, pattern, "--init-only");
    for (size_t n = 0; n < only.size(); ++n) only[n] = only[n] || selected[n];
  }
  auto wanted = [&](const ParamInfo& info) { return only[size_t(info.node)]; };
  float* host = model.host_params();  // a device model: a host copy, uploaded below
  for (const auto& [name, t] : file.tensors) {
    if (name.rfind("optimizer.", 0) == 0) continue;
    const int p = param_index(model, name);
    if (p < 0) {
      r.not_in_model.push_back(name);
      continue;
    }
    const ParamInfo& info = model.params()[p];
    if (!wanted(info)) {
      r.excluded.push_back(name);
      continue;
    }
    if (Shape(t.shape) != info.spec.checkpoint_shape) {
      r.shape_mismatch.push_back(name + ": file " + Shape(t.shape).str() + ", model " + info.spec.checkpoint_shape.str());
      continue;
    }
    const std::vector<float> values = t.to_floats();
    model.nodes()[info.node].layer->from_checkpoint_layout(info.index, values.data(), host + info.offset);
    r.loaded.push_back(name);
  }
  model.upload_params();
  for (const auto& info : model.params())
    if (!file.tensors.count(info.name)) r.not_in_file.push_back(info.name);
  if (options.strict && (!r.not_in_model.empty() || !r.shape_mismatch.empty() || !r.not_in_file.empty())) {
    std::string what;
    for (const auto& s : r.shape_mismatch) what += "\n  shape mismatch: " + s;
    for (const auto& s : r.not_in_model) what += "\n  in the file, not in the model: " + s;
    for (const auto& s : r.not_in_file) what += "\n  in the model, not in the file: " + s;
    fail(path, " does not match model ", model.architecture(), " exactly (--strict):", what);
  }
  if (r.loaded.empty() || foreign) {
    std::string first;
    for (size_t i = 0; i < r.shape_mismatch.size() && i < 3; ++i) first += "\n  shape mismatch: " + r.shape_mismatch[i];
    for (size_t i = 0; i < r.not_in_model.size() && i < 3; ++i) first += "\n  in the file, not in the model: " + r.not_in_model[i];
    for (size_t i = 0; i < r.not_in_file.size() && i < 3; ++i) first += "\n  in the model, not in the file: " + r.not_in_file[i];
    if (foreign)
      fail(path, " is a checkpoint of ", arch->second, ", not of ", model.architecture(),
           "; give the matching --model. First differences:", first);
    fail(path, " has no tensor that matches model ", model.architecture(), " (", file.tensors.size(),
         " tensors in the file); is it a checkpoint of another architecture? First differences:", first);
  }
  return r;
}

void load_optimizer_state(Optimizer& optimizer, const std::vector<ParamSegment>& segments, const Model& model,
                          const SafetensorsFile& file, const std::string& path) {
  const auto names = optimizer.state_names();
  for (size_t s = 0; s < names.size(); ++s) {
    float* state = optimizer.host_state(s);
    int64_t offset = 0;
    for (const auto& seg : segments) {
      const std::string key = "optimizer." + names[s] + "." + seg.name;
      auto it = file.tensors.find(key);
      if (it == file.tensors.end())
        fail(path, " has no optimizer state '", key, "' to resume from; was it saved with the same --optimizer and --freeze?");
      const int p = param_index(model, seg.name);
      const ParamInfo& info = model.params()[size_t(p)];
      if (Shape(it->second.shape) != info.spec.checkpoint_shape)
        fail(path, ": optimizer state '", key, "' has shape ", Shape(it->second.shape).str(), ", expected ",
             info.spec.checkpoint_shape.str());
      const auto values = it->second.to_floats();
      model.nodes()[info.node].layer->from_checkpoint_layout(info.index, values.data(), state + offset);
      offset += seg.count;
    }
    optimizer.upload_state(s);
  }
  auto it = file.metadata.find("optimizer_step");
  if (it != file.metadata.end()) optimizer.set_step_count(std::stoll(it->second));
}

CheckpointInfo read_checkpoint_info(const SafetensorsFile& file) {
  CheckpointInfo info;
  auto get = [&](const char* k) -> std::string {
    auto it = file.metadata.find(k);
    return it == file.metadata.end() ? std::string() : it->second;
  };
  try {
    if (!get("step").empty()) info.step = std::stoll(get("step"));
    if (!get("epoch").empty()) info.epoch = std::stoll(get("epoch"));
    if (!get("classes").empty()) info.class_names = nlohmann::json::parse(get("classes")).get<std::vector<std::string>>();
  } catch (const std::exception& e) {
    fail("checkpoint metadata is malformed (step/epoch/classes): ", e.what());
  }
  if (!get("config").empty()) info.config_json = get("config");
  info.progress_json = get("progress");
  return info;
}

std::vector<int64_t> checkpoint_input_shape(const SafetensorsFile& file, const std::string& path) {
  const auto it = file.metadata.find("input_shape");
  if (it == file.metadata.end()) return {};
  std::vector<int64_t> dims;
  try {
    dims = nlohmann::json::parse(it->second).get<std::vector<int64_t>>();
  } catch (const std::exception& e) {
    fail(path, ": its input_shape metadata '", it->second, "' is not a list of sizes: ", e.what());
  }
  const bool sizes = std::all_of(dims.begin(), dims.end(), [](int64_t d) { return d >= 1 && d < (int64_t{1} << 24); });
  if (dims.empty() || dims.size() > 3 || !sizes)
    fail(path, ": its input_shape metadata '", it->second, "' is not [steps, features] or [H, W, C] of sizes 1 or more");
  return dims;
}

}  // namespace graft

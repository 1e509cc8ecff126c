// train(), run by a TrainingRun (runtime/training_run.h: setup, epochs and steps, the end of
// each epoch); evaluate(); the --class-weights and --lr-mult options.
#include "runtime/trainer.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <ostream>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "runtime/evaluation.h"
#include "runtime/training_run.h"

namespace graft {

std::vector<float> resolve_class_weights(const std::string& spec, const BatchSource& data) {
  const auto& names = data.class_names();
  std::vector<float> w(names.size(), 0.0f);
  if (spec == "auto") {
    std::vector<int64_t> count(names.size(), 0);
    for (int32_t l : data.labels()) ++count[size_t(l)];
    for (size_t c = 0; c < names.size(); ++c) {
      if (!count[c]) fail("--class-weights auto: class '", names[c], "' has no examples in ", data.origin());
      w[c] = float(double(data.size()) / (double(names.size()) * double(count[c])));
    }
    return w;
  }
  std::ifstream in(spec);
  if (!in) fail("--class-weights ", spec, ": cannot read the file (give auto or a JSON file)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    fail("--class-weights ", spec, ": not valid JSON: ", e.what());
  }
  auto value = [&](const nlohmann::json& v, const std::string& cls) {
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0)
      fail("--class-weights ", spec, ": the weight of class '", cls, "' must be a non-negative number, got ", v.dump());
    return v.get<float>();
  };
  if (j.is_array()) {
    if (j.size() != names.size())
      fail("--class-weights ", spec, ": ", j.size(), " weights for ", names.size(), " classes");
    for (size_t c = 0; c < names.size(); ++c) w[c] = value(j[c], names[c]);
  } else if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      const auto it = std::find(names.begin(), names.end(), k);
      if (it == names.end()) fail("--class-weights ", spec, ": no class named '", k, "' in ", data.origin());
      w[size_t(it - names.begin())] = value(v, k);
    }
    for (size_t c = 0; c < names.size(); ++c)
      if (!j.contains(names[c])) fail("--class-weights ", spec, ": no weight for class '", names[c], "'");
  } else {
    fail("--class-weights ", spec, ": expected a list of weights or an object {\"class\": weight}");
  }
  return w;
}

void apply_lr_mult(const Model& model, const std::vector<std::pair<std::string, float>>& lr_mult,
                   std::vector<ParamSegment>& segments) {
  for (const auto& [pattern, factor] : lr_mult) {
    const auto selected = select_nodes(model, pattern, "--lr-mult");
    bool used = false;
    for (auto& s : segments) {
      const int node = model.find_node(s.name.substr(0, s.name.rfind('.')));
      if ((node >= 0 && selected[size_t(node)]) || fnmatch(pattern.c_str(), s.name.c_str(), 0) == 0) {
        s.lr_scale = factor;
        used = true;
      }
    }
    if (!used) fail("--lr-mult '", pattern, "=", factor, "' matches no trainable layer");
  }
}

std::pair<std::string, float> parse_lr_mult(const std::string& spec) {
  const auto eq = spec.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    fail("--lr-mult '", spec, "': expected LAYERS=FACTOR, e.g. 'features.24..features.30=0.1'");
  const std::string factor = spec.substr(eq + 1);
  size_t used = 0;
  float f = 0;
  try {
    f = std::stof(factor, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != factor.size() || !std::isfinite(f) || f < 0)
    fail("--lr-mult '", spec, "': factor '", factor, "' is not a non-negative number");
  return {spec.substr(0, eq), f};
}

Metrics evaluate(Model& model, BatchSource& data, int64_t batch, LossKind loss, bool reference_kernels,
                 int start_after, ValidationExamples* examples) {
  if (data.size() == 0) fail("nothing to evaluate: ", data.origin(), " has no examples");
  ExecutorOptions eo;
  eo.batch = std::min<int64_t>(batch, data.size());
  eo.training = false;
  eo.loss = loss;
  eo.reference_kernels = reference_kernels;
  eo.start_after = start_after;
  Executor ex(model, eo);
  data.start_epoch(0, 0, /*shuffle=*/false, /*augment=*/false);
  std::vector<float> inputs;  // the batch as read: the staging buffers may turn over at forward()
  std::vector<int32_t> labels;
  while (const int64_t n = data.next_batch(eo.batch, ex.input(), ex.labels())) {
    ex.set_lengths(data.batch_lengths(), n);  // sequences: the batch's lengths (null for images)
    if (examples) {
      if (examples->keep_inputs) inputs.assign(ex.input(), ex.input() + n * ex.input_floats());
      labels.assign(ex.labels(), ex.labels() + n);
    }
    ex.forward(n, /*training=*/false, 0);
    ex.accumulate_metrics(n);
    if (examples) examples->add(ex.output(), labels.data(), inputs.empty() ? nullptr : inputs.data(), n);
  }
  return ex.read_metrics();
}

std::vector<EpochReport> train(Model& model, BatchSource& data, BatchSource* validation, const TrainOptions& o,
                               std::ostream& log) {
  return TrainingRun(model, data, validation, o, log).run();
}

}  // namespace graft

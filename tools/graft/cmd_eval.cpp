// graft eval: a checkpoint's loss and accuracy on a split, with per-class accuracy.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "layers/zoo.h"
#include "runtime/checkpoint.h"
#include "runtime/error.h"
#include "runtime/executor.h"
#include "runtime/trainer.h"
#include "tools/graft/options.h"

namespace graft::cli {

namespace {
struct EvalOptions {
  ModelOptions model;
  DataOptions data;
  std::string checkpoint;
  std::string split = "test";
  std::string loss = "ce";
  bool json = false;
} opts;
}  // namespace

void register_eval(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("eval", "Evaluate a checkpoint on a dataset split");
  add_model_options(*sub, opts.model);
  add_data_options(*sub, opts.data);
  sub->add_option("--checkpoint", opts.checkpoint, "Checkpoint to evaluate")->required();
  sub->add_option("--split", opts.split, "test or train")->capture_default_str()->check(CLI::IsMember({"test", "train"}));
  sub->add_option("--loss", opts.loss, "ce or mse")->capture_default_str()->check(CLI::IsMember({"ce", "mse"}));
  sub->add_flag("--json", opts.json, "Print the result as JSON");
}

int run_eval(CLI::App&) {
  resolve_device(opts.model.device);
  const auto file = read_safetensors(opts.checkpoint);
  DataOptions d = opts.data;
  d.per_class = 0;  // evaluation uses the whole split
  const Dataset data = load_data(d, opts.split == "train");
  const CheckpointInfo info = read_checkpoint_info(file);
  if (!info.class_names.empty() && info.class_names != data.class_names)
    std::fprintf(stderr, "warning: %s was trained on %zu classes that differ from the selected ones\n",
                 opts.checkpoint.c_str(), info.class_names.size());

  HostPool pool;
  auto model = build_model(ModelSpec{.architecture = opts.model.model, .sample_shape = Shape{28, 28, 1}, .num_classes = data.num_classes(), .seed = 0}, pool);
  load_parameters(*model, file, opts.checkpoint, LoadOptions{/*strict=*/true, {}});

  // Per-class accuracy needs the predictions, so run the batches here.
  ExecutorOptions eo;
  eo.batch = std::min<int64_t>(opts.model.batch, data.size());
  eo.training = false;
  eo.loss = opts.loss == "mse" ? LossKind::MSE : LossKind::CrossEntropy;
  Executor ex(*model, eo);
  const int classes = data.num_classes();
  std::vector<int64_t> seen(classes, 0), hit(classes, 0);
  const auto order = epoch_order(data.size(), 0, 0, false);
  for (int64_t begin = 0; begin < data.size(); begin += eo.batch) {
    const int64_t n = std::min(eo.batch, data.size() - begin);
    gather_batch(data, std::span(order).subspan(size_t(begin), size_t(n)), ex.input(), ex.labels());
    ex.forward(n, false, 0);
    ex.accumulate_metrics(n);
    const float* logits = ex.output();
    for (int64_t i = 0; i < n; ++i) {
      int best = 0;
      for (int c = 1; c < classes; ++c)
        if (logits[i * classes + c] > logits[i * classes + best]) best = c;
      const int label = ex.labels()[i];
      ++seen[label];
      hit[label] += best == label;
    }
  }
  const Metrics m = ex.read_metrics();
  if (opts.json) {
    nlohmann::json j{{"checkpoint", opts.checkpoint}, {"split", opts.split}, {"examples", data.size()},
                     {"loss", m.loss()}, {"accuracy", m.accuracy()}};
    for (int c = 0; c < classes; ++c)
      j["per_class"][data.class_names[c]] = seen[c] ? double(hit[c]) / double(seen[c]) : 0.0;
    std::cout << j.dump(2) << std::endl;
    return 0;
  }
  std::printf("%s on the %s split (%lld images, %d classes)\n", opts.checkpoint.c_str(), opts.split.c_str(),
              static_cast<long long>(data.size()), classes);
  std::printf("loss %.4f  accuracy %.2f%%\n", m.loss(), 100.0 * m.accuracy());
  for (int c = 0; c < classes; ++c)
    std::printf("  %-12s %6.2f%%  (%lld images)\n", data.class_names[c].c_str(),
                seen[c] ? 100.0 * double(hit[c]) / double(seen[c]) : 0.0, static_cast<long long>(seen[c]));
  return 0;
}

}  // namespace graft::cli

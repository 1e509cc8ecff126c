// graft eval: a checkpoint's loss and accuracy on a split, with per-class accuracy.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "layers/zoo.h"
#include "runtime/checkpoint.h"
#include "runtime/error.h"
#include "runtime/evaluation.h"
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

  InMemorySource source(data);
  const EvaluationReport r = evaluate_detailed(*model, source, opts.model.batch,
                                               opts.loss == "mse" ? LossKind::MSE : LossKind::CrossEntropy);
  if (opts.json) {
    std::cout << r.to_json() << std::endl;
    return 0;
  }
  std::printf("%s on the %s split of %s\n", opts.checkpoint.c_str(), opts.split.c_str(), data.origin.c_str());
  std::fputs(r.to_text().c_str(), stdout);
  return 0;
}

}  // namespace graft::cli

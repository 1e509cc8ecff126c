// graft eval: a checkpoint's loss, top-1 and top-5 accuracy, per-class accuracy and
// confusion matrix on a dataset split or an image folder.
#include <cstdio>
#include <iostream>

#include "runtime/checkpoint.h"
#include "base/error.h"
#include "runtime/evaluation.h"
#include "tools/graft/checkpoint_config.h"
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
  CLI::App* sub = app.add_subcommand("eval", "Evaluate a checkpoint on a dataset split or an image folder");
  add_model_options(*sub, opts.model);
  add_data_options(*sub, opts.data, /*training=*/false);
  sub->add_option("--checkpoint", opts.checkpoint, "Checkpoint to evaluate")->required();
  sub->add_option("--split", opts.split, "fashion-mnist: test or train")->capture_default_str()
      ->check(CLI::IsMember({"test", "train"}));
  sub->add_option("--loss", opts.loss, "ce or mse")->capture_default_str()->check(CLI::IsMember({"ce", "mse"}));
  sub->add_flag("--json", opts.json, "Print the result as JSON");
}

int run_eval(CLI::App& app) {
  const Device device = resolve_device(opts.model);
  const auto file = read_safetensors(opts.checkpoint);
  adopt_checkpoint_config(app, file, opts.model, opts.data);
  const auto trained_classes = checkpoint_classes(opts.checkpoint, file);
  auto data = open_eval_data(opts.data, trained_classes, opts.split == "train");
  if (!trained_classes.empty() && !is_image_folder(opts.data) && trained_classes != data->class_names())
    std::fprintf(stderr, "warning: %s was trained on classes (%s), not the selected (%s)\n", opts.checkpoint.c_str(),
                 summarize(trained_classes, 6).c_str(), summarize(data->class_names(), 6).c_str());

  const auto pool_owner = make_pool(device);
  MemoryPool& pool = *pool_owner;
  auto model = make_model(opts.model, data->sample_shape(), data->num_classes(), 0, pool);
  load_parameters(*model, file, opts.checkpoint, LoadOptions{/*strict=*/true, {}});
  const EvaluationReport r = evaluate_detailed(*model, *data, opts.model.batch,
                                               opts.loss == "mse" ? LossKind::MSE : LossKind::CrossEntropy);
  if (opts.json) {
    std::cout << r.to_json() << std::endl;
    return 0;
  }
  std::printf("%s on %s\n", opts.checkpoint.c_str(), data->origin().c_str());
  std::fputs(r.to_text().c_str(), stdout);
  if (data->skipped()) std::printf("(%lld unreadable images skipped)\n", static_cast<long long>(data->skipped()));
  return 0;
}

}  // namespace graft::cli

// graft eval: a checkpoint's loss, top-1 and top-5 accuracy, per-class accuracy and
// confusion matrix on a dataset split or an image folder. Weights without class names
// (converted torchvision files) take the data's classes in order when the counts agree, or
// --classes-file's names, matched to the folder's subfolders by name.
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
  std::string classes_file;
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
  add_classes_file_option(*sub, opts.classes_file);
  sub->add_option("--split", opts.split, "fashion-mnist: test or train")->capture_default_str()
      ->check(CLI::IsMember({"test", "train"}));
  sub->add_option("--loss", opts.loss, "ce or mse")->capture_default_str()->check(CLI::IsMember({"ce", "mse"}));
  sub->add_flag("--json", opts.json, "Print the result as JSON");
}

int run_eval(CLI::App& app) {
  const Device device = resolve_device(opts.model);
  const auto file = read_safetensors(opts.checkpoint);
  adopt_checkpoint_config(app, file, opts.model, opts.data);
  if (is_sequence_data(opts.data)) adopt_model_steps(app, opts.checkpoint, file, opts.model, opts.data);
  const ClassNames named = resolve_class_names(opts.classes_file, opts.checkpoint, file);
  const auto& trained_classes = named.names;
  auto data = open_eval_data(opts.data, trained_classes, opts.split == "train");
  if (!trained_classes.empty() && !is_image_folder(opts.data) && trained_classes != data->class_names())
    std::fprintf(stderr, "warning: %s was trained on classes (%s), not the selected (%s)\n", opts.checkpoint.c_str(),
                 summarize(trained_classes, 6).c_str(), summarize(data->class_names(), 6).c_str());

  const auto pool_owner = make_pool(device);
  MemoryPool& pool = *pool_owner;
  auto model = make_checkpoint_model(opts.model, data->sample_shape(), file,
                                     int(trained_classes.empty() ? data->num_classes() : trained_classes.size()), pool);
  const int outputs = model->num_outputs();
  if (!trained_classes.empty()) check_class_count(named, outputs, opts.checkpoint);
  if (outputs != data->num_classes()) {
    if (trained_classes.empty())
      fail(opts.checkpoint, " names no classes and its model has ", outputs, " outputs, but ", data->origin(), " has ",
           data->num_classes(), " classes (", summarize(data->class_names(), 6), "); ",
           is_image_folder(opts.data) ? "give --classes-file FILE naming the " + std::to_string(outputs) +
                                            " outputs in order (the folder's subfolders are matched to those names)"
                                      : "select " + std::to_string(outputs) + " classes with --classes (e.g. --classes 0-" +
                                            std::to_string(outputs - 1) + "), or give --classes-file FILE naming the " +
                                            std::to_string(outputs) + " outputs in order");
    fail(opts.checkpoint, " has ", outputs, " outputs, but ", data->origin(), " has ", data->num_classes(),
         " classes (", summarize(data->class_names(), 6), "); select the classes the model was trained on (--classes)");
  }
  load_parameters(*model, file, opts.checkpoint, LoadOptions{/*strict=*/true, {}});
  if (trained_classes.empty())  // after the load: the note is for weights that fit
    note_unnamed_classes(opts.checkpoint, "its " + std::to_string(outputs) + " outputs are taken as the data's classes in order (" +
                                              summarize(data->class_names(), 6) + "); --classes-file FILE names them");
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

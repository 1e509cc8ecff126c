// graft info: the model, layer by layer, with what freezing decides and the memory plan.
#include <cstdio>

#include "layers/sequence_spec.h"
#include "layers/zoo.h"
#include "runtime/executor.h"
#include "runtime/frozen_prefix.h"
#include "runtime/memory_pool.h"
#include "tools/graft/options.h"

namespace graft::cli {

namespace {
struct InfoOptions {
  ModelOptions model;
  DataOptions data;
  std::vector<std::string> freeze;
  std::string optimizer = "adam";
  std::string frozen_chunk = "auto";
  int num_classes = 0;
} opts;
}  // namespace

void register_info(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("info", "Show a model's layers, what is frozen, and the planned memory");
  add_model_options(*sub, opts.model);
  add_data_options(*sub, opts.data, /*training=*/false);
  sub->add_option("--num-classes", opts.num_classes, "Outputs of the model (default: the data's classes; 1000 for zoo models without --data)");
  add_freeze_option(*sub, opts.freeze);
  sub->add_option("--frozen-chunk", opts.frozen_chunk, "Plan the frozen layers N examples at a time: auto, off or N (as graft train)")
      ->capture_default_str();
  sub->add_option("--optimizer", opts.optimizer, "sgd, adam or adamw (for the optimizer-state bytes)")
      ->capture_default_str()->check(CLI::IsMember({"sgd", "adam", "adamw"}));
}

int run_info(CLI::App&) {
  const Device device = resolve_device(opts.model);
  const auto pool_owner = make_pool(device);
  MemoryPool& pool = *pool_owner;
  // Zoo models without a data folder: an RGB input of --input pixels, 1000 classes.
  // (Sequence specs take the data's shape: Fashion-MNIST's rows by default, or a sequence file's.)
  const bool zoo_without_data =
      opts.model.model != "fmnist_cnn" && !is_sequence_spec(opts.model.model) && !is_image_folder(opts.data);
  const Shape input = zoo_without_data ? Shape{opts.data.input, opts.data.input, 3} : input_shape(opts.data);
  const int classes = opts.num_classes > 0 ? opts.num_classes : zoo_without_data ? 1000 : selected_class_count(opts.data);
  auto model = make_model(opts.model, input, classes, opts.data.seed, pool);
  ExecutorOptions eo;
  eo.batch = opts.model.batch;
  eo.frozen = freeze_and_policy(*model, opts.freeze, opts.model);
  eo.optimizer_state_per_param = opts.optimizer == "sgd" ? 1 : 2;
  const PrefixChunking chunking =
      decide_prefix_chunking(parse_prefix_chunk_mode(opts.frozen_chunk), *model, eo.frozen, eo.batch);
  eo.chunk_through = chunking.through;
  eo.chunk = chunking.chunk;
  Executor ex(*model, eo);
  const auto shapes = model->infer_shapes(opts.model.batch);

  std::printf("model %s, input [%lld, %s (%s), %d outputs, device %s\n\n", model->architecture().c_str(),
              static_cast<long long>(opts.model.batch), input.str().substr(1).c_str(),
              input.rank() == 2 ? "batch, steps, features" : "NHWC", model->num_outputs(),
              describe_backend(device).c_str());
  // '#': the node index that layer ranges (--freeze 10..20) may use instead of names.
  std::printf("%4s  %-22s %-30s %-22s %10s  %-9s %s\n", "#", "layer", "type", "output", "params", "state", "backward");
  int64_t trainable = 0, frozen = 0;
  for (int n = 0; n < model->num_nodes(); ++n) {
    const auto& d = ex.decisions()[n];
    const int64_t count = model->node_param_count(n);
    (d.frozen ? frozen : trainable) += count;
    std::string bwd = "no";
    if (d.needs_grad) {
      bool input_grad = false;
      for (bool b : d.input_grad) input_grad = input_grad || b;
      bwd = d.weight_grad && input_grad ? "weights + input" : d.weight_grad ? "weights only" : "input only";
    }
    std::printf("%4d  %-22s %-30s %-22s %10lld  %-9s %s\n", n, model->nodes()[n].name.c_str(),
                model->nodes()[n].layer->describe().c_str(), shapes[n].str().c_str(), static_cast<long long>(count),
                count == 0 ? "-" : d.frozen ? "frozen" : "trainable", bwd.c_str());
  }
  const PlanSummary& p = ex.plan();
  std::printf("\ntrainable parameters %lld, frozen parameters %lld\n", static_cast<long long>(trainable),
              static_cast<long long>(frozen));
  std::printf("planned memory for batch %lld: %s peak\n", static_cast<long long>(opts.model.batch),
              human_bytes(p.peak_bytes()).c_str());
  std::printf("  parameters %s, gradients %s, optimizer state %s (%s)\n", human_bytes(p.parameter_bytes).c_str(),
              human_bytes(p.gradient_bytes).c_str(), human_bytes(p.optimizer_bytes).c_str(), opts.optimizer.c_str());
  std::printf("  activations %s planned (%s if every tensor had its own buffer), workspace %s, input %s\n",
              human_bytes(p.arena_bytes).c_str(), human_bytes(p.unplanned_bytes).c_str(),
              human_bytes(p.workspace_bytes).c_str(), human_bytes(p.io_bytes).c_str());
  if (p.reserve_bytes)  // part of the activations: what recurrent layers keep from forward to backward
    std::printf("  of the activations, recurrent reserves %s (none for frozen recurrent layers)\n",
                human_bytes(p.reserve_bytes).c_str());
  if (!chunking.line.empty()) std::printf("  %s\n", chunking.line.c_str());
  return 0;
}

}  // namespace graft::cli

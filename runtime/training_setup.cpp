// A training run's setup: the options checked, the schedule, the feature cache and chunking
// decided (plan_run); then the executor, the optimizer, --resume, the metrics file and the
// feature caches built (TrainingRun's constructor); and the checkpoints it saves.
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <memory>

#include "runtime/checkpoint.h"
#include "base/error.h"
#include "runtime/training_run.h"

namespace graft {

namespace {

int state_per_param(const OptimizerConfig& c) {
  if (c.kind == "sgd") return c.momentum != 0.0f ? 1 : 0;
  return 2;
}

}  // namespace

RunPlan plan_run(Model& model, BatchSource& data, BatchSource* validation, const TrainOptions& o) {
  if (data.size() == 0) fail("no training examples in ", data.origin());
  if (o.epochs < 1) fail("--epochs must be at least 1, got ", o.epochs);
  if (o.grad_accumulation < 1) fail("--grad-accumulation must be at least 1, got ", o.grad_accumulation);
  if (data.num_classes() != model.num_outputs())
    fail("model ", model.architecture(), " has ", model.num_outputs(), " outputs but ", data.origin(), " has ",
         data.num_classes(), " classes");
  RunPlan p;
  p.monitor = !o.monitor.empty() ? o.monitor : validation ? "val_loss" : "loss";
  if (p.monitor != "loss" && p.monitor != "accuracy" && p.monitor != "val_loss" && p.monitor != "val_accuracy")
    fail("--monitor '", p.monitor, "' is not one of loss, accuracy, val_loss, val_accuracy");
  if (p.monitor.rfind("val_", 0) == 0 && !validation)
    fail("--monitor ", p.monitor, " needs validation data (--val)");
  o.optimizer.validate();
  p.schedule = o.schedule;
  p.schedule.base_lr = o.optimizer.lr;
  p.batch = std::min<int64_t>(o.batch, data.size());
  const int ranks = o.comm ? o.comm->size() : 1;
  if (ranks > 1) {
    if (model.on_device() && !o.comm->gradients_on_device())
      fail("training on ", ranks, " ranks with --device cuda needs NCCL, and this graft was built without it (",
           o.comm->describe(), "); install NCCL (libnccl-dev, or the pip wheel nvidia-nccl-cu13) and rebuild, run "
           "the ranks with --device cpu, or train on one GPU");
    if (!model.on_device() && o.comm->gradients_on_device())
      fail("the ranks sum gradients on the GPU (", o.comm->describe(), ") but the model is on the CPU: give "
           "--device cuda, or --device cpu to every rank");
    make_shard(o.comm->rank(), ranks, p.batch);  // every rank needs a row of it
  }
  // What one rank's executor plans for: the whole batch, or the largest share of it.
  const int64_t rows = ranks > 1 ? DataParallel::local_batch(p.batch, ranks) : p.batch;
  p.batches_per_epoch = (data.size() + p.batch - 1) / p.batch;
  const int64_t steps_per_epoch = (p.batches_per_epoch + o.grad_accumulation - 1) / o.grad_accumulation;
  if (p.schedule.kind == "cosine" && p.schedule.total_steps == 0) p.schedule.total_steps = steps_per_epoch * o.epochs;
  p.schedule.validate();

  p.cache = decide_feature_cache(o.cache_features, model, o.frozen, o.augment, data, validation,
                                 o.cache_budget_bytes ? o.cache_budget_bytes : default_feature_cache_budget());
  if (!p.cache.line.empty()) std::cerr << p.cache.line << std::endl;
  const PrefixChunking chunking =
      p.cache.on ? PrefixChunking{} : decide_prefix_chunking(o.frozen_chunk, model, o.frozen, rows);
  if (!chunking.line.empty()) std::cerr << chunking.line << std::endl;

  ExecutorOptions& eo = p.executor;
  eo.batch = rows;
  eo.frozen = o.frozen;
  eo.start_after = p.cache.cut;  // with the cache: the layers after the cut only
  eo.chunk_through = chunking.through;
  eo.chunk = chunking.chunk;
  // With the feature cache the steps read cached features, nothing to augment.
  p.raw = !p.cache.on && (o.augment_on == TrainOptions::AugmentOn::Device ||
                          (o.augment_on == TrainOptions::AugmentOn::Auto && model.on_device() &&
                           data.has_raw_batches()));
  if (p.raw) {
    data.set_raw_batches(true);
    eo.raw_input = data.raw_normalization();
  }
  eo.loss = o.loss;
  eo.label_smoothing = o.label_smoothing;
  eo.seed = o.seed;
  eo.reference_kernels = o.reference_kernels;
  eo.optimizer_state_per_param = state_per_param(o.optimizer);
  eo.check_finite = o.check_finite;
  eo.class_weights = o.class_weights;
  return p;
}

TrainingRun::TrainingRun(Model& model, BatchSource& data, BatchSource* validation, const TrainOptions& o,
                         std::ostream& log)
    : model_(model),
      data_(data),
      validation_(validation),
      o_(o),
      log_(log),
      plan_(plan_run(model, data, validation, o)),
      ex_(model, plan_.executor),
      optimizer_(make_optimizer()),
      segments_(ex_.trainable_segments()),
      with_optimizer_{[this] { optimizer_.prepare(segments_, static_cast<float>(lr_)); },
                      [this] { optimizer_.launch(segments_); }} {
  if (o.grad_accumulation > 1) {
    accumulated_ = PoolBuffer(model.pool(), size_t(ex_.trainable_count()) * sizeof(float), "gradients");
    for (auto& s : segments_) s.grad = accumulated_.floats() + (s.grad - ex_.gradients());
  }
  apply_lr_mult(model, o.lr_mult, segments_);

  at_.seed = o.seed;
  at_.batch = plan_.batch;
  at_.grad_accumulation = o.grad_accumulation;
  if (!o.resume_path.empty()) resume();

  if (!o.metrics_path.empty() && writes()) {
    metrics_file_.open(o.metrics_path, at_.epochs_done > 0 || at_.batches_in_epoch > 0 ? std::ios::app : std::ios::trunc);
    if (!metrics_file_) fail("--metrics ", o.metrics_path, ": cannot open for writing");
  }
  run_start_ = TrainClock::now();

  if (plan_.cache.on) build_feature_caches();
  source_ = train_cache_ ? train_cache_.get() : &data;
  val_source_ = val_cache_ ? val_cache_.get() : validation;
  rows_per_step_ = plan_.batch;
  if (o.comm && o.comm->size() > 1) {
    // Every rank trains on its rows of each global batch.
    dp_ = std::make_unique<DataParallel>(*o.comm, ex_, plan_.batch);
    source_->set_shard(dp_->shard());
    const auto [lo, hi] = dp_->shard().rows(plan_.batch);
    rows_per_step_ = hi - lo;
    // Validation is split the same way, its metrics summed; but for TensorBoard on rank 0,
    // whose confusion matrix and misclassified images need every example's prediction there.
    if (val_source_ && !o.comm->any(o.tensorboard != nullptr, "the TensorBoard check")) {
      val_source_->set_shard(dp_->shard());
      split_validation_ = true;
    }
  }

  if (o.sync_every < 0) fail("--sync-every must be at least 1 (or 0 for auto), got ", o.sync_every);
  // Several ranks: every step sums over them (the batch's normaliser, the gradients) on the host.
  sync_every_ = o.check_finite || o.skip_nonfinite > 0 || o.grad_accumulation > 1 || dp_ ? 1
                : o.sync_every > 0                                                 ? o.sync_every
                : model.on_device()                                                ? 25
                                                                                   : 1;
  // --sync-every > 1: the optimizer's scalars go to device memory before each step, its
  // kernels run after backward, so the executor may record the whole step as a graph.
  optimizer_.set_scalars_in_memory(sync_every_ > 1);
}

// Step graphs are set before the optimizer's state is allocated: the pool's order as ever.
Optimizer TrainingRun::make_optimizer() {
  // Several ranks: no step graph. A replay would skip the backward listener that starts the
  // gradient sums, and would bake in this step's weight in the global batch.
  ex_.set_step_graphs(o_.step_graphs && !(o_.comm && o_.comm->size() > 1));
  return Optimizer(o_.optimizer, ex_.trainable_count(), model_.pool());
}

void TrainingRun::resume() {
  const std::string& path = o_.resume_path;
  const auto file = read_safetensors(path);
  const CheckpointInfo info = read_checkpoint_info(file);
  if (info.progress_json.empty())
    fail("--resume ", path, " has no progress record (it was not written by graft train); use --init-from");
  const Progress saved = Progress::from_json(info.progress_json, path);
  if (saved.seed != o_.seed || saved.batch != plan_.batch || saved.grad_accumulation != o_.grad_accumulation)
    fail("--resume ", path, " was written with --seed ", saved.seed, " --batch ", saved.batch,
         " --grad-accumulation ", saved.grad_accumulation, "; resume with the same values to continue exactly");
  load_parameters(model_, file, path, LoadOptions{/*strict=*/true, {}});
  load_optimizer_state(optimizer_, ex_.trainable_segments(), model_, file, path);
  at_ = saved;
  log_ << "resuming " << path << " after " << at_.epochs_done << " epochs and " << at_.batches_in_epoch
       << " batches (step " << at_.step << ")" << std::endl;
}

// Built after --resume loaded the parameters the frozen prefix computes with. The training
// cache's time counts in this run's first epoch, so that epoch against a cached one is a
// fair ratio (validation time is never in an epoch's time).
void TrainingRun::build_feature_caches() {
  // The build reads each source once; what a source keeps for later epochs is wasted.
  data_.expect_single_pass();
  if (validation_) validation_->expect_single_pass();
  train_cache_ = std::make_unique<FeatureCache>(model_, plan_.cache.cut, data_, plan_.batch, o_.reference_kernels);
  cache_seconds_ = train_cache_->build_seconds();
  std::cerr << "feature cache: built in " << std::fixed << std::setprecision(2) << cache_seconds_
            << " s (counted in the time of epoch " << at_.epochs_done + 1 << ")";
  if (validation_ && validation_->size() > 0) {
    val_cache_ = std::make_unique<FeatureCache>(model_, plan_.cache.cut, *validation_, plan_.batch, o_.reference_kernels);
    std::cerr << ", validation's in " << val_cache_->build_seconds() << " s";
  }
  std::cerr << std::defaultfloat << std::endl;
}

void TrainingRun::save(const std::string& path, int epoch_for_info) {
  if (!writes()) return;
  CheckpointInfo info{at_.step, epoch_for_info, data_.class_names(), o_.config_json, at_.to_json()};
  save_checkpoint(path, model_, &optimizer_, ex_.trainable_segments(), info);
}

}  // namespace graft

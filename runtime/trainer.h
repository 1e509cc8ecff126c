// The training loop: epochs of seeded batches from a BatchSource through an Executor and
// an Optimizer; validation, the per-epoch report, the metrics file, checkpoints (last and
// best), early stopping, gradient accumulation, the NaN/Inf guard, interrupts and resume.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/communicator.h"
#include "runtime/batch_source.h"
#include "runtime/executor.h"
#include "runtime/feature_cache.h"
#include "runtime/frozen_prefix.h"
#include "runtime/lr_schedule.h"
#include "runtime/model.h"
#include "runtime/optimizer.h"

namespace graft {

class TensorBoard;
struct ValidationExamples;

struct TrainOptions {
  int epochs = 1;
  int64_t batch = 64;
  uint64_t seed = 0;
  OptimizerConfig optimizer;
  LrScheduleConfig schedule;   // base_lr is taken from optimizer.lr
  LossKind loss = LossKind::CrossEntropy;
  float label_smoothing = 0.0f;
  std::vector<float> class_weights;  // cross-entropy weight per class (empty: none)
  std::vector<bool> frozen;    // per node
  std::vector<std::pair<std::string, float>> lr_mult;  // layer pattern -> learning-rate factor (apply_lr_mult)
  int grad_accumulation = 1;   // micro-batches per optimizer step
  bool augment = false;        // ask the source to augment training batches
  // Where image batches are warped, flipped and normalized: in the decode workers (Cpu), or
  // in the training step where the model is (Device: Ops::augment_batch on uint8 batches,
  // the same numbers). Auto: Device when the model is on a GPU and the source can.
  enum class AugmentOn { Auto, Cpu, Device } augment_on = AugmentOn::Auto;
  // Cache the frozen prefix's outputs once, then train only the layers after it
  // (runtime/feature_cache.h). The cache is rebuilt on --resume, never saved.
  FeatureCacheMode cache_features = FeatureCacheMode::Auto;
  size_t cache_budget_bytes = 0;  // what auto may use; 0: a quarter of physical memory
  // Run the frozen prefix a few examples at a time (runtime/frozen_prefix.h); ignored when
  // the feature cache is on (the prefix does not run in the steps then).
  PrefixChunkMode frozen_chunk;

  std::string save_path;       // checkpoint after every epoch (atomic), and on an interrupt
  std::string save_best_path;  // checkpoint whenever `monitor` improves
  std::string monitor;         // val_loss, val_accuracy, loss, accuracy ("" = val_loss with validation, else loss)
  int patience = 0;            // early stopping: epochs without improvement (0 = off)
  bool restore_best = false;   // at the end, put back the parameters of the best epoch
  std::string resume_path;     // continue a run exactly where its checkpoint left it

  bool check_finite = false;   // name the first layer whose output is not finite
  int skip_nonfinite = 0;      // tolerate this many non-finite steps (skipped) before stopping
  // Wait for the device's verdict on the loss and gradients every this many steps (and at
  // each epoch's end, before any checkpoint) instead of after each one; a bad step is still
  // named exactly. 0: auto (1 on the CPU, 25 on a device). check_finite, skip_nonfinite and
  // grad_accumulation > 1 decide per step, so they use 1.
  int sync_every = 0;
  // On a device, run full training steps as a captured CUDA graph (Executor::
  // forward_backward; models with dropout and --check-finite run as they are).
  bool step_graphs = true;
  std::string metrics_path;    // one JSON object per epoch
  // --tensorboard: scalars per step and epoch, the validation confusion matrix and
  // misclassified images, weight histograms, the configuration (runtime/training_tensorboard.cpp).
  // Opened by the caller, so an unwritable folder fails before anything is built.
  TensorBoard* tensorboard = nullptr;
  bool progress = false;       // progress bar with ETA on stderr
  bool reference_kernels = false;
  std::string config_json = "{}";
  // Data-parallel training (runtime/data_parallel.h): the ranks this process is one of. Null
  // or one rank: this process alone. `batch` stays the global batch; rank 0 alone writes
  // checkpoints, metrics and the log.
  Communicator* comm = nullptr;
};

struct EpochReport {
  int epoch = 0;  // 1-based
  Metrics train;
  std::optional<Metrics> validation;
  double seconds = 0;           // building the feature cache included (the run's first epoch)
  double cache_seconds = 0;     // of which building the feature cache
  double images_per_second = 0;
  double lr = 0;
  int64_t skipped_examples = 0;
};

// Trains `model`, validating on `validation` (may be null) after each epoch, one line per
// epoch to `log`. Throws graft::Error on a non-finite loss (naming epoch, step, batch and,
// with check_finite, the layer), and graft::Interrupted after saving on SIGINT/SIGTERM.
std::vector<EpochReport> train(Model& model, BatchSource& train, BatchSource* validation,
                               const TrainOptions& options, std::ostream& log);

// Loss and accuracy over a whole source, in order, in batches of `batch`. With start_after
// >= 0 the source holds that node's outputs (a FeatureCache) and only later nodes run.
// `examples`, when given, gets every example's prediction (the confusion matrix, the first
// misclassified).
Metrics evaluate(Model& model, BatchSource& data, int64_t batch, LossKind loss, bool reference_kernels = false,
                 int start_after = -1, ValidationExamples* examples = nullptr);

// --class-weights: "auto" (n / (classes * count[c]), scikit-learn's "balanced") or a JSON
// file, either a list in class order or an object {"class name": weight}. Errors name the
// file, the class, the value.
std::vector<float> resolve_class_weights(const std::string& spec, const BatchSource& data);

// Parses "LAYERS=factor" (e.g. 'features.24..features.30=0.1'); errors name the flag and the text.
std::pair<std::string, float> parse_lr_mult(const std::string& spec);
// Sets the learning-rate factor of every segment whose layer a pattern selects
// (select_nodes), or whose parameter name a glob matches ('fc1.bias'); later patterns win.
// A pattern that reaches no trainable parameter is an error.
void apply_lr_mult(const Model& model, const std::vector<std::pair<std::string, float>>& lr_mult,
                   std::vector<ParamSegment>& segments);

}  // namespace graft

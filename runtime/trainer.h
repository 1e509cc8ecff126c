// The training loop: epochs of seeded shuffled batches through an Executor and an
// Optimizer, evaluation, the per-epoch report, the metrics file and checkpoints.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "runtime/dataset.h"
#include "runtime/executor.h"
#include "runtime/lr_schedule.h"
#include "runtime/model.h"
#include "runtime/optimizer.h"

namespace graft {

struct TrainOptions {
  int epochs = 1;
  int64_t batch = 64;
  uint64_t seed = 0;
  OptimizerConfig optimizer;
  LrScheduleConfig schedule;   // base_lr is taken from optimizer.lr
  LossKind loss = LossKind::CrossEntropy;
  float label_smoothing = 0.0f;
  std::vector<bool> frozen;    // per node
  std::string save_path;       // checkpoint after every epoch and at the end (atomic)
  std::string metrics_path;    // one JSON object per epoch
  bool progress = false;       // progress bar with ETA on stderr
  bool reference_kernels = false;
  std::string config_json = "{}";
};

struct EpochReport {
  int epoch = 0;  // 1-based
  Metrics train;
  std::optional<Metrics> validation;
  double seconds = 0;
  double images_per_second = 0;
  double lr = 0;
};

// Trains `model` on `train`, validating on `validation` (may be null) after each epoch.
// Prints one line per epoch to `log`. Stops with a graft::Error naming the epoch, step and
// batch on a non-finite loss; the last checkpoint written stays as it was.
std::vector<EpochReport> train(Model& model, const Dataset& train, const Dataset* validation,
                               const TrainOptions& options, std::ostream& log);

// Loss and accuracy over a whole dataset, in order, in batches of `batch`.
Metrics evaluate(Model& model, const Dataset& data, int64_t batch, LossKind loss, bool reference_kernels = false);

}  // namespace graft

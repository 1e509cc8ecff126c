// One call of train(), in parts: what the run decides before anything is built (RunPlan), and
// what its parts share (TrainingRun): the executor, the optimizer, the progress record, the
// feature caches. Private to the trainer:
//   training_setup.cpp      the plan, the executor and optimizer, --resume, the caches
//   training_epoch.cpp      the epoch loop and its steps, non-finite checks, interrupts
//   training_epoch_end.cpp  validation, the report and metrics lines, checkpoints, early
//                           stopping, putting back the best epoch
//   training_tensorboard.cpp  what --tensorboard shows of the run
#pragma once
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "runtime/data_parallel.h"
#include "runtime/evaluation.h"
#include "runtime/tensorboard.h"
#include "runtime/trainer.h"
#include "runtime/training_progress.h"

namespace graft {

using TrainClock = std::chrono::steady_clock;

inline double seconds_since(TrainClock::time_point t) {
  return std::chrono::duration<double>(TrainClock::now() - t).count();
}

// The options checked and the run's shape decided: nothing allocated yet. Making it prints the
// feature cache's and chunking's lines and may switch the source to raw batches.
struct RunPlan {
  std::string monitor;  // the option, or its default
  LrScheduleConfig schedule;
  int64_t batch = 0;    // at most the data's size
  int64_t batches_per_epoch = 0;
  FeatureCacheDecision cache;
  bool raw = false;     // uint8 batches augmented on the device
  ExecutorOptions executor;
};
RunPlan plan_run(Model& model, BatchSource& data, BatchSource* validation, const TrainOptions& o);

class TrainingRun {
 public:
  // Builds the executor and optimizer, loads --resume, opens --metrics, builds the caches.
  TrainingRun(Model& model, BatchSource& data, BatchSource* validation, const TrainOptions& o, std::ostream& log);
  std::vector<EpochReport> run();

 private:
  Optimizer make_optimizer();
  bool writes() const { return !o_.comm || o_.comm->is_root(); }  // checkpoints, metrics, the log
  bool interrupted();  // on every rank alike
  void resume();
  void build_feature_caches();
  void save(const std::string& path, int epoch_for_info);

  // training_epoch.cpp
  void run_epoch(int epoch);
  int64_t next_batch();
  bool step(int64_t n, int epoch);  // false: a non-finite step, skipped
  bool step_is_finite(int epoch, int64_t n);
  void accumulate_gradients();
  void optimizer_step();
  void check_deferred(int epoch);
  [[noreturn]] void stop_nonfinite(int epoch, int64_t step, int64_t batch_no, bool nan, const std::string& culprit);
  [[noreturn]] void stop_interrupted(int epoch);

  // training_epoch_end.cpp
  bool end_epoch(int epoch);  // true: stop early
  bool update_best(const EpochReport& r);
  void print_line(const EpochReport& r, bool improved);
  void write_metrics(const EpochReport& r);
  void restore_best();

  // training_tensorboard.cpp
  TensorBoard* board() const { return writes() ? o_.tensorboard : nullptr; }
  void board_start();
  void board_step();  // the steps since the last call: at every look at the device
  void board_epoch(const EpochReport& r, const ValidationExamples* examples);
  void board_learning_rates(const std::string& prefix, int64_t step, double lr);

  Model& model_;
  BatchSource& data_;
  BatchSource* validation_;
  const TrainOptions& o_;
  std::ostream& log_;
  const RunPlan plan_;

  Executor ex_;
  Optimizer optimizer_;
  std::vector<ParamSegment> segments_;  // what the optimizer steps: the executor's, or accumulated_'s
  PoolBuffer accumulated_;              // --grad-accumulation > 1: the micro-batches' gradient sum
  Progress at_;
  std::ofstream metrics_file_;
  std::vector<float> best_params_;      // --restore-best
  std::vector<EpochReport> reports_;
  TrainClock::time_point run_start_;

  std::unique_ptr<FeatureCache> train_cache_, val_cache_;
  double cache_seconds_ = 0;            // counted in this run's first epoch, then 0
  BatchSource* source_ = nullptr;       // the training data, or its cache
  BatchSource* val_source_ = nullptr;
  int sync_every_ = 1;                  // steps between looks at the device's finite verdict
  Executor::StepHooks with_optimizer_;  // the optimizer inside a deferred step
  std::unique_ptr<DataParallel> dp_;    // several ranks: this rank's shard and the gradient sum
  bool split_validation_ = false;       // each rank validates its shard; the metrics are summed
  int64_t rows_per_step_ = 0;           // what this rank reads of a full global batch

  // The epoch in progress.
  TrainClock::time_point epoch_start_;
  double lr_ = 0;
  int pending_ = 0;  // micro-batches accumulated since the last optimizer step
  Metrics board_metrics_;                     // the epoch's sums at the last board_step
  TrainClock::time_point board_time_, board_flushed_;
};

}  // namespace graft

// Where a training run stands, saved in a checkpoint's "progress" metadata so --resume
// continues exactly: the same batches, learning rates, dropout masks and optimizer state.
// Private to the trainer (runtime/trainer.cpp and runtime/training_*.cpp).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "runtime/executor.h"

namespace graft {

struct Progress {
  int64_t step = 0;            // optimizer steps taken
  int64_t micro_step = 0;      // micro-batches run (dropout's counter)
  int epochs_done = 0;
  int64_t batches_in_epoch = 0;  // micro-batches of the unfinished epoch already run
  int64_t position_in_epoch = 0; // positions of its order consumed (unreadable images included)
  Metrics partial;             // that epoch's sums so far
  std::optional<double> best;  // best monitored value so far
  int bad_epochs = 0;          // epochs since it improved
  int64_t nonfinite_skipped = 0;
  uint64_t seed = 0;
  int64_t batch = 0;
  int grad_accumulation = 1;

  std::string to_json() const;
  // An unreadable record is a graft::Error naming the --resume `path`.
  static Progress from_json(const std::string& text, const std::string& path);
};

}  // namespace graft

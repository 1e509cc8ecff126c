// Data-parallel training's part of a step and of an epoch, for a run over several ranks of a
// Communicator: which rows of every global batch this rank reads (its Shard), the gradient
// sum (GradientReducer, each rank weighted by its share of the global batch's loss, so the
// result is the global batch's mean gradient whatever the split), and metric sums.
// The trainer asks it; with one rank there is none.
#pragma once
#include <cstdint>
#include <memory>

#include "runtime/communicator.h"
#include "runtime/executor.h"
#include "runtime/gradient_reducer.h"
#include "runtime/shard.h"

namespace graft {

class DataParallel {
 public:
  // `ex` is planned for local_batch() rows; `global_batch` is --batch.
  DataParallel(Communicator& comm, Executor& ex, int64_t global_batch,
               size_t bucket_bytes = GradientReducer::kDefaultBucketBytes);

  Communicator& comm() { return comm_; }
  const Shard& shard() const { return shard_; }
  // The most rows of one global batch any rank reads: what every rank's executor plans for.
  static int64_t local_batch(int64_t global_batch, int ranks) { return (global_batch + ranks - 1) / ranks; }

  // Before a step's forward, with this rank's n rows in the executor's input and labels:
  // whether any rank has rows (false: the epoch is over everywhere). Sums the batch's loss
  // normaliser over the ranks (examples, or class weights with --class-weights).
  // `reduce` false (--grad-accumulation): this micro-batch's gradients stay on the rank, to
  // be accumulated and summed once per optimizer step by sum_accumulated().
  bool begin_step(int64_t n, bool reduce = true);
  // After backward (n > 0) or instead of it (n == 0: this rank adds zero gradients): the
  // gradients summed, the global batch's mean gradient on every rank. Without `reduce`: this
  // rank's gradients weighted by its share of the global batch, not summed.
  void finish_step(int64_t n);
  // The accumulated (summed) weighted gradients of the micro-batches since the last optimizer
  // step: summed over the ranks, divided by the ranks (device memory with NCCL, else host).
  void sum_accumulated(float* data, size_t count);
  // Sums over the ranks (an epoch's loss, accuracy and count).
  Metrics sum(const Metrics& m);

 private:
  double loss_normaliser(int64_t n) const;

  Communicator& comm_;
  Executor& ex_;
  Shard shard_;
  GradientReducer reducer_;
  bool reduce_ = true;   // this micro-batch's gradients are summed in finish_step
  float prescale_ = 1;   // this rank's weight in the global batch's mean
};

}  // namespace graft

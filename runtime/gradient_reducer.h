// GradientReducer: sums the trainable gradients of one step over the ranks of a
// Communicator, in buckets (contiguous ranges of the executor's flat gradient buffer, about
// `bucket_bytes` each, formed from the last node backward: the order backward fills them),
// each started as soon as the nodes that fill it are done, so the sums overlap the rest of
// the backward pass; finish() waits for them and scales. Frozen layers have no gradients
// and so nothing to send. The sums run where the communicator works: host memory (MPI, the
// CPU backend) or the device's (NCCL, in stream order with the backward kernels).
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/communicator.h"
#include "runtime/executor.h"

namespace graft {

class GradientReducer {
 public:
  // 25 MiB: PyTorch DistributedDataParallel's default bucket_cap_mb.
  static constexpr size_t kDefaultBucketBytes = size_t(25) << 20;

  // Listens to `ex`'s backward (Executor::set_backward_listener) until destroyed.
  GradientReducer(Communicator& comm, Executor& ex, size_t bucket_bytes = kDefaultBucketBytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Before a step's backward: the buckets start again; each is multiplied by `prescale`
  // before it is sent (this rank's share of the global loss: ranks * local / global
  // normaliser, so that finish(1 / ranks) gives the global batch's mean gradient).
  void begin_step(float prescale = 1.0f);
  // Instead of begin_step for a micro-batch whose gradients are accumulated and summed later
  // (--grad-accumulation): the listener starts nothing, and finish() is not called.
  void skip_step() { next_ = buckets_.size(); }
  // After it: starts what the listener has not (every bucket when nothing listened), waits
  // for all, and multiplies the sums by `scale` (1 / the global loss normaliser's share).
  void finish(float scale);

  struct Bucket {
    int64_t begin = 0, end = 0;  // floats of the gradient buffer
    int last_node = 0;           // the bucket is complete once this node's backward is done
  };
  const std::vector<Bucket>& buckets() const { return buckets_; }

 private:
  void node_done(int node);
  void start(size_t b);

  Communicator& comm_;
  Executor& ex_;
  std::vector<Bucket> buckets_;  // in the order they complete (the last nodes' first)
  size_t next_ = 0;              // the first bucket not started this step
  float prescale_ = 1.0f;
};

}  // namespace graft

// Executor: runs a Model for one fixed batch size. At construction it decides, once:
//   - needs_grad per node = has trainable parameters || any input needs_grad; backward runs
//     only where needed, and a node computes an input's gradient only when that input
//     needs it (the first trainable layer above a frozen base computes no input gradient);
//   - the memory plan: every activation and activation gradient gets a fixed offset in one
//     arena from its lifetime over forward, loss and backward, so activations that no
//     backward reads (a frozen prefix) are released as soon as the next layer consumed
//     them, and a step allocates nothing;
//   - one flat gradient buffer for the trainable parameters only (frozen ones have no slot).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/memory_pool.h"
#include "runtime/model.h"
#include "runtime/optimizer.h"

namespace graft {

enum class LossKind { CrossEntropy, MSE };

struct ExecutorOptions {
  int64_t batch = 32;
  std::vector<bool> frozen;          // per node; empty: nothing frozen
  bool training = true;              // false: an inference plan (no gradients at all)
  LossKind loss = LossKind::CrossEntropy;
  float label_smoothing = 0.0f;
  uint64_t seed = 0;                 // dropout
  bool reference_kernels = false;    // run the plain-loop oracle (tests)
  int optimizer_state_per_param = 0; // for the planned-peak report only
  bool check_finite = false;         // forward notes the first node whose output is not finite
};

struct NodeDecision {
  bool frozen = false;
  bool needs_grad = false;         // == runs backward
  bool weight_grad = false;        // computes its parameters' gradients
  std::vector<bool> input_grad;    // computes the gradient of input k
};

struct PlanSummary {
  size_t arena_bytes = 0;        // activations and their gradients, as planned
  size_t unplanned_bytes = 0;    // what they would take with one buffer each
  size_t parameter_bytes = 0;
  size_t gradient_bytes = 0;
  size_t optimizer_bytes = 0;
  size_t workspace_bytes = 0;
  size_t io_bytes = 0;           // input batch, labels, targets
  size_t peak_bytes() const {
    return arena_bytes + parameter_bytes + gradient_bytes + optimizer_bytes + workspace_bytes + io_bytes;
  }
};

struct Metrics {
  double loss_sum = 0;  // sum of per-example losses
  double correct = 0;
  double count = 0;
  double loss() const { return count ? loss_sum / count : 0.0; }
  double accuracy() const { return count ? correct / count : 0.0; }
};

class Executor {
 public:
  Executor(Model& model, ExecutorOptions options);
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  int64_t batch() const { return options_.batch; }
  float* input() { return input_.floats(); }
  int32_t* labels() { return static_cast<int32_t*>(labels_.get()); }

  // Forward over the first n <= batch examples of input().
  void forward(int64_t n, bool training, int64_t step);
  // Fused loss forward+backward on the last forward, accumulated into the metrics, then
  // backward where needed, leaving the trainable gradients in the flat gradient buffer.
  void backward(int64_t n);
  // Loss and accuracy of the last forward into the metrics, with no gradient (evaluation).
  void accumulate_metrics(int64_t n);
  // Mean loss of the batch of the last backward() or accumulate_metrics().
  double last_batch_loss() const { return last_batch_loss_; }

  const float* output() const;
  Shape output_shape(int64_t n) const;
  const float* activation(int node) const;  // valid until the plan reuses its memory
  // With check_finite: the first node (forward order) of the last forward whose output held
  // a NaN or an infinity, or -1.
  int first_nonfinite_node() const { return first_nonfinite_node_; }

  Metrics read_metrics() const { return metrics_; }
  void reset_metrics() { metrics_ = {}; }
  void set_metrics(const Metrics& m) { metrics_ = m; }  // a resumed epoch's partial sums

  const std::vector<ParamSegment>& trainable_segments() const { return segments_; }
  int64_t trainable_count() const { return trainable_count_; }
  float* gradients() { return grads_.floats(); }
  const std::vector<NodeDecision>& decisions() const { return decisions_; }
  const PlanSummary& plan() const { return plan_; }
  const std::vector<int64_t>& backward_calls() const { return backward_calls_; }
  const Model& model() const { return model_; }
  // What the executor decided, in words: one line per node.
  std::vector<std::string> describe() const;

 private:
  struct Slot {
    int64_t offset = -1;  // bytes into the arena; -1: none
  };
  void plan_memory();
  float* at(const Slot& s) const;
  std::vector<const float*> input_ptrs(int n) const;

  Model& model_;
  ExecutorOptions options_;
  std::vector<Shape> shapes_;  // per node, at the full batch
  std::vector<NodeDecision> decisions_;
  std::vector<std::vector<int>> consumers_;
  std::vector<Slot> act_, grad_, scratch_;
  std::vector<int64_t> grad_offset_;  // per param: floats into grads_, -1 when frozen
  std::vector<ParamSegment> segments_;
  int64_t trainable_count_ = 0;
  PlanSummary plan_;
  PoolBuffer arena_, grads_, workspace_, input_, labels_, targets_;
  ExecContext ctx_;
  int64_t last_n_ = 0;
  int first_nonfinite_node_ = -1;
  Metrics metrics_;
  double last_batch_loss_ = 0;
  std::vector<int64_t> backward_calls_;
};

}  // namespace graft

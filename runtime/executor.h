// Executor: runs a Model for one fixed batch size, on the device of the model's pool (the
// CPU, or CUDA when the model's parameters live in a device pool: then every buffer below
// comes from that pool, the kernels are the backend's Ops, input() and labels() are pinned
// host staging copied to the device at forward(), loss and accuracy sums stay in device
// memory until read_metrics() or last_batch_loss(), and output() is a host copy). At construction it decides, once:
//   - needs_grad per node = has trainable parameters || any input needs_grad; backward runs
//     only where needed, and a node computes an input's gradient only when that input
//     needs it (the first trainable layer above a frozen base computes no input gradient);
//   - the memory plan: every activation and activation gradient gets a fixed offset in one
//     arena from its lifetime over forward, loss and backward, so activations that no
//     backward reads (a frozen prefix) are released as soon as the next layer consumed
//     them, and a step allocates nothing;
//   - one flat gradient buffer for the trainable parameters only (frozen ones have no slot).
// It may run part of the graph: with start_after its input is a node's output (cached
// features of a frozen prefix) and the nodes up to that one are neither run nor planned;
// with stop_after (inference) it runs the nodes up to that one and output() is its output.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "runtime/bf16_emulation.h"
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
  std::vector<float> class_weights;  // cross-entropy weight per class (empty: unweighted); CPU only for now
  // Device models (parameters in a device pool): which CUDA kernels; empty: default_kernels().
  // Auto: native and library are both made, and each convolution and dense layer runs with
  // whichever was faster on its shapes when timed at construction (library for the rest).
  std::optional<KernelChoice> kernels;
  // Ops to choose between for every convolution and dense layer, by timing, as auto does
  // (labelled by name()); the first serves every other op. Empty: auto's, or none. Must all
  // work on the model's memory.
  std::vector<Ops*> kernel_candidates;
  // Raw input (augmentation in the step): the caller fills raw_images(), raw_warps() and
  // labels() (BatchSource::next_raw_batch) instead of input(), and forward() first warps,
  // flips and normalizes them with Ops::augment_batch into the model's input, on the device
  // when the model is there. Needs a model input of [H, W, 3] and start_after < 0.
  std::optional<math::WarpNorm> raw_input;
  // Convolutions and dense layers multiply bf16-rounded operands (runtime/bf16_emulation.h);
  // unset: kernel_settings().bf16 (--precision bf16).
  std::optional<bool> bf16;
  // >= 0: input() holds node start_after's outputs (shape: that node's); nodes up to and
  // including it are not run, get no activation and no gradient, and must need none (a
  // frozen prefix). Parameters stay in the model: segments and checkpoints are unchanged.
  int start_after = -1;
  // >= 0, inference only: run the nodes up to and including stop_after; output() is its
  // output. Nodes after it are neither run nor planned.
  int stop_after = -1;
  // >= 0: the nodes that run up to and including chunk_through (a frozen prefix, see
  // runtime/frozen_prefix.h) run `chunk` examples at a time. Their activations are planned
  // for one chunk, chunk_through's output for the whole batch, so the prefix takes about
  // chunk/batch of the memory. They must need no gradient, be deterministic in training,
  // and only chunk_through's output may be read after it.
  int chunk_through = -1;
  int64_t chunk = 0;
};

struct NodeDecision {
  bool runs = true;                // false: outside start_after/stop_after
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
  size_t reserve_bytes = 0;      // part of arena_bytes: what layers keep from forward for backward (recurrent layers)
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
  const ExecutorOptions& options() const { return options_; }
  // Floats of one example in input(): the model's sample, or the start_after node's output.
  int64_t input_floats() const { return input_floats_; }
  Shape input_shape(int64_t n) const;  // [n, ...] of input()
  // Where the caller writes the next batch (host memory on every device).
  // On a device these are one of two pinned staging buffers: forward() copies from one and
  // hands out the other, once the copy that last read it is done, so filling the next batch
  // never waits for the device's work on this one. So a batch's input() and labels() are
  // its own only until forward() or upload_input(): read what you need of them before.
  float* input();
  int32_t* labels();
  // With raw_input: where the caller writes uint8 images [batch, H, W, 3] and their warps.
  uint8_t* raw_images();
  math::WarpExample* raw_warps();
  // Sequences: the per-example lengths of the batch just written to input()
  // (BatchSource::batch_lengths(); null: every example has all its steps). They apply to the
  // next forward only, so a batch without lengths never inherits the last one's. Each must
  // be 1..steps (the model input's first sample dimension); a batch whose lengths are all
  // full counts as one without. Models with no layer that reads lengths ignore them.
  void set_lengths(const int32_t* lengths, int64_t n);
  // Data-parallel ranks: row 0 of the batches that follow is row `row` of the global batch
  // (ExecContext::first_row), so their dropout masks are the ones one process draws for those
  // rows. Not with step graphs on: a recording keeps the row it was made with.
  void set_first_row(int64_t row);
  // Whether the last forward ran with lengths (some sequence shorter than the input's steps).
  bool has_lengths() const { return ctx_.lengths != nullptr; }

  // Forward over the first n <= batch examples of input().
  void forward(int64_t n, bool training, int64_t step);
  // Fused loss forward+backward on the last forward, accumulated into the metrics, then
  // backward where needed, leaving the trainable gradients in the flat gradient buffer.
  void backward(int64_t n);
  // forward(n, true, step) then backward(n). With step graphs on (set_step_graphs), a full
  // batch on a device runs as a CUDA graph: the second full step is captured, every later
  // one replays it (the batch and the step count are copied in first). A batch with
  // sequence lengths (set_lengths) runs step by step: the library's RNN calls take the
  // lengths on the host, which a recording would bake in; full-length batches still replay.
  // check_finite and profiling run as they are (their checks wait for the device).
  // hooks (may be null): `before` runs every step first, outside any recording (the
  // optimizer's host half and uploads); `after` issues device work after the backward (the
  // optimizer's kernels), recorded into the graph with the rest and replayed with it.
  struct StepHooks {
    std::function<void()> before, after;
  };
  void forward_backward(int64_t n, int64_t step, const StepHooks* hooks = nullptr);
  // On: layers that draw random numbers read the step count from memory the executor writes
  // before each step (ExecContext::step_counter): the same numbers as without.
  void set_step_graphs(bool on);
  bool step_graph_captured() const { return graph_ >= 0; }
  // Loss and accuracy of the last forward into the metrics, with no gradient (evaluation).
  void accumulate_metrics(int64_t n);
  // Mean loss of the batch of the last backward() or accumulate_metrics().
  double last_batch_loss() const;

  // The last forward's output (the stop_after node's, when set), readable on the host (on a
  // device: copied, synchronizing).
  const float* output() const;
  Shape output_shape(int64_t n) const;
  // In the device's memory; valid until the plan reuses it. The start_after node's is the
  // input; nodes that do not run have none (null); a node run in chunks (before
  // chunk_through) holds its last chunk.
  const float* activation(int node) const;
  // With check_finite: the first node (forward order) of the last forward whose output held
  // a NaN or an infinity, or -1.
  int first_nonfinite_node() const { return first_nonfinite_node_; }

  // graft bench: keep the batch in the device's input buffer. After upload_input(n), forward()
  // no longer copies input() and labels() in (on the CPU input() is that buffer already).
  // images == false: labels() only, for a caller that wrote the images into device_input()
  // itself (the library's batches in device memory, copied device to device).
  void upload_input(int64_t n, bool images = true);
  void keep_input(bool keep) { keep_input_ = keep; }
  // The device buffer forward() reads the batch's floats from (input() on the CPU).
  float* device_input() { return input_.floats(); }

  // Per-layer timing (graft bench --layers): while on, forward() and backward() put the
  // backend's timing marks around every node and add the times up per node (this waits for
  // the device at the end of each call).
  struct LayerTime {
    double forward_ms = 0, backward_ms = 0;
    int64_t forward_calls = 0, backward_calls = 0;
  };
  void set_profiling(bool on) { profiling_ = on; }
  const std::vector<LayerTime>& layer_times() const { return layer_times_; }
  void reset_layer_times() { layer_times_.assign(layer_times_.size(), LayerTime{}); }

  Metrics read_metrics() const;
  void reset_metrics() { set_metrics({}); }
  void set_metrics(const Metrics& m);  // a resumed epoch's partial sums

  const std::vector<ParamSegment>& trainable_segments() const { return segments_; }
  int64_t trainable_count() const { return trainable_count_; }
  // The floats [first, second) of gradients() that node `node`'s trainable parameters fill
  // (padding included); {0, 0} for a node without. Ranges follow the node order.
  std::pair<int64_t, int64_t> gradient_range(int node) const;
  // Called after each node's backward() with the node's index, in the order they run (the
  // last node first): data-parallel training starts summing a bucket of gradients as soon
  // as the nodes that fill it are done. Host-side: not called by a replayed step graph.
  void set_backward_listener(std::function<void(int node)> listener) { backward_listener_ = std::move(listener); }
  float* gradients() { return grads_.floats(); }  // in the device's memory
  Ops& ops() { return *ops_; }
  bool on_device() const { return on_device_; }
  // True when every trainable gradient is finite; else names the first segment that is not.
  bool gradients_finite(std::string* first_bad = nullptr);
  // The same check, deferred (graft train --sync-every): after backward(), queue a check of
  // that batch's loss and gradients; the first batch that fails keeps `tag`. Nothing waits
  // for the device until first_nonfinite_tag() reads it (-1: none since the last clear).
  void record_nonfinite(int64_t tag);
  int64_t first_nonfinite_tag() const;
  void clear_nonfinite_tag();
  const std::vector<NodeDecision>& decisions() const { return decisions_; }
  const PlanSummary& plan() const { return plan_; }
  const std::vector<int64_t>& backward_calls() const { return backward_calls_; }
  const Model& model() const { return model_; }
  // What the executor decided, in words: one line per node.
  std::vector<std::string> describe() const;
  // Per node, the kernels a timed choice gave it ("native", "library" or a candidate's
  // name); "" where nothing was chosen.
  const std::vector<std::string>& chosen_kernels() const { return chosen_; }

 private:
  struct Slot {
    int64_t offset = -1;  // bytes into the arena; -1: none
  };
  void plan_memory();
  bool in_chunk(int node) const { return node >= first_ && node < options_.chunk_through; }
  int64_t planned_batch(int node) const { return in_chunk(node) ? options_.chunk : options_.batch; }
  // Examples one forward call of the node sees: a chunk up to chunk_through, else the batch.
  int64_t call_batch(int node) const {
    return node >= first_ && node <= options_.chunk_through ? options_.chunk : options_.batch;
  }
  // Convolutions and dense layers: what bf16 and --kernels auto act on.
  bool gemm_node(int node) const;
  void check_chunking() const;
  // Forward of node k over n examples starting at example `row` of the batch (row > 0 only
  // for the nodes run in chunks).
  void forward_node(int k, int64_t n, int64_t row);
  void note_bad_label(const int32_t* labels, int64_t n);
  void refuse_bad_label() const;
  void backward_node(int k, int64_t n, std::vector<int>& arrived);
  // kernel_candidates or --kernels auto: time each candidate on every convolution and dense
  // node that runs, keep the fastest per node.
  void choose_kernels(const std::vector<std::pair<Ops*, std::string>>& candidates);
  // bf16 without bf16 kernels: the emulation around `ops`, kept in emulations_.
  Ops* with_bf16(Ops* ops, bool bf16);
  void weighted_cross_entropy(int64_t n, float* dlogits, Metrics& batch);
  float* at(const Slot& s) const;
  std::vector<const float*> input_ptrs(int n) const;
  void device_loss(int64_t n, bool with_gradient);
  void cpu_loss(int64_t n, bool with_gradient);
  void add_layer_times(bool backward);

  Model& model_;
  ExecutorOptions options_;
  std::vector<Shape> shapes_;  // per node, at the full batch
  std::vector<NodeDecision> decisions_;
  std::vector<std::vector<int>> consumers_;
  std::vector<Slot> act_, grad_, scratch_, reserve_;
  std::vector<int64_t> grad_offset_;  // per param: floats into grads_, -1 when frozen
  std::vector<ParamSegment> segments_;
  int64_t trainable_count_ = 0;
  std::function<void(int)> backward_listener_;
  PlanSummary plan_;
  PoolBuffer arena_, grads_, workspace_, input_, labels_, targets_;
  PoolBuffer raw_images_, raw_warps_;  // raw_input: in the model's memory (the device's, or the host's)
  // Sequence lengths: in the model's memory when a node reads them; the staged batch's on
  // the host (set_lengths), and the running batch's host copy the kernels are given.
  PoolBuffer lengths_;
  std::vector<int32_t> staged_lengths_, host_lengths_;
  bool lengths_staged_ = false;
  bool reads_lengths_ = false;  // some node that runs reads ExecContext::lengths
  int64_t first_row_ = 0;       // set_first_row: ExecContext::first_row of a chunk at row 0
  void activate_lengths();
  void check_model_input(const float* host, int64_t n) const;
  Ops* ops_ = nullptr;  // the backend's kernels
  std::unique_ptr<Ops> owned_ops_, owned_second_;  // the backend's; the second: auto's native
  std::vector<std::unique_ptr<Bf16EmulationOps>> emulations_;  // --precision bf16 around them
  std::vector<Ops*> node_ops_;    // per node: the kernels it runs with (ops_ unless chosen)
  std::vector<std::string> chosen_;
  bool on_device_ = false;
  std::unique_ptr<void, void (*)(void*)> staging_{nullptr, [](void*) {}};  // pinned (input + labels) x 2
  int staging_cur_ = 0;
  // One staging slot: the floats of input() (or raw_input's images, then warps), then labels.
  size_t payload_bytes_ = 0, warps_offset_ = 0, slot_bytes_ = 0;  // slot_bytes_: 256-byte aligned
  char* staging_slot() const { return static_cast<char*>(staging_.get()) + size_t(staging_cur_) * slot_bytes_; }
  PoolBuffer device_sums_;  // doubles: loss_sum, correct (the metrics), then the last batch's two
  PoolBuffer nonfinite_tag_;  // one int64 in the pool's memory: record_nonfinite's first tag
  mutable std::vector<float> output_host_;
  double loss_divisor_ = 1;  // MSE: device loss sums are raw sums over the outputs
  ExecContext ctx_;
  int64_t last_n_ = 0;
  int first_nonfinite_node_ = -1;
  // The first staged label outside the classes (row, value); row -1: none (note_bad_label).
  int64_t bad_label_row_ = -1;
  int32_t bad_label_ = 0;
  Metrics metrics_;
  double last_batch_loss_ = 0;
  std::vector<int64_t> backward_calls_;
  int first_ = 0, last_ = 0;  // the nodes that run: first_ .. last_
  int64_t input_floats_ = 0;
  bool keep_input_ = false;
  bool profiling_ = false;
  bool step_graphs_ = false;
  bool capturing_ = false;
  PoolBuffer step_counter_;  // step graphs: the step count, for ExecContext::step_counter
  int64_t host_step_ = 0;    // the upload's source, alive until the copy has run
  void write_step_counter(int64_t step);
  void begin_step(int64_t n, bool training, int64_t step);
  void count_step(int64_t n, bool with_backward);
  int full_steps_ = 0;  // full-batch forward_backward calls before the capture
  int graph_ = -1;
  std::vector<LayerTime> layer_times_;
  std::vector<std::pair<int, int>> marks_;  // (node, mark) of the call being profiled
  // Per node, its NVTX ranges' names ("forward/<node> <kind>", "backward/<node> <kind>"),
  // made once here so that a step builds no strings.
  struct RangeNames {
    std::string forward, backward;
  };
  static std::vector<RangeNames> range_names(const Model& model);
  const std::vector<RangeNames> range_names_ = range_names(model_);
};

}  // namespace graft

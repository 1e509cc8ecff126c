// The executor, built: graph analysis (needs_grad), the memory plan, the kernels each node runs
// with, and what it decided in words. The step itself is in executor_step.cpp.
#include "runtime/executor.h"

#include <algorithm>
#include <utility>

#include "kernels/ops.h"
#include "runtime/backend_registry.h"
#include "base/error.h"
#include "runtime/frozen_prefix.h"

namespace graft {

namespace {

constexpr size_t kAlign = 256;

size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

struct Interval {
  size_t bytes;
  int begin, end;  // inclusive time steps
  int64_t* offset;
};

// Liveness-based offset assignment: largest tensors first, each at the lowest offset that
// does not overlap a placed tensor alive at the same time. Returns the arena size.
size_t assign_offsets(std::vector<Interval>& tensors) {
  std::sort(tensors.begin(), tensors.end(), [](const Interval& a, const Interval& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.begin < b.begin;
  });
  std::vector<const Interval*> placed;
  size_t arena = 0;
  for (auto& t : tensors) {
    std::vector<std::pair<size_t, size_t>> busy;  // [offset, end) of live neighbours
    for (const Interval* p : placed)
      if (p->begin <= t.end && t.begin <= p->end) busy.emplace_back(*p->offset, *p->offset + p->bytes);
    std::sort(busy.begin(), busy.end());
    size_t candidate = 0;
    for (auto [lo, hi] : busy) {
      if (candidate + t.bytes <= lo) break;
      candidate = std::max(candidate, hi);
    }
    *t.offset = static_cast<int64_t>(candidate);
    arena = std::max(arena, candidate + t.bytes);
    placed.push_back(&t);
  }
  return arena;
}

}  // namespace

Executor::Executor(Model& model, ExecutorOptions options) : model_(model), options_(std::move(options)) {
  if (options_.batch < 1) fail("--batch must be at least 1, got ", options_.batch);
  const int N = model_.num_nodes();
  if (options_.frozen.empty()) options_.frozen.assign(N, false);
  GRAFT_ASSERT(static_cast<int>(options_.frozen.size()) == N, "one frozen flag per node");
  shapes_ = model_.infer_shapes(options_.batch);
  on_device_ = model_.pool().device() != Device::CPU;
  const bool bf16 = options_.bf16.value_or(kernel_settings().bf16);
  const KernelChoice kernels = options_.kernels.value_or(default_kernels());
  std::vector<std::pair<Ops*, std::string>> candidates;
  for (Ops* c : options_.kernel_candidates) candidates.emplace_back(c, c->name());
  if (!candidates.empty()) {
    ops_ = candidates[0].first;
  } else if (on_device_ && kernels == KernelChoice::Auto) {
    ops_ = with_bf16(&ops_for(model_.pool(), false, KernelChoice::Library, owned_ops_, bf16), bf16);
    Ops* native = with_bf16(&ops_for(model_.pool(), false, KernelChoice::Native, owned_second_, bf16), bf16);
    candidates = {{ops_, "library"}, {native, "native"}};
  } else {
    // The CPU has one implementation per op: auto has nothing to choose there.
    const KernelChoice one = kernels == KernelChoice::Auto ? KernelChoice::Library : kernels;
    ops_ = with_bf16(&ops_for(model_.pool(), options_.reference_kernels, one, owned_ops_, bf16), bf16);
  }

  GRAFT_ASSERT(options_.start_after >= -1 && options_.start_after < N - 1, "start_after ", options_.start_after,
               " in a model of ", N, " nodes");
  GRAFT_ASSERT(options_.stop_after >= -1 && options_.stop_after < N, "stop_after ", options_.stop_after);
  GRAFT_ASSERT(options_.stop_after < 0 || !options_.training, "stop_after is for inference plans");
  first_ = options_.start_after + 1;
  last_ = options_.stop_after >= 0 ? options_.stop_after : N - 1;
  GRAFT_ASSERT(first_ <= last_, "start_after ", options_.start_after, " is not before stop_after ", last_);
  input_floats_ = first_ == 0 ? model_.sample_shape().numel() : shapes_[first_ - 1].numel() / options_.batch;

  // Only nodes that run consume; the start_after node's output is the input.
  consumers_.assign(N, {});
  for (int n = first_; n <= last_; ++n)
    for (int i : model_.nodes()[n].inputs) {
      if (i == first_ - 1) continue;
      if (i < first_)
        fail("node ", model_.nodes()[n].name, " reads ", i == kModelInput ? "the model input" : model_.nodes()[i].name,
             ", which is before the executor's input (", model_.nodes()[first_ - 1].name, ")");
      consumers_[i].push_back(n);
    }

  // needs_grad, in topological (insertion) order.
  decisions_.assign(N, {});
  for (int n = 0; n < N; ++n) {
    auto& d = decisions_[n];
    const auto& node = model_.nodes()[n];
    d.frozen = options_.frozen[n];
    d.runs = n >= first_ && n <= last_;
    d.weight_grad = options_.training && !d.frozen && model_.node_param_count(n) > 0;
    if (!d.runs && d.weight_grad)
      fail("node ", node.name, " has trainable parameters, so it cannot be left out of a training plan (start_after ",
           options_.start_after, ")");
    d.needs_grad = d.weight_grad;
    for (int i : node.inputs) {
      const bool in_needs = d.runs && i >= first_ && decisions_[i].needs_grad;
      d.input_grad.push_back(in_needs);
      d.needs_grad = d.needs_grad || in_needs;
    }
  }
  if (options_.training && !decisions_[N - 1].needs_grad)
    fail("every layer of ", model_.architecture(),
         " is frozen: there is nothing to train. Freeze fewer layers (--freeze) or use graft eval.");

  // The flat gradient buffer: trainable parameters only.
  grad_offset_.assign(model_.params().size(), -1);
  for (size_t p = 0; p < model_.params().size(); ++p) {
    if (!decisions_[model_.params()[p].node].weight_grad || model_.params()[p].spec.buffer) continue;
    grad_offset_[p] = trainable_count_;
    trainable_count_ += (model_.params()[p].spec.shape.numel() + 63) / 64 * 64;
  }
  if (trainable_count_) {
    grads_ = PoolBuffer(model_.pool(), size_t(trainable_count_) * sizeof(float), "gradients");
    ops_->zero(grads_.get(), grads_.bytes());  // the padding between segments stays zero
  }
  for (size_t p = 0; p < model_.params().size(); ++p) {
    if (grad_offset_[p] < 0) continue;
    segments_.push_back(ParamSegment{model_.params()[p].name, model_.param_data(p),
                                     grads_.floats() + grad_offset_[p], model_.params()[p].spec.shape.numel()});
  }

  check_chunking();
  for (int n = first_; n <= last_; ++n) reads_lengths_ = reads_lengths_ || model_.nodes()[n].layer->reads_sequence_lengths();
  // Cached features carry no lengths: a node after the cut that reads them would see full
  // sequences. (A cut after the pool, where no running node reads lengths, is fine.)
  if (reads_lengths_ && first_ > 0)
    for (int n = first_; n <= last_; ++n)
      if (model_.nodes()[n].layer->reads_sequence_lengths())
        fail("cannot start after '", model_.nodes()[first_ - 1].name, "' (cached features, --cache-features): '",
             model_.nodes()[n].name, "' reads the sequences' lengths, which cached features do not carry; freeze up to "
             "the pool or train without caching features");
  if (reads_lengths_) {
    lengths_ = PoolBuffer(model_.pool(), size_t(options_.batch) * sizeof(int32_t), "input");
    staged_lengths_.resize(size_t(options_.batch));
    host_lengths_.resize(size_t(options_.batch));
  }
  plan_memory();
  node_ops_.assign(size_t(N), ops_);
  chosen_.assign(size_t(N), "");

  size_t workspace = 0;
  for (int n = first_; n <= last_; ++n) {
    std::vector<Shape> in = model_.node_input_shapes(n, shapes_, options_.batch);
    for (Shape& s : in) s = s.with_batch(std::min(planned_batch(n), options_.batch));
    workspace = std::max(workspace, model_.nodes()[n].layer->workspace_floats_for(in, *ops_));
    for (const auto& c : candidates)
      workspace = std::max(workspace, model_.nodes()[n].layer->workspace_floats_for(in, *c.first));
  }
  if (workspace) workspace_ = PoolBuffer(model_.pool(), workspace * sizeof(float), "workspace");
  if (!emulations_.empty()) {
    // The rounded copies of the largest operands: x or dy, and the weights or dy.
    int64_t a = 0, b = 0;
    for (int n = first_; n <= last_; ++n) {
      if (!gemm_node(n)) continue;
      const int64_t out = shapes_[n].numel() / options_.batch * call_batch(n);
      int64_t in = 0;
      for (const Shape& s : model_.node_input_shapes(n, shapes_, options_.batch)) in += s.numel() / options_.batch * call_batch(n);
      a = std::max({a, in, out});
      b = std::max({b, model_.nodes()[n].layer->param_specs().at(0).shape.numel(), out});
    }
    for (auto& e : emulations_) e->reserve(a, b);
  }

  const int classes = static_cast<int>(shapes_[N - 1].numel() / options_.batch);
  input_ = PoolBuffer(model_.pool(), size_t(options_.batch * input_floats_) * sizeof(float), "input");
  labels_ = PoolBuffer(model_.pool(), size_t(options_.batch) * sizeof(int32_t), "input");
  if (options_.loss == LossKind::MSE)
    targets_ = PoolBuffer(model_.pool(), size_t(options_.batch * classes) * sizeof(float), "input");
  payload_bytes_ = input_.bytes();
  if (options_.raw_input) {
    const Shape& sample = model_.sample_shape();
    if (first_ != 0 || sample.dims.size() != 3 || sample[2] != 3)
      fail("augmenting on the device needs RGB images as the model's input, not ", sample.str(),
           first_ != 0 ? " (cached features)" : "", "; use --augment-on cpu");
    const size_t images = aligned(size_t(options_.batch * sample.numel()));
    raw_images_ = PoolBuffer(model_.pool(), images, "input");
    raw_warps_ = PoolBuffer(model_.pool(), size_t(options_.batch) * sizeof(math::WarpExample), "input");
    warps_offset_ = images;
    payload_bytes_ = aligned(images + raw_warps_.bytes());
  }
  if (on_device_) {
    const DeviceBackend& b = require_cuda_backend();
    slot_bytes_ = aligned(payload_bytes_ + labels_.bytes());
    staging_ = std::unique_ptr<void, void (*)(void*)>(b.alloc_pinned(2 * slot_bytes_), b.free_pinned);
    device_sums_ = PoolBuffer(model_.pool(), 4 * sizeof(double), "input");
    ops_->zero(device_sums_.get(), device_sums_.bytes());
    if (options_.loss == LossKind::MSE) loss_divisor_ = classes;
  }

  nonfinite_tag_ = PoolBuffer(model_.pool(), sizeof(int64_t), "input");
  clear_nonfinite_tag();
  plan_.parameter_bytes = size_t(model_.total_param_count()) * sizeof(float);
  plan_.gradient_bytes = grads_.bytes();
  plan_.optimizer_bytes = size_t(trainable_count_) * sizeof(float) * size_t(options_.optimizer_state_per_param);
  plan_.workspace_bytes = workspace_.bytes();
  for (const auto& e : emulations_) plan_.workspace_bytes += e->scratch_bytes();
  plan_.io_bytes =
      input_.bytes() + labels_.bytes() + targets_.bytes() + raw_images_.bytes() + raw_warps_.bytes() + lengths_.bytes();
  backward_calls_.assign(N, 0);
  ctx_.seed = options_.seed;
  if (!options_.class_weights.empty()) {
    if (on_device_) fail("--class-weights is not yet supported on the GPU; use --device cpu");
    if (options_.loss != LossKind::CrossEntropy) fail("--class-weights applies to the ce loss, not mse");
    if (static_cast<int64_t>(options_.class_weights.size()) != shapes_.back().numel() / options_.batch)
      fail("--class-weights gives ", options_.class_weights.size(), " weights for ",
           shapes_.back().numel() / options_.batch, " classes");
  }
  ctx_.reference_kernels = options_.reference_kernels;
  ctx_.ops = ops_;
  if (candidates.size() > 1) choose_kernels(candidates);
}

bool Executor::gemm_node(int node) const { return model_.nodes()[node].layer->is_gemm(); }

Ops* Executor::with_bf16(Ops* ops, bool bf16) {
  if (!bf16 || ops->computes_bf16()) return ops;
  emulations_.push_back(std::make_unique<Bf16EmulationOps>(*ops, model_.pool()));
  return emulations_.back().get();
}

// Times a forward (and, where the plan runs one, a backward) of every convolution and dense
// node on the planned shapes, after one untimed call that lets the libraries plan. The
// arena and the input hold no batch yet: they are zeroed first so no candidate meets
// denormals or NaNs left in the pool's memory.
void Executor::choose_kernels(const std::vector<std::pair<Ops*, std::string>>& candidates) {
  if (arena_.bytes()) ops_->zero(arena_.get(), arena_.bytes());
  if (input_.bytes()) ops_->zero(input_.get(), input_.bytes());
  const std::vector<int64_t> calls = backward_calls_;
  ctx_.training = options_.training;
  ctx_.step = 0;
  for (int k = first_; k <= last_; ++k) {
    if (!gemm_node(k)) continue;
    const int64_t n = call_batch(k);
    double best = 0;
    for (const auto& [ops, label] : candidates) {
      node_ops_[k] = ops;
      auto once = [&, k = k] {
        forward_node(k, n, 0);
        if (!decisions_[k].needs_grad) return;
        std::vector<int> arrived(size_t(model_.num_nodes()), 0);
        backward_node(k, n, arrived);
      };
      once();
      const int a = ops_->mark();
      once();
      once();
      const double ms = ops_->elapsed_ms(a, ops_->mark());
      if (chosen_[k].empty() || ms < best) {
        best = ms;
        chosen_[k] = label;
      }
    }
    for (const auto& [ops, label] : candidates)
      if (label == chosen_[k]) node_ops_[k] = ops;
  }
  ops_->clear_marks();
  backward_calls_ = calls;
  first_nonfinite_node_ = -1;
}

void Executor::check_chunking() const {
  const int t = options_.chunk_through;
  if (t < 0) return;
  GRAFT_ASSERT(options_.chunk >= 1, "chunk_through ", t, " with a chunk of ", options_.chunk, " examples");
  GRAFT_ASSERT(t >= first_ && t <= last_, "chunk_through ", t, " is not among the nodes that run");
  for (int n = first_; n <= t; ++n) {
    const std::string& name = model_.nodes()[n].name;
    if (decisions_[n].needs_grad)
      fail("cannot run '", name, "' in chunks (--frozen-chunk): it needs a gradient; only a frozen prefix can");
    if (options_.training)
      if (const std::string why = training_randomness(model_, n); !why.empty())
        fail("cannot run '", name, "' in chunks (--frozen-chunk): ", why);
    if (n < t)
      for (int c : consumers_[n])
        if (c > t)
          fail("cannot run the layers up to '", model_.nodes()[t].name, "' in chunks (--frozen-chunk): '",
               model_.nodes()[c].name, "' reads '", name, "' from inside them");
  }
}

void Executor::plan_memory() {
  const int N = model_.num_nodes();
  // Time: forward of node n at n, the loss at N, backward of node n at 2N - n.
  const int loss_time = N;
  auto bwd_time = [N](int n) { return 2 * N - n; };
  act_.assign(N, {});
  grad_.assign(N, {});
  scratch_.assign(N, {});
  reserve_.assign(N, {});
  std::vector<Interval> tensors;
  for (int n = first_; n <= last_; ++n) {
    const size_t bytes = aligned(size_t(shapes_[n].numel() / options_.batch * planned_batch(n)) * sizeof(float));
    const auto& d = decisions_[n];
    // chunk_through's output fills up over every chunk, while the nodes before it reuse
    // their (per-chunk) memory: it is live from the first of them on.
    const int born = n == options_.chunk_through ? first_ : n;
    int end = n;
    for (int c : consumers_[n]) {
      end = std::max(end, c);
      if (decisions_[c].needs_grad && model_.nodes()[c].layer->backward_reads_inputs()) end = std::max(end, bwd_time(c));
    }
    if (d.needs_grad && model_.nodes()[n].layer->backward_reads_output()) end = std::max(end, bwd_time(n));
    if (n == last_) end = std::max(end, loss_time);  // the output, read after forward
    tensors.push_back(Interval{bytes, born, end, &act_[n].offset});
    plan_.unplanned_bytes += bytes;
    if (!d.needs_grad) continue;
    // The output gradient: written by the loss or the consumers' backward, read by our own.
    int begin = n == last_ ? loss_time : bwd_time(n);
    for (int c : consumers_[n]) begin = std::min(begin, bwd_time(c));
    tensors.push_back(Interval{bytes, begin, bwd_time(n), &grad_[n].offset});
    plan_.unplanned_bytes += bytes;
    if (consumers_[n].size() > 1) tensors.push_back(Interval{bytes, begin, bwd_time(n), &scratch_[n].offset});
    // What the forward keeps for this backward (a recurrent layer's states): only nodes
    // whose backward runs have one, so a frozen recurrent base runs like inference.
    const size_t reserve = model_.nodes()[n].layer->reserve_floats_for(model_.node_input_shapes(n, shapes_, options_.batch), *ops_);
    if (reserve) {
      const size_t rbytes = aligned(reserve * sizeof(float));
      tensors.push_back(Interval{rbytes, n, bwd_time(n), &reserve_[n].offset});
      plan_.unplanned_bytes += rbytes;
      plan_.reserve_bytes += rbytes;
    }
  }
  plan_.arena_bytes = assign_offsets(tensors);
  if (plan_.arena_bytes) arena_ = PoolBuffer(model_.pool(), plan_.arena_bytes, "activations");
}

float* Executor::at(const Slot& s) const {
  return s.offset < 0 ? nullptr : reinterpret_cast<float*>(static_cast<char*>(arena_.get()) + s.offset);
}

std::vector<std::string> Executor::describe() const {
  std::vector<std::string> lines;
  for (int k = 0; k < model_.num_nodes(); ++k) {
    const auto& d = decisions_[k];
    std::string what;
    if (!d.runs) {
      what = k < first_ ? "not run (its output is the input: cached features)" : "not run";
    } else if (!d.needs_grad) {
      what = options_.training ? "no backward (nothing below needs a gradient)" : "inference";
    } else {
      what = "backward:";
      if (d.weight_grad) what += " weights";
      bool any_input = false;
      for (bool b : d.input_grad) any_input = any_input || b;
      what += any_input ? " input" : (d.weight_grad ? ", no input gradient" : "");
    }
    if (!chosen_[size_t(k)].empty()) what += " (" + chosen_[size_t(k)] + " kernels, timed fastest)";
    lines.push_back(model_.nodes()[k].name + ": " + (d.frozen ? "frozen, " : "") + what);
  }
  return lines;
}

std::pair<int64_t, int64_t> Executor::gradient_range(int node) const {
  int64_t first = -1, last = -1;
  for (int p : model_.node_params(node)) {
    if (grad_offset_[size_t(p)] < 0) continue;
    const int64_t begin = grad_offset_[size_t(p)];
    const int64_t end = begin + (model_.params()[size_t(p)].spec.shape.numel() + 63) / 64 * 64;
    first = first < 0 ? begin : std::min(first, begin);
    last = std::max(last, end);
  }
  return first < 0 ? std::pair<int64_t, int64_t>{0, 0} : std::pair<int64_t, int64_t>{first, last};
}

}  // namespace graft

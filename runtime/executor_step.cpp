// The executor's step: forward, loss and backward over the plan that executor.cpp made, the
// metrics and finite checks, staging on a device, and step graphs.
#include "runtime/executor.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "kernels/cpu/loss.h"
#include "base/error.h"
#include "runtime/trace.h"

namespace graft {

std::vector<Executor::RangeNames> Executor::range_names(const Model& model) {
  std::vector<RangeNames> names;
  for (const auto& node : model.nodes()) {
    const std::string label = node.name + " " + node.layer->kind();
    names.push_back({"forward/" + label, "backward/" + label});
  }
  return names;
}

std::vector<const float*> Executor::input_ptrs(int n) const {
  std::vector<const float*> in;
  for (int i : model_.nodes()[n].inputs) in.push_back(i == first_ - 1 ? input_.floats() : at(act_[i]));
  return in;
}

const float* Executor::output() const {
  if (!on_device_) return at(act_[last_]);
  const size_t count = size_t(output_shape(last_n_ ? last_n_ : options_.batch).numel());
  output_host_.resize(count);
  ops_->download(output_host_.data(), at(act_[last_]), count * sizeof(float));
  return output_host_.data();
}

double Executor::last_batch_loss() const {
  if (!on_device_ || !last_n_) return last_batch_loss_;
  double sums[2] = {0, 0};
  ops_->download(sums, static_cast<const double*>(device_sums_.get()) + 2, sizeof sums);
  return sums[0] / loss_divisor_ / double(last_n_);
}

Metrics Executor::read_metrics() const {
  if (!on_device_) return metrics_;
  double sums[2] = {0, 0};
  ops_->download(sums, device_sums_.get(), sizeof sums);
  Metrics m;
  m.loss_sum = sums[0] / loss_divisor_;
  m.correct = sums[1];
  m.count = metrics_.count;
  return m;
}

void Executor::set_metrics(const Metrics& m) {
  metrics_ = m;
  if (!on_device_) return;
  const double sums[2] = {m.loss_sum * loss_divisor_, m.correct};
  ops_->upload(device_sums_.get(), sums, sizeof sums);
  ops_->synchronize();  // `sums` is on this stack frame
}

void Executor::record_nonfinite(int64_t tag) {
  GRAFT_ASSERT(last_n_ > 0, "record_nonfinite before a backward");
  // The batch loss: its device sum, or (CPU) the host mean; only finiteness matters.
  const double* loss = on_device_ ? static_cast<const double*>(device_sums_.get()) + 2 : &last_batch_loss_;
  ops_->record_nonfinite(loss, trainable_count_, grads_.floats(), tag, static_cast<int64_t*>(nonfinite_tag_.get()));
}

int64_t Executor::first_nonfinite_tag() const {
  int64_t tag = -1;
  ops_->download(&tag, nonfinite_tag_.get(), sizeof tag);
  return tag;
}

void Executor::clear_nonfinite_tag() {
  const int64_t none = -1;
  ops_->upload(nonfinite_tag_.get(), &none, sizeof none);
  ops_->synchronize();  // `none` is on this stack frame
}

// One pass over the flat buffer (its padding is zero) answers the common case with one
// device round trip instead of one per segment; only a bad step looks for the culprit.
bool Executor::gradients_finite(std::string* first_bad) {
  if (trainable_count_ == 0 || !ops_->any_nonfinite(trainable_count_, grads_.floats())) return true;
  for (const auto& s : segments_)
    if (ops_->any_nonfinite(s.count, s.grad)) {
      if (first_bad) *first_bad = s.name;
      return false;
    }
  return true;
}

// Loss (and its gradient) of the last forward on the device: the batch's sums go to the
// last two device doubles, then are added to the metrics' two.
void Executor::device_loss(int64_t n, bool with_gradient) {
  const trace::Range range("loss");
  refuse_bad_label();
  const int N = model_.num_nodes();
  const int classes = static_cast<int>(shapes_.back().numel() / options_.batch);
  double* sums = static_cast<double*>(device_sums_.get());
  ops_->zero(sums + 2, 2 * sizeof(double));
  float* dlogits = with_gradient ? at(grad_[N - 1]) : nullptr;
  const int32_t* labels = static_cast<const int32_t*>(labels_.get());
  if (options_.loss == LossKind::CrossEntropy) {
    ops_->softmax_cross_entropy(int(n), classes, at(act_.back()), labels, options_.label_smoothing,
                                with_gradient ? 1.0f / float(n) : 0.0f, dlogits, sums + 2, sums + 3);
  } else {
    ops_->one_hot(int(n), classes, labels, targets_.floats());
    ops_->mse(n * classes, at(act_.back()), targets_.floats(), with_gradient ? 1.0f / float(n * classes) : 0.0f,
              dlogits, sums + 2);
    ops_->softmax_cross_entropy(int(n), classes, at(act_.back()), labels, 0.0f, 0.0f, nullptr, nullptr, sums + 3);
  }
  ops_->add_doubles(2, sums + 2, sums);
}
// PyTorch's CrossEntropyLoss(weight=...): the batch loss is sum_i r_i / sum_i w[y_i]. The
// metrics keep per-example sums, so the batch adds its weighted mean n times (into `batch`).
void Executor::weighted_cross_entropy(int64_t n, float* dlogits, Metrics& batch) {
  const int classes = static_cast<int>(shapes_.back().numel() / options_.batch);
  double weight_sum = 0;
  for (int64_t i = 0; i < n; ++i) weight_sum += options_.class_weights[size_t(labels()[i])];
  if (!(weight_sum > 0)) weight_sum = 1;  // a batch of zero-weight classes contributes nothing
  double loss = 0, seen = 0;
  cpu::softmax_cross_entropy_weighted(int(n), classes, output(), labels(), options_.class_weights.data(),
                                      options_.label_smoothing, float(1.0 / weight_sum), dlogits, &loss, &seen,
                                      &batch.correct);
  batch.loss_sum = loss / weight_sum * double(n);
}

const float* Executor::activation(int node) const {
  return node == first_ - 1 ? input_.floats() : at(act_.at(size_t(node)));
}

Shape Executor::output_shape(int64_t n) const { return shapes_[size_t(last_)].with_batch(n); }

Shape Executor::input_shape(int64_t n) const {
  if (first_ > 0) return shapes_[size_t(first_ - 1)].with_batch(n);
  std::vector<int64_t> dims{n};
  for (int64_t d : model_.sample_shape().dims) dims.push_back(d);
  return Shape(dims);
}

// The host's side of a step, the same whether its device work runs now or as a replay of a
// recorded step graph: what the step is (begin_step), and what it did (count_step: the
// metrics' example count, the backward passes that ran).
void Executor::begin_step(int64_t n, bool training, int64_t step) {
  GRAFT_ASSERT(n >= 1 && n <= options_.batch, "batch of ", n, " in a plan for ", options_.batch);
  last_n_ = n;
  ctx_.training = training;
  ctx_.step = step;
  first_nonfinite_node_ = -1;
}

void Executor::count_step(int64_t n, bool with_backward) {
  metrics_.count += double(n);
  if (!with_backward) return;
  for (int k = first_; k <= last_; ++k)
    if (decisions_[k].needs_grad) ++backward_calls_[k];
}

// The step count in memory, for recorded kernels that draw random numbers
// (ExecContext::step_counter); not while recording, when an upload cannot be recorded.
void Executor::write_step_counter(int64_t step) {
  if (!ctx_.step_counter || capturing_) return;
  host_step_ = step;
  ops_->upload(step_counter_.get(), &host_step_, sizeof(host_step_));
}

void Executor::forward(int64_t n, bool training, int64_t step) {
  begin_step(n, training, step);
  if (on_device_ && !keep_input_) upload_input(n);  // the batch the caller staged
  activate_lengths();
  write_step_counter(step);
  if (options_.raw_input) {  // the augmentation, where the model is
    const Shape& s = model_.sample_shape();
    ops_->augment_batch(int(n), int(s[0]), int(s[1]), static_cast<const uint8_t*>(raw_images_.get()),
                        static_cast<const math::WarpExample*>(raw_warps_.get()), *options_.raw_input, input_.floats());
  }
  if (profiling_) marks_.assign(1, {-1, ops_->mark()});
  int k = first_;
  if (options_.chunk_through >= 0) {
    for (int64_t row = 0; row < n; row += options_.chunk)
      for (int j = first_; j <= options_.chunk_through; ++j) forward_node(j, std::min(options_.chunk, n - row), row);
    k = options_.chunk_through + 1;
  }
  for (; k <= last_; ++k) forward_node(k, n, 0);
  if (profiling_) add_layer_times(/*backward=*/false);
}

void Executor::forward_node(int k, int64_t n, int64_t row) {
  const trace::Range range(range_names_[size_t(k)].forward.c_str());
  const auto& node = model_.nodes()[k];
  ctx_.node_index = k;
  ctx_.ops = node_ops_[k];
  ctx_.first_row = first_row_ + row;
  ForwardArgs a;
  a.ctx = &ctx_;
  a.inputs = input_ptrs(k);
  // A chunk reads its rows of the batch input; the nodes before chunk_through keep one
  // chunk (row 0 of their memory); chunk_through writes its rows of the whole batch.
  if (row > 0)
    for (size_t j = 0; j < a.inputs.size(); ++j)
      if (node.inputs[j] == first_ - 1) a.inputs[j] += row * input_floats_;
  for (const Shape& s : model_.node_input_shapes(k, shapes_, options_.batch)) a.input_shapes.push_back(s.with_batch(n));
  a.output = at(act_[k]);
  if (k == options_.chunk_through) a.output += row * (shapes_[k].numel() / options_.batch);
  a.output_shape = shapes_[k].with_batch(n);
  for (int p : model_.node_params(k)) a.params.push_back(model_.param_data(p));
  a.workspace = workspace_.floats();
  // A backward follows only in training; an inference forward keeps nothing.
  a.reserve = ctx_.training && options_.training ? at(reserve_[k]) : nullptr;
  // A chunk's sequences are the batch's rows from `row` on.
  const int32_t* lengths = ctx_.lengths;
  const int32_t* host_lengths = ctx_.host_lengths;
  if (lengths) {
    ctx_.lengths += row;
    ctx_.host_lengths += row;
  }
  node.layer->forward(a);
  ctx_.lengths = lengths;
  ctx_.host_lengths = host_lengths;
  if (profiling_) marks_.emplace_back(k, ops_->mark());
  if (options_.check_finite && first_nonfinite_node_ < 0 && ops_->any_nonfinite(a.output_shape.numel(), a.output))
    first_nonfinite_node_ = k;
}

float* Executor::input() {
  GRAFT_ASSERT(!options_.raw_input, "input() of an executor fed raw batches (raw_images())");
  return on_device_ ? reinterpret_cast<float*>(staging_slot()) : input_.floats();
}

int32_t* Executor::labels() {
  return on_device_ ? reinterpret_cast<int32_t*>(staging_slot() + payload_bytes_) : static_cast<int32_t*>(labels_.get());
}

uint8_t* Executor::raw_images() {
  GRAFT_ASSERT(options_.raw_input, "raw_images() of an executor without raw_input");
  return on_device_ ? reinterpret_cast<uint8_t*>(staging_slot()) : static_cast<uint8_t*>(raw_images_.get());
}

math::WarpExample* Executor::raw_warps() {
  GRAFT_ASSERT(options_.raw_input, "raw_warps() of an executor without raw_input");
  return on_device_ ? reinterpret_cast<math::WarpExample*>(staging_slot() + warps_offset_)
                    : static_cast<math::WarpExample*>(raw_warps_.get());
}

// A label outside the model's classes would index past a row of logits. The labels are
// seen on the host as they are staged (inference batches carry none that matter), and the
// loss refuses them there, naming the example: the kernels never meet them.
void Executor::note_bad_label(const int32_t* labels, int64_t n) {
  const int64_t classes = shapes_.back().numel() / options_.batch;
  bad_label_row_ = -1;
  for (int64_t i = 0; i < n && bad_label_row_ < 0; ++i)
    if (labels[i] < 0 || labels[i] >= classes) {
      bad_label_row_ = i;
      bad_label_ = labels[i];
    }
}

void Executor::refuse_bad_label() const {
  if (bad_label_row_ < 0) return;
  const int64_t classes = shapes_.back().numel() / options_.batch;
  fail("label ", bad_label_, " of example ", bad_label_row_, " in the batch is outside the model's ", classes,
       " classes (0-", classes - 1, "): the data has more classes than the model's output layer; check --classes, "
       "the head (--head ...,dense:N) or the checkpoint's class map");
}

void Executor::set_first_row(int64_t row) {
  GRAFT_ASSERT(row >= 0, "a batch's first row must be >= 0, got ", row);
  GRAFT_ASSERT(row == 0 || !ctx_.step_counter, "set_first_row(", row, ") with step graphs on");
  first_row_ = row;
}

void Executor::set_lengths(const int32_t* lengths, int64_t n) {
  GRAFT_ASSERT(n >= 0 && n <= options_.batch, "lengths of ", n, " examples in a plan for ", options_.batch);
  lengths_staged_ = false;
  if (!lengths || !reads_lengths_) return;
  const int64_t steps = model_.sample_shape()[0];
  bool full = true;
  for (int64_t i = 0; i < n; ++i) {
    if (lengths[i] < 1 || lengths[i] > steps)
      fail("example ", i, " of the batch has sequence length ", lengths[i], "; lengths must be 1 to the input's ", steps,
           " steps (", model_.architecture(), ")");
    full = full && lengths[i] == steps;
    staged_lengths_[size_t(i)] = lengths[i];
  }
  // Rows past n (a short last batch) are never read by a loss, but the kernels run over
  // them at full length.
  std::fill(staged_lengths_.begin() + n, staged_lengths_.end(), int32_t(steps));
  lengths_staged_ = !full;
}

// The staged lengths become the running batch's (ExecContext::lengths), or none: they apply
// to one forward. The host copy stays as it is until the next forward.
void Executor::activate_lengths() {
  ctx_.lengths = ctx_.host_lengths = nullptr;
  if (!std::exchange(lengths_staged_, false)) return;
  host_lengths_ = staged_lengths_;
  ops_->upload(lengths_.get(), host_lengths_.data(), host_lengths_.size() * sizeof(int32_t));
  ctx_.lengths = static_cast<const int32_t*>(lengths_.get());
  ctx_.host_lengths = host_lengths_.data();
}

// Layers fed by the model input check it on the host (an embedding's ids) before it is
// copied in, so no kernel meets a bad value. On the CPU they check it as they run.
void Executor::check_model_input(const float* host, int64_t n) const {
  if (first_ != 0) return;
  for (int k = first_; k <= last_; ++k)
    for (int i : model_.nodes()[k].inputs)
      if (i == kModelInput) model_.nodes()[k].layer->check_model_input(host, input_shape(n));
}

void Executor::upload_input(int64_t n, bool images) {
  if (!on_device_) return;
  if (images && !options_.raw_input) check_model_input(input(), n);
  if (!images) {
    GRAFT_ASSERT(!options_.raw_input, "device images with raw (uint8) input");
  } else if (options_.raw_input) {
    ops_->upload(raw_images_.get(), raw_images(), size_t(n * input_floats_));
    ops_->upload(raw_warps_.get(), raw_warps(), size_t(n) * sizeof(math::WarpExample));
  } else {
    ops_->upload(input_.get(), input(), size_t(n * input_floats_) * sizeof(float));
  }
  ops_->upload(labels_.get(), labels(), size_t(n) * sizeof(int32_t));
  note_bad_label(labels(), n);
  // The next batch goes to the other staging buffer, free once its last copy has run.
  ops_->fence(staging_cur_);
  staging_cur_ ^= 1;
  ops_->wait_fence(staging_cur_);
}

// Each mark closes the node it names; the time since the previous mark is that node's. A
// node run in chunks has several marks in one call, counted as one call.
void Executor::add_layer_times(bool backward) {
  layer_times_.resize(size_t(model_.num_nodes()));
  std::vector<char> called(layer_times_.size(), 0);
  for (size_t i = 1; i < marks_.size(); ++i) {
    LayerTime& t = layer_times_[size_t(marks_[i].first)];
    const double ms = ops_->elapsed_ms(marks_[i - 1].second, marks_[i].second);
    (backward ? t.backward_ms : t.forward_ms) += ms;
    if (!std::exchange(called[size_t(marks_[i].first)], char{1})) ++(backward ? t.backward_calls : t.forward_calls);
  }
  marks_.clear();
}

void Executor::accumulate_metrics(int64_t n) {
  GRAFT_ASSERT(n == last_n_, "metrics of a batch that was not forwarded");
  GRAFT_ASSERT(last_ == model_.num_nodes() - 1, "metrics of a plan that stops at ", model_.nodes()[last_].name);
  if (on_device_)
    device_loss(n, /*with_gradient=*/false);
  else
    cpu_loss(n, /*with_gradient=*/false);
  count_step(n, /*with_backward=*/false);
}

// The loss of the last forward on the host (CPU models), into the metrics; with_gradient:
// also its gradient into the output's gradient slot. The batch's sums start from zero and
// are then added to the running ones, as the device's are: the batch loss is its own sum,
// not a difference of running sums (which loses low bits as the epoch's sum grows).
void Executor::cpu_loss(int64_t n, bool with_gradient) {
  const trace::Range range("loss");
  note_bad_label(labels(), n);
  refuse_bad_label();
  const int classes = static_cast<int>(shapes_.back().numel() / options_.batch);
  float* dlogits = with_gradient ? at(grad_[model_.num_nodes() - 1]) : nullptr;
  Metrics batch;
  if (!options_.class_weights.empty()) {
    weighted_cross_entropy(n, dlogits, batch);
  } else if (options_.loss == LossKind::CrossEntropy) {
    cpu::softmax_cross_entropy(int(n), classes, output(), labels(), options_.label_smoothing,
                               with_gradient ? 1.0f / float(n) : 0.0f, dlogits, &batch.loss_sum, &batch.correct);
  } else {
    float* t = targets_.floats();
    std::fill(t, t + n * classes, 0.0f);
    for (int64_t i = 0; i < n; ++i) t[i * classes + labels()[i]] = 1.0f;
    double sum = 0;
    cpu::mse(n * classes, output(), t, with_gradient ? 1.0f / float(n * classes) : 0.0f, dlogits, &sum);
    batch.loss_sum = sum / classes;  // per-example loss: mean over its outputs
    cpu::softmax_cross_entropy(int(n), classes, output(), labels(), 0.0f, 0.0f, nullptr, nullptr, &batch.correct);
  }
  metrics_.loss_sum += batch.loss_sum;
  metrics_.correct += batch.correct;
  last_batch_loss_ = batch.loss_sum / double(n);
}

void Executor::backward(int64_t n) {
  GRAFT_ASSERT(options_.training, "backward() on an inference plan");
  GRAFT_ASSERT(n == last_n_, "backward of a batch that was not forwarded");
  const int N = model_.num_nodes();
  if (on_device_)
    device_loss(n, /*with_gradient=*/true);
  else
    cpu_loss(n, /*with_gradient=*/true);

  // Gradients of nodes with several consumers arrive more than once: the first writes,
  // later ones go to scratch and are added.
  std::vector<int> arrived(N, 0);
  if (profiling_) marks_.assign(1, {-1, ops_->mark()});
  for (int k = N - 1; k >= first_; --k) {
    if (!decisions_[k].needs_grad) continue;
    backward_node(k, n, arrived);
    if (profiling_) marks_.emplace_back(k, ops_->mark());
    if (backward_listener_) backward_listener_(k);
  }
  if (profiling_) add_layer_times(/*backward=*/true);
  count_step(n, /*with_backward=*/true);
}

// Node k's backward over n examples; gradients of inputs with several consumers arrive more
// than once (`arrived` counts them): the first writes, later ones go to scratch and are added.
void Executor::backward_node(int k, int64_t n, std::vector<int>& arrived) {
  const trace::Range range(range_names_[size_t(k)].backward.c_str());
  const auto& d = decisions_[k];
  const auto& node = model_.nodes()[k];
  ctx_.node_index = k;
  ctx_.ops = node_ops_[k];
  ctx_.first_row = first_row_;
  BackwardArgs a;
  a.ctx = &ctx_;
  const bool reads_inputs = node.layer->backward_reads_inputs();
  for (const float* p : input_ptrs(k)) a.inputs.push_back(reads_inputs ? p : nullptr);
  for (const Shape& s : model_.node_input_shapes(k, shapes_, options_.batch)) a.input_shapes.push_back(s.with_batch(n));
  a.output = node.layer->backward_reads_output() ? at(act_[k]) : nullptr;
  a.output_shape = shapes_[k].with_batch(n);
  a.doutput = at(grad_[k]);
  std::vector<int> accumulate;
  for (size_t j = 0; j < node.inputs.size(); ++j) {
    const int i = node.inputs[j];
    if (!d.input_grad[j]) {
      a.dinputs.push_back(nullptr);
      continue;
    }
    if (arrived[i]++ == 0) {
      a.dinputs.push_back(at(grad_[i]));
    } else {
      a.dinputs.push_back(at(scratch_[i]));
      accumulate.push_back(i);
    }
  }
  for (int p : model_.node_params(k)) {
    a.params.push_back(model_.param_data(p));
    a.dparams.push_back(grad_offset_[p] >= 0 ? grads_.floats() + grad_offset_[p] : nullptr);
  }
  a.workspace = workspace_.floats();
  a.reserve = at(reserve_[k]);
  node.layer->backward(a);
  for (int i : accumulate) {
    const int64_t count = shapes_[i].with_batch(n).numel();
    ops_->add(count, at(grad_[i]), at(scratch_[i]), at(grad_[i]));
  }
}

void Executor::set_step_graphs(bool on) {
  step_graphs_ = on;
  if (on && !step_counter_.get()) step_counter_ = PoolBuffer(model_.pool(), sizeof(int64_t), "input");
  ctx_.step_counter = on ? static_cast<const int64_t*>(step_counter_.get()) : nullptr;
}

void Executor::forward_backward(int64_t n, int64_t step, const StepHooks* hooks) {
  if (hooks && hooks->before) hooks->before();
  auto run = [&] {  // the step as it is
    forward(n, /*training=*/true, step);
    backward(n);
    if (hooks && hooks->after) hooks->after();
  };
  const bool graphable =
      step_graphs_ && on_device_ && n == options_.batch && !options_.check_finite && !profiling_ && !lengths_staged_;
  if (!graphable || (graph_ < 0 && full_steps_++ == 0)) return run();  // the first full step plans and allocates
  if (graph_ >= 0 && !ops_->graph_current(graph_)) {  // a workspace it recorded was replaced since
    ops_->drop_graph(graph_);
    graph_ = -1;  // recorded again below, with the memory as it is now
  }
  if (!keep_input_) upload_input(n);
  refuse_bad_label();  // the replayed loss reads these labels on the device
  write_step_counter(step);
  const bool keep = std::exchange(keep_input_, true);
  if (graph_ < 0) {
    // Recording runs nothing; the host's side of the step (the metrics' count, the
    // backward counters) happens here once, for this step, and the replay below runs it.
    const double count = metrics_.count;
    const std::vector<int64_t> calls = backward_calls_;
    std::string why = "this backend records no graphs";
    if (ops_->begin_capture()) {
      capturing_ = true;
      try {
        forward(n, true, step);
        backward(n);
        if (hooks && hooks->after) hooks->after();
        graph_ = ops_->end_capture();
        why = "a call could not be recorded";
      } catch (const std::exception& e) {
        ops_->end_capture();  // abandons the recording
        why = e.what();
      }
      capturing_ = false;
    }
    if (graph_ < 0) {  // run this step and the rest one by one
      if (on_device_) std::fprintf(stderr, "cuda graphs: off: capturing the step failed (%s); running step by step\n", why.c_str());
      metrics_.count = count;
      backward_calls_ = calls;
      step_graphs_ = false;
      run();  // the batch is in already
      keep_input_ = keep;
      return;
    }
  } else {
    begin_step(n, /*training=*/true, step);
    count_step(n, /*with_backward=*/true);
  }
  keep_input_ = keep;
  ops_->replay(graph_);
}

}  // namespace graft

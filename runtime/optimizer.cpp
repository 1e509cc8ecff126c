#include "runtime/optimizer.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "kernels/cpu/optimizer.h"
#include "runtime/backend_registry.h"
#include "base/error.h"
#include "runtime/trace.h"

namespace graft {

namespace {

bool is_sgd(const OptimizerConfig& c) { return c.kind == "sgd"; }
bool is_adam_family(const OptimizerConfig& c) { return c.kind == "adam" || c.kind == "adamw"; }

size_t state_buffer_count(const OptimizerConfig& c) {
  if (is_adam_family(c)) return 2;
  if (is_sgd(c) && c.momentum != 0.0f) return 1;
  return 0;
}

// The value the user wrote, as a double: the shortest decimal that round-trips the float
// (0.999f -> 0.999). PyTorch keeps hyperparameters as Python floats (doubles), and
// 1 - beta2^t is sensitive to the difference: 1 - 0.999f is 1.3e-5 away from 1 - 0.999.
double decimal_value(float x) {
  char text[64];
  const auto written = std::to_chars(text, text + sizeof(text), x);
  double value = x;
  if (written.ec == std::errc()) std::from_chars(text, written.ptr, value);
  return value;
}

}  // namespace

void OptimizerConfig::validate() const {
  // Comparisons are written so that NaN fails them.
  if (kind != "sgd" && kind != "adam" && kind != "adamw")
    fail("unknown optimizer '", kind, "' (--optimizer): expected sgd, adam or adamw");
  if (!(lr > 0.0f) || !std::isfinite(lr))
    fail("learning rate (--lr) must be a finite number > 0, got ", lr);
  if (!(weight_decay >= 0.0f) || !std::isfinite(weight_decay))
    fail("weight decay (--weight-decay) must be a finite number >= 0, got ", weight_decay);
  if (!(momentum >= 0.0f) || !std::isfinite(momentum))
    fail("momentum (--momentum) must be a finite number >= 0, got ", momentum);
  if (!(dampening >= 0.0f && dampening <= 1.0f))
    fail("SGD dampening must be in [0, 1], got ", dampening);
  if (nesterov && (momentum <= 0.0f || dampening != 0.0f))
    fail("Nesterov momentum (--nesterov) requires a momentum > 0 (--momentum) and zero dampening; got momentum ",
         momentum, ", dampening ", dampening);
  if (!(beta1 >= 0.0f && beta1 < 1.0f)) fail("beta1 (--beta1) must be in [0, 1), got ", beta1);
  if (!(beta2 >= 0.0f && beta2 < 1.0f)) fail("beta2 (--beta2) must be in [0, 1), got ", beta2);
  if (!(eps > 0.0f) || !std::isfinite(eps)) fail("epsilon (--eps) must be a finite number > 0, got ", eps);
}

Optimizer::Optimizer(const OptimizerConfig& config, int64_t state_count, MemoryPool& pool)
    : config_(config), state_count_(state_count), pool_(pool) {
  config_.validate();
  if (state_count < 0) fail("optimizer state count must be >= 0, got ", state_count);
  const size_t bytes = static_cast<size_t>(state_count) * sizeof(float);
  const size_t buffers = state_buffer_count(config_);
  ops_ = &ops_for(pool, /*reference=*/false, KernelChoice::Native, owned_ops_);
  state_.reserve(buffers);
  for (size_t i = 0; i < buffers; ++i) {
    state_.emplace_back(pool, bytes, "optimizer");
    if (bytes) ops_->zero(state_.back().get(), bytes);
  }
  if (pool.device() != Device::CPU) host_state_.resize(buffers);
}

std::vector<std::string> Optimizer::state_names() const {
  if (is_adam_family(config_)) return {"exp_avg", "exp_avg_sq"};
  if (!state_.empty()) return {"momentum_buffer"};
  return {};
}

float* Optimizer::state(size_t which) {
  if (which >= state_.size())
    fail("optimizer '", config_.kind, "' has ", state_.size(), " state buffers, asked for #", which);
  return state_[which].floats();
}

float* Optimizer::host_state(size_t which) {
  float* s = state(which);
  if (host_state_.empty()) return s;
  host_state_[which].resize(size_t(state_count_));
  ops_->download(host_state_[which].data(), s, size_t(state_count_) * sizeof(float));
  return host_state_[which].data();
}

void Optimizer::upload_state(size_t which) {
  float* s = state(which);
  if (host_state_.empty()) return;
  ops_->upload(s, host_state_[which].data(), size_t(state_count_) * sizeof(float));
  ops_->synchronize();
}

void Optimizer::step(std::span<const ParamSegment> segments, float lr) {
  prepare(segments, lr);
  launch(segments);
}

void Optimizer::prepare(std::span<const ParamSegment> segments, float lr) {
  if (!(lr >= 0.0f) || !std::isfinite(lr)) fail("optimizer step: learning rate must be finite and >= 0, got ", lr);
  int64_t total = 0;
  for (const ParamSegment& s : segments) {
    if (s.count < 0 || (s.count > 0 && (!s.param || !s.grad)))
      fail("optimizer step: parameter segment '", s.name, "' has count ", s.count, " and null data");
    total += s.count;
  }
  if (total > state_count_)
    fail("optimizer step: segments hold ", total, " elements but the optimizer state was sized for ",
         state_count_);

  ++step_count_;
  const int64_t t = step_count_;
  math::StepScalars scalars;
  scalars.lr = lr;
  scalars.first_step = t == 1 ? 1 : 0;
  if (is_sgd(config_)) {
    sgd_.momentum = config_.momentum;
    sgd_.dampening = config_.dampening;
    sgd_.weight_decay = config_.weight_decay;
    sgd_.nesterov = config_.nesterov;
  } else {
    // PyTorch computes the bias corrections in double, from the betas as the user wrote
    // them and a Python float step count.
    const double b1 = decimal_value(config_.beta1), b2 = decimal_value(config_.beta2);
    scalars.bias_correction1 = static_cast<float>(1.0 - std::pow(b1, static_cast<double>(t)));
    scalars.bias_correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(b2, static_cast<double>(t))));
    adam_.beta1 = config_.beta1;
    adam_.beta2 = config_.beta2;
    adam_.eps = config_.eps;
    adam_.weight_decay = config_.weight_decay;
    adam_.decoupled = config_.kind == "adamw";
    adam_.one_minus_beta1 = static_cast<float>(1.0 - b1);
    adam_.one_minus_beta2 = static_cast<float>(1.0 - b2);
  }
  scalars_.assign(segments.size(), scalars);
  for (size_t i = 0; i < segments.size(); ++i) scalars_[i].lr = lr * segments[i].lr_scale;
  if (!scalars_in_memory_ || scalars_.empty()) return;
  const size_t bytes = scalars_.size() * sizeof(math::StepScalars);
  if (scalars_buffer_.bytes() < bytes) scalars_buffer_ = PoolBuffer(pool_, bytes, "optimizer");
  ops_->upload(scalars_buffer_.get(), scalars_.data(), bytes);  // pageable: staged before it returns
}

void Optimizer::launch(std::span<const ParamSegment> segments) {
  const trace::Range range("optimizer");
  GRAFT_ASSERT(scalars_.size() == segments.size(), "optimizer launch of ", segments.size(), " segments, prepared ",
               scalars_.size());
  const auto* in_memory = static_cast<const math::StepScalars*>(scalars_buffer_.get());
  const bool sgd = is_sgd(config_);
  float* buf = sgd && !state_.empty() ? state_[0].floats() : nullptr;
  float* m = sgd ? nullptr : state_[0].floats();
  float* v = sgd ? nullptr : state_[1].floats();
  int64_t offset = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const ParamSegment& s = segments[i];
    if (s.count == 0) continue;
    if (sgd && scalars_in_memory_)
      ops_->sgd_step_at(s.count, s.param, s.grad, buf ? buf + offset : nullptr, sgd_, in_memory + i);
    else if (sgd)
      ops_->sgd_step(s.count, s.param, s.grad, buf ? buf + offset : nullptr, sgd_, scalars_[i]);
    else if (scalars_in_memory_)
      ops_->adam_step_at(s.count, s.param, s.grad, m + offset, v + offset, adam_, in_memory + i);
    else
      ops_->adam_step(s.count, s.param, s.grad, m + offset, v + offset, adam_, scalars_[i]);
    offset += s.count;
  }
}

}  // namespace graft

// Optimizers over the flat gradient buffer: SGD (momentum, Nesterov), Adam, AdamW with
// PyTorch's semantics (weight_decay is L2 added to the gradient for SGD and Adam, decoupled
// for AdamW). State (momentum buffer, or exp_avg and exp_avg_sq) exists only for trainable
// parameters: frozen ones have no segment, so they get no state and no update.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/common/optimizer_math.h"
#include "kernels/ops.h"
#include "runtime/memory_pool.h"

namespace graft {

struct OptimizerConfig {
  std::string kind = "adam";  // "sgd", "adam", "adamw"
  float lr = 1e-3f;
  float momentum = 0.0f;      // sgd
  float dampening = 0.0f;     // sgd
  bool nesterov = false;      // sgd
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  // adam, adamw
  float weight_decay = 0.0f;  // L2 for sgd/adam, decoupled for adamw

  void validate() const;  // throws graft::Error naming the bad setting
};

// One trainable parameter tensor: where it lives and where its gradient lives.
struct ParamSegment {
  std::string name;
  float* param = nullptr;
  const float* grad = nullptr;
  int64_t count = 0;
  float lr_scale = 1.0f;  // discriminative learning rates (--lr-mult): like a PyTorch param group's lr
};

class Optimizer {
 public:
  // `state_count` = total elements over all segments that step() will be given; state is
  // allocated from `pool` under the tag "optimizer".
  Optimizer(const OptimizerConfig& config, int64_t state_count, MemoryPool& pool);

  // One update of every segment at learning rate `lr`; segments are laid out in the state
  // buffers in the order given, which must be the same every step. step = prepare + launch.
  void step(std::span<const ParamSegment> segments, float lr);
  // The host's half of a step: checks, the step count, every segment's scalars (with
  // scalars_in_memory, copied to the pool's memory in one upload).
  void prepare(std::span<const ParamSegment> segments, float lr);
  // The kernels of the prepared step, one per segment; with scalars_in_memory they read
  // their scalars from the pool's memory when they run, so a recorded step graph can
  // replay them after each prepare().
  void launch(std::span<const ParamSegment> segments);
  void set_scalars_in_memory(bool on) { scalars_in_memory_ = on; }

  const OptimizerConfig& config() const { return config_; }
  int64_t step_count() const { return step_count_; }
  void set_step_count(int64_t s) { step_count_ = s; }
  // Named state buffers, for checkpoints: {"momentum_buffer"} (SGD with momentum),
  // {"exp_avg", "exp_avg_sq"} (Adam/AdamW), none for plain SGD.
  std::vector<std::string> state_names() const;
  float* state(size_t which);  // in the pool's memory
  // State buffer `which` readable and writable on the host (a device pool: a host copy made
  // by this call; upload_state() puts it back). On the CPU, state(which) itself.
  float* host_state(size_t which);
  void upload_state(size_t which);
  int64_t state_count() const { return state_count_; }

 private:
  OptimizerConfig config_;
  int64_t state_count_ = 0;
  int64_t step_count_ = 0;
  std::vector<PoolBuffer> state_;
  std::unique_ptr<Ops> owned_ops_;
  Ops* ops_ = nullptr;  // the kernels of the pool's device
  std::vector<std::vector<float>> host_state_;  // device pools only
  MemoryPool& pool_;
  bool scalars_in_memory_ = false;
  std::vector<math::StepScalars> scalars_;  // the prepared step's, per segment
  PoolBuffer scalars_buffer_;               // their copy in the pool's memory
  math::SgdHyper sgd_;
  math::AdamHyper adam_;
};

}  // namespace graft

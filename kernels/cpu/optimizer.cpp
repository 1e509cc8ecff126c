// Optimizer steps on the CPU over flat arrays; the per-element update is
// kernels/common/optimizer_math.h, shared with the fused CUDA kernels.
#include "kernels/cpu/optimizer.h"

#include "base/error.h"

namespace graft::cpu {

void sgd_step(int64_t count, float* params, const float* grads, float* momentum_buf, const math::SgdHyper& h,
              const math::StepScalars& s) {
  if (h.momentum == 0.0f && momentum_buf == nullptr) {  // plain SGD keeps no state
    float unused = 0.0f;
    for (int64_t i = 0; i < count; ++i) math::sgd_update(params[i], grads[i], unused, h, s);
    return;
  }
  GRAFT_ASSERT(momentum_buf != nullptr, "SGD with momentum needs a momentum buffer");
  for (int64_t i = 0; i < count; ++i) math::sgd_update(params[i], grads[i], momentum_buf[i], h, s);
}

void adam_step(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
               const math::AdamHyper& h, const math::StepScalars& s) {
  for (int64_t i = 0; i < count; ++i) math::adam_update(params[i], grads[i], exp_avg[i], exp_avg_sq[i], h, s);
}

}  // namespace graft::cpu

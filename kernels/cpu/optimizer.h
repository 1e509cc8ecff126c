// Optimizer steps on the CPU over flat arrays; the math is kernels/common/optimizer_math.h.
#pragma once
#include <cstdint>

#include "kernels/common/optimizer_math.h"

namespace graft::cpu {

void sgd_step(int64_t count, float* params, const float* grads, float* momentum_buf,
              const math::SgdHyper& h, const math::StepScalars& s);
void adam_step(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
               const math::AdamHyper& h, const math::StepScalars& s);

}  // namespace graft::cpu

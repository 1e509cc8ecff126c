// Optimizer steps, hand-written CUDA: one fused launch over the flat parameter buffer. Same
// arguments as graft::cpu's steps, except that the per-step values (lr, bias corrections,
// first_step) are read from device memory (`d_scalars`, written by the host before the
// step), so a captured step replays with fresh values. The per-element update is
// kernels/common/optimizer_math.h, shared with the CPU.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/common/optimizer_math.h"

namespace graft::cuda {

// momentum_buf may be null when h.momentum == 0 (plain SGD keeps no state).
void sgd_step(int64_t count, float* params, const float* grads, float* momentum_buf, const math::SgdHyper& h,
              const math::StepScalars* d_scalars, cudaStream_t stream);
void adam_step(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
               const math::AdamHyper& h, const math::StepScalars* d_scalars, cudaStream_t stream);

}  // namespace graft::cuda

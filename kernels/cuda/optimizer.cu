#include "kernels/cuda/optimizer.h"

#include "kernels/cuda/launch.cuh"
#include "base/error.h"

namespace graft::cuda {

namespace {

__global__ void sgd_kernel(int64_t count, float* params, const float* grads, float* momentum_buf, math::SgdHyper h,
                           const math::StepScalars* d_scalars) {
  const math::StepScalars s = *d_scalars;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    float p = params[i];
    float buf = momentum_buf ? momentum_buf[i] : 0.0f;
    math::sgd_update(p, grads[i], buf, h, s);
    params[i] = p;
    if (momentum_buf) momentum_buf[i] = buf;
  }
}

__global__ void adam_kernel(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                            math::AdamHyper h, const math::StepScalars* d_scalars) {
  const math::StepScalars s = *d_scalars;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    float p = params[i], m = exp_avg[i], v = exp_avg_sq[i];
    math::adam_update(p, grads[i], m, v, h, s);
    params[i] = p;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

}  // namespace

void sgd_step(int64_t count, float* params, const float* grads, float* momentum_buf, const math::SgdHyper& h,
              const math::StepScalars* d_scalars, cudaStream_t stream) {
  GRAFT_ASSERT(h.momentum == 0.0f || momentum_buf != nullptr, "SGD with momentum needs a momentum buffer");
  if (count <= 0) return;
  sgd_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(count, params, grads, momentum_buf, h,
                                                                       d_scalars);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void adam_step(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
               const math::AdamHyper& h, const math::StepScalars* d_scalars, cudaStream_t stream) {
  if (count <= 0) return;
  adam_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(count, params, grads, exp_avg, exp_avg_sq, h,
                                                                        d_scalars);
  GRAFT_CUDA_CHECK_LAUNCH();
}

}  // namespace graft::cuda

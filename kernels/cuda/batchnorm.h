// Batch normalisation, hand-written CUDA, channels last. Same semantics and arguments as
// graft::cpu's batchnorm_* (device pointers; `scratch` is 4*c device doubles), plus the stream.
// Statistics: one block per channel, double partial sums reduced in a fixed order
// (deterministic). num_batches_tracked (nullable) is incremented on the device.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace graft::cuda {

void batchnorm_forward_batch(int64_t rows, int c, float eps, float momentum, const float* x, const float* gamma,
                             const float* beta, float* y, float* running_mean, float* running_var,
                             float* num_batches_tracked, double* scratch, cudaStream_t stream);
void batchnorm_forward_running(int64_t rows, int c, float eps, const float* x, const float* gamma,
                               const float* beta, const float* running_mean, const float* running_var, float* y,
                               double* scratch, cudaStream_t stream);
void batchnorm_backward_batch(int64_t rows, int c, float eps, const float* x, const float* dy, const float* gamma,
                              float* dx, float* dgamma, float* dbeta, double* scratch, cudaStream_t stream);
void batchnorm_backward_running(int64_t rows, int c, float eps, const float* x, const float* dy, const float* gamma,
                                const float* running_mean, const float* running_var, float* dx, float* dgamma,
                                float* dbeta, double* scratch, cudaStream_t stream);

}  // namespace graft::cuda

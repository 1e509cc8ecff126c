// Element-wise ops, hand-written CUDA, over flat device arrays. Same arguments as graft::cpu's
// element-wise ops plus the stream; the per-element math is kernels/common/elementwise.h,
// shared with the CPU loops.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace graft::cuda {

void relu_forward(int64_t count, const float* x, float* y, cudaStream_t stream);
void relu_backward(int64_t count, const float* y, const float* dy, float* dx, cudaStream_t stream);
void dropout_forward(int64_t count, float p, uint64_t seed, uint64_t rng_stream, int64_t first, const float* x,
                     float* y, cudaStream_t stream);
void dropout_backward(int64_t count, float p, uint64_t seed, uint64_t rng_stream, int64_t first, const float* dy,
                      float* dx, cudaStream_t stream);
// Graph-replayable variants: the step count is read from device memory when the kernel runs
// and the stream is math::layer_stream(*d_step, node), so a captured step draws new numbers
// each replay.
void dropout_forward_replayable(int64_t count, float p, uint64_t seed, const int64_t* d_step, int node,
                                int64_t first, const float* x, float* y, cudaStream_t stream);
void dropout_backward_replayable(int64_t count, float p, uint64_t seed, const int64_t* d_step, int node,
                                 int64_t first, const float* dy, float* dx, cudaStream_t stream);
void add(int64_t count, const float* a, const float* b, float* y, cudaStream_t stream);  // y may alias a
void scale(int64_t count, float alpha, float* x, cudaStream_t stream);

}  // namespace graft::cuda

#include "kernels/cuda/elementwise.h"

#include "kernels/common/elementwise.h"
#include "kernels/cuda/launch.cuh"

namespace graft::cuda {

namespace {

#define GRAFT_GRID_STRIDE(i, count) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (count); i += int64_t{gridDim.x} * blockDim.x)

__global__ void relu_forward_kernel(int64_t count, const float* x, float* y) {
  GRAFT_GRID_STRIDE(i, count) y[i] = math::relu(x[i]);
}
__global__ void relu_backward_kernel(int64_t count, const float* y, const float* dy, float* dx) {
  GRAFT_GRID_STRIDE(i, count) dx[i] = math::relu_grad_from_output(y[i], dy[i]);
}
// `d_step` non-null: the stream is the node's at the step count read from device memory
// (graph replay).
// Element i draws the counter first + i (its index in the whole batch's tensor).
__global__ void dropout_kernel(int64_t count, float p, uint64_t seed, uint64_t stream, const int64_t* d_step, int node,
                               int64_t first, const float* x, float* y) {
  const uint64_t s = d_step ? math::layer_stream(*d_step, node) : stream;
  GRAFT_GRID_STRIDE(i, count) y[i] = x[i] * math::dropout_scale(p, seed, s, static_cast<uint64_t>(first + i));
}
__global__ void add_kernel(int64_t count, const float* a, const float* b, float* y) {
  GRAFT_GRID_STRIDE(i, count) y[i] = a[i] + b[i];
}
__global__ void scale_kernel(int64_t count, float alpha, float* x) {
  GRAFT_GRID_STRIDE(i, count) x[i] *= alpha;
}

// Dropout backward is dropout forward on the gradient with the same mask.
void dropout(int64_t count, float p, uint64_t seed, uint64_t s, const int64_t* d_step, int node, int64_t first,
             const float* x, float* y, cudaStream_t stream) {
  if (count <= 0) return;
  dropout_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(count, p, seed, s, d_step, node, first, x, y);
  GRAFT_CUDA_CHECK_LAUNCH();
}

}  // namespace

void relu_forward(int64_t count, const float* x, float* y, cudaStream_t stream) {
  if (count <= 0) return;
  relu_forward_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(count, x, y);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void relu_backward(int64_t count, const float* y, const float* dy, float* dx, cudaStream_t stream) {
  if (count <= 0) return;
  relu_backward_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(count, y, dy, dx);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void dropout_forward(int64_t count, float p, uint64_t seed, uint64_t rng_stream, int64_t first, const float* x,
                     float* y, cudaStream_t stream) {
  dropout(count, p, seed, rng_stream, nullptr, 0, first, x, y, stream);
}
void dropout_backward(int64_t count, float p, uint64_t seed, uint64_t rng_stream, int64_t first, const float* dy,
                      float* dx, cudaStream_t stream) {
  dropout(count, p, seed, rng_stream, nullptr, 0, first, dy, dx, stream);
}
void dropout_forward_replayable(int64_t count, float p, uint64_t seed, const int64_t* d_step, int node, int64_t first,
                                const float* x, float* y, cudaStream_t stream) {
  dropout(count, p, seed, 0, d_step, node, first, x, y, stream);
}
void dropout_backward_replayable(int64_t count, float p, uint64_t seed, const int64_t* d_step, int node, int64_t first,
                                 const float* dy, float* dx, cudaStream_t stream) {
  dropout(count, p, seed, 0, d_step, node, first, dy, dx, stream);
}

void add(int64_t count, const float* a, const float* b, float* y, cudaStream_t stream) {
  if (count <= 0) return;
  add_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(count, a, b, y);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void scale(int64_t count, float alpha, float* x, cudaStream_t stream) {
  if (count <= 0) return;
  scale_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(count, alpha, x);
  GRAFT_CUDA_CHECK_LAUNCH();
}

}  // namespace graft::cuda

// Pooling, hand-written CUDA, NHWC. Same semantics and arguments as graft::cpu's pooling
// (device pointers), plus the stream: max pooling routes each gradient to the first maximum
// of its window in (kh, kw) scan order, padding never wins; average pooling counts padding.
// Every backward gathers per input element (no atomics): deterministic, and it overwrites dx.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/cpu/geometry.h"

namespace graft::cuda {

void maxpool2d_forward(const Pool2dGeometry& g, const float* x, float* y, cudaStream_t stream);
void maxpool2d_backward(const Pool2dGeometry& g, const float* x, const float* dy, float* dx, cudaStream_t stream);
void avgpool2d_forward(const Pool2dGeometry& g, const float* x, float* y, cudaStream_t stream);
void avgpool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx, cudaStream_t stream);
void global_avgpool_forward(int n, int h, int w, int c, const float* x, float* y, cudaStream_t stream);
void global_avgpool_backward(int n, int h, int w, int c, const float* dy, float* dx, cudaStream_t stream);

}  // namespace graft::cuda

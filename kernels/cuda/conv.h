// Convolution, hand-written CUDA: implicit GEMM (the im2col matrix is gathered tile by tile
// into shared memory, never stored), NHWC activations, OHWI weights, fp32 FMA accumulation
// (the exact path). Same arguments as graft::cpu's conv2d_*, all pointers on the device,
// plus the stream. Backward-data overwrites dx; backward-filter overwrites dw and dbias
// (dbias may be null).
// Backward-filter reduces over every output pixel of the batch; with a workspace of
// conv2d_backward_filter_workspace_floats(g) floats (planned by the caller, may be null) it
// splits that reduction across blocks and adds the slices in a fixed order (deterministic).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/cpu/geometry.h"

namespace graft::cuda {

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                    cudaStream_t stream);
void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx, cudaStream_t stream);
size_t conv2d_backward_filter_workspace_floats(const Conv2dGeometry& g);
// How many k-slices backward-filter splits into with that workspace (1: none).
int conv2d_backward_filter_splits(const Conv2dGeometry& g, bool with_bias);
void conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw, float* dbias,
                            float* workspace, cudaStream_t stream);

}  // namespace graft::cuda

// The native kernels' implicit-GEMM problems run on the host (host pointers, slow): the CPU
// tests check their index math against the reference on machines without a device.
namespace graft::cuda::host_emulation {
void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y);
void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx);
void conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw, float* dbias,
                            bool split_k);
}  // namespace graft::cuda::host_emulation

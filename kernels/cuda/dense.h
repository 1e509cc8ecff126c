// Dense (fully connected) layer, hand-written CUDA: tiled GEMM through shared memory, fp32
// FMA accumulation. x [n, in], w [out, in] (PyTorch's layout), bias [out], y [n, out]; all
// device pointers. Same arguments as graft::cpu's dense_*, plus the stream.
// Forward fuses the bias and, with relu = true, the ReLU into the GEMM's epilogue.
// Backward overwrites dx, dw and dbias (dbias may be null; it is computed in the same GEMM as
// dw, as an extra column of ones).
#pragma once
#include <cuda_runtime_api.h>

namespace graft::cuda {

void dense_forward(int n, int in, int out, const float* x, const float* w, const float* bias, float* y,
                   cudaStream_t stream, bool relu = false);
void dense_backward_data(int n, int in, int out, const float* dy, const float* w, float* dx, cudaStream_t stream);
void dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw, float* dbias,
                            cudaStream_t stream);

}  // namespace graft::cuda

// The native kernels' GEMM problems run on the host (host pointers): see conv.h.
namespace graft::cuda::host_emulation {
void dense_forward(int n, int in, int out, const float* x, const float* w, const float* bias, float* y, bool relu);
void dense_backward_data(int n, int in, int out, const float* dy, const float* w, float* dx);
void dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw, float* dbias);
}  // namespace graft::cuda::host_emulation

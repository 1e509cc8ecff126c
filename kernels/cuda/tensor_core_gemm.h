// bf16 tensor-core GEMM, hand-written (mma.sync m16n8k16, fp32 accumulation), for the
// Hopper mixed-precision path: Y[m, n] = sum_k X[m, k] * W[n, k] (+ bias[n]) (then ReLU).
// The layout of graft's dense forward: x [M, K], w [N, K] (PyTorch's [out, in]), y [M, N],
// all row-major device pointers. bf16 values are their 16 bits in a uint16_t (round with
// float_to_bf16 below, or kernels/cpu/bf16 on the host). bias is fp32 and may be null.
// Y is fp32, or bf16 rounded to nearest even from the fp32 result (after bias and ReLU).
// Any M, N, K >= 1 (M may be 0); needs compute capability 8.0 or newer (checked).
// `workspace` (tensor_core_gemm_workspace_floats(M, N, K) floats, may be null) lets a shape
// with few output tiles and a long K (a dense head at small batch) split K across blocks;
// the slices are added in a fixed order, so results are the same run to run either way.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace graft::cuda {

size_t tensor_core_gemm_workspace_floats(int64_t M, int N, int K);  // 0: no split for this shape

void tensor_core_gemm(int64_t M, int N, int K, const uint16_t* x, const uint16_t* w, const float* bias, float* y,
                      cudaStream_t stream, bool relu = false, float* workspace = nullptr);
void tensor_core_gemm(int64_t M, int N, int K, const uint16_t* x, const uint16_t* w, const float* bias, uint16_t* y,
                      cudaStream_t stream, bool relu = false, float* workspace = nullptr);

// Device arrays, element by element, the same bits as kernels/cpu/bf16 (round to nearest
// even; NaN -> 0x7FC0). y must not overlap x.
void float_to_bf16(int64_t count, const float* x, uint16_t* y, cudaStream_t stream);
void bf16_to_float(int64_t count, const uint16_t* x, float* y, cudaStream_t stream);

}  // namespace graft::cuda

// Dense layer through cuBLASLt (forward, bias and ReLU fused into the matmul's epilogue) and
// cuBLAS (backward), row-major through the transposition trick: a row-major [r, c] matrix is
// a column-major [c, r] one, so y = x w^T (row-major) is y^T = w x^T in column-major terms.
// x [n, in], w [out, in], bias [out], y [n, out]; device pointers; same semantics as
// graft::cpu's dense_* plus the context and stream. Exact fp32 (CUBLAS_COMPUTE_32F) unless
// the context allows TF32. Backward overwrites dx, dw and dbias (dbias may be null; it is a
// GEMV of dy with a vector of ones).
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/lib/context.h"

namespace graft::lib {

void plan_dense(LibraryContext& ctx, int n, int in, int out, bool has_bias, bool relu = false);

void dense_forward(LibraryContext& ctx, int n, int in, int out, const float* x, const float* w, const float* bias,
                   float* y, cudaStream_t stream, bool relu = false);
void dense_backward_data(LibraryContext& ctx, int n, int in, int out, const float* dy, const float* w, float* dx,
                         cudaStream_t stream);
void dense_backward_weights(LibraryContext& ctx, int n, int in, int out, const float* x, const float* dy, float* dw,
                            float* dbias, cudaStream_t stream);

}  // namespace graft::lib

// Row-major single-precision GEMM for the CPU fast paths:
//   C[m x n] = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T.
// Backed by OpenBLAS when the build found it, else by a blocked loop.
#pragma once

namespace graft::cpu {

void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc);

// Plain triple loop with double accumulation: the oracle the fast GEMM is tested against.
void sgemm_reference(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                     int lda, const float* b, int ldb, float beta, float* c, int ldc);

// The built-in cache-blocked loop sgemm falls back to without OpenBLAS; exposed so the tests
// cover it in every build.
void sgemm_blocked(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                   const float* b, int ldb, float beta, float* c, int ldc);

// All three follow BLAS semantics: beta == 0 overwrites C (NaN or garbage in C is ignored).

}  // namespace graft::cpu

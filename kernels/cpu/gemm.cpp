// Row-major SGEMM: OpenBLAS when the build found it, a cache-blocked loop otherwise, and the
// naive double-accumulating oracle.
#include "kernels/cpu/gemm.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#ifdef GRAFT_HAVE_CBLAS
#include <cblas.h>
#endif

namespace graft::cpu {

namespace {

// Element (r, c) of op(X), where X is row-major with leading dimension ld.
inline float op_at(const float* x, int ld, bool trans, int r, int c) {
  return trans ? x[int64_t{c} * ld + r] : x[int64_t{r} * ld + c];
}

// C = beta * C, with BLAS semantics: beta == 0 overwrites (NaN in C does not survive).
void scale_c(int m, int n, float beta, float* c, int ldc) {
  if (beta == 1.0f) return;
  for (int i = 0; i < m; ++i) {
    float* row = c + int64_t{i} * ldc;
    if (beta == 0.0f)
      std::fill(row, row + n, 0.0f);
    else
      for (int j = 0; j < n; ++j) row[j] *= beta;
  }
}

}  // namespace

void sgemm_reference(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                     int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int p = 0; p < k; ++p) acc += double(op_at(a, lda, trans_a, i, p)) * double(op_at(b, ldb, trans_b, p, j));
      float& cij = c[int64_t{i} * ldc + j];
      const double old = beta == 0.0f ? 0.0 : double(beta) * double(cij);
      cij = static_cast<float>(double(alpha) * acc + old);
    }
  }
}

void sgemm_blocked(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                   const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  scale_c(m, n, beta, c, ldc);
  if (k <= 0 || alpha == 0.0f) return;

  // Blocks of op(A) (MB x KB, pre-scaled by alpha) and op(B) (KB x NB) are packed row-major
  // so the inner loop streams contiguous rows of B and C.
  constexpr int MB = 64, KB = 128, NB = 256;
  thread_local std::vector<float> apack, bpack;
  apack.resize(size_t{MB} * KB);
  bpack.resize(size_t{KB} * NB);

  for (int j0 = 0; j0 < n; j0 += NB) {
    const int nb = std::min(NB, n - j0);
    for (int p0 = 0; p0 < k; p0 += KB) {
      const int kb = std::min(KB, k - p0);
      for (int p = 0; p < kb; ++p)
        for (int j = 0; j < nb; ++j) bpack[size_t(p) * nb + j] = op_at(b, ldb, trans_b, p0 + p, j0 + j);
      for (int i0 = 0; i0 < m; i0 += MB) {
        const int mb = std::min(MB, m - i0);
        for (int i = 0; i < mb; ++i)
          for (int p = 0; p < kb; ++p) apack[size_t(i) * kb + p] = alpha * op_at(a, lda, trans_a, i0 + i, p0 + p);
        for (int i = 0; i < mb; ++i) {
          float* crow = c + int64_t{i0 + i} * ldc + j0;
          for (int p = 0; p < kb; ++p) {
            const float aip = apack[size_t(i) * kb + p];
            const float* brow = bpack.data() + size_t(p) * nb;
            for (int j = 0; j < nb; ++j) crow[j] += aip * brow[j];
          }
        }
      }
    }
  }
}

void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // nothing to multiply: C = beta * C, without asking the library about lda
    scale_c(m, n, beta, c, ldc);
    return;
  }
#ifdef GRAFT_HAVE_CBLAS
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, a, lda, b, ldb, beta, c, ldc);
#else
  sgemm_blocked(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

}  // namespace graft::cpu

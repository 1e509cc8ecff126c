#include "kernels/lib/dense.h"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <memory>

#include "kernels/lib/plans.cuh"
#include "base/cuda/cuda_check.h"
#include "base/error.h"

namespace graft::lib {

namespace {

void check(int n, int in, int out) { GRAFT_ASSERT(n >= 0 && in > 0 && out > 0, "bad dense shape ", n, "x", in, "->", out); }

// The alignment a plan assumes of its pointers: the largest power of two up to 16 bytes
// that divides every address (the pool and the executor's arena give 256; a weight inside
// the flat parameter buffer, or a chunk of rows, may give as little as 4). cuBLASLt's fast
// kernels want 16; a plan is made per alignment, so a call never runs an algorithm chosen
// for pointers it does not have.
uint32_t alignment_of(std::initializer_list<const void*> pointers) {
  uint32_t align = 16;
  for (const void* p : pointers)
    while (align > 1 && reinterpret_cast<uintptr_t>(p) % align != 0) align /= 2;
  return align;
}

const char* precision_name(const LibraryOptions& o) { return o.bf16 ? "bf16" : o.allow_tf32 ? "tf32" : "fp32"; }

cublasLtEpilogue_t epilogue_of(bool has_bias, bool relu) {
  if (has_bias) return relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
  return relu ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_DEFAULT;
}

// bf16 staging: 0 x or dy, 1 the weights, 2 dy (weight gradient). Reserved before any
// conversion writes into them: growing one later would release the block just written.
void reserve_bf16_staging(LibraryContext& ctx, int n, int in, int out) {
  if (!ctx.options().bf16) return;
  ctx.bf16_staging(0, size_t(n) * size_t(std::max(in, out)));
  ctx.bf16_staging(1, size_t(in) * size_t(out));
  ctx.bf16_staging(2, size_t(n) * size_t(out));
}

DensePlan& get_plan(LibraryContext& ctx, int n, int in, int out, bool has_bias, bool relu, uint32_t align) {
  const LibraryContext::DenseKey key{n, in, out, (has_bias ? 1 : 0) | (relu ? 2 : 0) | int(align << 2)};
  if (auto it = ctx.dense_plans.find(key); it != ctx.dense_plans.end()) return *it->second;
  auto plan = std::make_unique<DensePlan>();
  DensePlan& p = *plan;
  const cublasComputeType_t compute = ctx.options().allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  // bf16: A and B are the bf16 copies, C and D (and the bias) stay fp32.
  const cudaDataType_t operand = ctx.options().bf16 ? CUDA_R_16BF : CUDA_R_32F;
  GRAFT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, compute, CUDA_R_32F));
  // Column-major: y^T [out, n] = op(A) B with A = w viewed as [in, out] (transposed), B = x^T [in, n].
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  GRAFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  GRAFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  const cublasLtEpilogue_t epi = epilogue_of(has_bias, relu);
  GRAFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
  GRAFT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, operand, static_cast<uint64_t>(in), static_cast<uint64_t>(out), in));
  GRAFT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, operand, static_cast<uint64_t>(in), static_cast<uint64_t>(n), in));
  GRAFT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, static_cast<uint64_t>(out), static_cast<uint64_t>(n), out));

  cublasLtMatmulPreference_t pref = nullptr;
  GRAFT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
  {
    const uint64_t max_ws = ctx.blas_workspace_bytes();
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_ws, sizeof(max_ws));
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof(align));
    if (st == CUBLAS_STATUS_SUCCESS && ctx.options().deterministic) {
      const uint32_t no_split_k = CUBLASLT_REDUCTION_SCHEME_NONE;  // no split-K partial sums
      st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &no_split_k,
                                                sizeof(no_split_k));
    }
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulAlgoGetHeuristic(ctx.cublas_lt(), p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &returned);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  // The heuristic answers NOT_SUPPORTED when nothing fits: the same as no algorithm.
  if (st != CUBLAS_STATUS_NOT_SUPPORTED) GRAFT_CUBLAS_CHECK(st);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || returned == 0)
    fail("cuBLASLt has no algorithm for dense layer [", n, " x ", in, "] -> [", n, " x ", out, "] (",
         precision_name(ctx.options()), (has_bias ? ", bias" : ""), (relu ? ", relu" : ""), ", pointers ", align,
         "-byte aligned, workspace ", ctx.blas_workspace_bytes(), " bytes",
         (ctx.options().deterministic ? ", deterministic" : ""),
         "); try --kernels native for this model, or report the shape");
  p.algo = result.algo;
  p.ws = result.workspaceSize;
  reserve_bf16_staging(ctx, n, in, out);
  return *ctx.dense_plans.emplace(key, std::move(plan)).first->second;
}

}  // namespace

void plan_dense(LibraryContext& ctx, int n, int in, int out, bool has_bias, bool relu) {
  check(n, in, out);
  if (n == 0) return;
  get_plan(ctx, n, in, out, has_bias, relu, 16);  // the pool's and the arena's alignment
  if (has_bias) ctx.ones(n, nullptr);
}

void dense_forward(LibraryContext& ctx, int n, int in, int out, const float* x, const float* w, const float* bias,
                   float* y, cudaStream_t stream, bool relu) {
  check(n, in, out);
  if (n == 0) return;
  const float one = 1.0f, zero = 0.0f;
  const void* a = w;
  const void* b = x;
  if (ctx.options().bf16) {
    reserve_bf16_staging(ctx, n, in, out);
    a = ctx.to_bf16(1, int64_t{in} * out, w, stream);
    b = ctx.to_bf16(0, int64_t{n} * in, x, stream);
  }
  // The bias vector counts too: the epilogue reads it with the kernel's vector width.
  DensePlan& p = get_plan(ctx, n, in, out, bias != nullptr, relu, alignment_of({a, b, y, bias}));
  if (bias) GRAFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  GRAFT_CUBLAS_CHECK(cublasLtMatmul(ctx.cublas_lt(), p.op, &one, a, p.a, b, p.b, &zero, y, p.c, y, p.c, &p.algo,
                                    ctx.blas_workspace(), p.ws, stream));
}

void dense_backward_data(LibraryContext& ctx, int n, int in, int out, const float* dy, const float* w, float* dx,
                         cudaStream_t stream) {
  check(n, in, out);
  if (n == 0) return;
  // dx^T [in, n] = w^T [in, out] (w's memory as is) * dy^T [out, n] (dy's memory as is).
  const float one = 1.0f, zero = 0.0f;
  if (ctx.options().bf16) {
    const uint16_t* w16 = ctx.to_bf16(1, int64_t{in} * out, w, stream);
    const uint16_t* dy16 = ctx.to_bf16(0, int64_t{n} * out, dy, stream);
    GRAFT_CUBLAS_CHECK(cublasGemmEx(ctx.cublas(stream), CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w16, CUDA_R_16BF,
                                    in, dy16, CUDA_R_16BF, out, &zero, dx, CUDA_R_32F, in, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
    return;
  }
  GRAFT_CUBLAS_CHECK(cublasSgemm(ctx.cublas(stream), CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w, in, dy, out, &zero,
                                 dx, in));
}

void dense_backward_weights(LibraryContext& ctx, int n, int in, int out, const float* x, const float* dy, float* dw,
                            float* dbias, cudaStream_t stream) {
  check(n, in, out);
  cublasHandle_t h = ctx.cublas(stream);
  if (n == 0) {
    GRAFT_CUDA_CHECK(cudaMemsetAsync(dw, 0, sizeof(float) * static_cast<size_t>(in) * out, stream));
    if (dbias) GRAFT_CUDA_CHECK(cudaMemsetAsync(dbias, 0, sizeof(float) * static_cast<size_t>(out), stream));
    return;
  }
  // dw^T [in, out] = x^T [in, n] (x's memory as is) * dy [n, out] (dy's memory, transposed).
  const float one = 1.0f, zero = 0.0f;
  if (ctx.options().bf16) {
    const uint16_t* x16 = ctx.to_bf16(0, int64_t{n} * in, x, stream);
    const uint16_t* dy16 = ctx.to_bf16(2, int64_t{n} * out, dy, stream);
    GRAFT_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x16, CUDA_R_16BF, in, dy16,
                                    CUDA_R_16BF, out, &zero, dw, CUDA_R_32F, in, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  } else {
    GRAFT_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x, in, dy, out, &zero, dw, in));
  }
  if (dbias) {
    // dbias [out] = dy^T [out, n] * ones [n]
    const float* ones = ctx.ones(n, stream);
    GRAFT_CUBLAS_CHECK(cublasSgemv(h, CUBLAS_OP_N, out, n, &one, dy, out, ones, 1, &zero, dbias, 1));
  }
}

}  // namespace graft::lib

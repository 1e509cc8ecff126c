#include "kernels/lib/context.h"

#include "kernels/cuda/misc.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/tensor_core_gemm.h"
#include "kernels/lib/plans.cuh"
#include "base/cuda/capture.h"
#include "base/cuda/cuda_check.h"
#include "base/error.h"

namespace graft::lib {

LibraryContext::LibraryContext(MemoryPool& pool, LibraryOptions options) : pool_(pool), options_(options) {
  GRAFT_ASSERT(pool.device() == Device::CUDA, "LibraryContext needs a device memory pool");
  try {
    GRAFT_CUDNN_CHECK(cudnnCreate(&cudnn_));
    GRAFT_CUBLAS_CHECK(cublasCreate(&cublas_));
    GRAFT_CUBLAS_CHECK(cublasLtCreate(&lt_));
    GRAFT_CUBLAS_CHECK(cublasSetMathMode(cublas_, options_.allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    GRAFT_ASSERT(!(options_.allow_tf32 && options_.bf16), "tf32 and bf16 are two precisions; choose one");
    // cuBLAS's own workspace comes from our pool, so no call allocates behind our back.
    if (options_.blas_workspace_bytes) {
      blas_ws_ = PoolBuffer(pool_, options_.blas_workspace_bytes, "workspace");
      GRAFT_CUBLAS_CHECK(cublasSetWorkspace(cublas_, blas_ws_.get(), blas_ws_.bytes()));
    }
  } catch (...) {
    if (lt_) cublasLtDestroy(lt_);
    if (cublas_) cublasDestroy(cublas_);
    if (cudnn_) cudnnDestroy(cudnn_);
    throw;
  }
}

LibraryContext::~LibraryContext() {
  conv_plans.clear();
  pool_plans.clear();
  dense_plans.clear();
  if (lt_) cublasLtDestroy(lt_);
  if (cublas_) cublasDestroy(cublas_);
  if (cudnn_) cudnnDestroy(cudnn_);
}

cudnnHandle_t LibraryContext::cudnn(cudaStream_t stream) {
  GRAFT_CUDNN_CHECK(cudnnSetStream(cudnn_, stream));
  return cudnn_;
}

cublasHandle_t LibraryContext::cublas(cudaStream_t stream) {
  GRAFT_CUBLAS_CHECK(cublasSetStream(cublas_, stream));
  // cublasSetStream resets the workspace to the default pool: give ours back to it.
  if (blas_ws_.get()) GRAFT_CUBLAS_CHECK(cublasSetWorkspace(cublas_, blas_ws_.get(), blas_ws_.bytes()));
  return cublas_;
}

void LibraryContext::reserve_workspace(size_t bytes) {
  if (bytes <= ws_.bytes()) return;
  cuda::refuse_growth_under_capture(cuda::compute_stream(), "the cuDNN workspace", bytes);
  if (ws_.get()) cuda::note_replaced_memory();  // a recorded graph may hold the old block
  ws_.reset();  // stream order: earlier users of the old block are queued before later ones
  ws_ = PoolBuffer(pool_, bytes, "workspace");
}

// Filled by a kernel on the caller's stream: a synchronous copy would be illegal under capture
// (the growth check refuses that case first) and would not be ordered with the stream.
const float* LibraryContext::ones(int n, cudaStream_t stream) {
  if (n > ones_count_) {
    cuda::refuse_growth_under_capture(cuda::compute_stream(), "the bias-gradient ones vector",
                                      sizeof(float) * static_cast<size_t>(n));
    if (ones_.get()) cuda::note_replaced_memory();
    ones_.reset();
    ones_ = PoolBuffer(pool_, sizeof(float) * static_cast<size_t>(n), "workspace");
    cuda::fill(n, 1.0f, ones_.floats(), stream);
    ones_count_ = n;
  }
  return ones_.floats();
}

uint16_t* LibraryContext::bf16_staging(int which, size_t elements) {
  GRAFT_ASSERT(which >= 0 && which < 3, "bf16 staging buffer ", which);
  PoolBuffer& b = bf16_[which];
  if (elements * sizeof(uint16_t) > b.bytes()) {
    cuda::refuse_growth_under_capture(cuda::compute_stream(), "a bf16 staging buffer", elements * sizeof(uint16_t));
    if (b.get()) cuda::note_replaced_memory();
    b.reset();  // stream order, as reserve_workspace
    b = PoolBuffer(pool_, elements * sizeof(uint16_t), "workspace");
  }
  return static_cast<uint16_t*>(b.get());
}

uint16_t* LibraryContext::to_bf16(int which, int64_t count, const float* x, cudaStream_t stream) {
  uint16_t* y = bf16_staging(which, size_t(count));
  cuda::float_to_bf16(count, x, y, stream);
  return y;
}

}  // namespace graft::lib

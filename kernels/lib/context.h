// LibraryContext: the cuDNN, cuBLAS and cuBLASLt handles of the library-backed kernels
// (kernels/lib), created once, and what they plan per shape: cuDNN descriptors and the
// algorithm chosen for each convolution shape, pooling descriptors, cuBLASLt matmul plans.
// Plans are made the first time a shape is seen (or ahead of time with the plan_* calls, at
// executor build time), so a step after the first makes no allocation and no choice.
// Workspaces come from the MemoryPool given at construction. A growth while the compute
// stream records a CUDA graph throws graft::Error (base/cuda/capture.h) rather than
// allocate or replace memory the graph would bake in.
//
// One context serves one stream at a time: workspaces are shared by every call through it
// and are safe only in stream order. Creating a context needs a usable device (cudnnCreate
// fails without a driver); check graft::cuda::device_available() first.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "base/memory_pool.h"

namespace graft::lib {

struct LibraryOptions {
  // false (the default): exact fp32: FMA-only math in cuDNN and cuBLAS (no TF32), and no
  // FFT or Winograd convolution algorithms. true: TF32 tensor cores allowed (tolerance 1e-3).
  bool allow_tf32 = false;
  // true (--deterministic): only algorithms cuDNN marks CUDNN_DETERMINISTIC, and no split-K
  // reduction in cuBLASLt, so a rerun gives the same bits (what an exact GPU resume needs).
  bool deterministic = false;
  // true (--precision bf16): convolutions and dense layers convert their fp32 operands to
  // bf16 in staging buffers and run cuDNN/cuBLAS(Lt) on bf16 tensor cores with fp32
  // accumulation; convolution outputs and weight gradients come back through bf16 (cuDNN's
  // bf16 convolutions write bf16, as autocast's do), dense outputs and dense weight
  // gradients are fp32 sums of bf16 products.
  bool bf16 = false;
  // Most workspace one convolution algorithm may ask for.
  size_t max_conv_workspace_bytes = size_t{1} << 30;
  // cuBLAS/cuBLASLt workspace (NVIDIA recommends 32 MiB on Hopper).
  size_t blas_workspace_bytes = size_t{32} << 20;
};

struct ConvPlan;
struct PoolPlan;
struct DensePlan;

class LibraryContext {
 public:
  explicit LibraryContext(MemoryPool& pool, LibraryOptions options = {});
  ~LibraryContext();
  LibraryContext(const LibraryContext&) = delete;
  LibraryContext& operator=(const LibraryContext&) = delete;

  const LibraryOptions& options() const { return options_; }
  MemoryPool& pool() { return pool_; }

  // The handles, bound to `stream` for the calls that follow.
  cudnnHandle_t cudnn(cudaStream_t stream);
  cublasHandle_t cublas(cudaStream_t stream);
  cublasLtHandle_t cublas_lt() const { return lt_; }
  void* blas_workspace() const { return blas_ws_.get(); }
  size_t blas_workspace_bytes() const { return blas_ws_.bytes(); }

  // The shared workspace, grown (at plan time) to the largest size any plan asked for.
  void reserve_workspace(size_t bytes);
  void* workspace() const { return ws_.get(); }
  size_t workspace_bytes() const { return ws_.bytes(); }

  // A device vector of at least n ones (for bias gradients through GEMV); grown at plan
  // time, filled in stream order on `stream`.
  const float* ones(int n, cudaStream_t stream);

  // bf16 staging (options().bf16): buffer `which` (0, 1, 2) of at least `elements` bf16
  // values, grown when asked for more (at plan time; later calls find it big enough).
  uint16_t* bf16_staging(int which, size_t elements);
  // count floats of x rounded into staging buffer `which` (in stream order); returns it.
  uint16_t* to_bf16(int which, int64_t count, const float* x, cudaStream_t stream);

  // Per-shape plans, cached by shape (definitions in conv.cu, pool.cu, dense.cu).
  using ConvKey = std::tuple<int, int, int, int, int, int, int, int, int>;
  using PoolKey = std::tuple<int, int, int, int, int, int, int, int, int>;
  using DenseKey = std::tuple<int, int, int, int>;
  std::map<ConvKey, std::unique_ptr<ConvPlan>> conv_plans;
  std::map<PoolKey, std::unique_ptr<PoolPlan>> pool_plans;
  std::map<DenseKey, std::unique_ptr<DensePlan>> dense_plans;

 private:
  MemoryPool& pool_;
  LibraryOptions options_;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  PoolBuffer blas_ws_;
  PoolBuffer ws_;
  PoolBuffer ones_;
  int ones_count_ = 0;
  PoolBuffer bf16_[3];
};

}  // namespace graft::lib

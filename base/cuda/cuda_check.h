// Error checks for CUDA runtime, cuDNN and cuBLAS calls. A failed call throws graft::Error
// naming the file, line, the call's text and the library's status string; nothing aborts.
//   GRAFT_CUDA_CHECK(cudaMemcpyAsync(...));
//   kernel<<<grid, block, 0, stream>>>(...); GRAFT_CUDA_CHECK_LAUNCH();
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "base/error.h"

namespace graft::cuda_detail {

inline const char* cublas_status_string(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_<unknown>";
  }
}

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* call, const char* file, int line) {
  ::graft::fail("CUDA error at ", file, ":", line, ": ", call, " returned ", cudaGetErrorName(e), " (",
                cudaGetErrorString(e), ")");
}
[[noreturn]] inline void throw_cudnn(cudnnStatus_t s, const char* call, const char* file, int line) {
  ::graft::fail("cuDNN error at ", file, ":", line, ": ", call, " returned ", cudnnGetErrorString(s));
}
[[noreturn]] inline void throw_cublas(int s, const char* call, const char* file, int line) {
  ::graft::fail("cuBLAS error at ", file, ":", line, ": ", call, " returned ",
                cublas_status_string(static_cast<cublasStatus_t>(s)));
}

}  // namespace graft::cuda_detail

#define GRAFT_CUDA_CHECK(call)                                                           \
  do {                                                                                   \
    const cudaError_t graft_cuda_err_ = (call);                                          \
    if (graft_cuda_err_ != cudaSuccess)                                                  \
      ::graft::cuda_detail::throw_cuda(graft_cuda_err_, #call, __FILE__, __LINE__);       \
  } while (0)

#define GRAFT_CUDNN_CHECK(call)                                                          \
  do {                                                                                   \
    const cudnnStatus_t graft_cudnn_st_ = (call);                                        \
    if (graft_cudnn_st_ != CUDNN_STATUS_SUCCESS)                                         \
      ::graft::cuda_detail::throw_cudnn(graft_cudnn_st_, #call, __FILE__, __LINE__);      \
  } while (0)

// Works for cublasStatus_t returned by both cuBLAS and cuBLASLt.
#define GRAFT_CUBLAS_CHECK(call)                                                         \
  do {                                                                                   \
    const cublasStatus_t graft_cublas_st_ = (call);                                      \
    if (graft_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                       \
      ::graft::cuda_detail::throw_cublas(static_cast<int>(graft_cublas_st_), #call, __FILE__, __LINE__); \
  } while (0)

// After every kernel launch: reports a bad launch configuration (and, in a synchronizing
// debug run, an earlier asynchronous fault) at the launch site.
#define GRAFT_CUDA_CHECK_LAUNCH() GRAFT_CUDA_CHECK(cudaGetLastError())

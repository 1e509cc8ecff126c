// The per-shape plans a LibraryContext caches (internal to kernels/lib).
#pragma once
#include <cublasLt.h>
#include <cudnn.h>

#include <cstddef>

namespace graft::lib {

struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  // bf16 (LibraryOptions::bf16): the operands' descriptors the convolutions run on; x, y, w
  // above stay fp32 for the bias and the conversions around them.
  cudnnTensorDescriptor_t x16 = nullptr, y16 = nullptr;
  cudnnFilterDescriptor_t w16 = nullptr;
  // One descriptor for the three directions; each call first sets the math type of the
  // algorithm chosen for its direction (cuDNN runs an algorithm only with the math type it
  // was found with).
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnMathType_t fwd_math = CUDNN_FMA_MATH, bwd_data_math = CUDNN_FMA_MATH, bwd_filter_math = CUDNN_FMA_MATH;
  cudnnConvolutionFwdAlgo_t fwd_algo{};
  cudnnConvolutionBwdDataAlgo_t bwd_data_algo{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo{};
  size_t fwd_ws = 0, bwd_data_ws = 0, bwd_filter_ws = 0;
  ConvPlan() = default;
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;
  ~ConvPlan() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (bias) cudnnDestroyTensorDescriptor(bias);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (x16) cudnnDestroyTensorDescriptor(x16);
    if (y16) cudnnDestroyTensorDescriptor(y16);
    if (w16) cudnnDestroyFilterDescriptor(w16);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

struct PoolPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnPoolingDescriptor_t pool = nullptr;
  PoolPlan() = default;
  PoolPlan(const PoolPlan&) = delete;
  PoolPlan& operator=(const PoolPlan&) = delete;
  ~PoolPlan() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (pool) cudnnDestroyPoolingDescriptor(pool);
  }
};

struct DensePlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t ws = 0;
  DensePlan() = default;
  DensePlan(const DensePlan&) = delete;
  DensePlan& operator=(const DensePlan&) = delete;
  ~DensePlan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

}  // namespace graft::lib

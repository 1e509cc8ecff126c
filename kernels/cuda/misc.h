// Small device kernels the executor and the CUDA Ops need: adaptive average pooling (NHWC,
// PyTorch's windows, same semantics as graft::cpu's), fill, bf16 rounding, one-hot targets, double
// accumulators, and a non-finite check. Device pointers, one stream.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/adaptive_pool.h"

namespace graft::cuda {

void adaptive_avgpool2d_forward(const cpu::AdaptivePoolGeometry& g, const float* x, float* y, cudaStream_t stream);
void adaptive_avgpool2d_backward(const cpu::AdaptivePoolGeometry& g, const float* dy, float* dx, cudaStream_t stream);
void fill(int64_t count, float value, float* x, cudaStream_t stream);
// y[i] = x[i] rounded to the nearest bf16, as a float (kernels/common/bf16.h); y may alias x.
void round_to_bf16(int64_t count, const float* x, float* y, cudaStream_t stream);
void one_hot(int n, int classes, const int32_t* labels, float* targets, cudaStream_t stream);
void add_doubles(int count, const double* src, double* dst, cudaStream_t stream);
// *d_flag = 1 when any of x[0..count) is NaN or infinite (left untouched otherwise).
void flag_nonfinite(int64_t count, const float* x, int* d_flag, cudaStream_t stream);
// One thread: when *first_tag < 0 and (*d_flag or *loss is not finite), *first_tag = tag.
void record_first_tag(const double* loss, const int* d_flag, int64_t tag, int64_t* first_tag, cudaStream_t stream);

}  // namespace graft::cuda

// Pooling through cuDNN, NHWC float. Same semantics as graft::cpu's pooling (device
// pointers) plus the context and stream: max pooling (deterministic mode, NaN propagated,
// padding never wins), average pooling counting padding, global average pooling (a window
// the size of the image). Descriptors are made once per shape and cached in the context.
// cuDNN's max-pooling backward also reads the forward output y.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/cpu/geometry.h"
#include "kernels/lib/context.h"

namespace graft::lib {

void maxpool2d_forward(LibraryContext& ctx, const Pool2dGeometry& g, const float* x, float* y, cudaStream_t stream);
void maxpool2d_backward(LibraryContext& ctx, const Pool2dGeometry& g, const float* x, const float* y, const float* dy,
                        float* dx, cudaStream_t stream);
void avgpool2d_forward(LibraryContext& ctx, const Pool2dGeometry& g, const float* x, float* y, cudaStream_t stream);
void avgpool2d_backward(LibraryContext& ctx, const Pool2dGeometry& g, const float* dy, float* dx, cudaStream_t stream);
void global_avgpool_forward(LibraryContext& ctx, int n, int h, int w, int c, const float* x, float* y,
                            cudaStream_t stream);
void global_avgpool_backward(LibraryContext& ctx, int n, int h, int w, int c, const float* dy, float* dx,
                             cudaStream_t stream);

}  // namespace graft::lib

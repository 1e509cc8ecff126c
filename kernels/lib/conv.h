// Convolution through cuDNN 9 (classic API), NHWC float activations, OHWI weights (cuDNN's
// NHWC filter layout, KRSC), cross-correlation as PyTorch. Same semantics as graft::cpu's
// conv2d_* (device pointers) plus the context and stream. The algorithm for each shape and
// direction is chosen once by cudnnGet*_v7 heuristics (exact mode: FMA math only, no FFT or
// Winograd) and cached in the context; the workspace is the context's, reserved at plan time.
// Backward-data overwrites dx; backward-filter overwrites dw and dbias (dbias may be null).
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/cpu/geometry.h"
#include "kernels/lib/context.h"

namespace graft::lib {

// Chooses the algorithms and reserves the workspace for this shape now (else on first use).
void plan_conv2d(LibraryContext& ctx, const Conv2dGeometry& g);

void conv2d_forward(LibraryContext& ctx, const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, cudaStream_t stream);
void conv2d_backward_data(LibraryContext& ctx, const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                          cudaStream_t stream);
void conv2d_backward_filter(LibraryContext& ctx, const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                            float* dbias, cudaStream_t stream);

}  // namespace graft::lib

// Convolution on the CPU, NHWC activations, OHWI weights (see geometry.h).
// *_reference: direct loops with double accumulation, the oracle for every other backend.
// *_fast: im2col + sgemm, one image at a time through `workspace`
//   (conv2d_workspace_floats(g) floats, owned by the caller's plan: a step allocates nothing).
// Backward-data overwrites dx; backward-filter overwrites dw and dbias (dbias may be null).
#pragma once
#include <cstddef>

#include "kernels/cpu/geometry.h"

namespace graft::cpu {

void conv2d_forward_reference(const Conv2dGeometry& g, const float* x, const float* w,
                              const float* bias, float* y);
void conv2d_backward_data_reference(const Conv2dGeometry& g, const float* dy, const float* w, float* dx);
void conv2d_backward_filter_reference(const Conv2dGeometry& g, const float* x, const float* dy,
                                      float* dw, float* dbias);

size_t conv2d_workspace_floats(const Conv2dGeometry& g);
void conv2d_forward_fast(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                         float* y, float* workspace);
void conv2d_backward_data_fast(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                               float* workspace);
void conv2d_backward_filter_fast(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                 float* dbias, float* workspace);

}  // namespace graft::cpu

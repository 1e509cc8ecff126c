// Pooling on the CPU, NHWC. Backward overwrites dx.
// Max pooling routes each gradient to the first maximum of its window in (kh, kw) scan
// order, as PyTorch does; padding never wins. Average pooling counts padding (PyTorch's
// count_include_pad=True default).
#pragma once
#include "kernels/cpu/geometry.h"

namespace graft::cpu {

void maxpool2d_forward(const Pool2dGeometry& g, const float* x, float* y);
void maxpool2d_backward(const Pool2dGeometry& g, const float* x, const float* dy, float* dx);
void avgpool2d_forward(const Pool2dGeometry& g, const float* x, float* y);
void avgpool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx);
// Global average pool: [n, h, w, c] -> [n, c].
void global_avgpool_forward(int n, int h, int w, int c, const float* x, float* y);
void global_avgpool_backward(int n, int h, int w, int c, const float* dy, float* dx);

}  // namespace graft::cpu

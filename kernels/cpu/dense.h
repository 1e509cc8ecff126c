// Dense (fully connected) layer on the CPU. x [n, in], w [out, in] (PyTorch's layout),
// bias [out], y [n, out]. Backward overwrites dx, dw and dbias (dbias may be null).
#pragma once

namespace graft::cpu {

void dense_forward_reference(int n, int in, int out, const float* x, const float* w, const float* bias, float* y);
void dense_backward_data_reference(int n, int in, int out, const float* dy, const float* w, float* dx);
void dense_backward_weights_reference(int n, int in, int out, const float* x, const float* dy, float* dw, float* dbias);

void dense_forward_fast(int n, int in, int out, const float* x, const float* w, const float* bias, float* y);
void dense_backward_data_fast(int n, int in, int out, const float* dy, const float* w, float* dx);
void dense_backward_weights_fast(int n, int in, int out, const float* x, const float* dy, float* dw, float* dbias);

}  // namespace graft::cpu

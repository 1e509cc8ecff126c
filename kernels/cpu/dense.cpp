// Dense layer on the CPU: x [n, in], w [out, in], bias [out], y [n, out].
// Reference: loops with double accumulation. Fast: one sgemm per product.
#include "kernels/cpu/dense.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace graft::cpu {

namespace {

void bias_sum(int n, int out, const float* dy, float* dbias) {
  std::vector<double> acc(size_t(out), 0.0);
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < out; ++o) acc[size_t(o)] += dy[int64_t{i} * out + o];
  for (int o = 0; o < out; ++o) dbias[o] = static_cast<float>(acc[size_t(o)]);
}

}  // namespace

void dense_forward_reference(int n, int in, int out, const float* x, const float* w, const float* bias, float* y) {
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < out; ++o) {
      double acc = bias ? double(bias[o]) : 0.0;
      for (int k = 0; k < in; ++k) acc += double(x[int64_t{i} * in + k]) * double(w[int64_t{o} * in + k]);
      y[int64_t{i} * out + o] = static_cast<float>(acc);
    }
}

void dense_backward_data_reference(int n, int in, int out, const float* dy, const float* w, float* dx) {
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < in; ++k) {
      double acc = 0.0;
      for (int o = 0; o < out; ++o) acc += double(dy[int64_t{i} * out + o]) * double(w[int64_t{o} * in + k]);
      dx[int64_t{i} * in + k] = static_cast<float>(acc);
    }
}

void dense_backward_weights_reference(int n, int in, int out, const float* x, const float* dy, float* dw,
                                      float* dbias) {
  for (int o = 0; o < out; ++o)
    for (int k = 0; k < in; ++k) {
      double acc = 0.0;
      for (int i = 0; i < n; ++i) acc += double(dy[int64_t{i} * out + o]) * double(x[int64_t{i} * in + k]);
      dw[int64_t{o} * in + k] = static_cast<float>(acc);
    }
  if (dbias) bias_sum(n, out, dy, dbias);
}

void dense_forward_fast(int n, int in, int out, const float* x, const float* w, const float* bias, float* y) {
  // y [n, out] = bias (broadcast) + x [n, in] * W^T
  if (bias)
    for (int i = 0; i < n; ++i) std::memcpy(y + int64_t{i} * out, bias, sizeof(float) * size_t(out));
  sgemm(false, true, n, out, in, 1.0f, x, in, w, in, bias ? 1.0f : 0.0f, y, out);
}

void dense_backward_data_fast(int n, int in, int out, const float* dy, const float* w, float* dx) {
  // dx [n, in] = dy [n, out] * W [out, in]
  sgemm(false, false, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
}

void dense_backward_weights_fast(int n, int in, int out, const float* x, const float* dy, float* dw,
                                 float* dbias) {
  // dW [out, in] = dy^T [out, n] * x [n, in]; sgemm with k = n = 0 zeroes dW.
  sgemm(true, false, out, in, n, 1.0f, dy, out, x, in, 0.0f, dw, in);
  if (dbias) bias_sum(n, out, dy, dbias);
}

}  // namespace graft::cpu

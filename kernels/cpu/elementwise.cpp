// Element-wise ops on the CPU. The per-element math is kernels/common/elementwise.h, shared
// with the CUDA kernels.
#include "kernels/cpu/elementwise.h"

#include "kernels/common/elementwise.h"

namespace graft::cpu {

void relu_forward(int64_t count, const float* x, float* y) {
  for (int64_t i = 0; i < count; ++i) y[i] = math::relu(x[i]);
}

void relu_backward(int64_t count, const float* y, const float* dy, float* dx) {
  for (int64_t i = 0; i < count; ++i) dx[i] = math::relu_grad_from_output(y[i], dy[i]);
}

void dropout_forward(int64_t count, float p, uint64_t seed, uint64_t stream, int64_t first, const float* x, float* y) {
  for (int64_t i = 0; i < count; ++i)
    y[i] = x[i] * math::dropout_scale(p, seed, stream, static_cast<uint64_t>(first + i));
}

void dropout_backward(int64_t count, float p, uint64_t seed, uint64_t stream, int64_t first, const float* dy,
                      float* dx) {
  for (int64_t i = 0; i < count; ++i)
    dx[i] = dy[i] * math::dropout_scale(p, seed, stream, static_cast<uint64_t>(first + i));
}

void add(int64_t count, const float* a, const float* b, float* y) {
  for (int64_t i = 0; i < count; ++i) y[i] = a[i] + b[i];
}

void scale(int64_t count, float alpha, float* x) {
  for (int64_t i = 0; i < count; ++i) x[i] *= alpha;
}

}  // namespace graft::cpu

// Element-wise ops on the CPU, over flat arrays; the math is kernels/common/elementwise.h.
#pragma once
#include <cstdint>

namespace graft::cpu {

void relu_forward(int64_t count, const float* x, float* y);
void relu_backward(int64_t count, const float* y, const float* dy, float* dx);  // reads the output
// Inverted dropout with a counter-based mask: element i uses random(seed, stream, first + i).
void dropout_forward(int64_t count, float p, uint64_t seed, uint64_t stream, int64_t first, const float* x, float* y);
void dropout_backward(int64_t count, float p, uint64_t seed, uint64_t stream, int64_t first, const float* dy,
                      float* dx);
void add(int64_t count, const float* a, const float* b, float* y);  // y = a + b (y may alias a)
void scale(int64_t count, float alpha, float* x);                  // x *= alpha

}  // namespace graft::cpu

// bfloat16 conversions on the CPU. The per-element math is kernels/common/bf16.h, shared
// with the CUDA conversion kernels, so both give the same bits.
#include "kernels/cpu/bf16.h"

#include "kernels/common/bf16.h"

namespace graft::cpu {

void round_to_bf16(int64_t count, const float* x, float* y) {
  for (int64_t i = 0; i < count; ++i) y[i] = math::round_to_bf16(x[i]);
}

void to_bf16(int64_t count, const float* x, uint16_t* y) {
  for (int64_t i = 0; i < count; ++i) y[i] = math::float_to_bf16_bits(x[i]);
}

void from_bf16(int64_t count, const uint16_t* x, float* y) {
  for (int64_t i = 0; i < count; ++i) y[i] = math::bf16_bits_to_float(x[i]);
}

}  // namespace graft::cpu

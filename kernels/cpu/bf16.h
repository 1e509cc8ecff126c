// bfloat16 conversions on the CPU, over flat arrays; the per-element rounding is
// kernels/common/bf16.h (round to nearest even, as PyTorch), shared with the CUDA kernels.
// bf16 values are their 16 bits in a uint16_t.
#pragma once
#include <cstdint>

namespace graft::cpu {

// y[i] = x[i] rounded to the nearest bf16, kept as a float (y may alias x): the inputs a
// bf16 GEMM really multiplies, for a float reference.
void round_to_bf16(int64_t count, const float* x, float* y);
void to_bf16(int64_t count, const float* x, uint16_t* y);
void from_bf16(int64_t count, const uint16_t* x, float* y);  // exact

}  // namespace graft::cpu

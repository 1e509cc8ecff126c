// bfloat16 <-> float conversion, bit for bit what PyTorch's c10::BFloat16 does: round to
// nearest, ties to even; NaN becomes the quiet NaN 0x7FC0 (sign dropped); infinities and
// signed zeros keep their sign; subnormals are not flushed; a value past the largest bf16
// rounds to infinity exactly as RNE says. Shared by the CPU reference (kernels/cpu/bf16) and
// the tensor-core kernels (kernels/cuda/tensor_core_gemm), so both round the same way.
// bf16 values are stored as their 16 bits in a uint16_t (no CUDA type in CPU code).
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/common/hd.h"

namespace graft::math {

GRAFT_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

GRAFT_HD float float_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

GRAFT_HD uint16_t float_to_bf16_bits(float f) {
  const uint32_t u = float_bits(f);
  // Tested on the bits, not with isnan, so -ffast-math cannot fold it away.
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
  // Adding 0x7FFF rounds a dropped half below 0x8000 down and above it up; the extra
  // lowest-kept bit turns an exact tie up only when the kept mantissa is odd (ties to even).
  // A carry out of the mantissa bumps the exponent, which is correct, up to infinity.
  const uint32_t bias = 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + bias) >> 16);
}

GRAFT_HD float bf16_bits_to_float(uint16_t b) { return float_from_bits(static_cast<uint32_t>(b) << 16); }

// What a bf16 store followed by a load gives: the input of a bf16 GEMM, seen as a float.
GRAFT_HD float round_to_bf16(float f) { return bf16_bits_to_float(float_to_bf16_bits(f)); }

}  // namespace graft::math

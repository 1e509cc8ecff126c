// bfloat16 rounding (kernels/common/bf16.h, kernels/cpu/bf16): round to nearest even as
// PyTorch's c10::BFloat16, checked against an independent reference that decodes bf16 by
// the format's definition and picks the nearer neighbour in double arithmetic; ties, NaN,
// infinities, signed zeros, subnormals, overflow, the relative error bound, and the array
// functions against the scalar ones; and PyTorch's own rounding of a committed set of
// random floats (tests/fixtures/golden_bf16.safetensors, written by tests/golden/make_bf16.py).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/common/bf16.h"
#include "kernels/cpu/bf16.h"
#include "runtime/safetensors.h"
#include "tests/testing.h"

namespace {

using graft::math::bf16_bits_to_float;
using graft::math::float_bits;
using graft::math::float_from_bits;
using graft::math::float_to_bf16_bits;
using graft::testing::rng;
using graft::testing::test_seed;

bool is_nan_bits(uint16_t b) { return (b & 0x7FFF) > 0x7F80; }

// The value of bf16 bits by the format's definition (1 sign, 8 exponent bits biased by 127,
// 7 mantissa bits; exponent 0 is subnormal). Exponent 255 with mantissa 0 is read as 2^128:
// the next step past the largest finite bf16, which is where RNE measures overflow from.
double bf16_value(uint16_t b) {
  const int e = (b >> 7) & 0xFF, mant = b & 0x7F;
  const double mag = e == 0 ? std::ldexp(double(mant), -133) : std::ldexp(double(128 + mant), e - 134);
  return (b & 0x8000) ? -mag : mag;
}

// Independent reference for finite or infinite x: the two bf16 neighbours of |x| are the
// truncation and the next code up; the nearer wins, an exact tie goes to the even mantissa.
uint16_t reference_bits(float x) {
  const uint16_t lo = static_cast<uint16_t>(float_bits(x) >> 16);
  if ((lo & 0x7FFF) == 0x7F80) return lo;  // an infinity
  const uint16_t hi = static_cast<uint16_t>(lo + 1);
  const double ax = std::abs(double(x)), below = std::abs(bf16_value(lo)), above = std::abs(bf16_value(hi));
  const double d_lo = ax - below, d_hi = above - ax;
  if (d_lo < d_hi) return lo;
  if (d_hi < d_lo) return hi;
  return (lo & 1) ? hi : lo;
}

uint32_t random_bits() { return static_cast<uint32_t>(rng()()); }

// Random floats of every magnitude (uniform bit patterns: every exponent, subnormals, inf,
// NaN), subnormals on purpose, ordinary values, and values next to a rounding boundary.
std::vector<float> random_inputs(size_t n) {
  std::vector<float> v;
  std::uniform_real_distribution<float> unit(-4.0f, 4.0f);
  const uint32_t near_boundary[] = {0x7FFF, 0x8000, 0x8001, 0x0000, 0xFFFF, 0x0001};
  for (size_t i = 0; i < n; ++i) {
    switch (i % 4) {
      case 0: v.push_back(float_from_bits(random_bits())); break;
      case 1: v.push_back(float_from_bits(random_bits() & 0x807FFFFFu)); break;  // subnormal
      case 2: v.push_back(unit(rng())); break;
      default:
        v.push_back(float_from_bits((random_bits() & 0xFFFF0000u) | near_boundary[random_bits() % 6]));
    }
  }
  return v;
}

TEST(Bf16Test, EveryBf16RoundTripsExactly) {
  for (uint32_t b = 0; b <= 0xFFFF; ++b) {
    const auto bits = static_cast<uint16_t>(b);
    const float f = bf16_bits_to_float(bits);
    if (is_nan_bits(bits)) {
      EXPECT_TRUE(std::isnan(f)) << std::hex << b;
      continue;
    }
    // The float is exactly the value the format defines, and converts back to the same bits.
    if ((bits & 0x7FFF) == 0x7F80)
      EXPECT_TRUE(std::isinf(f) && std::signbit(f) == bool(bits & 0x8000)) << std::hex << b;
    else
      EXPECT_EQ(double(f), bf16_value(bits)) << std::hex << b;
    EXPECT_EQ(float_to_bf16_bits(f), bits) << std::hex << b;
    EXPECT_EQ(float_bits(graft::math::round_to_bf16(f)), float_bits(f)) << std::hex << b;
  }
}

TEST(Bf16Test, MatchesIndependentReference) {
  const auto x = random_inputs(400000);
  int reported = 0;
  for (float v : x) {
    if (std::isnan(v)) continue;
    const uint16_t got = float_to_bf16_bits(v), want = reference_bits(v);
    if (got != want && reported++ < 10)
      ADD_FAILURE() << "x bits 0x" << std::hex << float_bits(v) << ": got 0x" << got << " want 0x" << want
                    << std::dec << " (seed " << test_seed() << ")";
    // Rounding a float that is already a bf16 changes nothing.
    EXPECT_EQ(float_to_bf16_bits(bf16_bits_to_float(got)), got);
  }
}

TEST(Bf16Test, ExactTiesGoToTheEvenMantissa) {
  int odd = 0, even = 0;
  for (int i = 0; i < 100000; ++i) {
    // A float whose dropped half is exactly 0x8000 lies halfway between two bf16 values.
    const uint16_t lo = static_cast<uint16_t>(random_bits());
    if ((lo & 0x7FFF) >= 0x7F80) continue;  // inf/NaN have no halfway point
    const float x = float_from_bits(uint32_t{lo} << 16 | 0x8000u);
    const uint16_t got = float_to_bf16_bits(x);
    EXPECT_EQ(got & 1, 0) << std::hex << float_bits(x) << " (seed " << std::dec << test_seed() << ")";
    EXPECT_EQ(got, (lo & 1) ? lo + 1 : lo) << std::hex << float_bits(x);
    // One unit of the float either side of the tie is no longer a tie.
    EXPECT_EQ(float_to_bf16_bits(float_from_bits(uint32_t{lo} << 16 | 0x7FFFu)), lo);
    EXPECT_EQ(float_to_bf16_bits(float_from_bits(uint32_t{lo} << 16 | 0x8001u)), uint16_t(lo + 1));
    ((lo & 1) ? odd : even)++;
  }
  EXPECT_GT(odd, 0);
  EXPECT_GT(even, 0);
}

TEST(Bf16Test, NanInfinitiesZerosSubnormalsAndOverflow) {
  // Every NaN (either sign, quiet or signalling, any payload) becomes the one quiet NaN,
  // even one whose upper half alone would read as infinity.
  for (int i = 0; i < 10000; ++i) {
    const uint32_t payload = (random_bits() & 0x007FFFFFu) | 1u;
    const float nan = float_from_bits((random_bits() & 0x80000000u) | 0x7F800000u | payload);
    ASSERT_TRUE(std::isnan(nan));
    EXPECT_EQ(float_to_bf16_bits(nan), 0x7FC0) << std::hex << float_bits(nan);
  }
  EXPECT_EQ(float_to_bf16_bits(float_from_bits(0x7F800001u)), 0x7FC0);
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(float_to_bf16_bits(inf), 0x7F80);
  EXPECT_EQ(float_to_bf16_bits(-inf), 0xFF80);
  EXPECT_EQ(float_to_bf16_bits(0.0f), 0x0000);
  EXPECT_EQ(float_to_bf16_bits(-0.0f), 0x8000);
  EXPECT_TRUE(std::signbit(graft::math::round_to_bf16(-0.0f)));
  // Overflow: past the largest bf16 (0x7F7F) by half a step or more is infinity (the tie
  // goes to the even code, which is infinity); just below that stays finite.
  EXPECT_EQ(float_to_bf16_bits(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(float_to_bf16_bits(-std::numeric_limits<float>::max()), 0xFF80);
  EXPECT_EQ(float_to_bf16_bits(float_from_bits(0x7F7F8000u)), 0x7F80);
  EXPECT_EQ(float_to_bf16_bits(float_from_bits(0x7F7F7FFFu)), 0x7F7F);
  // Subnormals are rounded, never flushed: the float's smallest subnormal rounds to zero
  // with its sign, bf16's smallest subnormal stays.
  EXPECT_EQ(float_to_bf16_bits(float_from_bits(0x00000001u)), 0x0000);
  EXPECT_EQ(float_to_bf16_bits(float_from_bits(0x80000001u)), 0x8000);
  EXPECT_EQ(float_to_bf16_bits(float_from_bits(0x00008001u)), 0x0001);
  EXPECT_EQ(float_to_bf16_bits(float_from_bits(0x00010000u)), 0x0001);
  // The largest float subnormal carries into the smallest normal bf16.
  EXPECT_EQ(float_to_bf16_bits(float_from_bits(0x007FFFFFu)), 0x0080);
}

TEST(Bf16Test, RelativeErrorIsAtMostHalfAnUlp) {
  // 8 significant bits: in [2^e, 2^(e+1)) the step is 2^(e-7), so the rounding error is at
  // most 2^(e-8) <= 2^-8 |x|. (2^-9 is not a bound: 1 + 2^-8 is a tie and rounds to 1.)
  const double bound = std::ldexp(1.0, -8);
  double worst = 0.0;
  for (float x : random_inputs(400000)) {
    const double ax = std::abs(double(x));
    if (!std::isfinite(x) || ax < std::ldexp(1.0, -126) || ax >= 0x1.FEp127) continue;  // normal, no overflow
    const double r = graft::math::round_to_bf16(x);
    const double rel = std::abs(r - double(x)) / ax;
    worst = std::max(worst, rel);
    ASSERT_LE(rel, bound) << std::hex << float_bits(x) << " (seed " << std::dec << test_seed() << ")";
  }
  // The bound is nearly reached (the uniform bit patterns land close to halfway points).
  EXPECT_GT(worst, std::ldexp(1.0, -9));
  EXPECT_GT(std::abs(double(graft::math::round_to_bf16(1.0f + 0x1p-8f)) - (1.0 + 0x1p-8)) / (1.0 + 0x1p-8),
            std::ldexp(1.0, -9));
}

TEST(Bf16Test, ArrayFunctionsAgreeWithTheScalarOnes) {
  const auto x = random_inputs(10007);
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint16_t> bits(x.size(), 0xDEAD);
  graft::cpu::to_bf16(n, x.data(), bits.data());
  std::vector<float> back(x.size(), -1.0f), rounded(x.size(), -1.0f);
  graft::cpu::from_bf16(n, bits.data(), back.data());
  graft::cpu::round_to_bf16(n, x.data(), rounded.data());
  auto in_place = x;
  graft::cpu::round_to_bf16(n, in_place.data(), in_place.data());
  for (size_t i = 0; i < x.size(); ++i) {
    const uint16_t want = float_to_bf16_bits(x[i]);
    ASSERT_EQ(bits[i], want) << i;
    // from_bf16 is exact: the float's upper half is the bf16, the lower half zero.
    ASSERT_EQ(float_bits(back[i]), uint32_t{want} << 16) << i;
    ASSERT_EQ(float_bits(rounded[i]), uint32_t{want} << 16) << i;
    ASSERT_EQ(float_bits(in_place[i]), uint32_t{want} << 16) << i;
  }
}

TEST(Bf16Test, MatchesPyTorch) {
  const auto f = graft::read_safetensors(GRAFT_FIXTURE_DIR "/golden_bf16.safetensors");
  const auto& tx = f.tensors.at("x");
  const auto& ty = f.tensors.at("y");
  ASSERT_EQ(tx.dtype, "F32");
  ASSERT_EQ(ty.dtype, "BF16");
  const size_t n = tx.bytes.size() / 4;
  ASSERT_GT(n, 10000u);
  ASSERT_EQ(ty.bytes.size(), 2 * n);
  std::vector<float> x(n);
  std::vector<uint16_t> torch_bits(n), ours(n);
  std::memcpy(x.data(), tx.bytes.data(), 4 * n);
  std::memcpy(torch_bits.data(), ty.bytes.data(), 2 * n);
  graft::cpu::to_bf16(static_cast<int64_t>(n), x.data(), ours.data());
  size_t nans = 0, ties = 0;
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(x[i])) {  // torch's vectorized path writes 0xFFFF, c10 and graft 0x7FC0
      ++nans;
      EXPECT_TRUE(is_nan_bits(torch_bits[i])) << i;
      EXPECT_EQ(ours[i], 0x7FC0) << i;
      continue;
    }
    ties += (float_bits(x[i]) & 0xFFFF) == 0x8000 ? 1 : 0;
    ASSERT_EQ(ours[i], torch_bits[i]) << "x bits 0x" << std::hex << float_bits(x[i]) << " (element " << std::dec << i
                                      << ")";
  }
  EXPECT_GT(nans, 0u);  // the fixture covers the cases it claims to
  EXPECT_GT(ties, 1000u);
}

}  // namespace

// The bf16 tensor-core GEMM (kernels/cuda/tensor_core_gemm) against a double-precision CPU
// GEMM of the same bf16-rounded inputs (kernels/cpu/bf16), and its conversion kernels
// against kernels/cpu/bf16 bit for bit.
//
// Two input kinds, two rules:
// - Dyadic inputs (multiples of 1/8 in [-1, 1], bias multiples of 1/64): every product and
//   every partial sum is a multiple of 1/64 below 2^18 in magnitude, exact in fp32, so any
//   summation order gives the exact result: fp32 output must equal the reference exactly,
//   bf16 output must be its round-to-nearest-even. One misplaced term fails.
// - Uniform random inputs in [-1, 1]: per element, |got - ref| <= 2^-22 K S, where
//   S = sum_k |x_k w_k| + |bias|: the worst case of K fp32 additions in any order, each off
//   by at most 2 ulps of the partial sum (tensor cores may truncate, not round), with 2x to
//   spare. bf16 output may add one bf16 rounding: + 2^-8 |ref|.
// Shapes: 1x1x1, odd sizes with K not a multiple of 16 (or of 8: element-wise load path),
// exact tiles, misaligned operands, and large ones (vgg16's fc at batch 64, split-K or not).
// Outputs are poisoned first; large outputs are checked on 8192 sampled elements, plus a
// check that every element was written.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gpu_testing.h"
#include "kernels/common/bf16.h"
#include "kernels/cpu/bf16.h"
#include "kernels/cuda/tensor_core_gemm.h"

namespace graft::testing {
namespace {

struct Shape {
  int64_t M;
  int N, K;
};

std::string describe(const Shape& s) {
  return "tensor-core gemm M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K);
}

constexpr uint16_t kBf16Poison = 0xFFFF;  // a NaN the kernel never writes (it writes 0x7FC0)

// Host inputs: values already bf16 (as floats, for the reference) and their bits.
struct Operand {
  std::vector<float> value;
  std::vector<uint16_t> bits;
};

Operand make_operand(size_t n, bool dyadic) {
  Operand o;
  if (dyadic) {
    o.value.resize(n);
    for (auto& v : o.value) v = static_cast<float>(random_int(-8, 8)) / 8.0f;
  } else {
    o.value = random_floats(n);
  }
  cpu::round_to_bf16(static_cast<int64_t>(n), o.value.data(), o.value.data());
  o.bits.resize(n);
  cpu::to_bf16(static_cast<int64_t>(n), o.value.data(), o.bits.data());
  return o;
}

std::vector<float> make_bias(int n, bool dyadic) {
  if (!dyadic) return random_floats(static_cast<size_t>(n));
  std::vector<float> b(static_cast<size_t>(n));
  for (auto& v : b) v = static_cast<float>(random_int(-256, 256)) / 64.0f;
  return b;
}

struct Case {
  Shape s;
  bool bias, relu, bf16_out, split;
  int misalign = 0;  // elements to offset x, w and y by (breaks 16-byte alignment)
};

class TensorCoreGpu : public GpuTest {
 protected:
  void run(const Case& c, bool dyadic) {
    const Shape& s = c.s;
    SCOPED_TRACE(describe(s) + (c.bias ? " bias" : "") + (c.relu ? " relu" : "") + (c.bf16_out ? " bf16-out" : " fp32-out") +
                 (c.split ? " split-k" : "") + (c.misalign ? " misaligned" : "") + (dyadic ? " dyadic" : " uniform") +
                 " seed " + std::to_string(test_seed()));
    const size_t xn = static_cast<size_t>(s.M) * s.K, wn = static_cast<size_t>(s.N) * s.K;
    const size_t yn = static_cast<size_t>(s.M) * s.N;
    const Operand x = make_operand(xn, dyadic), w = make_operand(wn, dyadic);
    const std::vector<float> bias = make_bias(s.N, dyadic);

    const size_t off = static_cast<size_t>(c.misalign);
    std::vector<uint16_t> xh(off, 0), wh(off, 0);
    xh.insert(xh.end(), x.bits.begin(), x.bits.end());
    wh.insert(wh.end(), w.bits.begin(), w.bits.end());
    auto dx = to_device(xh), dw = to_device(wh);
    auto db = to_device(bias);
    DeviceArray<float> ws(c.split ? cuda::tensor_core_gemm_workspace_floats(s.M, s.N, s.K) : 0);
    if (c.split) {
      EXPECT_GT(ws.size(), 0u) << "this shape was meant to take the split-K path";
    }
    const float* bias_ptr = c.bias ? db.get() : nullptr;

    std::vector<float> got(yn);
    if (c.bf16_out) {
      auto dy = to_device(std::vector<uint16_t>(yn + off, kBf16Poison));
      cuda::tensor_core_gemm(s.M, s.N, s.K, dx.get() + off, dw.get() + off, bias_ptr, dy.get() + off, stream(), c.relu,
                             ws.get());
      const auto bits = dy.download();
      cpu::from_bf16(static_cast<int64_t>(yn), bits.data() + off, got.data());
    } else {
      auto dy = to_device(std::vector<float>(yn + off, std::numeric_limits<float>::quiet_NaN()));
      cuda::tensor_core_gemm(s.M, s.N, s.K, dx.get() + off, dw.get() + off, bias_ptr, dy.get() + off, stream(), c.relu,
                             ws.get());
      const auto all = dy.download();
      got.assign(all.begin() + static_cast<std::ptrdiff_t>(off), all.end());
    }

    // Every element written (poison gone; inputs are finite, so outputs are).
    size_t unwritten = 0;
    for (float v : got) unwritten += std::isnan(v) ? 1 : 0;
    EXPECT_EQ(unwritten, 0u) << "outputs left unwritten (or NaN)";

    const bool sample = static_cast<double>(yn) * s.K > double(1 << 27);
    const size_t checks = sample ? 8192 : yn;
    int reported = 0;
    for (size_t t = 0; t < checks; ++t) {
      const size_t e = sample ? static_cast<size_t>(rng()() % yn) : t;
      const int64_t m = static_cast<int64_t>(e / static_cast<size_t>(s.N));
      const int n = static_cast<int>(e % static_cast<size_t>(s.N));
      double ref = c.bias ? bias[static_cast<size_t>(n)] : 0.0, mag = std::abs(ref);
      for (int k = 0; k < s.K; ++k) {
        const double p = double(x.value[static_cast<size_t>(m) * s.K + k]) * double(w.value[static_cast<size_t>(n) * s.K + k]);
        ref += p;
        mag += std::abs(p);
      }
      if (c.relu) ref = std::max(ref, 0.0);
      double want = ref, tol;
      if (dyadic) {
        tol = 0.0;
        if (c.bf16_out) want = math::round_to_bf16(static_cast<float>(ref));
      } else {
        tol = std::ldexp(1.0, -22) * s.K * mag + (c.bf16_out ? std::ldexp(1.0, -8) * std::abs(ref) : 0.0);
      }
      const double diff = std::abs(double(got[e]) - want);
      if (!(diff <= tol) && reported++ < 8)
        ADD_FAILURE() << "y[" << m << ", " << n << "] = " << got[e] << ", want " << want << " (|diff| " << diff
                      << " > tolerance " << tol << ")";
    }
  }

  void run_all(const std::vector<Case>& cases) {
    for (const auto& c : cases)
      for (bool dyadic : {true, false}) run(c, dyadic);
  }
};

const std::vector<Shape> kSmall = {{1, 1, 1},     {37, 53, 70},  {37, 53, 72},   {128, 128, 32},
                                   {129, 257, 48}, {3, 130, 200}, {300, 17, 1000}, {256, 256, 136}};

TEST_F(TensorCoreGpu, SmallAndOddShapesAllEpilogues) {
  std::vector<Case> cases;
  for (const auto& s : kSmall)
    for (bool bias : {false, true})
      for (bool relu : {false, true})
        for (bool bf16_out : {false, true}) cases.push_back({s, bias, relu, bf16_out, false});
  run_all(cases);
}

TEST_F(TensorCoreGpu, MisalignedOperandsTakeTheElementWisePath) {
  // K a multiple of 8 but x, w, y off by one element: no 16-byte copies, no paired stores.
  std::vector<Case> cases;
  for (const Shape& s : {Shape{37, 54, 72}, Shape{130, 128, 64}})
    for (bool bf16_out : {false, true}) cases.push_back({s, true, true, bf16_out, false, 1});
  run_all(cases);
}

TEST_F(TensorCoreGpu, LargeShapes) {
  // vgg16's classifier at batch 64 (25088 -> 4096, 4096 -> 4096) and a square-ish one.
  run_all({{{64, 4096, 25088}, true, true, false, false},
           {{512, 1024, 4096}, true, false, true, false},
           {{64, 4096, 4096}, false, false, false, false}});
}

TEST_F(TensorCoreGpu, SplitKMatchesAndIsDeterministic) {
  run_all({{{64, 4096, 25088}, true, true, false, true},
           {{64, 1000, 4104}, true, false, true, true},
           {{5, 7, 2050}, false, false, false, true}});
  // Run to run, the same bits (slices are added in a fixed order).
  const Shape s{64, 4096, 25088};
  const Operand x = make_operand(static_cast<size_t>(s.M) * s.K, false), w = make_operand(static_cast<size_t>(s.N) * s.K, false);
  auto dx = to_device(x.bits), dw = to_device(w.bits);
  DeviceArray<float> ws(cuda::tensor_core_gemm_workspace_floats(s.M, s.N, s.K));
  ASSERT_GT(ws.size(), 0u);
  auto y1 = poisoned_device(static_cast<size_t>(s.M) * s.N), y2 = poisoned_device(static_cast<size_t>(s.M) * s.N);
  cuda::tensor_core_gemm(s.M, s.N, s.K, dx.get(), dw.get(), nullptr, y1.get(), stream(), false, ws.get());
  cuda::tensor_core_gemm(s.M, s.N, s.K, dx.get(), dw.get(), nullptr, y2.get(), stream(), false, ws.get());
  const auto a = y1.download(), b = y2.download();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(math::float_bits(a[i]), math::float_bits(b[i])) << i;
}

TEST_F(TensorCoreGpu, RejectsBadShapesAndSkipsEmptyBatches) {
  auto dx = to_device(std::vector<uint16_t>(16, 0)), dw = to_device(std::vector<uint16_t>(16, 0));
  auto dy = poisoned_device(16);
  EXPECT_NE(error_of([&] { cuda::tensor_core_gemm(1, 0, 4, dx.get(), dw.get(), nullptr, dy.get(), stream()); })
                .find("bad tensor-core GEMM shape"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::tensor_core_gemm(1, 4, 0, dx.get(), dw.get(), nullptr, dy.get(), stream()); })
                .find("bad tensor-core GEMM shape"),
            std::string::npos);
  cuda::tensor_core_gemm(0, 4, 4, dx.get(), dw.get(), nullptr, dy.get(), stream());  // M = 0: writes nothing
  for (float v : dy.download()) EXPECT_TRUE(std::isnan(v));
}

TEST_F(TensorCoreGpu, ConversionsMatchTheCpuBitForBit) {
  // float -> bf16 on random bit patterns (every exponent, subnormals, inf, NaN) and ordinary values.
  std::vector<float> f = random_floats(1 << 20, -3.0f, 3.0f);
  for (size_t i = 1; i < f.size(); i += 2) f[i] = math::float_from_bits(static_cast<uint32_t>(rng()()));
  std::vector<uint16_t> want(f.size());
  cpu::to_bf16(static_cast<int64_t>(f.size()), f.data(), want.data());
  auto df = to_device(f);
  auto db = to_device(std::vector<uint16_t>(f.size(), kBf16Poison));
  cuda::float_to_bf16(static_cast<int64_t>(f.size()), df.get(), db.get(), stream());
  const auto got = db.download();
  for (size_t i = 0; i < f.size(); ++i)
    ASSERT_EQ(got[i], want[i]) << "x bits 0x" << std::hex << math::float_bits(f[i]) << std::dec << " seed " << test_seed();

  // bf16 -> float on every bf16 bit pattern.
  std::vector<uint16_t> all(1 << 16);
  for (uint32_t b = 0; b < all.size(); ++b) all[b] = static_cast<uint16_t>(b);
  std::vector<float> wide(all.size());
  cpu::from_bf16(static_cast<int64_t>(all.size()), all.data(), wide.data());
  auto dall = to_device(all);
  auto dwide = poisoned_device(all.size());
  cuda::bf16_to_float(static_cast<int64_t>(all.size()), dall.get(), dwide.get(), stream());
  const auto got_wide = dwide.download();
  for (size_t i = 0; i < all.size(); ++i)
    ASSERT_EQ(math::float_bits(got_wide[i]), math::float_bits(wide[i])) << "bf16 0x" << std::hex << i;
}

}  // namespace
}  // namespace graft::testing

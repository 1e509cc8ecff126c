// Element-wise ops on the device against the CPU loops (the same shared math).
#include <cstring>
#include <limits>
#include <vector>

#include "gpu_testing.h"
#include "kernels/common/elementwise.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/bf16.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/misc.h"

namespace graft::testing {
namespace {

const std::vector<int64_t> kCounts = {1, 1000, (int64_t{1} << 20) + 3};

class ElementwiseGpu : public GpuTest {};

TEST_F(ElementwiseGpu, Relu) {
  for (int64_t n : kCounts) {
    SCOPED_TRACE("count " + std::to_string(n));
    const auto x = random_floats(static_cast<size_t>(n)), dy = random_floats(static_cast<size_t>(n));
    std::vector<float> ref_y(static_cast<size_t>(n)), ref_dx(static_cast<size_t>(n));
    cpu::relu_forward(n, x.data(), ref_y.data());
    cpu::relu_backward(n, ref_y.data(), dy.data(), ref_dx.data());
    auto dx_in = to_device(x), ddy = to_device(dy);
    auto y = poisoned_device(static_cast<size_t>(n)), ddx = poisoned_device(static_cast<size_t>(n));
    cuda::relu_forward(n, dx_in.get(), y.get(), stream());
    cuda::relu_backward(n, y.get(), ddy.get(), ddx.get(), stream());
    EXPECT_EQ(y.download(), ref_y);
    EXPECT_EQ(ddx.download(), ref_dx);
  }
}

// --precision bf16's rounding (Ops::round_to_bf16), bit for bit the CPU's, specials included.
TEST_F(ElementwiseGpu, RoundToBf16) {
  for (int64_t n : kCounts) {
    SCOPED_TRACE("count " + std::to_string(n));
    auto x = random_floats(static_cast<size_t>(n), -1e3f, 1e3f);
    if (n > 8) {
      x[0] = std::numeric_limits<float>::quiet_NaN();
      x[1] = std::numeric_limits<float>::infinity();
      x[2] = -0.0f;
      x[3] = std::numeric_limits<float>::denorm_min();
      x[4] = std::numeric_limits<float>::max();
    }
    std::vector<float> ref(static_cast<size_t>(n));
    cpu::round_to_bf16(n, x.data(), ref.data());
    auto dx = to_device(x);
    auto y = poisoned_device(static_cast<size_t>(n));
    cuda::round_to_bf16(n, dx.get(), y.get(), stream());
    const auto got = y.download();
    ASSERT_EQ(got.size(), ref.size());
    EXPECT_EQ(std::memcmp(got.data(), ref.data(), ref.size() * sizeof(float)), 0);
  }
}

TEST_F(ElementwiseGpu, Dropout) {
  for (int64_t n : kCounts)
    for (float p : {0.0f, 0.3f, 0.5f}) {
      SCOPED_TRACE("count " + std::to_string(n) + " p " + std::to_string(p));
      const uint64_t seed = rng()();
      const int64_t step = int64_t(rng()() % 100000);
      const int node = int(rng()() % 64);
      const uint64_t rs = math::layer_stream(step, node);
      const int64_t first = int64_t(rng()() % 100000);  // a part of a bigger batch
      const auto x = random_floats(static_cast<size_t>(n)), dy = random_floats(static_cast<size_t>(n));
      std::vector<float> ref_y(static_cast<size_t>(n)), ref_dx(static_cast<size_t>(n));
      cpu::dropout_forward(n, p, seed, rs, first, x.data(), ref_y.data());
      cpu::dropout_backward(n, p, seed, rs, first, dy.data(), ref_dx.data());
      auto dx_in = to_device(x), ddy = to_device(dy);
      auto y = poisoned_device(static_cast<size_t>(n)), ddx = poisoned_device(static_cast<size_t>(n));
      cuda::dropout_forward(n, p, seed, rs, first, dx_in.get(), y.get(), stream());
      cuda::dropout_backward(n, p, seed, rs, first, ddy.get(), ddx.get(), stream());
      EXPECT_LT(relative_error(y.download(), ref_y), kFp32Tolerance);
      EXPECT_LT(relative_error(ddx.download(), ref_dx), kFp32Tolerance);
      // The graph-replayable variant reads the step from device memory.
      auto d_step = to_device(std::vector<int64_t>{step});
      auto y2 = poisoned_device(static_cast<size_t>(n)), dx2 = poisoned_device(static_cast<size_t>(n));
      cuda::dropout_forward_replayable(n, p, seed, d_step.get(), node, first, dx_in.get(), y2.get(), stream());
      cuda::dropout_backward_replayable(n, p, seed, d_step.get(), node, first, ddy.get(), dx2.get(), stream());
      EXPECT_EQ(y2.download(), y.download());
      EXPECT_EQ(dx2.download(), ddx.download());
    }
}

TEST_F(ElementwiseGpu, AddAndScale) {
  for (int64_t n : kCounts) {
    SCOPED_TRACE("count " + std::to_string(n));
    const auto a = random_floats(static_cast<size_t>(n)), b = random_floats(static_cast<size_t>(n));
    std::vector<float> ref(static_cast<size_t>(n));
    cpu::add(n, a.data(), b.data(), ref.data());
    auto da = to_device(a), db = to_device(b);
    auto y = poisoned_device(static_cast<size_t>(n));
    cuda::add(n, da.get(), db.get(), y.get(), stream());
    EXPECT_EQ(y.download(), ref);
    cuda::add(n, da.get(), db.get(), da.get(), stream());  // y aliasing a
    EXPECT_EQ(da.download(), ref);
    cpu::scale(n, -0.37f, ref.data());
    cuda::scale(n, -0.37f, y.get(), stream());
    EXPECT_EQ(y.download(), ref);
  }
}

}  // namespace
}  // namespace graft::testing

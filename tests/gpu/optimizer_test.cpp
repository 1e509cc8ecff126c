// Fused optimizer steps on the device against the CPU loops (the same shared update), over
// several steps, with the per-step scalars read from device memory.
#include <cmath>
#include <vector>

#include "gpu_testing.h"
#include "kernels/cpu/optimizer.h"
#include "kernels/cuda/optimizer.h"

namespace graft::testing {
namespace {

class OptimizerGpu : public GpuTest {};

const std::vector<int64_t> kCounts = {1, 1000, 100003};

TEST_F(OptimizerGpu, Sgd) {
  std::vector<math::SgdHyper> hypers(4);
  hypers[1].momentum = 0.9f;
  hypers[2].momentum = 0.9f;
  hypers[2].nesterov = true;
  hypers[2].weight_decay = 1e-2f;
  hypers[3].momentum = 0.5f;
  hypers[3].dampening = 0.1f;
  for (int64_t n : kCounts)
    for (size_t hi = 0; hi < hypers.size(); ++hi) {
      const auto& h = hypers[hi];
      SCOPED_TRACE("count " + std::to_string(n) + " hyper " + std::to_string(hi));
      auto p = random_floats(static_cast<size_t>(n));
      std::vector<float> buf(static_cast<size_t>(n), 0.0f);
      auto dp = to_device(p), dbuf = to_device(buf);
      auto d_scalars = DeviceArray<math::StepScalars>(1);
      for (int step = 1; step <= 3; ++step) {
        const auto g = random_floats(static_cast<size_t>(n));
        math::StepScalars s;
        s.lr = 0.1f / float(step);
        s.first_step = step == 1;
        cpu::sgd_step(n, p.data(), g.data(), h.momentum != 0.0f ? buf.data() : nullptr, h, s);
        auto dg = to_device(g);
        d_scalars.upload({s});
        cuda::sgd_step(n, dp.get(), dg.get(), h.momentum != 0.0f ? dbuf.get() : nullptr, h, d_scalars.get(), stream());
      }
      EXPECT_LT(relative_error(dp.download(), p), kFp32Tolerance);
      if (h.momentum != 0.0f) {
        EXPECT_LT(relative_error(dbuf.download(), buf), kFp32Tolerance);
      }
    }
}

TEST_F(OptimizerGpu, AdamAndAdamW) {
  std::vector<math::AdamHyper> hypers(3);
  hypers[1].weight_decay = 1e-2f;
  hypers[2].weight_decay = 1e-2f;
  hypers[2].decoupled = true;
  for (int64_t n : kCounts)
    for (size_t hi = 0; hi < hypers.size(); ++hi) {
      const auto& h = hypers[hi];
      SCOPED_TRACE("count " + std::to_string(n) + " hyper " + std::to_string(hi));
      auto p = random_floats(static_cast<size_t>(n));
      std::vector<float> m(static_cast<size_t>(n), 0.0f), v(static_cast<size_t>(n), 0.0f);
      auto dp = to_device(p), dm = to_device(m), dv = to_device(v);
      auto d_scalars = DeviceArray<math::StepScalars>(1);
      for (int step = 1; step <= 3; ++step) {
        const auto g = random_floats(static_cast<size_t>(n));
        math::StepScalars s;
        s.lr = 1e-3f;
        s.bias_correction1 = 1.0f - std::pow(h.beta1, float(step));
        s.bias_correction2_sqrt = std::sqrt(1.0f - std::pow(h.beta2, float(step)));
        cpu::adam_step(n, p.data(), g.data(), m.data(), v.data(), h, s);
        auto dg = to_device(g);
        d_scalars.upload({s});
        cuda::adam_step(n, dp.get(), dg.get(), dm.get(), dv.get(), h, d_scalars.get(), stream());
      }
      EXPECT_LT(relative_error(dp.download(), p), kFp32Tolerance);
      EXPECT_LT(relative_error(dm.download(), m), kFp32Tolerance);
      EXPECT_LT(relative_error(dv.download(), v), kFp32Tolerance);
    }
}

}  // namespace
}  // namespace graft::testing

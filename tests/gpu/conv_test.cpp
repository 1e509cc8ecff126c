// Convolution on the device, native (kernels/cuda) and cuDNN (kernels/lib), forward and both
// backward directions, against the CPU reference. fp32: relative error < 1e-5.
#include <vector>

#include "gpu_testing.h"
#include "kernels/cpu/conv.h"
#include "kernels/cuda/conv.h"
#include "kernels/lib/conv.h"

namespace graft::testing {
namespace {

Conv2dGeometry conv(int n, int h, int w, int c_in, int c_out, int kh, int kw, int stride, int pad) {
  Conv2dGeometry g;
  g.n = n; g.h = h; g.w = w; g.c_in = c_in; g.c_out = c_out; g.kh = kh; g.kw = kw; g.stride = stride; g.pad = pad;
  return g;
}

// Odd sizes, stride 2, padding, batch 1, 1x1, non-square kernels, a ResNet-like stem, and one
// big enough that the native weight gradient splits its reduction.
const std::vector<Conv2dGeometry> kShapes = {
    conv(2, 9, 7, 3, 5, 3, 3, 1, 1),    conv(1, 8, 8, 16, 32, 3, 3, 2, 1),  conv(3, 11, 13, 7, 65, 5, 3, 2, 2),
    conv(1, 5, 5, 1, 1, 1, 1, 1, 0),    conv(2, 6, 10, 9, 4, 2, 2, 2, 0),   conv(4, 14, 14, 3, 8, 7, 7, 2, 3),
    conv(1, 3, 3, 4, 3, 3, 3, 1, 0),    conv(2, 32, 32, 64, 64, 3, 3, 1, 1), conv(1, 17, 17, 33, 17, 3, 3, 2, 1),
};

class ConvGpu : public GpuTest {
 protected:
  void forward(Impl impl) {
    for (const auto& g : kShapes)
      for (bool with_bias : {true, false}) {
        SCOPED_TRACE(describe(g) + (with_bias ? " bias" : " no bias") + " " + name(impl));
        const auto x = random_floats(g.input_numel()), w = random_floats(g.weight_numel()),
                   b = random_floats(g.c_out);
        std::vector<float> ref(g.output_numel());
        cpu::conv2d_forward_reference(g, x.data(), w.data(), with_bias ? b.data() : nullptr, ref.data());
        auto dx = to_device(x), dw = to_device(w), db = to_device(b);
        auto dy = poisoned_device(ref.size());
        const float* bias = with_bias ? db.get() : nullptr;
        if (impl == Impl::Native)
          cuda::conv2d_forward(g, dx.get(), dw.get(), bias, dy.get(), stream());
        else
          lib::conv2d_forward(lib(), g, dx.get(), dw.get(), bias, dy.get(), stream());
        EXPECT_LT(relative_error(dy.download(), ref), kFp32Tolerance);
      }
  }

  void backward_data(Impl impl) {
    for (const auto& g : kShapes) {
      SCOPED_TRACE(describe(g) + " " + name(impl));
      const auto dy = random_floats(g.output_numel()), w = random_floats(g.weight_numel());
      std::vector<float> ref(g.input_numel());
      cpu::conv2d_backward_data_reference(g, dy.data(), w.data(), ref.data());
      auto ddy = to_device(dy), dw = to_device(w);
      auto ddx = poisoned_device(ref.size());
      if (impl == Impl::Native)
        cuda::conv2d_backward_data(g, ddy.get(), dw.get(), ddx.get(), stream());
      else
        lib::conv2d_backward_data(lib(), g, ddy.get(), dw.get(), ddx.get(), stream());
      EXPECT_LT(relative_error(ddx.download(), ref), kFp32Tolerance);
    }
  }

  void backward_filter(Impl impl, bool use_workspace) {
    for (const auto& g : kShapes)
      for (bool with_bias : {true, false}) {
        SCOPED_TRACE(describe(g) + (with_bias ? " dbias" : " no dbias") + " " + name(impl) +
                     (use_workspace ? " split-k workspace" : ""));
        const auto x = random_floats(g.input_numel()), dy = random_floats(g.output_numel());
        std::vector<float> ref_w(g.weight_numel()), ref_b(g.c_out);
        cpu::conv2d_backward_filter_reference(g, x.data(), dy.data(), ref_w.data(), with_bias ? ref_b.data() : nullptr);
        auto dx = to_device(x), ddy = to_device(dy);
        auto ddw = poisoned_device(ref_w.size()), ddb = poisoned_device(ref_b.size());
        float* dbias = with_bias ? ddb.get() : nullptr;
        if (impl == Impl::Native) {
          DeviceArray<float> ws;
          if (use_workspace) ws = poisoned_device(cuda::conv2d_backward_filter_workspace_floats(g));
          cuda::conv2d_backward_filter(g, dx.get(), ddy.get(), ddw.get(), dbias, ws.get(), stream());
        } else {
          lib::conv2d_backward_filter(lib(), g, dx.get(), ddy.get(), ddw.get(), dbias, stream());
        }
        EXPECT_LT(relative_error(ddw.download(), ref_w), kFp32Tolerance);
        if (with_bias) {
          EXPECT_LT(relative_error(ddb.download(), ref_b), kFp32Tolerance);
        }
      }
  }
};

TEST_F(ConvGpu, NativeForward) { forward(Impl::Native); }
TEST_F(ConvGpu, LibraryForward) { forward(Impl::Library); }
TEST_F(ConvGpu, NativeBackwardData) { backward_data(Impl::Native); }
TEST_F(ConvGpu, LibraryBackwardData) { backward_data(Impl::Library); }
TEST_F(ConvGpu, NativeBackwardFilter) { backward_filter(Impl::Native, false); }
TEST_F(ConvGpu, NativeBackwardFilterSplitK) { backward_filter(Impl::Native, true); }
TEST_F(ConvGpu, LibraryBackwardFilter) { backward_filter(Impl::Library, false); }

// The split-K weight gradient adds its slices in a fixed order: bitwise the same every run.
TEST_F(ConvGpu, NativeBackwardFilterIsDeterministic) {
  const Conv2dGeometry g = conv(2, 32, 32, 64, 64, 3, 3, 1, 1);
  ASSERT_GT(cuda::conv2d_backward_filter_workspace_floats(g), 0u) << "shape meant to exercise split-K";
  auto x = to_device(random_floats(g.input_numel())), dy = to_device(random_floats(g.output_numel()));
  auto ws = poisoned_device(cuda::conv2d_backward_filter_workspace_floats(g));
  std::vector<std::vector<float>> runs;
  for (int r = 0; r < 2; ++r) {
    auto dw = poisoned_device(g.weight_numel()), db = poisoned_device(g.c_out);
    cuda::conv2d_backward_filter(g, x.get(), dy.get(), dw.get(), db.get(), ws.get(), stream());
    auto w = dw.download();
    auto b = db.download();
    w.insert(w.end(), b.begin(), b.end());
    runs.push_back(std::move(w));
  }
  EXPECT_EQ(runs[0], runs[1]);
}

// Planning once: after a shape is planned, repeated library calls allocate nothing.
TEST_F(ConvGpu, LibraryPlansOnce) {
  const Conv2dGeometry g = conv(2, 16, 16, 8, 16, 3, 3, 1, 1);
  auto x = to_device(random_floats(g.input_numel())), w = to_device(random_floats(g.weight_numel()));
  auto y = poisoned_device(g.output_numel());
  lib::plan_conv2d(lib(), g);
  const size_t before = pool().stats().system_allocations;
  for (int i = 0; i < 3; ++i) lib::conv2d_forward(lib(), g, x.get(), w.get(), nullptr, y.get(), stream());
  GRAFT_CUDA_CHECK(cudaStreamSynchronize(stream()));
  EXPECT_EQ(pool().stats().system_allocations, before);
  EXPECT_EQ(lib().conv_plans.size(), 1u);
}

}  // namespace
}  // namespace graft::testing

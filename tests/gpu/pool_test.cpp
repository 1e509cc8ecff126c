// Pooling on the device, native and cuDNN, forward and backward, against the CPU reference.
#include <vector>

#include "gpu_testing.h"
#include "kernels/cpu/pool.h"
#include "kernels/cuda/pool.h"
#include "kernels/lib/pool.h"

namespace graft::testing {
namespace {

Pool2dGeometry pool2d(int n, int h, int w, int c, int kh, int kw, int stride, int pad) {
  Pool2dGeometry g;
  g.n = n; g.h = h; g.w = w; g.c = c; g.kh = kh; g.kw = kw; g.stride = stride; g.pad = pad;
  return g;
}

const std::vector<Pool2dGeometry> kShapes = {
    pool2d(2, 8, 8, 3, 2, 2, 2, 0),   pool2d(1, 7, 9, 5, 3, 3, 2, 1),  pool2d(3, 5, 5, 17, 3, 3, 1, 1),
    pool2d(2, 13, 11, 64, 3, 2, 2, 1), pool2d(1, 1, 1, 1, 1, 1, 1, 0), pool2d(4, 15, 15, 8, 2, 2, 2, 0),
};

struct GlobalShape {
  int n, h, w, c;
};
const std::vector<GlobalShape> kGlobalShapes = {{2, 7, 7, 33}, {1, 1, 1, 5}, {3, 5, 3, 128}, {1, 14, 14, 512}};

class PoolGpu : public GpuTest {
 protected:
  void run(Impl impl, bool max) {
    for (const auto& g : kShapes) {
      SCOPED_TRACE(describe(g) + (max ? " max " : " avg ") + name(impl));
      const auto x = random_floats(g.input_numel()), dy = random_floats(g.output_numel());
      std::vector<float> ref_y(g.output_numel()), ref_dx(g.input_numel());
      if (max) {
        cpu::maxpool2d_forward(g, x.data(), ref_y.data());
        cpu::maxpool2d_backward(g, x.data(), dy.data(), ref_dx.data());
      } else {
        cpu::avgpool2d_forward(g, x.data(), ref_y.data());
        cpu::avgpool2d_backward(g, dy.data(), ref_dx.data());
      }
      auto dx_in = to_device(x), ddy = to_device(dy);
      auto dy_out = poisoned_device(ref_y.size()), ddx = poisoned_device(ref_dx.size());
      if (impl == Impl::Native) {
        if (max) {
          cuda::maxpool2d_forward(g, dx_in.get(), dy_out.get(), stream());
          cuda::maxpool2d_backward(g, dx_in.get(), ddy.get(), ddx.get(), stream());
        } else {
          cuda::avgpool2d_forward(g, dx_in.get(), dy_out.get(), stream());
          cuda::avgpool2d_backward(g, ddy.get(), ddx.get(), stream());
        }
      } else {
        if (max) {
          lib::maxpool2d_forward(lib(), g, dx_in.get(), dy_out.get(), stream());
          lib::maxpool2d_backward(lib(), g, dx_in.get(), dy_out.get(), ddy.get(), ddx.get(), stream());
        } else {
          lib::avgpool2d_forward(lib(), g, dx_in.get(), dy_out.get(), stream());
          lib::avgpool2d_backward(lib(), g, ddy.get(), ddx.get(), stream());
        }
      }
      EXPECT_LT(relative_error(dy_out.download(), ref_y), kFp32Tolerance) << "forward";
      EXPECT_LT(relative_error(ddx.download(), ref_dx), kFp32Tolerance) << "backward";
    }
  }

  void run_global(Impl impl) {
    for (const auto& s : kGlobalShapes) {
      SCOPED_TRACE("global avgpool n=" + std::to_string(s.n) + " h=" + std::to_string(s.h) + " w=" +
                   std::to_string(s.w) + " c=" + std::to_string(s.c) + " " + name(impl));
      const size_t in_n = static_cast<size_t>(s.n) * s.h * s.w * s.c, out_n = static_cast<size_t>(s.n) * s.c;
      const auto x = random_floats(in_n), dy = random_floats(out_n);
      std::vector<float> ref_y(out_n), ref_dx(in_n);
      cpu::global_avgpool_forward(s.n, s.h, s.w, s.c, x.data(), ref_y.data());
      cpu::global_avgpool_backward(s.n, s.h, s.w, s.c, dy.data(), ref_dx.data());
      auto dx_in = to_device(x), ddy = to_device(dy);
      auto dy_out = poisoned_device(out_n), ddx = poisoned_device(in_n);
      if (impl == Impl::Native) {
        cuda::global_avgpool_forward(s.n, s.h, s.w, s.c, dx_in.get(), dy_out.get(), stream());
        cuda::global_avgpool_backward(s.n, s.h, s.w, s.c, ddy.get(), ddx.get(), stream());
      } else {
        lib::global_avgpool_forward(lib(), s.n, s.h, s.w, s.c, dx_in.get(), dy_out.get(), stream());
        lib::global_avgpool_backward(lib(), s.n, s.h, s.w, s.c, ddy.get(), ddx.get(), stream());
      }
      EXPECT_LT(relative_error(dy_out.download(), ref_y), kFp32Tolerance) << "forward";
      EXPECT_LT(relative_error(ddx.download(), ref_dx), kFp32Tolerance) << "backward";
    }
  }
};

TEST_F(PoolGpu, NativeMaxPool) { run(Impl::Native, true); }
TEST_F(PoolGpu, LibraryMaxPool) { run(Impl::Library, true); }
TEST_F(PoolGpu, NativeAvgPool) { run(Impl::Native, false); }
TEST_F(PoolGpu, LibraryAvgPool) { run(Impl::Library, false); }
TEST_F(PoolGpu, NativeGlobalAvgPool) { run_global(Impl::Native); }
TEST_F(PoolGpu, LibraryGlobalAvgPool) { run_global(Impl::Library); }

}  // namespace
}  // namespace graft::testing

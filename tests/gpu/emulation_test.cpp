// The native kernels' GEMM problems (the implicit-GEMM index math of convolution, the dense
// layouts, the dbias column, the split-K slicing) run on the host and compared with the CPU
// reference. Needs no device: on a machine without one this is what checks kernels/cuda's
// arithmetic; the device suites then check the tiling and the launch.
#include <vector>

#include "kernels/cpu/conv.h"
#include "kernels/cpu/dense.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/conv.h"
#include "kernels/cuda/dense.h"
#include "testing.h"

namespace graft::testing {
namespace {

Conv2dGeometry conv(int n, int h, int w, int c_in, int c_out, int kh, int kw, int stride, int pad) {
  Conv2dGeometry g;
  g.n = n; g.h = h; g.w = w; g.c_in = c_in; g.c_out = c_out; g.kh = kh; g.kw = kw; g.stride = stride; g.pad = pad;
  return g;
}

const std::vector<Conv2dGeometry> kShapes = {
    conv(2, 9, 7, 3, 5, 3, 3, 1, 1),  conv(1, 8, 8, 16, 32, 3, 3, 2, 1), conv(3, 11, 13, 7, 65, 5, 3, 2, 2),
    conv(1, 5, 5, 1, 1, 1, 1, 1, 0),  conv(2, 6, 10, 9, 4, 2, 2, 2, 0),  conv(4, 14, 14, 3, 8, 7, 7, 2, 3),
    conv(2, 32, 32, 16, 8, 3, 3, 1, 1),
};

TEST(NativeKernelEmulation, Conv2d) {
  for (const auto& g : kShapes) {
    SCOPED_TRACE("conv n=" + std::to_string(g.n) + " h=" + std::to_string(g.h) + " w=" + std::to_string(g.w) +
                 " c_in=" + std::to_string(g.c_in) + " c_out=" + std::to_string(g.c_out) + " k=" + std::to_string(g.kh) +
                 "x" + std::to_string(g.kw) + " s=" + std::to_string(g.stride) + " p=" + std::to_string(g.pad));
    const auto x = random_floats(g.input_numel()), w = random_floats(g.weight_numel()), b = random_floats(g.c_out),
               dy = random_floats(g.output_numel());
    std::vector<float> ref(g.output_numel()), got = poisoned(g.output_numel());
    cpu::conv2d_forward_reference(g, x.data(), w.data(), b.data(), ref.data());
    cuda::host_emulation::conv2d_forward(g, x.data(), w.data(), b.data(), got.data());
    EXPECT_LT(relative_error(got, ref), kFp32Tolerance) << "forward";

    std::vector<float> ref_dx(g.input_numel()), got_dx = poisoned(g.input_numel());
    cpu::conv2d_backward_data_reference(g, dy.data(), w.data(), ref_dx.data());
    cuda::host_emulation::conv2d_backward_data(g, dy.data(), w.data(), got_dx.data());
    EXPECT_LT(relative_error(got_dx, ref_dx), kFp32Tolerance) << "backward data";

    std::vector<float> ref_dw(g.weight_numel()), ref_db(g.c_out);
    cpu::conv2d_backward_filter_reference(g, x.data(), dy.data(), ref_dw.data(), ref_db.data());
    for (bool split : {false, true}) {
      std::vector<float> got_dw = poisoned(g.weight_numel()), got_db = poisoned(g.c_out);
      cuda::host_emulation::conv2d_backward_filter(g, x.data(), dy.data(), got_dw.data(), got_db.data(), split);
      EXPECT_LT(relative_error(got_dw, ref_dw), kFp32Tolerance) << "backward filter, split " << split;
      EXPECT_LT(relative_error(got_db, ref_db), kFp32Tolerance) << "backward bias, split " << split;
      std::vector<float> got_dw_only = poisoned(g.weight_numel());
      cuda::host_emulation::conv2d_backward_filter(g, x.data(), dy.data(), got_dw_only.data(), nullptr, split);
      EXPECT_LT(relative_error(got_dw_only, ref_dw), kFp32Tolerance) << "backward filter without bias, split " << split;
    }
  }
  EXPECT_GT(cuda::conv2d_backward_filter_workspace_floats(kShapes.back()), 0u) << "a shape should exercise split-K";
}

// ResNet's convolutions have no bias: their weight gradient must split its long pixel
// reduction as one with a bias does (n_w a multiple of 64 has one column tile fewer without
// the dbias column, so it asks for more slices than a plan sized with the column holds).
TEST(NativeKernelEmulation, ConvWithoutBiasSplitsItsWeightGradient) {
  const int batch = random_int(32, 64);
  for (const auto& g : {conv(batch, 56, 56, 64, 64, 3, 3, 1, 1), conv(batch, 56, 56, 256, 128, 1, 1, 1, 0),
                        conv(batch, 28, 28, 128, 128, 3, 3, 1, 1), conv(batch, 14, 14, 1024, 256, 1, 1, 1, 0)}) {
    SCOPED_TRACE("conv " + std::to_string(g.c_in) + "->" + std::to_string(g.c_out) + " k=" + std::to_string(g.kh) +
                 " " + std::to_string(g.h) + "x" + std::to_string(g.w) + " batch " + std::to_string(batch));
    EXPECT_GT(cuda::conv2d_backward_filter_splits(g, /*with_bias=*/true), 1);
    EXPECT_GT(cuda::conv2d_backward_filter_splits(g, /*with_bias=*/false), 1);
  }
}

TEST(NativeKernelEmulation, Dense) {
  struct S {
    int n, in, out;
  };
  for (const S s : {S{1, 1, 1}, S{3, 17, 5}, S{32, 257, 130}, S{7, 100, 10}, S{33, 63, 129}}) {
    SCOPED_TRACE("dense n=" + std::to_string(s.n) + " in=" + std::to_string(s.in) + " out=" + std::to_string(s.out));
    const auto x = random_floats(static_cast<size_t>(s.n) * s.in), w = random_floats(static_cast<size_t>(s.out) * s.in),
               b = random_floats(s.out), dy = random_floats(static_cast<size_t>(s.n) * s.out);
    for (bool relu : {false, true}) {
      std::vector<float> ref(dy.size()), got = poisoned(dy.size());
      cpu::dense_forward_reference(s.n, s.in, s.out, x.data(), w.data(), b.data(), ref.data());
      if (relu) cpu::relu_forward(static_cast<int64_t>(ref.size()), ref.data(), ref.data());
      cuda::host_emulation::dense_forward(s.n, s.in, s.out, x.data(), w.data(), b.data(), got.data(), relu);
      EXPECT_LT(relative_error(got, ref), kFp32Tolerance) << "forward relu " << relu;
    }
    std::vector<float> ref_dx(x.size()), got_dx = poisoned(x.size());
    cpu::dense_backward_data_reference(s.n, s.in, s.out, dy.data(), w.data(), ref_dx.data());
    cuda::host_emulation::dense_backward_data(s.n, s.in, s.out, dy.data(), w.data(), got_dx.data());
    EXPECT_LT(relative_error(got_dx, ref_dx), kFp32Tolerance) << "dx";
    std::vector<float> ref_dw(w.size()), ref_db(s.out), got_dw = poisoned(w.size()), got_db = poisoned(s.out);
    cpu::dense_backward_weights_reference(s.n, s.in, s.out, x.data(), dy.data(), ref_dw.data(), ref_db.data());
    cuda::host_emulation::dense_backward_weights(s.n, s.in, s.out, x.data(), dy.data(), got_dw.data(), got_db.data());
    EXPECT_LT(relative_error(got_dw, ref_dw), kFp32Tolerance) << "dw";
    EXPECT_LT(relative_error(got_db, ref_db), kFp32Tolerance) << "dbias";
  }
}

}  // namespace
}  // namespace graft::testing

// --precision bf16 on the library kernels (LibraryOptions::bf16): cuDNN and cuBLAS(Lt) on bf16
// copies of the operands, against the CPU reference on the same rounded operands (what
// Bf16EmulationOps computes). Dense outputs and every weight gradient that stays fp32 agree
// to fp32 accumulation order (1e-4); convolution outputs, data gradients and weight
// gradients come back through bf16, so each element may be off by half a bf16 ulp (2^-9
// relative) on top: 1e-2 over the whole array.
#include <cmath>
#include <vector>

#include "gpu_testing.h"
#include "kernels/common/bf16.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/dense.h"
#include "kernels/lib/conv.h"
#include "kernels/lib/dense.h"

namespace graft::testing {
namespace {

std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = math::round_to_bf16(x);
  return v;
}

class Bf16LibraryGpu : public GpuTest {
 protected:
  lib::LibraryContext& bf16_lib() {
    if (!ctx_) {
      lib::LibraryOptions o;
      o.bf16 = true;
      ctx_ = std::make_unique<lib::LibraryContext>(pool(), o);
    }
    return *ctx_;
  }
  void TearDown() override {
    ctx_.reset();
    GpuTest::TearDown();
  }

 private:
  std::unique_ptr<lib::LibraryContext> ctx_;
};

Conv2dGeometry conv(int n, int h, int w, int c_in, int c_out, int k, int stride, int pad) {
  Conv2dGeometry g;
  g.n = n; g.h = h; g.w = w; g.c_in = c_in; g.c_out = c_out; g.kh = g.kw = k; g.stride = stride; g.pad = pad;
  return g;
}

TEST_F(Bf16LibraryGpu, ConvolutionAgainstTheCpuOnRoundedOperands) {
  // vgg16's first block in small, a strided one, and channel counts tensor cores dislike.
  for (const Conv2dGeometry& g : {conv(2, 16, 16, 3, 64, 3, 1, 1), conv(2, 16, 16, 64, 64, 3, 1, 1),
                                  conv(1, 9, 11, 8, 16, 3, 2, 1), conv(3, 7, 7, 5, 7, 1, 1, 0)}) {
    SCOPED_TRACE(describe(g));
    const auto x = random_floats(size_t(g.input_numel())), w = random_floats(size_t(g.weight_numel()));
    const auto b = random_floats(size_t(g.c_out)), dy = random_floats(size_t(g.output_numel()));
    std::vector<float> y(size_t(g.output_numel())), dx(size_t(g.input_numel())), dw(size_t(g.weight_numel())),
        db(size_t(g.c_out));
    cpu::conv2d_forward_reference(g, rounded(x).data(), rounded(w).data(), b.data(), y.data());
    cpu::conv2d_backward_data_reference(g, rounded(dy).data(), rounded(w).data(), dx.data());
    cpu::conv2d_backward_filter_reference(g, rounded(x).data(), rounded(dy).data(), dw.data(), db.data());

    auto d_x = to_device(x), d_w = to_device(w), d_b = to_device(b), d_dy = to_device(dy);
    auto d_y = poisoned_device(y.size()), d_dx = poisoned_device(dx.size()), d_dw = poisoned_device(dw.size()),
         d_db = poisoned_device(db.size());
    lib::conv2d_forward(bf16_lib(), g, d_x.get(), d_w.get(), d_b.get(), d_y.get(), stream());
    lib::conv2d_backward_data(bf16_lib(), g, d_dy.get(), d_w.get(), d_dx.get(), stream());
    lib::conv2d_backward_filter(bf16_lib(), g, d_x.get(), d_dy.get(), d_dw.get(), d_db.get(), stream());
    EXPECT_LT(relative_error(d_y.download(), y), 1e-2);
    EXPECT_LT(relative_error(d_dx.download(), dx), 1e-2);
    EXPECT_LT(relative_error(d_dw.download(), dw), 1e-2);
    // The bias gradient sums the fp32 dy (autocast sums the bf16 one): the rounding of dy.
    EXPECT_LT(relative_error(d_db.download(), db), 1e-2);
    // Not fp32 in disguise: the device's output (no bias, so nothing is added after cuDNN's
    // bf16 result) is nearer the reference on rounded operands than the one on raw
    // operands. Whatever the output's rounding error e, an independent operand error d only
    // moves it away on average (E|e + d| >= |e|); a device on fp32 operands would be nearer
    // the raw reference instead.
    std::vector<float> on_rounded(y.size()), on_raw(y.size());
    cpu::conv2d_forward_reference(g, rounded(x).data(), rounded(w).data(), nullptr, on_rounded.data());
    cpu::conv2d_forward_reference(g, x.data(), w.data(), nullptr, on_raw.data());
    auto d_y_no_bias = poisoned_device(y.size());
    lib::conv2d_forward(bf16_lib(), g, d_x.get(), d_w.get(), nullptr, d_y_no_bias.get(), stream());
    const auto got = d_y_no_bias.download();
    double to_rounded = 0, to_raw = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      to_rounded += std::abs(double(got[i]) - on_rounded[i]);
      to_raw += std::abs(double(got[i]) - on_raw[i]);
    }
    EXPECT_LT(to_rounded, 0.95 * to_raw) << "mean distance to the rounded-operand reference " << to_rounded / double(got.size())
                                         << ", to the raw-operand one " << to_raw / double(got.size());
  }
}

TEST_F(Bf16LibraryGpu, DenseAgainstTheCpuOnRoundedOperands) {
  struct Shape3 {
    int n, in, out;
  };
  for (const Shape3 s : {Shape3{8, 64, 10}, Shape3{64, 4608, 1024}, Shape3{3, 37, 53}}) {
    SCOPED_TRACE("dense " + std::to_string(s.n) + "x" + std::to_string(s.in) + "->" + std::to_string(s.out));
    const auto x = random_floats(size_t(s.n) * s.in), w = random_floats(size_t(s.out) * s.in);
    const auto b = random_floats(size_t(s.out)), dy = random_floats(size_t(s.n) * s.out);
    std::vector<float> y(size_t(s.n) * s.out), dx(x.size()), dw(w.size()), db(b.size());
    cpu::dense_forward_reference(s.n, s.in, s.out, rounded(x).data(), rounded(w).data(), b.data(), y.data());
    cpu::dense_backward_data_reference(s.n, s.in, s.out, rounded(dy).data(), rounded(w).data(), dx.data());
    cpu::dense_backward_weights_reference(s.n, s.in, s.out, rounded(x).data(), rounded(dy).data(), dw.data(),
                                          db.data());
    auto d_x = to_device(x), d_w = to_device(w), d_b = to_device(b), d_dy = to_device(dy);
    auto d_y = poisoned_device(y.size()), d_dx = poisoned_device(dx.size()), d_dw = poisoned_device(dw.size()),
         d_db = poisoned_device(db.size());
    lib::plan_dense(bf16_lib(), s.n, s.in, s.out, true, false);
    lib::dense_forward(bf16_lib(), s.n, s.in, s.out, d_x.get(), d_w.get(), d_b.get(), d_y.get(), stream());
    lib::dense_backward_data(bf16_lib(), s.n, s.in, s.out, d_dy.get(), d_w.get(), d_dx.get(), stream());
    lib::dense_backward_weights(bf16_lib(), s.n, s.in, s.out, d_x.get(), d_dy.get(), d_dw.get(), d_db.get(), stream());
    EXPECT_LT(relative_error(d_y.download(), y), 1e-4);
    EXPECT_LT(relative_error(d_dx.download(), dx), 1e-4);
    EXPECT_LT(relative_error(d_dw.download(), dw), 1e-4);
    EXPECT_LT(relative_error(d_db.download(), db), 1e-2);  // fp32 dy summed, see above
  }
}

}  // namespace
}  // namespace graft::testing

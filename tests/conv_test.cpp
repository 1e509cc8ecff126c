// Convolution: the reference against a float64 formula written here (zero-padded input, direct
// indexing), the im2col + sgemm fast paths against the reference, and both backward passes of
// the reference against central finite differences.
#include <string>
#include <vector>

#include "kernels/cpu/conv.h"
#include "tests/testing.h"

namespace {

using graft::Conv2dGeometry;
using graft::testing::dot;
using graft::testing::expect_gradient_close;
using graft::testing::kFp32Tolerance;
using graft::testing::numerical_gradient;
using graft::testing::poisoned;
using graft::testing::random_floats;
using graft::testing::relative_error;

Conv2dGeometry geom(int n, int h, int w, int c_in, int c_out, int kh, int kw, int stride, int pad) {
  Conv2dGeometry g;
  g.n = n, g.h = h, g.w = w, g.c_in = c_in, g.c_out = c_out, g.kh = kh, g.kw = kw, g.stride = stride, g.pad = pad;
  return g;
}

std::string describe(const Conv2dGeometry& g) {
  return "n=" + std::to_string(g.n) + " h=" + std::to_string(g.h) + " w=" + std::to_string(g.w) +
         " cin=" + std::to_string(g.c_in) + " cout=" + std::to_string(g.c_out) + " k=" + std::to_string(g.kh) + "x" +
         std::to_string(g.kw) + " s=" + std::to_string(g.stride) + " p=" + std::to_string(g.pad);
}

// Small shapes (finite differences run the forward twice per element).
std::vector<Conv2dGeometry> small_cases() {
  return {
      geom(2, 5, 5, 3, 4, 3, 3, 1, 1),  // same padding
      geom(1, 7, 6, 2, 3, 3, 3, 2, 1),  // batch 1, odd, non-square, stride 2
      geom(2, 4, 5, 3, 2, 1, 1, 1, 0),  // 1x1 pointwise (skips im2col)
      geom(1, 7, 7, 2, 3, 5, 5, 1, 2),  // 5x5
      geom(2, 6, 5, 2, 3, 2, 3, 2, 0),  // non-square kernel, stride leaves a row unused
      geom(1, 9, 7, 1, 2, 5, 5, 2, 2),  // 5x5 stride 2 padded, one input channel
      geom(2, 5, 6, 3, 2, 1, 1, 2, 0),  // 1x1 stride 2 (not pointwise)
      geom(1, 3, 4, 2, 2, 1, 1, 1, 1),  // 1x1 with padding
      geom(1, 3, 3, 2, 3, 3, 3, 1, 0),  // output 1x1
  };
}

// Larger shapes for the fast path: more channels, so the GEMMs are real.
std::vector<Conv2dGeometry> fast_cases() {
  auto cases = small_cases();
  cases.push_back(geom(2, 15, 13, 8, 16, 3, 3, 1, 1));
  cases.push_back(geom(3, 14, 14, 16, 32, 1, 1, 1, 0));
  cases.push_back(geom(1, 17, 11, 6, 10, 5, 5, 2, 2));
  cases.push_back(geom(2, 12, 12, 3, 8, 3, 3, 2, 0));
  return cases;
}

// y[b, oy, ox, co] = bias[co] + sum_{ky, kx, ci} xpad[b, oy*s + ky, ox*s + kx, ci] * w[co, ky, kx, ci]
std::vector<float> conv_formula(const Conv2dGeometry& g, const std::vector<float>& x, const std::vector<float>& w,
                                const float* bias) {
  const int hp = g.h + 2 * g.pad, wp = g.w + 2 * g.pad;
  std::vector<double> xpad(size_t(g.n) * hp * wp * g.c_in, 0.0);
  for (int b = 0; b < g.n; ++b)
    for (int i = 0; i < g.h; ++i)
      for (int j = 0; j < g.w; ++j)
        for (int c = 0; c < g.c_in; ++c)
          xpad[((size_t(b) * hp + i + g.pad) * wp + j + g.pad) * g.c_in + c] = x[((size_t(b) * g.h + i) * g.w + j) * g.c_in + c];
  const int oh = (hp - g.kh) / g.stride + 1, ow = (wp - g.kw) / g.stride + 1;
  std::vector<float> y;
  for (int b = 0; b < g.n; ++b)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox)
        for (int co = 0; co < g.c_out; ++co) {
          double s = bias ? bias[co] : 0.0;
          for (int ky = 0; ky < g.kh; ++ky)
            for (int kx = 0; kx < g.kw; ++kx)
              for (int c = 0; c < g.c_in; ++c)
                s += xpad[((size_t(b) * hp + oy * g.stride + ky) * wp + ox * g.stride + kx) * g.c_in + c] *
                     double(w[((size_t(co) * g.kh + ky) * g.kw + kx) * g.c_in + c]);
          y.push_back(static_cast<float>(s));
        }
  return y;
}

TEST(ConvTest, ForwardReferenceMatchesFloat64Formula) {
  for (const auto& g : small_cases()) {
    const auto x = random_floats(size_t(g.input_numel()));
    const auto w = random_floats(size_t(g.weight_numel()));
    const auto bias = random_floats(size_t(g.c_out));
    for (const float* b : {bias.data(), static_cast<const float*>(nullptr)}) {
      auto y = poisoned(size_t(g.output_numel()));
      graft::cpu::conv2d_forward_reference(g, x.data(), w.data(), b, y.data());
      EXPECT_LT(relative_error(y, conv_formula(g, x, w, b)), 1e-6) << describe(g) << (b ? " bias" : " no bias");
    }
  }
}

TEST(ConvTest, WorkspaceSize) {
  EXPECT_EQ(graft::cpu::conv2d_workspace_floats(geom(4, 8, 8, 16, 32, 1, 1, 1, 0)), 0u);  // pointwise
  EXPECT_EQ(graft::cpu::conv2d_workspace_floats(geom(4, 8, 6, 3, 32, 3, 3, 1, 1)), size_t(8 * 6 * 3 * 3 * 3));
  EXPECT_EQ(graft::cpu::conv2d_workspace_floats(geom(4, 9, 9, 2, 5, 3, 2, 2, 0)), size_t(4 * 4 * 3 * 2 * 2));
}

// The workspace is poisoned too: the fast path must not read what it did not write.
std::vector<float> workspace_for(const Conv2dGeometry& g) { return poisoned(graft::cpu::conv2d_workspace_floats(g) + 1); }

TEST(ConvTest, ForwardFastMatchesReference) {
  for (const auto& g : fast_cases()) {
    const auto x = random_floats(size_t(g.input_numel()));
    const auto w = random_floats(size_t(g.weight_numel()));
    const auto bias = random_floats(size_t(g.c_out));
    for (const float* b : {bias.data(), static_cast<const float*>(nullptr)}) {
      auto want = poisoned(size_t(g.output_numel())), got = poisoned(size_t(g.output_numel()));
      auto ws = workspace_for(g);
      graft::cpu::conv2d_forward_reference(g, x.data(), w.data(), b, want.data());
      graft::cpu::conv2d_forward_fast(g, x.data(), w.data(), b, got.data(), ws.data());
      EXPECT_LT(relative_error(got, want), kFp32Tolerance) << describe(g) << (b ? " bias" : " no bias");
    }
  }
}

TEST(ConvTest, PointwiseFastNeedsNoWorkspace) {
  const auto g = geom(2, 5, 3, 4, 6, 1, 1, 1, 0);
  const auto x = random_floats(size_t(g.input_numel())), w = random_floats(size_t(g.weight_numel()));
  const auto dy = random_floats(size_t(g.output_numel()));
  auto y = poisoned(size_t(g.output_numel())), want = poisoned(size_t(g.output_numel()));
  graft::cpu::conv2d_forward_fast(g, x.data(), w.data(), nullptr, y.data(), nullptr);
  graft::cpu::conv2d_forward_reference(g, x.data(), w.data(), nullptr, want.data());
  EXPECT_LT(relative_error(y, want), kFp32Tolerance);
  auto dx = poisoned(size_t(g.input_numel())), dx_ref = poisoned(size_t(g.input_numel()));
  graft::cpu::conv2d_backward_data_fast(g, dy.data(), w.data(), dx.data(), nullptr);
  graft::cpu::conv2d_backward_data_reference(g, dy.data(), w.data(), dx_ref.data());
  EXPECT_LT(relative_error(dx, dx_ref), kFp32Tolerance);
  auto dw = poisoned(size_t(g.weight_numel())), dw_ref = poisoned(size_t(g.weight_numel()));
  graft::cpu::conv2d_backward_filter_fast(g, x.data(), dy.data(), dw.data(), nullptr, nullptr);
  graft::cpu::conv2d_backward_filter_reference(g, x.data(), dy.data(), dw_ref.data(), nullptr);
  EXPECT_LT(relative_error(dw, dw_ref), kFp32Tolerance);
}

TEST(ConvTest, BackwardDataFastMatchesReference) {
  for (const auto& g : fast_cases()) {
    const auto dy = random_floats(size_t(g.output_numel()));
    const auto w = random_floats(size_t(g.weight_numel()));
    auto want = poisoned(size_t(g.input_numel())), got = poisoned(size_t(g.input_numel()));
    auto ws = workspace_for(g);
    graft::cpu::conv2d_backward_data_reference(g, dy.data(), w.data(), want.data());
    graft::cpu::conv2d_backward_data_fast(g, dy.data(), w.data(), got.data(), ws.data());
    EXPECT_LT(relative_error(got, want), kFp32Tolerance) << describe(g);
  }
}

TEST(ConvTest, BackwardFilterFastMatchesReference) {
  for (const auto& g : fast_cases()) {
    const auto x = random_floats(size_t(g.input_numel()));
    const auto dy = random_floats(size_t(g.output_numel()));
    auto want = poisoned(size_t(g.weight_numel())), got = poisoned(size_t(g.weight_numel()));
    auto db_want = poisoned(size_t(g.c_out)), db_got = poisoned(size_t(g.c_out));
    auto ws = workspace_for(g);
    graft::cpu::conv2d_backward_filter_reference(g, x.data(), dy.data(), want.data(), db_want.data());
    graft::cpu::conv2d_backward_filter_fast(g, x.data(), dy.data(), got.data(), db_got.data(), ws.data());
    EXPECT_LT(relative_error(got, want), kFp32Tolerance) << describe(g);
    EXPECT_LT(relative_error(db_got, db_want), kFp32Tolerance) << describe(g);
    // dbias may be null.
    auto got2 = poisoned(size_t(g.weight_numel()));
    graft::cpu::conv2d_backward_filter_fast(g, x.data(), dy.data(), got2.data(), nullptr, ws.data());
    EXPECT_LT(relative_error(got2, want), kFp32Tolerance) << describe(g);
  }
}

// Scalar L = dot(conv(x, w, b), r): dL/dx = backward_data(r), dL/dw and dL/db = backward_filter(x, r).
TEST(ConvTest, BackwardReferenceMatchesFiniteDifferences) {
  for (const auto& g : small_cases()) {
    auto x = random_floats(size_t(g.input_numel()));
    auto w = random_floats(size_t(g.weight_numel()));
    auto bias = random_floats(size_t(g.c_out));
    const auto r = random_floats(size_t(g.output_numel()));
    auto y = poisoned(size_t(g.output_numel()));
    const auto loss = [&] {
      graft::cpu::conv2d_forward_reference(g, x.data(), w.data(), bias.data(), y.data());
      return dot(y, r);
    };
    auto dx = poisoned(size_t(g.input_numel()));
    auto dw = poisoned(size_t(g.weight_numel()));
    auto db = poisoned(size_t(g.c_out));
    graft::cpu::conv2d_backward_data_reference(g, r.data(), w.data(), dx.data());
    graft::cpu::conv2d_backward_filter_reference(g, x.data(), r.data(), dw.data(), db.data());
    expect_gradient_close(dx, numerical_gradient(x, loss), "dx " + describe(g));
    expect_gradient_close(dw, numerical_gradient(w, loss), "dw " + describe(g));
    expect_gradient_close(db, numerical_gradient(bias, loss), "dbias " + describe(g));
  }
}

}  // namespace

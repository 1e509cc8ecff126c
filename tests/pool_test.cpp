// Pooling: forward against float64 formulas written here (padding as -inf for max, as zero for
// average), backward against central finite differences, and the rules PyTorch fixes: the
// first maximum of a window gets the gradient, padding never wins, averages count padding.
#include <algorithm>
#include <array>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/pool.h"
#include "tests/testing.h"

namespace {

using graft::Pool2dGeometry;
using graft::testing::dot;
using graft::testing::expect_gradient_close;
using graft::testing::numerical_gradient;
using graft::testing::poisoned;
using graft::testing::random_floats;
using graft::testing::relative_error;

Pool2dGeometry geom(int n, int h, int w, int c, int kh, int kw, int stride, int pad) {
  Pool2dGeometry g;
  g.n = n, g.h = h, g.w = w, g.c = c, g.kh = kh, g.kw = kw, g.stride = stride, g.pad = pad;
  return g;
}

std::string describe(const Pool2dGeometry& g) {
  return "n=" + std::to_string(g.n) + " h=" + std::to_string(g.h) + " w=" + std::to_string(g.w) +
         " c=" + std::to_string(g.c) + " k=" + std::to_string(g.kh) + "x" + std::to_string(g.kw) +
         " s=" + std::to_string(g.stride) + " p=" + std::to_string(g.pad);
}

std::vector<Pool2dGeometry> cases() {
  return {
      geom(2, 4, 4, 3, 2, 2, 2, 0),  // the VGG pool
      geom(1, 7, 5, 2, 3, 3, 2, 1),  // batch 1, odd, non-square, padded, overlapping
      geom(2, 6, 9, 3, 3, 2, 1, 1),  // non-square window, stride 1
      geom(1, 5, 5, 2, 5, 5, 1, 2),  // 5x5
      geom(2, 5, 7, 2, 2, 2, 2, 0),  // floor: last row and column unused
      geom(1, 3, 4, 2, 1, 1, 1, 0),  // 1x1 identity
      geom(1, 6, 6, 1, 3, 3, 3, 1),  // stride 3
  };
}

// One window value of the zero- or -inf-padded input.
struct Padded {
  const Pool2dGeometry& g;
  const std::vector<float>& x;
  double fill;
  double at(int b, int i, int j, int c) const {
    if (i < 0 || i >= g.h || j < 0 || j >= g.w) return fill;
    return x[((size_t(b) * g.h + i) * g.w + j) * g.c + c];
  }
};

std::vector<float> pool_formula(const Pool2dGeometry& g, const std::vector<float>& x, bool max) {
  const Padded xp{g, x, max ? -std::numeric_limits<double>::infinity() : 0.0};
  const int oh = (g.h + 2 * g.pad - g.kh) / g.stride + 1, ow = (g.w + 2 * g.pad - g.kw) / g.stride + 1;
  std::vector<float> y;
  for (int b = 0; b < g.n; ++b)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox)
        for (int c = 0; c < g.c; ++c) {
          double acc = max ? -std::numeric_limits<double>::infinity() : 0.0;
          for (int ky = 0; ky < g.kh; ++ky)
            for (int kx = 0; kx < g.kw; ++kx) {
              const double v = xp.at(b, oy * g.stride - g.pad + ky, ox * g.stride - g.pad + kx, c);
              acc = max ? std::max(acc, v) : acc + v;
            }
          y.push_back(static_cast<float>(max ? acc : acc / (g.kh * g.kw)));
        }
  return y;
}

// Distinct values 0.05 apart in random order: a finite-difference step of 1e-2 never changes
// which element of a window is the maximum.
std::vector<float> separated_values(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = -1.0f + 0.05f * float(i);
  std::shuffle(v.begin(), v.end(), graft::testing::rng());
  return v;
}

TEST(PoolTest, MaxForwardMatchesFloat64Formula) {
  for (const auto& g : cases()) {
    const auto x = random_floats(size_t(g.input_numel()));
    auto y = poisoned(size_t(g.output_numel()));
    graft::cpu::maxpool2d_forward(g, x.data(), y.data());
    EXPECT_LT(relative_error(y, pool_formula(g, x, true)), 1e-7) << describe(g);
  }
}

TEST(PoolTest, AvgForwardMatchesFloat64Formula) {
  for (const auto& g : cases()) {
    const auto x = random_floats(size_t(g.input_numel()));
    auto y = poisoned(size_t(g.output_numel()));
    graft::cpu::avgpool2d_forward(g, x.data(), y.data());
    EXPECT_LT(relative_error(y, pool_formula(g, x, false)), 1e-6) << describe(g);
  }
}

TEST(PoolTest, MaxBackwardMatchesFiniteDifferences) {
  for (const auto& g : cases()) {
    auto x = separated_values(size_t(g.input_numel()));
    const auto r = random_floats(size_t(g.output_numel()));
    auto y = poisoned(size_t(g.output_numel()));
    auto dx = poisoned(size_t(g.input_numel()));
    graft::cpu::maxpool2d_backward(g, x.data(), r.data(), dx.data());
    expect_gradient_close(dx, numerical_gradient(x, [&] {
                            graft::cpu::maxpool2d_forward(g, x.data(), y.data());
                            return dot(y, r);
                          }),
                          "maxpool dx " + describe(g));
  }
}

TEST(PoolTest, AvgBackwardMatchesFiniteDifferences) {
  for (const auto& g : cases()) {
    auto x = random_floats(size_t(g.input_numel()));
    const auto r = random_floats(size_t(g.output_numel()));
    auto y = poisoned(size_t(g.output_numel()));
    auto dx = poisoned(size_t(g.input_numel()));
    graft::cpu::avgpool2d_backward(g, r.data(), dx.data());
    expect_gradient_close(dx, numerical_gradient(x, [&] {
                            graft::cpu::avgpool2d_forward(g, x.data(), y.data());
                            return dot(y, r);
                          }),
                          "avgpool dx " + describe(g));
  }
}

TEST(PoolTest, MaxTiesRouteGradientToFirstInScanOrder) {
  // One 3x3 window (stride 3), one channel: maxima at (0, 2), (1, 0) and (2, 2) tie.
  const auto g = geom(1, 3, 3, 1, 3, 3, 3, 0);
  const std::vector<float> x = {0.1f, 0.2f, 0.9f, 0.9f, -1.0f, 0.3f, 0.0f, 0.5f, 0.9f};
  const std::vector<float> dy = {2.5f};
  auto dx = poisoned(9);
  graft::cpu::maxpool2d_backward(g, x.data(), dy.data(), dx.data());
  for (int i = 0; i < 9; ++i) EXPECT_EQ(dx[size_t(i)], i == 2 ? 2.5f : 0.0f) << i;

  // All equal, overlapping 2x2 windows at stride 1: each window's first element gets its
  // gradient, and gradients of overlapping windows add up.
  const auto g2 = geom(1, 3, 3, 1, 2, 2, 1, 0);
  const std::vector<float> x2(9, 0.7f);
  const std::vector<float> dy2 = {1.0f, 2.0f, 3.0f, 4.0f};
  auto dx2 = poisoned(9);
  graft::cpu::maxpool2d_backward(g2, x2.data(), dy2.data(), dx2.data());
  const std::vector<float> want = {1, 2, 0, 3, 4, 0, 0, 0, 0};
  EXPECT_EQ(dx2, want);
}

TEST(PoolTest, MaxPaddingNeverWins) {
  // All inputs negative: a zero from padding would beat them if padding took part.
  const auto g = geom(2, 5, 4, 3, 3, 3, 2, 1);
  const auto x = random_floats(size_t(g.input_numel()), -2.0f, -0.5f);
  auto y = poisoned(size_t(g.output_numel()));
  graft::cpu::maxpool2d_forward(g, x.data(), y.data());
  for (float v : y) EXPECT_LT(v, -0.4f);
  EXPECT_LT(relative_error(y, pool_formula(g, x, true)), 1e-7);
  // Every output's gradient lands on a real input.
  const auto dy = random_floats(size_t(g.output_numel()));
  auto dx = poisoned(size_t(g.input_numel()));
  graft::cpu::maxpool2d_backward(g, x.data(), dy.data(), dx.data());
  double sum_dx = 0, sum_dy = 0;
  for (float v : dx) sum_dx += v;
  for (float v : dy) sum_dy += v;
  EXPECT_NEAR(sum_dx, sum_dy, 1e-4);
}

TEST(PoolTest, AvgCountsPadding) {
  // A corner window of a 2x2 input of ones, 3x3 padded by 1: 4 real ones over 9 places.
  const auto g = geom(1, 2, 2, 1, 3, 3, 1, 1);
  const std::vector<float> x(4, 1.0f);
  auto y = poisoned(size_t(g.output_numel()));
  graft::cpu::avgpool2d_forward(g, x.data(), y.data());
  for (float v : y) EXPECT_FLOAT_EQ(v, 4.0f / 9.0f);
}

TEST(PoolTest, GlobalAvgForwardAndBackward) {
  for (auto [n, h, w, c] : std::vector<std::array<int, 4>>{{1, 1, 1, 1}, {2, 3, 5, 4}, {3, 7, 7, 2}}) {
    auto x = random_floats(size_t(n) * h * w * c);
    auto y = poisoned(size_t(n) * c);
    graft::cpu::global_avgpool_forward(n, h, w, c, x.data(), y.data());
    std::vector<float> want;
    for (int b = 0; b < n; ++b)
      for (int ch = 0; ch < c; ++ch) {
        double s = 0;
        for (int i = 0; i < h * w; ++i) s += x[(size_t(b) * h * w + size_t(i)) * c + ch];
        want.push_back(float(s / (h * w)));
      }
    EXPECT_LT(relative_error(y, want), 1e-6);
    const auto r = random_floats(size_t(n) * c);
    auto dx = poisoned(x.size());
    graft::cpu::global_avgpool_backward(n, h, w, c, r.data(), dx.data());
    expect_gradient_close(dx, numerical_gradient(x, [&] {
                            graft::cpu::global_avgpool_forward(n, h, w, c, x.data(), y.data());
                            return dot(y, r);
                          }),
                          "global avgpool dx");
  }
}

}  // namespace

// Pooling on the CPU, NHWC. Max pooling: the first maximum of a window in (kh, kw) scan order
// wins and receives the gradient; padded positions never win. Average pooling divides by the
// full window, padding included (count_include_pad=True).
#include "kernels/cpu/pool.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "base/error.h"

namespace graft::cpu {

namespace {

void check(const Pool2dGeometry& g) {
  GRAFT_ASSERT(g.n >= 0 && g.h > 0 && g.w > 0 && g.c > 0, "bad pool2d shape");
  GRAFT_ASSERT(g.kh > 0 && g.kw > 0 && g.stride > 0 && g.pad >= 0, "bad pool2d window");
  GRAFT_ASSERT(g.out_h() > 0 && g.out_w() > 0, "pool2d window larger than the padded input");
}

// Index into the input of the first maximum of window (b, oy, ox, ch), or -1 when the window
// holds no real input (only possible with pad > k/2, which PyTorch rejects).
int64_t argmax_in_window(const Pool2dGeometry& g, const float* x, int b, int oy, int ox, int ch) {
  int64_t best = -1;
  float best_v = -std::numeric_limits<float>::infinity();
  for (int ky = 0; ky < g.kh; ++ky) {
    const int iy = oy * g.stride - g.pad + ky;
    if (iy < 0 || iy >= g.h) continue;
    for (int kx = 0; kx < g.kw; ++kx) {
      const int ix = ox * g.stride - g.pad + kx;
      if (ix < 0 || ix >= g.w) continue;
      const int64_t idx = ((int64_t{b} * g.h + iy) * g.w + ix) * g.c + ch;
      const float v = x[idx];
      // Strictly greater: ties keep the earlier one. NaN wins, as in PyTorch.
      if (best < 0 || v > best_v || (v != v && best_v == best_v)) {
        best = idx;
        best_v = v;
      }
    }
  }
  return best;
}

}  // namespace

void maxpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) {
  check(g);
  const int oh = g.out_h(), ow = g.out_w();
  for (int b = 0; b < g.n; ++b)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox)
        for (int ch = 0; ch < g.c; ++ch) {
          const int64_t idx = argmax_in_window(g, x, b, oy, ox, ch);
          y[((int64_t{b} * oh + oy) * ow + ox) * g.c + ch] =
              idx >= 0 ? x[idx] : -std::numeric_limits<float>::infinity();
        }
}

void maxpool2d_backward(const Pool2dGeometry& g, const float* x, const float* dy, float* dx) {
  check(g);
  const int oh = g.out_h(), ow = g.out_w();
  std::fill(dx, dx + g.input_numel(), 0.0f);
  for (int b = 0; b < g.n; ++b)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox)
        for (int ch = 0; ch < g.c; ++ch) {
          const int64_t idx = argmax_in_window(g, x, b, oy, ox, ch);
          if (idx >= 0) dx[idx] += dy[((int64_t{b} * oh + oy) * ow + ox) * g.c + ch];
        }
}

void avgpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) {
  check(g);
  const int oh = g.out_h(), ow = g.out_w();
  const double inv = 1.0 / (double(g.kh) * g.kw);
  for (int b = 0; b < g.n; ++b)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox)
        for (int ch = 0; ch < g.c; ++ch) {
          double acc = 0.0;
          for (int ky = 0; ky < g.kh; ++ky) {
            const int iy = oy * g.stride - g.pad + ky;
            if (iy < 0 || iy >= g.h) continue;
            for (int kx = 0; kx < g.kw; ++kx) {
              const int ix = ox * g.stride - g.pad + kx;
              if (ix < 0 || ix >= g.w) continue;
              acc += x[((int64_t{b} * g.h + iy) * g.w + ix) * g.c + ch];
            }
          }
          y[((int64_t{b} * oh + oy) * ow + ox) * g.c + ch] = static_cast<float>(acc * inv);
        }
}

void avgpool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) {
  check(g);
  const int oh = g.out_h(), ow = g.out_w();
  const double inv = 1.0 / (double(g.kh) * g.kw);
  // Gather per input element (double accumulation): every window that covers it contributes.
  for (int b = 0; b < g.n; ++b)
    for (int iy = 0; iy < g.h; ++iy)
      for (int ix = 0; ix < g.w; ++ix)
        for (int ch = 0; ch < g.c; ++ch) {
          double acc = 0.0;
          for (int ky = 0; ky < g.kh; ++ky) {
            const int ty = iy + g.pad - ky;
            if (ty < 0 || ty % g.stride != 0 || ty / g.stride >= oh) continue;
            for (int kx = 0; kx < g.kw; ++kx) {
              const int tx = ix + g.pad - kx;
              if (tx < 0 || tx % g.stride != 0 || tx / g.stride >= ow) continue;
              acc += dy[((int64_t{b} * oh + ty / g.stride) * ow + tx / g.stride) * g.c + ch];
            }
          }
          dx[((int64_t{b} * g.h + iy) * g.w + ix) * g.c + ch] = static_cast<float>(acc * inv);
        }
}

void global_avgpool_forward(int n, int h, int w, int c, const float* x, float* y) {
  const int64_t hw = int64_t{h} * w;
  for (int b = 0; b < n; ++b)
    for (int ch = 0; ch < c; ++ch) {
      double acc = 0.0;
      for (int64_t p = 0; p < hw; ++p) acc += x[(b * hw + p) * c + ch];
      y[int64_t{b} * c + ch] = static_cast<float>(acc / double(hw));
    }
}

void global_avgpool_backward(int n, int h, int w, int c, const float* dy, float* dx) {
  const int64_t hw = int64_t{h} * w;
  for (int b = 0; b < n; ++b)
    for (int64_t p = 0; p < hw; ++p)
      for (int ch = 0; ch < c; ++ch)
        dx[(b * hw + p) * c + ch] = static_cast<float>(double(dy[int64_t{b} * c + ch]) / double(hw));
}

}  // namespace graft::cpu

// Adaptive average pooling on the CPU: sums in double, one window per output pixel.
#include "kernels/cpu/adaptive_pool.h"

#include <algorithm>

#include "base/error.h"

namespace graft::cpu {

namespace {
void check(const AdaptivePoolGeometry& g) {
  GRAFT_ASSERT(g.n >= 0 && g.h > 0 && g.w > 0 && g.c > 0 && g.out_h > 0 && g.out_w > 0, "bad adaptive pool shape");
}
}  // namespace

void adaptive_avgpool2d_forward(const AdaptivePoolGeometry& g, const float* x, float* y) {
  check(g);
  for (int b = 0; b < g.n; ++b)
    for (int oy = 0; oy < g.out_h; ++oy) {
      const int y0 = adaptive_start(oy, g.h, g.out_h), y1 = adaptive_end(oy, g.h, g.out_h);
      for (int ox = 0; ox < g.out_w; ++ox) {
        const int x0 = adaptive_start(ox, g.w, g.out_w), x1 = adaptive_end(ox, g.w, g.out_w);
        const double inv = 1.0 / double((y1 - y0) * (x1 - x0));
        float* out = y + ((int64_t{b} * g.out_h + oy) * g.out_w + ox) * g.c;
        for (int ch = 0; ch < g.c; ++ch) {
          double s = 0.0;
          for (int iy = y0; iy < y1; ++iy)
            for (int ix = x0; ix < x1; ++ix) s += double(x[((int64_t{b} * g.h + iy) * g.w + ix) * g.c + ch]);
          out[ch] = static_cast<float>(s * inv);
        }
      }
    }
}

void adaptive_avgpool2d_backward(const AdaptivePoolGeometry& g, const float* dy, float* dx) {
  check(g);
  std::fill(dx, dx + g.input_numel(), 0.0f);
  for (int b = 0; b < g.n; ++b)
    for (int oy = 0; oy < g.out_h; ++oy) {
      const int y0 = adaptive_start(oy, g.h, g.out_h), y1 = adaptive_end(oy, g.h, g.out_h);
      for (int ox = 0; ox < g.out_w; ++ox) {
        const int x0 = adaptive_start(ox, g.w, g.out_w), x1 = adaptive_end(ox, g.w, g.out_w);
        const float inv = 1.0f / float((y1 - y0) * (x1 - x0));
        const float* grad = dy + ((int64_t{b} * g.out_h + oy) * g.out_w + ox) * g.c;
        for (int iy = y0; iy < y1; ++iy)
          for (int ix = x0; ix < x1; ++ix) {
            float* d = dx + ((int64_t{b} * g.h + iy) * g.w + ix) * g.c;
            for (int ch = 0; ch < g.c; ++ch) d[ch] += grad[ch] * inv;
          }
      }
    }
}

}  // namespace graft::cpu

// Convolution on the CPU: direct reference loops (double accumulation) and the im2col + sgemm
// fast path. NHWC activations, OHWI weights; an im2col row holds one output pixel's patch in
// (kh, kw, c_in) order, so it lines up with a weight row.
#include "kernels/cpu/conv.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "base/error.h"

namespace graft::cpu {

namespace {

void check(const Conv2dGeometry& g) {
  GRAFT_ASSERT(g.n >= 0 && g.h > 0 && g.w > 0 && g.c_in > 0 && g.c_out > 0, "bad conv2d shape");
  GRAFT_ASSERT(g.kh > 0 && g.kw > 0 && g.stride > 0 && g.pad >= 0, "bad conv2d window");
  GRAFT_ASSERT(g.out_h() > 0 && g.out_w() > 0, "conv2d window larger than the padded input");
}

// 1x1, stride 1, no padding: the input already is the im2col matrix.
bool is_pointwise(const Conv2dGeometry& g) { return g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0; }

int64_t patch_len(const Conv2dGeometry& g) { return int64_t{g.kh} * g.kw * g.c_in; }

// x_img [h, w, c_in] -> col [out_h * out_w, kh * kw * c_in], zeros where the window hits padding.
void im2col(const Conv2dGeometry& g, const float* x_img, float* col) {
  const int oh = g.out_h(), ow = g.out_w();
  const int64_t K = patch_len(g);
  for (int oy = 0; oy < oh; ++oy) {
    for (int ox = 0; ox < ow; ++ox) {
      float* row = col + (int64_t{oy} * ow + ox) * K;
      for (int ky = 0; ky < g.kh; ++ky) {
        const int iy = oy * g.stride - g.pad + ky;
        for (int kx = 0; kx < g.kw; ++kx) {
          const int ix = ox * g.stride - g.pad + kx;
          float* dst = row + (int64_t{ky} * g.kw + kx) * g.c_in;
          if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w)
            std::fill(dst, dst + g.c_in, 0.0f);
          else
            std::memcpy(dst, x_img + (int64_t{iy} * g.w + ix) * g.c_in, sizeof(float) * size_t(g.c_in));
        }
      }
    }
  }
}

// The adjoint of im2col: dx_img = sum of every patch row scattered back to where it came from.
void col2im(const Conv2dGeometry& g, const float* col, float* dx_img) {
  const int oh = g.out_h(), ow = g.out_w();
  const int64_t K = patch_len(g);
  std::fill(dx_img, dx_img + int64_t{g.h} * g.w * g.c_in, 0.0f);
  for (int oy = 0; oy < oh; ++oy) {
    for (int ox = 0; ox < ow; ++ox) {
      const float* row = col + (int64_t{oy} * ow + ox) * K;
      for (int ky = 0; ky < g.kh; ++ky) {
        const int iy = oy * g.stride - g.pad + ky;
        if (iy < 0 || iy >= g.h) continue;
        for (int kx = 0; kx < g.kw; ++kx) {
          const int ix = ox * g.stride - g.pad + kx;
          if (ix < 0 || ix >= g.w) continue;
          const float* src = row + (int64_t{ky} * g.kw + kx) * g.c_in;
          float* dst = dx_img + (int64_t{iy} * g.w + ix) * g.c_in;
          for (int ci = 0; ci < g.c_in; ++ci) dst[ci] += src[ci];
        }
      }
    }
  }
}

void bias_sum(int64_t rows, int c_out, const float* dy, float* dbias) {
  std::vector<double> acc(size_t(c_out), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int co = 0; co < c_out; ++co) acc[size_t(co)] += dy[r * c_out + co];
  for (int co = 0; co < c_out; ++co) dbias[co] = static_cast<float>(acc[size_t(co)]);
}

}  // namespace

// ---------------------------------------------------------------- reference

void conv2d_forward_reference(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                              float* y) {
  check(g);
  const int oh = g.out_h(), ow = g.out_w();
  for (int b = 0; b < g.n; ++b)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox)
        for (int co = 0; co < g.c_out; ++co) {
          double acc = bias ? double(bias[co]) : 0.0;
          for (int ky = 0; ky < g.kh; ++ky) {
            const int iy = oy * g.stride - g.pad + ky;
            if (iy < 0 || iy >= g.h) continue;
            for (int kx = 0; kx < g.kw; ++kx) {
              const int ix = ox * g.stride - g.pad + kx;
              if (ix < 0 || ix >= g.w) continue;
              const float* xp = x + ((int64_t{b} * g.h + iy) * g.w + ix) * g.c_in;
              const float* wp = w + ((int64_t{co} * g.kh + ky) * g.kw + kx) * g.c_in;
              for (int ci = 0; ci < g.c_in; ++ci) acc += double(xp[ci]) * double(wp[ci]);
            }
          }
          y[((int64_t{b} * oh + oy) * ow + ox) * g.c_out + co] = static_cast<float>(acc);
        }
}

void conv2d_backward_data_reference(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  check(g);
  const int oh = g.out_h(), ow = g.out_w();
  // Gather: input pixel (iy, ix) feeds output (oy, ox) through tap (ky, kx) when
  // iy = oy * stride - pad + ky.
  for (int b = 0; b < g.n; ++b)
    for (int iy = 0; iy < g.h; ++iy)
      for (int ix = 0; ix < g.w; ++ix)
        for (int ci = 0; ci < g.c_in; ++ci) {
          double acc = 0.0;
          for (int ky = 0; ky < g.kh; ++ky) {
            const int ty = iy + g.pad - ky;
            if (ty < 0 || ty % g.stride != 0 || ty / g.stride >= oh) continue;
            const int oy = ty / g.stride;
            for (int kx = 0; kx < g.kw; ++kx) {
              const int tx = ix + g.pad - kx;
              if (tx < 0 || tx % g.stride != 0 || tx / g.stride >= ow) continue;
              const int ox = tx / g.stride;
              const float* dyp = dy + ((int64_t{b} * oh + oy) * ow + ox) * g.c_out;
              for (int co = 0; co < g.c_out; ++co)
                acc += double(dyp[co]) * double(w[((int64_t{co} * g.kh + ky) * g.kw + kx) * g.c_in + ci]);
            }
          }
          dx[((int64_t{b} * g.h + iy) * g.w + ix) * g.c_in + ci] = static_cast<float>(acc);
        }
}

void conv2d_backward_filter_reference(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                      float* dbias) {
  check(g);
  const int oh = g.out_h(), ow = g.out_w();
  for (int co = 0; co < g.c_out; ++co)
    for (int ky = 0; ky < g.kh; ++ky)
      for (int kx = 0; kx < g.kw; ++kx)
        for (int ci = 0; ci < g.c_in; ++ci) {
          double acc = 0.0;
          for (int b = 0; b < g.n; ++b)
            for (int oy = 0; oy < oh; ++oy) {
              const int iy = oy * g.stride - g.pad + ky;
              if (iy < 0 || iy >= g.h) continue;
              for (int ox = 0; ox < ow; ++ox) {
                const int ix = ox * g.stride - g.pad + kx;
                if (ix < 0 || ix >= g.w) continue;
                acc += double(dy[((int64_t{b} * oh + oy) * ow + ox) * g.c_out + co]) *
                       double(x[((int64_t{b} * g.h + iy) * g.w + ix) * g.c_in + ci]);
              }
            }
          dw[((int64_t{co} * g.kh + ky) * g.kw + kx) * g.c_in + ci] = static_cast<float>(acc);
        }
  if (dbias) bias_sum(int64_t{g.n} * oh * ow, g.c_out, dy, dbias);
}

// ---------------------------------------------------------------- fast (im2col + sgemm)

size_t conv2d_workspace_floats(const Conv2dGeometry& g) {
  if (is_pointwise(g)) return 0;
  return static_cast<size_t>(int64_t{g.out_h()} * g.out_w() * patch_len(g));
}

void conv2d_forward_fast(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                         float* workspace) {
  check(g);
  const int64_t M = int64_t{g.out_h()} * g.out_w();  // output pixels per image
  const int K = static_cast<int>(patch_len(g));
  const int64_t rows = g.n * M;
  // y starts as the bias (then accumulated into) or is overwritten (beta = 0).
  if (bias)
    for (int64_t r = 0; r < rows; ++r) std::memcpy(y + r * g.c_out, bias, sizeof(float) * size_t(g.c_out));
  const float beta = bias ? 1.0f : 0.0f;
  if (is_pointwise(g)) {  // y[rows, c_out] = x[rows, c_in] * W^T
    sgemm(false, true, static_cast<int>(rows), g.c_out, K, 1.0f, x, K, w, K, beta, y, g.c_out);
    return;
  }
  GRAFT_ASSERT(workspace != nullptr, "conv2d_forward_fast needs a workspace");
  for (int b = 0; b < g.n; ++b) {
    im2col(g, x + int64_t{b} * g.h * g.w * g.c_in, workspace);
    sgemm(false, true, static_cast<int>(M), g.c_out, K, 1.0f, workspace, K, w, K, beta, y + b * M * g.c_out,
          g.c_out);
  }
}

void conv2d_backward_data_fast(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                               float* workspace) {
  check(g);
  const int64_t M = int64_t{g.out_h()} * g.out_w();
  const int K = static_cast<int>(patch_len(g));
  if (is_pointwise(g)) {  // dx[rows, c_in] = dy[rows, c_out] * W
    sgemm(false, false, static_cast<int>(g.n * M), K, g.c_out, 1.0f, dy, g.c_out, w, K, 0.0f, dx, K);
    return;
  }
  GRAFT_ASSERT(workspace != nullptr, "conv2d_backward_data_fast needs a workspace");
  for (int b = 0; b < g.n; ++b) {
    // Column gradient [M, K] = dy_img [M, c_out] * W [c_out, K], then scattered back.
    sgemm(false, false, static_cast<int>(M), K, g.c_out, 1.0f, dy + b * M * g.c_out, g.c_out, w, K, 0.0f,
          workspace, K);
    col2im(g, workspace, dx + int64_t{b} * g.h * g.w * g.c_in);
  }
}

void conv2d_backward_filter_fast(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                 float* dbias, float* workspace) {
  check(g);
  const int64_t M = int64_t{g.out_h()} * g.out_w();
  const int K = static_cast<int>(patch_len(g));
  if (g.n == 0) std::fill(dw, dw + g.weight_numel(), 0.0f);
  if (is_pointwise(g)) {  // dW[c_out, c_in] = dy^T[c_out, rows] * x[rows, c_in]
    if (g.n > 0) sgemm(true, false, g.c_out, K, static_cast<int>(g.n * M), 1.0f, dy, g.c_out, x, K, 0.0f, dw, K);
  } else {
    GRAFT_ASSERT(workspace != nullptr, "conv2d_backward_filter_fast needs a workspace");
    for (int b = 0; b < g.n; ++b) {
      // dW [c_out, K] (+)= dy_img^T [c_out, M] * col [M, K]; the first image overwrites.
      im2col(g, x + int64_t{b} * g.h * g.w * g.c_in, workspace);
      sgemm(true, false, g.c_out, K, static_cast<int>(M), 1.0f, dy + b * M * g.c_out, g.c_out, workspace, K,
            b == 0 ? 0.0f : 1.0f, dw, K);
    }
  }
  if (dbias) bias_sum(g.n * M, g.c_out, dy, dbias);
}

}  // namespace graft::cpu

#include "kernels/cuda/pool.h"

#include <cmath>

#include "kernels/cuda/launch.cuh"
#include "base/error.h"

namespace graft::cuda {

namespace {

void check(const Pool2dGeometry& g) {
  GRAFT_ASSERT(g.n >= 0 && g.h > 0 && g.w > 0 && g.c > 0, "bad pool2d shape");
  GRAFT_ASSERT(g.kh > 0 && g.kw > 0 && g.stride > 0 && g.pad >= 0, "bad pool2d window");
  GRAFT_ASSERT(g.out_h() > 0 && g.out_w() > 0, "pool2d window larger than the padded input");
}

struct P {
  int n, h, w, c, kh, kw, stride, pad, oh, ow;
};
P pshape(const Pool2dGeometry& g) { return P{g.n, g.h, g.w, g.c, g.kh, g.kw, g.stride, g.pad, g.out_h(), g.out_w()}; }

// Index of the first maximum of window (b, oy, ox, ch), -1 when it holds no input. Same rule
// as the CPU reference: strictly greater replaces, NaN wins over a number.
__device__ int64_t window_argmax(const P& s, const float* x, int64_t b, int oy, int ox, int ch) {
  int64_t best = -1;
  float best_v = -INFINITY;
  for (int ky = 0; ky < s.kh; ++ky) {
    const int iy = oy * s.stride - s.pad + ky;
    if (iy < 0 || iy >= s.h) continue;
    for (int kx = 0; kx < s.kw; ++kx) {
      const int ix = ox * s.stride - s.pad + kx;
      if (ix < 0 || ix >= s.w) continue;
      const int64_t idx = ((b * s.h + iy) * s.w + ix) * s.c + ch;
      const float v = x[idx];
      if (best < 0 || v > best_v || (v != v && best_v == best_v)) {
        best = idx;
        best_v = v;
      }
    }
  }
  return best;
}

__global__ void maxpool_forward_kernel(P s, const float* x, float* y, int64_t total) {
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    const int ch = static_cast<int>(e % s.c);
    int64_t t = e / s.c;
    const int ox = static_cast<int>(t % s.ow);
    t /= s.ow;
    const int oy = static_cast<int>(t % s.oh);
    const int64_t b = t / s.oh;
    const int64_t idx = window_argmax(s, x, b, oy, ox, ch);
    y[e] = idx >= 0 ? x[idx] : -INFINITY;
  }
}

// Per input element: the sum of dy over the windows that contain it and whose first maximum
// it is, in window order (the CPU reference's order).
__global__ void maxpool_backward_kernel(P s, const float* x, const float* dy, float* dx, int64_t total) {
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    const int ch = static_cast<int>(e % s.c);
    int64_t t = e / s.c;
    const int ix = static_cast<int>(t % s.w);
    t /= s.w;
    const int iy = static_cast<int>(t % s.h);
    const int64_t b = t / s.h;
    float acc = 0.0f;
    // Windows oy with oy*stride - pad <= iy < oy*stride - pad + kh.
    const int oy_lo = max(0, (iy + s.pad - s.kh + s.stride) / s.stride);
    const int oy_hi = min(s.oh - 1, (iy + s.pad) / s.stride);
    const int ox_lo = max(0, (ix + s.pad - s.kw + s.stride) / s.stride);
    const int ox_hi = min(s.ow - 1, (ix + s.pad) / s.stride);
    for (int oy = oy_lo; oy <= oy_hi; ++oy)
      for (int ox = ox_lo; ox <= ox_hi; ++ox)
        if (window_argmax(s, x, b, oy, ox, ch) == e) acc += dy[((b * s.oh + oy) * s.ow + ox) * s.c + ch];
    dx[e] = acc;
  }
}

__global__ void avgpool_forward_kernel(P s, const float* x, float* y, int64_t total) {
  const float inv = 1.0f / static_cast<float>(s.kh * s.kw);
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    const int ch = static_cast<int>(e % s.c);
    int64_t t = e / s.c;
    const int ox = static_cast<int>(t % s.ow);
    t /= s.ow;
    const int oy = static_cast<int>(t % s.oh);
    const int64_t b = t / s.oh;
    float acc = 0.0f;
    for (int ky = 0; ky < s.kh; ++ky) {
      const int iy = oy * s.stride - s.pad + ky;
      if (iy < 0 || iy >= s.h) continue;
      for (int kx = 0; kx < s.kw; ++kx) {
        const int ix = ox * s.stride - s.pad + kx;
        if (ix < 0 || ix >= s.w) continue;
        acc += x[((b * s.h + iy) * s.w + ix) * s.c + ch];
      }
    }
    y[e] = acc * inv;
  }
}

__global__ void avgpool_backward_kernel(P s, const float* dy, float* dx, int64_t total) {
  const float inv = 1.0f / static_cast<float>(s.kh * s.kw);
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    const int ch = static_cast<int>(e % s.c);
    int64_t t = e / s.c;
    const int ix = static_cast<int>(t % s.w);
    t /= s.w;
    const int iy = static_cast<int>(t % s.h);
    const int64_t b = t / s.h;
    const int oy_lo = max(0, (iy + s.pad - s.kh + s.stride) / s.stride);
    const int oy_hi = min(s.oh - 1, (iy + s.pad) / s.stride);
    const int ox_lo = max(0, (ix + s.pad - s.kw + s.stride) / s.stride);
    const int ox_hi = min(s.ow - 1, (ix + s.pad) / s.stride);
    float acc = 0.0f;
    for (int oy = oy_lo; oy <= oy_hi; ++oy)
      for (int ox = ox_lo; ox <= ox_hi; ++ox) acc += dy[((b * s.oh + oy) * s.ow + ox) * s.c + ch];
    dx[e] = acc * inv;
  }
}

// One thread per (image, channel); neighbouring threads read neighbouring channels.
__global__ void global_avgpool_forward_kernel(int n, int64_t hw, int c, const float* x, float* y) {
  const int64_t total = int64_t{n} * c;
  const float inv = 1.0f / static_cast<float>(hw);
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = e / c;
    const int ch = static_cast<int>(e % c);
    float acc = 0.0f;
    for (int64_t p = 0; p < hw; ++p) acc += x[(b * hw + p) * c + ch];
    y[e] = acc * inv;
  }
}

__global__ void global_avgpool_backward_kernel(int64_t hw, int c, const float* dy, float* dx, int64_t total) {
  const float inv = 1.0f / static_cast<float>(hw);
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    const int ch = static_cast<int>(e % c);
    const int64_t b = e / (hw * c);
    dx[e] = dy[b * c + ch] * inv;
  }
}

}  // namespace

void maxpool2d_forward(const Pool2dGeometry& g, const float* x, float* y, cudaStream_t stream) {
  check(g);
  const int64_t total = g.output_numel();
  if (total == 0) return;
  maxpool_forward_kernel<<<detail::grid_for(total), detail::kThreads, 0, stream>>>(pshape(g), x, y, total);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void maxpool2d_backward(const Pool2dGeometry& g, const float* x, const float* dy, float* dx, cudaStream_t stream) {
  check(g);
  const int64_t total = g.input_numel();
  if (total == 0) return;
  maxpool_backward_kernel<<<detail::grid_for(total), detail::kThreads, 0, stream>>>(pshape(g), x, dy, dx, total);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void avgpool2d_forward(const Pool2dGeometry& g, const float* x, float* y, cudaStream_t stream) {
  check(g);
  const int64_t total = g.output_numel();
  if (total == 0) return;
  avgpool_forward_kernel<<<detail::grid_for(total), detail::kThreads, 0, stream>>>(pshape(g), x, y, total);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void avgpool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx, cudaStream_t stream) {
  check(g);
  const int64_t total = g.input_numel();
  if (total == 0) return;
  avgpool_backward_kernel<<<detail::grid_for(total), detail::kThreads, 0, stream>>>(pshape(g), dy, dx, total);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void global_avgpool_forward(int n, int h, int w, int c, const float* x, float* y, cudaStream_t stream) {
  GRAFT_ASSERT(n >= 0 && h > 0 && w > 0 && c > 0, "bad global_avgpool shape");
  const int64_t total = int64_t{n} * c;
  if (total == 0) return;
  global_avgpool_forward_kernel<<<detail::grid_for(total), detail::kThreads, 0, stream>>>(n, int64_t{h} * w, c, x, y);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void global_avgpool_backward(int n, int h, int w, int c, const float* dy, float* dx, cudaStream_t stream) {
  GRAFT_ASSERT(n >= 0 && h > 0 && w > 0 && c > 0, "bad global_avgpool shape");
  const int64_t total = int64_t{n} * h * w * c;
  if (total == 0) return;
  global_avgpool_backward_kernel<<<detail::grid_for(total), detail::kThreads, 0, stream>>>(int64_t{h} * w, c, dy, dx,
                                                                                          total);
  GRAFT_CUDA_CHECK_LAUNCH();
}

}  // namespace graft::cuda

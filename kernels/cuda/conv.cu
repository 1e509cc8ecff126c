#include "kernels/cuda/conv.h"

#include "kernels/cuda/launch.cuh"
#include "base/error.h"

namespace graft::cuda {

namespace {

struct Shape {
  int n, h, w, c_in, c_out, kh, kw, stride, pad, oh, ow;
};

Shape shape_of(const Conv2dGeometry& g) {
  GRAFT_ASSERT(g.n >= 0 && g.h > 0 && g.w > 0 && g.c_in > 0 && g.c_out > 0, "bad conv2d shape");
  GRAFT_ASSERT(g.kh > 0 && g.kw > 0 && g.stride > 0 && g.pad >= 0, "bad conv2d window");
  GRAFT_ASSERT(g.out_h() > 0 && g.out_w() > 0, "conv2d kernel larger than the padded input");
  return Shape{g.n, g.h, g.w, g.c_in, g.c_out, g.kh, g.kw, g.stride, g.pad, g.out_h(), g.out_w()};
}

// The im2col element (output pixel `pix`, patch index `k` = (r, s, ci)) of image x.
__host__ __device__ __forceinline__ float im2col(const Shape& s, const float* x, int64_t pix, int k) {
  const int ox = static_cast<int>(pix % s.ow);
  const int64_t t = pix / s.ow;
  const int oy = static_cast<int>(t % s.oh);
  const int64_t b = t / s.oh;
  const int ci = k % s.c_in;
  const int t2 = k / s.c_in;
  const int c = t2 % s.kw;
  const int r = t2 / s.kw;
  const int iy = oy * s.stride - s.pad + r;
  const int ix = ox * s.stride - s.pad + c;
  if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) return 0.0f;
  return x[((b * s.h + iy) * s.w + ix) * s.c_in + ci];
}

// y[pix, co] = sum_k im2col(x)[pix, k] * w[co, k] + bias[co]
struct ForwardProblem {
  Shape s;
  const float* x;
  const float* w;
  const float* bias;
  float* y;
  int64_t M;
  int N, K;
  static constexpr bool kAContiguousK = true;
  static constexpr bool kBContiguousN = false;
  __host__ __device__ float a(int64_t m, int k) const { return im2col(s, x, m, k); }
  __host__ __device__ float b(int k, int n) const { return w[int64_t{n} * K + k]; }
  __host__ __device__ void store(int64_t m, int n, float acc) const { y[m * N + n] = bias ? acc + bias[n] : acc; }
};

// dx[p, ci] = sum over (r, c, co) of dy[pixel of the window that reads p through tap (r, c), co]
//            * w[co, r, c, ci]
struct BackwardDataProblem {
  Shape s;
  const float* dy;
  const float* w;
  float* dx;
  int64_t M;
  int N, K;
  static constexpr bool kAContiguousK = true;
  static constexpr bool kBContiguousN = true;
  __host__ __device__ float a(int64_t m, int k) const {
    const int ix = static_cast<int>(m % s.w);
    const int64_t t = m / s.w;
    const int iy = static_cast<int>(t % s.h);
    const int64_t b = t / s.h;
    const int co = k % s.c_out;
    const int t2 = k / s.c_out;
    const int c = t2 % s.kw;
    const int r = t2 / s.kw;
    const int ty = iy + s.pad - r;
    const int tx = ix + s.pad - c;
    if (ty < 0 || tx < 0 || ty % s.stride != 0 || tx % s.stride != 0) return 0.0f;
    const int oy = ty / s.stride, ox = tx / s.stride;
    if (oy >= s.oh || ox >= s.ow) return 0.0f;
    return dy[((b * s.oh + oy) * s.ow + ox) * s.c_out + co];
  }
  __host__ __device__ float b(int k, int n) const {
    const int co = k % s.c_out;
    const int rc = k / s.c_out;  // r * kw + c
    return w[(int64_t{co} * s.kh * s.kw + rc) * s.c_in + n];
  }
  __host__ __device__ void store(int64_t m, int n, float acc) const { dx[m * N + n] = acc; }
};

// dw[co, k] = sum_pix dy[pix, co] * im2col(x)[pix, k]; column k == N_w (when dbias is set) is
// a column of ones, so the same reduction gives dbias[co] = sum_pix dy[pix, co].
struct BackwardFilterProblem {
  Shape s;
  const float* x;
  const float* dy;
  float* dw;
  float* dbias;
  int64_t M;
  int N, K;
  int n_w;  // columns of dw
  static constexpr bool kAContiguousK = false;
  static constexpr bool kBContiguousN = true;
  __host__ __device__ float a(int64_t m, int k) const { return dy[int64_t{k} * s.c_out + m]; }
  __host__ __device__ float b(int k, int n) const { return n < n_w ? im2col(s, x, k, n) : 1.0f; }
  __host__ __device__ void store(int64_t m, int n, float acc) const {
    if (n < n_w)
      dw[m * n_w + n] = acc;
    else
      dbias[m] = acc;
  }
};

}  // namespace

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                    cudaStream_t stream) {
  const Shape s = shape_of(g);
  ForwardProblem p{s, x, w, bias, y, int64_t{s.n} * s.oh * s.ow, s.c_out, s.kh * s.kw * s.c_in};
  detail::launch_gemm(p, stream, nullptr);
}

void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx, cudaStream_t stream) {
  const Shape s = shape_of(g);
  BackwardDataProblem p{s, dy, w, dx, int64_t{s.n} * s.h * s.w, s.c_in, s.kh * s.kw * s.c_out};
  detail::launch_gemm(p, stream, nullptr);
}

namespace {
BackwardFilterProblem filter_problem(const Shape& s, const float* x, const float* dy, float* dw, float* dbias) {
  const int n_w = s.kh * s.kw * s.c_in;
  const int64_t pixels = int64_t{s.n} * s.oh * s.ow;
  GRAFT_ASSERT(pixels < (int64_t{1} << 31), "conv2d backward-filter over too many pixels: ", pixels);
  return BackwardFilterProblem{s, x, dy, dw, dbias, s.c_out, n_w + (dbias ? 1 : 0), static_cast<int>(pixels), n_w};
}
}  // namespace

// Sized for both layouts: the dbias column changes the tile count and so the split (a conv
// without bias, as ResNet's, may split into more slices than one with it).
size_t conv2d_backward_filter_workspace_floats(const Conv2dGeometry& g) {
  const Shape s = shape_of(g);
  const BackwardFilterProblem with = filter_problem(s, nullptr, nullptr, nullptr, reinterpret_cast<float*>(1));
  const BackwardFilterProblem without = filter_problem(s, nullptr, nullptr, nullptr, nullptr);
  return std::max(detail::gemm_workspace_floats(with.M, with.N, with.K),
                  detail::gemm_workspace_floats(without.M, without.N, without.K));
}

int conv2d_backward_filter_splits(const Conv2dGeometry& g, bool with_bias) {
  const BackwardFilterProblem p =
      filter_problem(shape_of(g), nullptr, nullptr, nullptr, with_bias ? reinterpret_cast<float*>(1) : nullptr);
  if (p.K <= 0) return 1;
  const bool fits = detail::gemm_workspace_floats(p.M, p.N, p.K) <= conv2d_backward_filter_workspace_floats(g);
  return fits ? detail::gemm_splits(p.M, p.N, p.K) : 1;
}

void conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw, float* dbias,
                            float* workspace, cudaStream_t stream) {
  const Shape s = shape_of(g);
  const BackwardFilterProblem p = filter_problem(s, x, dy, dw, dbias);
  if (p.K == 0) {  // empty batch: the gradients are zero
    GRAFT_CUDA_CHECK(cudaMemsetAsync(dw, 0, sizeof(float) * static_cast<size_t>(p.M) * p.n_w, stream));
    if (dbias) GRAFT_CUDA_CHECK(cudaMemsetAsync(dbias, 0, sizeof(float) * static_cast<size_t>(p.M), stream));
    return;
  }
  if (conv2d_backward_filter_splits(g, dbias != nullptr) == 1) workspace = nullptr;
  detail::launch_gemm(p, stream, workspace);
}

}  // namespace graft::cuda

namespace graft::cuda::host_emulation {

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const Shape s = shape_of(g);
  detail::emulate_gemm_on_host(ForwardProblem{s, x, w, bias, y, int64_t{s.n} * s.oh * s.ow, s.c_out, s.kh * s.kw * s.c_in},
                               false);
}

void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  const Shape s = shape_of(g);
  detail::emulate_gemm_on_host(BackwardDataProblem{s, dy, w, dx, int64_t{s.n} * s.h * s.w, s.c_in, s.kh * s.kw * s.c_out},
                               false);
}

void conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw, float* dbias,
                            bool split_k) {
  const Shape s = shape_of(g);
  detail::emulate_gemm_on_host(filter_problem(s, x, dy, dw, dbias),
                               split_k && conv2d_backward_filter_splits(g, dbias != nullptr) > 1);
}

}  // namespace graft::cuda::host_emulation

#include "kernels/cuda/misc.h"

#include "kernels/common/bf16.h"
#include "kernels/cuda/launch.cuh"

namespace graft::cuda {

namespace {

#define GRAFT_MISC_LOOP(i, count) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (count); i += int64_t{gridDim.x} * blockDim.x)

__device__ int ad_start(int i, int in, int out) { return static_cast<int>((int64_t{i} * in) / out); }
__device__ int ad_end(int i, int in, int out) { return static_cast<int>((int64_t{i + 1} * in + out - 1) / out); }

__global__ void adaptive_forward_kernel(cpu::AdaptivePoolGeometry g, int64_t count, const float* x, float* y) {
  GRAFT_MISC_LOOP(i, count) {
    const int ch = static_cast<int>(i % g.c);
    int64_t rest = i / g.c;
    const int ow = static_cast<int>(rest % g.out_w);
    rest /= g.out_w;
    const int oh = static_cast<int>(rest % g.out_h);
    const int n = static_cast<int>(rest / g.out_h);
    const int h0 = ad_start(oh, g.h, g.out_h), h1 = ad_end(oh, g.h, g.out_h);
    const int w0 = ad_start(ow, g.w, g.out_w), w1 = ad_end(ow, g.w, g.out_w);
    double s = 0;
    for (int h = h0; h < h1; ++h)
      for (int w = w0; w < w1; ++w) s += double(x[((int64_t{n} * g.h + h) * g.w + w) * g.c + ch]);
    y[i] = static_cast<float>(s / double((h1 - h0) * (w1 - w0)));
  }
}

// Gather: each input element sums the gradients of every window that contains it.
__global__ void adaptive_backward_kernel(cpu::AdaptivePoolGeometry g, int64_t count, const float* dy, float* dx) {
  GRAFT_MISC_LOOP(i, count) {
    const int ch = static_cast<int>(i % g.c);
    int64_t rest = i / g.c;
    const int w = static_cast<int>(rest % g.w);
    rest /= g.w;
    const int h = static_cast<int>(rest % g.h);
    const int n = static_cast<int>(rest / g.h);
    double s = 0;
    for (int oh = 0; oh < g.out_h; ++oh) {
      const int h0 = ad_start(oh, g.h, g.out_h), h1 = ad_end(oh, g.h, g.out_h);
      if (h < h0 || h >= h1) continue;
      for (int ow = 0; ow < g.out_w; ++ow) {
        const int w0 = ad_start(ow, g.w, g.out_w), w1 = ad_end(ow, g.w, g.out_w);
        if (w < w0 || w >= w1) continue;
        s += double(dy[((int64_t{n} * g.out_h + oh) * g.out_w + ow) * g.c + ch]) / double((h1 - h0) * (w1 - w0));
      }
    }
    dx[i] = static_cast<float>(s);
  }
}

__global__ void fill_kernel(int64_t count, float value, float* x) {
  GRAFT_MISC_LOOP(i, count) x[i] = value;
}

__global__ void round_to_bf16_kernel(int64_t count, const float* x, float* y) {
  GRAFT_MISC_LOOP(i, count) y[i] = math::round_to_bf16(x[i]);
}

// A label outside [0, classes) gives a NaN row (the loss then shows it, as cross-entropy's).
__global__ void one_hot_kernel(int n, int classes, const int32_t* labels, float* t) {
  const int64_t count = int64_t{n} * classes;
  GRAFT_MISC_LOOP(i, count) {
    const int32_t label = labels[i / classes];
    t[i] = label < 0 || label >= classes ? __int_as_float(0x7fc00000)
                                         : label == static_cast<int32_t>(i % classes) ? 1.0f : 0.0f;
  }
}

__global__ void add_doubles_kernel(int count, const double* src, double* dst) {
  GRAFT_MISC_LOOP(i, count) dst[i] += src[i];
}

__global__ void nonfinite_kernel(int64_t count, const float* x, int* flag) {
  GRAFT_MISC_LOOP(i, count) if (!isfinite(x[i])) *flag = 1;
}

__global__ void record_first_tag_kernel(const double* loss, const int* flag, int64_t tag, int64_t* first_tag) {
  if (*first_tag < 0 && (*flag != 0 || !isfinite(*loss))) *first_tag = tag;
}

}  // namespace

void adaptive_avgpool2d_forward(const cpu::AdaptivePoolGeometry& g, const float* x, float* y, cudaStream_t stream) {
  const int64_t count = g.output_numel();
  if (count <= 0) return;
  adaptive_forward_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(g, count, x, y);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void adaptive_avgpool2d_backward(const cpu::AdaptivePoolGeometry& g, const float* dy, float* dx, cudaStream_t stream) {
  const int64_t count = g.input_numel();
  if (count <= 0) return;
  adaptive_backward_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(g, count, dy, dx);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void fill(int64_t count, float value, float* x, cudaStream_t stream) {
  if (count <= 0) return;
  fill_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(count, value, x);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void round_to_bf16(int64_t count, const float* x, float* y, cudaStream_t stream) {
  if (count <= 0) return;
  round_to_bf16_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(count, x, y);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void one_hot(int n, int classes, const int32_t* labels, float* targets, cudaStream_t stream) {
  const int64_t count = int64_t{n} * classes;
  if (count <= 0) return;
  one_hot_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(n, classes, labels, targets);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void add_doubles(int count, const double* src, double* dst, cudaStream_t stream) {
  if (count <= 0) return;
  add_doubles_kernel<<<1, 32, 0, stream>>>(count, src, dst);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void record_first_tag(const double* loss, const int* d_flag, int64_t tag, int64_t* first_tag, cudaStream_t stream) {
  record_first_tag_kernel<<<1, 1, 0, stream>>>(loss, d_flag, tag, first_tag);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void flag_nonfinite(int64_t count, const float* x, int* d_flag, cudaStream_t stream) {
  if (count <= 0) return;
  nonfinite_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(count, x, d_flag);
  GRAFT_CUDA_CHECK_LAUNCH();
}

}  // namespace graft::cuda

#include "kernels/cuda/dense.h"

#include "kernels/common/elementwise.h"
#include "kernels/cuda/launch.cuh"
#include "base/error.h"

namespace graft::cuda {

namespace {

// y[b, o] = sum_i x[b, i] w[o, i] (+ bias[o]) (then ReLU)
template <bool kRelu>
struct ForwardProblem {
  const float* x;
  const float* w;
  const float* bias;
  float* y;
  int64_t M;
  int N, K;
  static constexpr bool kAContiguousK = true;
  static constexpr bool kBContiguousN = false;
  __host__ __device__ float a(int64_t m, int k) const { return x[m * K + k]; }
  __host__ __device__ float b(int k, int n) const { return w[int64_t{n} * K + k]; }
  __host__ __device__ void store(int64_t m, int n, float acc) const {
    float v = bias ? acc + bias[n] : acc;
    if constexpr (kRelu) v = math::relu(v);
    y[m * N + n] = v;
  }
};

// dx[b, i] = sum_o dy[b, o] w[o, i]
struct BackwardDataProblem {
  const float* dy;
  const float* w;
  float* dx;
  int64_t M;
  int N, K;
  static constexpr bool kAContiguousK = true;
  static constexpr bool kBContiguousN = true;
  __host__ __device__ float a(int64_t m, int k) const { return dy[m * K + k]; }
  __host__ __device__ float b(int k, int n) const { return w[int64_t{k} * N + n]; }
  __host__ __device__ void store(int64_t m, int n, float acc) const { dx[m * N + n] = acc; }
};

// dw[o, i] = sum_b dy[b, o] x[b, i]; column i == in (when dbias is set) is ones: dbias[o].
struct BackwardWeightsProblem {
  const float* x;
  const float* dy;
  float* dw;
  float* dbias;
  int64_t M;
  int N, K;
  int in;
  static constexpr bool kAContiguousK = false;
  static constexpr bool kBContiguousN = true;
  __host__ __device__ float a(int64_t m, int k) const { return dy[int64_t{k} * M + m]; }
  __host__ __device__ float b(int k, int n) const { return n < in ? x[int64_t{k} * in + n] : 1.0f; }
  __host__ __device__ void store(int64_t m, int n, float acc) const {
    if (n < in)
      dw[m * in + n] = acc;
    else
      dbias[m] = acc;
  }
};

void check(int n, int in, int out) { GRAFT_ASSERT(n >= 0 && in > 0 && out > 0, "bad dense shape ", n, "x", in, "->", out); }

}  // namespace

void dense_forward(int n, int in, int out, const float* x, const float* w, const float* bias, float* y,
                   cudaStream_t stream, bool relu) {
  check(n, in, out);
  if (relu)
    detail::launch_gemm(ForwardProblem<true>{x, w, bias, y, n, out, in}, stream, nullptr);
  else
    detail::launch_gemm(ForwardProblem<false>{x, w, bias, y, n, out, in}, stream, nullptr);
}

void dense_backward_data(int n, int in, int out, const float* dy, const float* w, float* dx, cudaStream_t stream) {
  check(n, in, out);
  detail::launch_gemm(BackwardDataProblem{dy, w, dx, n, in, out}, stream, nullptr);
}

void dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw, float* dbias,
                            cudaStream_t stream) {
  check(n, in, out);
  detail::launch_gemm(BackwardWeightsProblem{x, dy, dw, dbias, out, in + (dbias ? 1 : 0), n, in}, stream, nullptr);
}

}  // namespace graft::cuda

namespace graft::cuda::host_emulation {

void dense_forward(int n, int in, int out, const float* x, const float* w, const float* bias, float* y, bool relu) {
  check(n, in, out);
  if (relu)
    detail::emulate_gemm_on_host(ForwardProblem<true>{x, w, bias, y, n, out, in}, false);
  else
    detail::emulate_gemm_on_host(ForwardProblem<false>{x, w, bias, y, n, out, in}, false);
}

void dense_backward_data(int n, int in, int out, const float* dy, const float* w, float* dx) {
  check(n, in, out);
  detail::emulate_gemm_on_host(BackwardDataProblem{dy, w, dx, n, in, out}, false);
}

void dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw, float* dbias) {
  check(n, in, out);
  detail::emulate_gemm_on_host(BackwardWeightsProblem{x, dy, dw, dbias, out, in + (dbias ? 1 : 0), n, in}, false);
}

}  // namespace graft::cuda::host_emulation

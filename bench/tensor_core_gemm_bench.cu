// Times graft's hand-written bf16 tensor-core GEMM (kernels/cuda/tensor_core_gemm) against
// cuBLASLt's bf16 GEMM (fp32 accumulate, fp32 output) on the same device arrays: a large
// square problem (the card's matrix peak) and vgg16 head shapes. One JSON line per
// (shape, implementation): median of 20 runs after 5 warm-ups, each timed with CUDA events
// (L2 not flushed; the large operands do not fit in it anyway), TFLOP/s = 2 M N K / time,
// and the largest difference from cuBLASLt's result relative to its largest magnitude.
//   cmake --build build --target graft_tc_gemm_bench && build/graft_tc_gemm_bench
// Without a usable device it says so and exits 0.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/common/bf16.h"
#include "kernels/cuda/tensor_core_gemm.h"
#include "base/cuda/cuda_check.h"
#include "runtime/cuda/device.h"

namespace {

struct Shape {
  const char* name;
  int64_t M;
  int N, K;
};

// Deterministic values in [-1, 1) from a hash of the index, written as bf16 on the device.
__global__ void fill_kernel(int64_t count, uint32_t salt, uint16_t* y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B9u ^ salt;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    y[i] = graft::math::float_to_bf16_bits(static_cast<float>(h >> 8) * (2.0f / 16777216.0f) - 1.0f);
  }
}

template <typename T>
struct Device {
  T* p = nullptr;
  explicit Device(size_t n) { GRAFT_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(n, 1) * sizeof(T))); }
  ~Device() { (void)cudaFree(p); }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
};

// Median milliseconds of `run` over 20 timed calls after 5 warm-ups.
template <typename F>
double median_ms(cudaStream_t stream, F&& run) {
  cudaEvent_t start, stop;
  GRAFT_CUDA_CHECK(cudaEventCreate(&start));
  GRAFT_CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 5; ++i) run();
  std::vector<float> ms(20);
  for (float& t : ms) {
    GRAFT_CUDA_CHECK(cudaEventRecord(start, stream));
    run();
    GRAFT_CUDA_CHECK(cudaEventRecord(stop, stream));
    GRAFT_CUDA_CHECK(cudaEventSynchronize(stop));
    GRAFT_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
  }
  GRAFT_CUDA_CHECK(cudaEventDestroy(start));
  GRAFT_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  return 0.5 * (ms[9] + ms[10]);
}

// cuBLASLt, column-major view of the row-major problem: Y^T [N, M] = W [K, N]^T * X^T [K, M].
struct LtGemm {
  cublasLtHandle_t lt;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t ws_bytes = 0;
  LtGemm(cublasLtHandle_t handle, const Shape& s, size_t max_ws) : lt(handle) {
    GRAFT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    GRAFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    GRAFT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    GRAFT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, uint64_t(s.K), uint64_t(s.N), s.K));
    GRAFT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, uint64_t(s.K), uint64_t(s.M), s.K));
    GRAFT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&c, CUDA_R_32F, uint64_t(s.N), uint64_t(s.M), s.N));
    cublasLtMatmulPreference_t pref = nullptr;
    GRAFT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    GRAFT_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_ws, sizeof(max_ws)));
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    GRAFT_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, op, a, b, c, c, pref, 1, &result, &returned));
    GRAFT_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (returned == 0) graft::fail("cuBLASLt has no bf16 algorithm for ", s.M, "x", s.N, "x", s.K);
    algo = result.algo;
    ws_bytes = result.workspaceSize;
  }
  ~LtGemm() {
    cublasLtMatrixLayoutDestroy(a);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(c);
    cublasLtMatmulDescDestroy(op);
  }
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;
  void run(const uint16_t* x, const uint16_t* w, float* y, void* ws, cudaStream_t stream) const {
    const float one = 1.0f, zero = 0.0f;
    GRAFT_CUBLAS_CHECK(cublasLtMatmul(lt, op, &one, w, a, x, b, &zero, y, c, y, c, &algo, ws, ws_bytes, stream));
  }
};

double max_rel_diff(const std::vector<float>& got, const std::vector<float>& ref) {
  double diff = 0.0, mag = 1e-30;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff = std::max(diff, std::abs(double(got[i]) - double(ref[i])));
    mag = std::max(mag, std::abs(double(ref[i])));
  }
  return diff / mag;
}

void print(const char* impl, const Shape& s, int splits, double ms, double rel) {
  const double tflops = 2.0 * double(s.M) * s.N * s.K / (ms * 1e-3) / 1e12;
  std::printf(
      "{\"bench\": \"tc_gemm\", \"impl\": \"%s\", \"shape\": \"%s\", \"M\": %lld, \"N\": %d, \"K\": %d, "
      "\"split_k\": %d, \"ms_median\": %.4f, \"tflops\": %.1f, \"max_rel_diff_vs_cublaslt\": %.3g}\n",
      impl, s.name, static_cast<long long>(s.M), s.N, s.K, splits, ms, tflops, rel);
  std::fflush(stdout);
}

void bench(cublasLtHandle_t lt, const Shape& s, cudaStream_t stream) {
  const size_t xn = size_t(s.M) * s.K, wn = size_t(s.N) * s.K, yn = size_t(s.M) * s.N;
  Device<uint16_t> x(xn), w(wn);
  Device<float> y(yn), y_ref(yn);
  fill_kernel<<<1024, 256, 0, stream>>>(int64_t(xn), 0x1234u, x.p);
  GRAFT_CUDA_CHECK_LAUNCH();
  fill_kernel<<<1024, 256, 0, stream>>>(int64_t(wn), 0xBEEFu, w.p);
  GRAFT_CUDA_CHECK_LAUNCH();
  const size_t lt_ws_max = size_t{32} << 20;
  Device<char> lt_ws(lt_ws_max);
  LtGemm ref(lt, s, lt_ws_max);

  const auto download = [&](const float* p) {
    std::vector<float> v(yn);
    GRAFT_CUDA_CHECK(cudaStreamSynchronize(stream));
    GRAFT_CUDA_CHECK(cudaMemcpy(v.data(), p, yn * sizeof(float), cudaMemcpyDeviceToHost));
    return v;
  };
  const double lt_ms = median_ms(stream, [&] { ref.run(x.p, w.p, y_ref.p, lt_ws.p, stream); });
  const auto want = download(y_ref.p);
  print("cublaslt_bf16", s, 1, lt_ms, 0.0);

  const double ms = median_ms(stream, [&] { graft::cuda::tensor_core_gemm(s.M, s.N, s.K, x.p, w.p, nullptr, y.p, stream); });
  print("graft_mma_sync", s, 1, ms, max_rel_diff(download(y.p), want));

  const size_t ws_floats = graft::cuda::tensor_core_gemm_workspace_floats(s.M, s.N, s.K);
  if (ws_floats > 0) {
    Device<float> ws(ws_floats);
    const double split_ms = median_ms(
        stream, [&] { graft::cuda::tensor_core_gemm(s.M, s.N, s.K, x.p, w.p, nullptr, y.p, stream, false, ws.p); });
    print("graft_mma_sync", s, int(ws_floats / yn), split_ms, max_rel_diff(download(y.p), want));
  }
}

}  // namespace

int main() {
  std::string reason;
  if (!graft::cuda::device_available(&reason)) {
    std::printf("graft_tc_gemm_bench: no CUDA device (%s); nothing measured\n", reason.c_str());
    return 0;
  }
  try {
    graft::cuda::check_device_supported();
    int dev = 0, major = 0;
    GRAFT_CUDA_CHECK(cudaGetDevice(&dev));
    GRAFT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    if (major < 8) {
      std::printf("graft_tc_gemm_bench: %s has no bf16 mma (needs compute capability 8.0+); nothing measured\n",
                  graft::cuda::device_summary().c_str());
      return 0;
    }
    std::printf("# %s\n", graft::cuda::device_summary().c_str());
    cudaStream_t stream = nullptr;
    GRAFT_CUDA_CHECK(cudaStreamCreate(&stream));
    cublasLtHandle_t lt = nullptr;
    GRAFT_CUBLAS_CHECK(cublasLtCreate(&lt));
    const Shape shapes[] = {{"square_8192", 8192, 8192, 8192},
                            {"vgg16_fc6_b64", 64, 4096, 25088},
                            {"vgg16_fc7_b64", 64, 4096, 4096},
                            {"keras_head_dense1024_b32", 32, 1024, 25088},
                            {"mid_512x1024x4096", 512, 1024, 4096}};
    for (const auto& s : shapes) bench(lt, s, stream);
    GRAFT_CUBLAS_CHECK(cublasLtDestroy(lt));
    GRAFT_CUDA_CHECK(cudaStreamDestroy(stream));
  } catch (const graft::Error& e) {
    std::fprintf(stderr, "graft_tc_gemm_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

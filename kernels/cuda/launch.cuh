// Internal helpers of the hand-written kernels: grid sizing and the tiled GEMM template the
// convolution and dense kernels are built on. Not part of the public interface.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "base/cuda/cuda_check.h"

namespace graft::cuda::detail {

constexpr int kThreads = 256;

// Grid for a grid-stride loop over `count` elements: enough blocks to fill the device,
// capped so the index stays cheap.
inline unsigned grid_for(int64_t count, int threads = kThreads) {
  const int64_t blocks = (count + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 65535 * 8));
}

// ---- Tiled GEMM: C[m, n] = sum_k A(m, k) * B(k, n), fp32 FMA (the exact path) ----
//
// A problem type P supplies the operands as functions, so the same kernel runs an implicit
// GEMM (convolution: A gathered from the image on the fly, never materialized) and a plain
// one (dense):
//   int64_t M; int N; int K;
//   __device__ float a(int64_t m, int k) const;   // 0 outside the operand (padding)
//   __device__ float b(int k, int n) const;
//   __device__ void store(int64_t m, int n, float acc) const;  // the epilogue
//   static constexpr bool kAContiguousK;  // A's memory is contiguous along k (else along m)
//   static constexpr bool kBContiguousN;  // B's memory is contiguous along n (else along k)
// The contiguity flags choose which thread loads which element, so global loads coalesce.
// Each 256-thread block computes a 64x64 tile of C through shared memory, 16 of k at a time;
// each thread owns a 4x4 micro-tile, rows ty + 16 i, columns tx + 16 j (conflict-free reads,
// coalesced stores for row-major C).
//
// Split-K (gridDim.z > 1): slice z sums its range of k and writes the raw partial sum to
// `partial[z][m][n]`; gemm_reduce_kernel then adds the slices in order z = 0, 1, ... and
// applies the epilogue, so the result is deterministic run to run.
constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kGemmThreads = 256;

template <class P>
__global__ void __launch_bounds__(kGemmThreads) tiled_gemm_kernel(P p, int k_chunk, float* partial) {
  __shared__ float As[kTileK][kTileM + 1];
  __shared__ float Bs[kTileK][kTileN + 1];
  const int tid = static_cast<int>(threadIdx.x);
  const int tx = tid % 16, ty = tid / 16;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kTileM;
  const int n0 = static_cast<int>(blockIdx.y) * kTileN;
  const int k_begin = static_cast<int>(blockIdx.z) * k_chunk;
  const int k_end = min(p.K, k_begin + k_chunk);

  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

  for (int k0 = k_begin; k0 < k_end; k0 += kTileK) {
#pragma unroll
    for (int i = 0; i < (kTileM * kTileK) / kGemmThreads; ++i) {
      const int e = tid + i * kGemmThreads;
      int mm, kk;
      if constexpr (P::kAContiguousK) {
        kk = e % kTileK;
        mm = e / kTileK;
      } else {
        mm = e % kTileM;
        kk = e / kTileM;
      }
      const int64_t m = m0 + mm;
      const int k = k0 + kk;
      As[kk][mm] = (m < p.M && k < k_end) ? p.a(m, k) : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < (kTileN * kTileK) / kGemmThreads; ++i) {
      const int e = tid + i * kGemmThreads;
      int nn, kk;
      if constexpr (P::kBContiguousN) {
        nn = e % kTileN;
        kk = e / kTileN;
      } else {
        kk = e % kTileK;
        nn = e / kTileK;
      }
      const int n = n0 + nn;
      const int k = k0 + kk;
      Bs[kk][nn] = (n < p.N && k < k_end) ? p.b(k, n) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + ty + 16 * i;
    if (m >= p.M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tx + 16 * j;
      if (n >= p.N) continue;
      if (partial)
        partial[(static_cast<int64_t>(blockIdx.z) * p.M + m) * p.N + n] = acc[i][j];
      else
        p.store(m, n, acc[i][j]);
    }
  }
}

template <class P>
__global__ void gemm_reduce_kernel(P p, int splits, const float* partial) {
  const int64_t total = p.M * p.N;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    float s = 0.0f;
    for (int z = 0; z < splits; ++z) s += partial[z * total + e];
    p.store(e / p.N, static_cast<int>(e % p.N), s);
  }
}

// How many k-slices a GEMM of this shape is split into: enough that small-M-N, long-K
// problems (weight gradients) fill the device, none for problems with plenty of tiles.
// A function of the shape only, so workspace sizes can be planned before the first step.
inline int gemm_splits(int64_t M, int N, int K) {
  const int64_t tiles = ((M + kTileM - 1) / kTileM) * ((N + kTileN - 1) / kTileN);
  if (tiles >= 264 || K < 4 * 256) return 1;
  const int64_t by_k = K / 256;               // each slice keeps >= 256 of k
  const int64_t by_tiles = (528 + tiles - 1) / tiles;  // aim for ~4 blocks per SM of an H100
  return static_cast<int>(std::clamp<int64_t>(std::min(by_k, by_tiles), 1, 64));
}

inline size_t gemm_workspace_floats(int64_t M, int N, int K) {
  const int s = gemm_splits(M, N, K);
  return s > 1 ? static_cast<size_t>(s) * static_cast<size_t>(M) * static_cast<size_t>(N) : 0;
}

// Runs problem p; `workspace` (gemm_workspace_floats(M, N, K) floats, may be null) enables
// split-K.
// Runs problem p on the host with the same k-slicing as launch_gemm (slices summed in order):
// the host emulation the CPU tests use to check each problem's index math without a device.
template <class P>
void emulate_gemm_on_host(const P& p, bool split) {
  if (p.M <= 0 || p.N <= 0) return;
  int splits = split ? gemm_splits(p.M, p.N, p.K) : 1;
  if (p.K <= 0) splits = 1;
  int k_chunk = splits > 1 ? (p.K + splits - 1) / splits : (p.K > 0 ? p.K : 1);
  k_chunk = (k_chunk + kTileK - 1) / kTileK * kTileK;
  splits = p.K > 0 ? (p.K + k_chunk - 1) / k_chunk : 1;
  for (int64_t m = 0; m < p.M; ++m)
    for (int n = 0; n < p.N; ++n) {
      float total = 0.0f;
      for (int z = 0; z < splits; ++z) {
        float acc = 0.0f;
        for (int k = z * k_chunk; k < std::min(p.K, (z + 1) * k_chunk); ++k) acc = std::fma(p.a(m, k), p.b(k, n), acc);
        total = splits > 1 ? total + acc : acc;
      }
      p.store(m, n, total);
    }
}

template <class P>
void launch_gemm(const P& p, cudaStream_t stream, float* workspace) {
  if (p.M <= 0 || p.N <= 0) return;
  int splits = workspace ? gemm_splits(p.M, p.N, p.K) : 1;
  if (p.K <= 0) splits = 1;
  int k_chunk = splits > 1 ? (p.K + splits - 1) / splits : (p.K > 0 ? p.K : 1);
  k_chunk = (k_chunk + kTileK - 1) / kTileK * kTileK;
  splits = p.K > 0 ? (p.K + k_chunk - 1) / k_chunk : 1;
  const dim3 grid(static_cast<unsigned>((p.M + kTileM - 1) / kTileM), static_cast<unsigned>((p.N + kTileN - 1) / kTileN),
                  static_cast<unsigned>(splits));
  GRAFT_ASSERT(grid.y <= 65535, "GEMM too wide for the grid: N = ", p.N);
  tiled_gemm_kernel<P><<<grid, kGemmThreads, 0, stream>>>(p, k_chunk, splits > 1 ? workspace : nullptr);
  GRAFT_CUDA_CHECK_LAUNCH();
  if (splits > 1) {
    gemm_reduce_kernel<P><<<grid_for(p.M * p.N), kThreads, 0, stream>>>(p, splits, workspace);
    GRAFT_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace graft::cuda::detail

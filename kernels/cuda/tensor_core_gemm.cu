// bf16 tensor-core GEMM (see tensor_core_gemm.h): Y = X W^T (+ bias) (ReLU), fp32 accumulate.
//
// Tiling: a 256-thread block (8 warps, 2 along M x 4 along N) computes a 128x128 tile of Y,
// 32 of k at a time; each warp owns 64x32 of it as 4x4 mma.sync.m16n8k16 tiles (64 fp32
// accumulators per thread). Both operands are K-contiguous, which is exactly what the mma's
// row.col form wants, so fragments come straight from shared memory with ldmatrix (no
// transpose). Shared rows are padded from 32 to 40 bf16 (80 bytes) so the 8 row addresses of
// one ldmatrix fall in 8 different 16-byte bank groups (no bank conflicts).
// Global -> shared: two stages; the next k-tile is in flight (cp.async, 16 bytes a thread a
// copy, zero-filled past M, N or K) while the current one is multiplied. When K is not a
// multiple of 8 or an operand is not 16-byte aligned, rows are not 16-byte aligned, and the
// same pipeline loads element by element instead (zero past the edges), without overlap.
// M and N edges are predicated in the epilogue.
// Split-K (workspace given, few tiles, long K: dense heads at small batch): slice z sums its
// range of k into workspace[z][m][n]; a second kernel adds the slices in order z = 0, 1, ...
// and applies the epilogue, so the result is the same run to run.
//
// Performance: UNMEASURED (written without a GPU). Expect it well below cuBLASLt on H100:
// cuBLASLt uses wgmma + TMA (sm_90a) with deeper pipelines, this uses sm_80's mma.sync, which
// on Hopper reaches roughly half of the dense bf16 peak at best; a first guess is 200-350
// TFLOP/s at 8192^3 against cuBLASLt's ~600. bench/tensor_core_gemm_bench.cu measures both.
#include "kernels/cuda/tensor_core_gemm.h"

#include <algorithm>

#include "kernels/common/bf16.h"
#include "kernels/common/elementwise.h"
#include "kernels/cuda/launch.cuh"
#include "base/error.h"

namespace graft::cuda {

namespace {

constexpr int kBM = 128, kBN = 128, kBK = 32;
constexpr int kWarpsN = 4;             // 2 warps along M, 4 along N
constexpr int kWM = 64, kWN = 32;      // one warp's tile
constexpr int kMmaM = kWM / 16;        // 4 m16 tiles per warp
constexpr int kMmaN = kWN / 8;         // 4 n8 tiles per warp
constexpr int kTcThreads = 256;
constexpr int kStride = kBK + 8;       // padded shared row, in bf16
constexpr int kStages = 2;

struct Smem {
  uint16_t a[kStages][kBM][kStride];
  uint16_t b[kStages][kBN][kStride];
};
static_assert(kBM == 2 * kWM && kBN == kWarpsN * kWN && kMmaM * 16 == kWM && kMmaN * 8 == kWN &&
                  kTcThreads == 32 * 2 * kWarpsN,
              "8 warps, 2 x 4, tile the block");
static_assert(sizeof(Smem) <= 48 * 1024, "static shared memory is limited to 48 KiB");
static_assert((kStride * 2) % 16 == 0, "cp.async and ldmatrix need 16-byte aligned rows");

struct Params {
  const uint16_t* x;
  const uint16_t* w;
  const float* bias;
  void* y;           // float or uint16_t (bf16), by the kernel's OutT
  float* partial;    // split-K slices [splits][M][N], or null
  int64_t M;
  int N, K;
  int k_chunk;       // k per slice (a multiple of kBK)
  bool vec_out;      // N even and y aligned for two-element stores
};

template <typename OutT>
__device__ __forceinline__ OutT convert_out(float v) {
  if constexpr (sizeof(OutT) == 2)
    return math::float_to_bf16_bits(v);
  else
    return v;
}

template <bool kRelu>
__device__ __forceinline__ float epilogue(const float* bias, int n, float acc) {
  float v = bias ? acc + bias[n] : acc;
  if constexpr (kRelu) v = math::relu(v);
  return v;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared; src_bytes = 0 writes 16 zero bytes and reads nothing.
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// d += a (16x16, row) * b (16x8, col), bf16 in, fp32 accumulate.
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// One k-tile of X (rows m0..) and W (rows n0..) into shared stage `stage`, zero past the edges.
template <bool kVec>
__device__ __forceinline__ void load_tile(Smem& s, int stage, const Params& p, int64_t m0, int n0, int k0, int tid) {
  if constexpr (kVec) {
    // 128 rows x 4 chunks of 8 bf16, per operand: 2 chunks a thread; 4 neighbouring threads
    // read one row's 64 contiguous bytes.
#pragma unroll
    for (int i = 0; i < (kBM * kBK / 8) / kTcThreads; ++i) {
      const int c = tid + i * kTcThreads;
      const int row = c >> 2, kc = (c & 3) * 8;
      const int k = k0 + kc;
      const int64_t m = m0 + row;
      const bool a_ok = m < p.M && k < p.K;
      cp_async_16(smem_addr(&s.a[stage][row][kc]), a_ok ? p.x + m * p.K + k : p.x, a_ok);
      const int n = n0 + row;
      const bool b_ok = n < p.N && k < p.K;
      cp_async_16(smem_addr(&s.b[stage][row][kc]), b_ok ? p.w + int64_t{n} * p.K + k : p.w, b_ok);
    }
  } else {
#pragma unroll 4
    for (int i = 0; i < (kBM * kBK) / kTcThreads; ++i) {
      const int e = tid + i * kTcThreads;
      const int row = e >> 5, kk = e & 31;
      const int k = k0 + kk;
      const int64_t m = m0 + row;
      const int n = n0 + row;
      s.a[stage][row][kk] = (m < p.M && k < p.K) ? p.x[m * p.K + k] : uint16_t{0};
      s.b[stage][row][kk] = (n < p.N && k < p.K) ? p.w[int64_t{n} * p.K + k] : uint16_t{0};
    }
  }
}

#endif  // __CUDA_ARCH__ >= 800

template <bool kVec, bool kRelu, typename OutT>
__global__ void __launch_bounds__(kTcThreads, 2) tensor_core_gemm_kernel(Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  __shared__ alignas(16) Smem s;
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / kWarpsN, warp_n = warp % kWarpsN;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kBM;
  const int n0 = static_cast<int>(blockIdx.y) * kBN;
  const int k_begin = static_cast<int>(blockIdx.z) * p.k_chunk;
  const int k_end = min(p.K, k_begin + p.k_chunk);
  const int k_tiles = (k_end - k_begin + kBK - 1) / kBK;

  float acc[kMmaM][kMmaN][4];
#pragma unroll
  for (int i = 0; i < kMmaM; ++i)
#pragma unroll
    for (int j = 0; j < kMmaN; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

  // ldmatrix row addresses, per lane. A (x4): matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7),
  // (rows 0-7, k 8-15), (rows 8-15, k 8-15) = the mma's a0..a3. B (x4, two n8 tiles):
  // (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) = b0, b1 of each tile.
  const int a_row = warp_m * kWM + (lane & 15), a_col = (lane >> 4) * 8;
  const int b_row = warp_n * kWN + (lane & 7) + ((lane >> 4) << 3), b_col = ((lane >> 3) & 1) * 8;

  load_tile<kVec>(s, 0, p, m0, n0, k_begin, tid);
  cp_async_commit();
  for (int kt = 0; kt < k_tiles; ++kt) {
    const int stage = kt & 1;
    // Stage stage^1 was last read in iteration kt - 1, which ended at a barrier.
    if (kt + 1 < k_tiles) load_tile<kVec>(s, stage ^ 1, p, m0, n0, k_begin + (kt + 1) * kBK, tid);
    cp_async_commit();   // an empty group on the last tile keeps the count uniform
    cp_async_wait<1>();  // this thread's copies of tile kt have landed...
    __syncthreads();     // ...and everyone else's
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      uint32_t af[kMmaM][4], bf[kMmaN][2];
#pragma unroll
      for (int i = 0; i < kMmaM; ++i) ldmatrix_x4(af[i], smem_addr(&s.a[stage][a_row + i * 16][kk + a_col]));
#pragma unroll
      for (int j = 0; j < kMmaN; j += 2) {
        uint32_t r[4];
        ldmatrix_x4(r, smem_addr(&s.b[stage][b_row + j * 8][kk + b_col]));
        bf[j][0] = r[0];
        bf[j][1] = r[1];
        bf[j + 1][0] = r[2];
        bf[j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < kMmaM; ++i)
#pragma unroll
        for (int j = 0; j < kMmaN; ++j) mma_bf16(acc[i][j], af[i], bf[j][0], bf[j][1]);
    }
    __syncthreads();
  }

  // Accumulator layout: c0, c1 at (row lane/4, cols 2 (lane%4) + 0, 1), c2, c3 eight rows down.
  const int group = lane >> 2, quad = lane & 3;
#pragma unroll
  for (int i = 0; i < kMmaM; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t m = m0 + warp_m * kWM + i * 16 + group + h * 8;
      if (m >= p.M) continue;
#pragma unroll
      for (int j = 0; j < kMmaN; ++j) {
        const int n = n0 + warp_n * kWN + j * 8 + quad * 2;
        if (n >= p.N) continue;
        const float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
        if (p.partial) {
          float* row = p.partial + (static_cast<int64_t>(blockIdx.z) * p.M + m) * p.N;
          row[n] = v0;
          if (n + 1 < p.N) row[n + 1] = v1;
          continue;
        }
        OutT* row = static_cast<OutT*>(p.y) + m * p.N;
        const OutT o0 = convert_out<OutT>(epilogue<kRelu>(p.bias, n, v0));
        if (p.vec_out) {  // n is even and N is even: n + 1 < N, and the pair is aligned
          const OutT o1 = convert_out<OutT>(epilogue<kRelu>(p.bias, n + 1, v1));
          if constexpr (sizeof(OutT) == 2)
            *reinterpret_cast<uint32_t*>(row + n) = uint32_t{o0} | uint32_t{o1} << 16;
          else
            *reinterpret_cast<float2*>(row + n) = make_float2(o0, o1);
        } else {
          row[n] = o0;
          if (n + 1 < p.N) row[n + 1] = convert_out<OutT>(epilogue<kRelu>(p.bias, n + 1, v1));
        }
      }
    }
#else
  __trap();  // built for a device without bf16 mma (before sm_80); the host entry refuses it
#endif
}

// Adds the split-K slices in order and applies the epilogue.
template <bool kRelu, typename OutT>
__global__ void split_k_reduce_kernel(Params p, int splits) {
  const int64_t total = p.M * p.N;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    float sum = 0.0f;
    for (int z = 0; z < splits; ++z) sum += p.partial[z * total + e];
    static_cast<OutT*>(p.y)[e] = convert_out<OutT>(epilogue<kRelu>(p.bias, static_cast<int>(e % p.N), sum));
  }
}

__global__ void narrow_kernel(int64_t count, const float* x, uint16_t* y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x)
    y[i] = math::float_to_bf16_bits(x[i]);
}

__global__ void widen_kernel(int64_t count, const uint16_t* x, float* y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x)
    y[i] = math::bf16_bits_to_float(x[i]);
}

// How many k-slices: enough that a grid of few tiles (a dense head at small batch) fills an
// H100 (132 SMs, 2 blocks each), each slice keeping >= 512 of k. A function of the shape only.
int split_count(int64_t M, int N, int K) {
  const int64_t tiles = ((M + kBM - 1) / kBM) * ((N + kBN - 1) / kBN);
  if (tiles >= 132 || K < 2 * 512) return 1;
  const int64_t by_k = K / 512, by_tiles = (264 + tiles - 1) / tiles;
  return static_cast<int>(std::clamp<int64_t>(std::min(by_k, by_tiles), 1, 32));
}

void check_device() {
  int dev = 0, major = 0;
  GRAFT_CUDA_CHECK(cudaGetDevice(&dev));
  GRAFT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  if (major < 8) fail("the bf16 tensor-core GEMM needs compute capability 8.0 or newer; this device has ", major, ".x");
}

template <bool kVec, bool kRelu, typename OutT>
void launch(const Params& p, dim3 grid, cudaStream_t stream) {
  tensor_core_gemm_kernel<kVec, kRelu, OutT><<<grid, kTcThreads, 0, stream>>>(p);
  GRAFT_CUDA_CHECK_LAUNCH();
  if (p.partial) {
    split_k_reduce_kernel<kRelu, OutT><<<detail::grid_for(p.M * p.N), detail::kThreads, 0, stream>>>(p, grid.z);
    GRAFT_CUDA_CHECK_LAUNCH();
  }
}

template <typename OutT>
void run(int64_t M, int N, int K, const uint16_t* x, const uint16_t* w, const float* bias, OutT* y,
         cudaStream_t stream, bool relu, float* workspace) {
  GRAFT_ASSERT(M >= 0 && N > 0 && K > 0, "bad tensor-core GEMM shape ", M, "x", K, " * ", N, "x", K);
  if (M == 0) return;
  GRAFT_ASSERT(x && w && y, "null operand for the tensor-core GEMM");
  check_device();
  const int splits_wanted = workspace ? split_count(M, N, K) : 1;
  int k_chunk = (K + splits_wanted - 1) / splits_wanted;
  k_chunk = (k_chunk + kBK - 1) / kBK * kBK;
  const int splits = (K + k_chunk - 1) / k_chunk;
  const dim3 grid(static_cast<unsigned>((M + kBM - 1) / kBM), static_cast<unsigned>((N + kBN - 1) / kBN),
                  static_cast<unsigned>(splits));
  GRAFT_ASSERT((M + kBM - 1) / kBM <= 0x7FFFFFFF && grid.y <= 65535, "tensor-core GEMM too large for the grid: ", M,
               "x", N);
  const auto addr = [](const void* q) { return reinterpret_cast<uintptr_t>(q); };
  Params p{x, w, bias, y, splits > 1 ? workspace : nullptr, M, N, K, k_chunk,
           N % 2 == 0 && addr(y) % (2 * sizeof(OutT)) == 0};
  const bool vec = K % 8 == 0 && addr(x) % 16 == 0 && addr(w) % 16 == 0;
  if (vec)
    relu ? launch<true, true, OutT>(p, grid, stream) : launch<true, false, OutT>(p, grid, stream);
  else
    relu ? launch<false, true, OutT>(p, grid, stream) : launch<false, false, OutT>(p, grid, stream);
}

}  // namespace

size_t tensor_core_gemm_workspace_floats(int64_t M, int N, int K) {
  if (M <= 0 || N <= 0 || K <= 0) return 0;
  const int s = split_count(M, N, K);
  return s > 1 ? static_cast<size_t>(s) * static_cast<size_t>(M) * static_cast<size_t>(N) : 0;
}

void tensor_core_gemm(int64_t M, int N, int K, const uint16_t* x, const uint16_t* w, const float* bias, float* y,
                      cudaStream_t stream, bool relu, float* workspace) {
  run(M, N, K, x, w, bias, y, stream, relu, workspace);
}

void tensor_core_gemm(int64_t M, int N, int K, const uint16_t* x, const uint16_t* w, const float* bias, uint16_t* y,
                      cudaStream_t stream, bool relu, float* workspace) {
  run(M, N, K, x, w, bias, y, stream, relu, workspace);
}

void float_to_bf16(int64_t count, const float* x, uint16_t* y, cudaStream_t stream) {
  GRAFT_ASSERT(count >= 0, "negative count ", count);
  if (count == 0) return;
  narrow_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(count, x, y);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void bf16_to_float(int64_t count, const uint16_t* x, float* y, cudaStream_t stream) {
  GRAFT_ASSERT(count >= 0, "negative count ", count);
  if (count == 0) return;
  widen_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(count, x, y);
  GRAFT_CUDA_CHECK_LAUNCH();
}

}  // namespace graft::cuda

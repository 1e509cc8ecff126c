#include "kernels/cuda/batchnorm.h"

#include "kernels/common/batchnorm_math.h"
#include "kernels/cuda/launch.cuh"
#include "base/error.h"

namespace graft::cuda {

namespace {

constexpr int kBnThreads = 256;

// Sum of v over the block, in a fixed tree order; the result is valid in thread 0.
__device__ double block_sum(double v, double* shared) {
  const int t = static_cast<int>(threadIdx.x);
  shared[t] = v;
  __syncthreads();
  for (int s = kBnThreads / 2; s > 0; s >>= 1) {
    if (t < s) shared[t] += shared[t + s];
    __syncthreads();
  }
  const double r = shared[0];
  __syncthreads();
  return r;
}

// Per channel (one block each): mean and biased variance (two passes), then scale/shift
// into scratch, and the running statistics.
__global__ void bn_stats_kernel(int64_t rows, int c, float eps, float momentum, const float* x, const float* gamma,
                                const float* beta, float* running_mean, float* running_var, float* nbt,
                                double* scratch) {
  __shared__ double shared[kBnThreads];
  const int ch = static_cast<int>(blockIdx.x);
  double s = 0;
  for (int64_t r = threadIdx.x; r < rows; r += kBnThreads) s += double(x[r * c + ch]);
  const double mean = block_sum(s, shared) / double(rows);
  double q = 0;
  for (int64_t r = threadIdx.x; r < rows; r += kBnThreads) {
    const double d = double(x[r * c + ch]) - mean;
    q += d * d;
  }
  const double var = block_sum(q, shared) / double(rows);
  if (threadIdx.x == 0) {
    const double scale = double(gamma[ch]) / sqrt(var + double(eps));
    scratch[ch] = mean;
    scratch[c + ch] = var;
    scratch[2 * c + ch] = scale;
    scratch[3 * c + ch] = double(beta[ch]) - mean * scale;
    if (running_mean) {
      const double m = momentum;
      const double unbias = double(rows) / double(rows - 1);
      running_mean[ch] = static_cast<float>((1.0 - m) * double(running_mean[ch]) + m * mean);
      running_var[ch] = static_cast<float>((1.0 - m) * double(running_var[ch]) + m * var * unbias);
    }
    if (nbt && ch == 0) nbt[0] += 1.0f;
  }
}

__global__ void bn_running_coeffs_kernel(int c, float eps, const float* gamma, const float* beta,
                                         const float* running_mean, const float* running_var, double* scratch) {
  for (int ch = blockIdx.x * blockDim.x + threadIdx.x; ch < c; ch += gridDim.x * blockDim.x) {
    const double scale = double(gamma[ch]) / sqrt(double(running_var[ch]) + double(eps));
    scratch[2 * c + ch] = scale;
    scratch[3 * c + ch] = double(beta[ch]) - double(running_mean[ch]) * scale;
  }
}

__global__ void bn_affine_kernel(int64_t count, int c, const float* x, const double* scale, const double* shift,
                                 float* y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int ch = static_cast<int>(i % c);
    y[i] = math::bn_affine(x[i], scale[ch], shift[ch]);
  }
}

// Per channel: invstd, sum(dy), sum(dy * xhat) from batch (mean_in null: recomputed) or
// running statistics; writes dgamma/dbeta.
__global__ void bn_backward_sums_kernel(int64_t rows, int c, float eps, const float* x, const float* dy,
                                        const float* running_mean, const float* running_var, float* dgamma,
                                        float* dbeta, double* scratch) {
  __shared__ double shared[kBnThreads];
  const int ch = static_cast<int>(blockIdx.x);
  double mean, invstd;
  if (running_mean) {
    mean = double(running_mean[ch]);
    invstd = 1.0 / sqrt(double(running_var[ch]) + double(eps));
  } else {
    double s = 0;
    for (int64_t r = threadIdx.x; r < rows; r += kBnThreads) s += double(x[r * c + ch]);
    mean = block_sum(s, shared) / double(rows);
    double q = 0;
    for (int64_t r = threadIdx.x; r < rows; r += kBnThreads) {
      const double d = double(x[r * c + ch]) - mean;
      q += d * d;
    }
    invstd = 1.0 / sqrt(block_sum(q, shared) / double(rows) + double(eps));
  }
  double sd = 0, sdx = 0;
  for (int64_t r = threadIdx.x; r < rows; r += kBnThreads) {
    const double g = double(dy[r * c + ch]);
    sd += g;
    if (x) sdx += g * (double(x[r * c + ch]) - mean) * invstd;
  }
  sd = block_sum(sd, shared);
  sdx = block_sum(sdx, shared);
  if (threadIdx.x == 0) {
    scratch[ch] = mean;
    scratch[c + ch] = invstd;
    scratch[2 * c + ch] = sd;
    scratch[3 * c + ch] = sdx;
    if (dgamma) dgamma[ch] = static_cast<float>(sdx);
    if (dbeta) dbeta[ch] = static_cast<float>(sd);
  }
}

__global__ void bn_dx_batch_kernel(int64_t rows, int c, const float* x, const float* dy, const float* gamma,
                                   const double* scratch, float* dx) {
  const int64_t count = rows * c;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int ch = static_cast<int>(i % c);
    dx[i] = math::bn_backward_batch(x[i], dy[i], gamma[ch], scratch[ch], scratch[c + ch], scratch[2 * c + ch],
                                    scratch[3 * c + ch], double(rows));
  }
}

__global__ void bn_dx_running_kernel(int64_t count, int c, const float* dy, const float* gamma, const double* scratch,
                                     float* dx) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int ch = static_cast<int>(i % c);
    dx[i] = static_cast<float>(double(dy[i]) * (scratch[c + ch] * double(gamma[ch])));
  }
}

}  // namespace

void batchnorm_forward_batch(int64_t rows, int c, float eps, float momentum, const float* x, const float* gamma,
                             const float* beta, float* y, float* running_mean, float* running_var,
                             float* num_batches_tracked, double* scratch, cudaStream_t stream) {
  if (rows <= 0 || c <= 0) return;
  // As the CPU reference: the running variance's unbiased estimate divides by rows - 1.
  if (running_mean && rows < 2)
    fail("batch norm in training needs more than 1 value per channel to update its running statistics (got ",
         rows, " row of ", c, " channels: batch x height x width must be at least 2)");
  bn_stats_kernel<<<c, kBnThreads, 0, stream>>>(rows, c, eps, momentum, x, gamma, beta, running_mean, running_var,
                                                 num_batches_tracked, scratch);
  GRAFT_CUDA_CHECK_LAUNCH();
  const int64_t count = rows * c;
  bn_affine_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(count, c, x, scratch + 2 * c,
                                                                               scratch + 3 * c, y);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void batchnorm_forward_running(int64_t rows, int c, float eps, const float* x, const float* gamma,
                               const float* beta, const float* running_mean, const float* running_var, float* y,
                               double* scratch, cudaStream_t stream) {
  if (rows <= 0 || c <= 0) return;
  bn_running_coeffs_kernel<<<detail::grid_for(c), detail::kThreads, 0, stream>>>(c, eps, gamma, beta, running_mean,
                                                                                   running_var, scratch);
  GRAFT_CUDA_CHECK_LAUNCH();
  const int64_t count = rows * c;
  bn_affine_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(count, c, x, scratch + 2 * c,
                                                                               scratch + 3 * c, y);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void batchnorm_backward_batch(int64_t rows, int c, float eps, const float* x, const float* dy, const float* gamma,
                              float* dx, float* dgamma, float* dbeta, double* scratch, cudaStream_t stream) {
  if (rows <= 0 || c <= 0) return;
  bn_backward_sums_kernel<<<c, kBnThreads, 0, stream>>>(rows, c, eps, x, dy, nullptr, nullptr, dgamma, dbeta,
                                                         scratch);
  GRAFT_CUDA_CHECK_LAUNCH();
  if (!dx) return;
  bn_dx_batch_kernel<<<detail::grid_for(rows * c), detail::kThreads, 0, stream>>>(rows, c, x, dy, gamma, scratch, dx);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void batchnorm_backward_running(int64_t rows, int c, float eps, const float* x, const float* dy, const float* gamma,
                                const float* running_mean, const float* running_var, float* dx, float* dgamma,
                                float* dbeta, double* scratch, cudaStream_t stream) {
  if (rows <= 0 || c <= 0) return;
  bn_backward_sums_kernel<<<c, kBnThreads, 0, stream>>>(rows, c, eps, dgamma ? x : nullptr, dy, running_mean,
                                                         running_var, dgamma, dbeta, scratch);
  GRAFT_CUDA_CHECK_LAUNCH();
  if (!dx) return;
  bn_dx_running_kernel<<<detail::grid_for(rows * c), detail::kThreads, 0, stream>>>(rows * c, c, dy, gamma, scratch,
                                                                                      dx);
  GRAFT_CUDA_CHECK_LAUNCH();
}

}  // namespace graft::cuda

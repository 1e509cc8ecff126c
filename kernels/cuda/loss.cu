#include "kernels/cuda/loss.h"

#include "kernels/cuda/launch.cuh"
#include "base/error.h"

namespace graft::cuda {

namespace {

constexpr int kLossThreads = 1024;
constexpr int kWarps = kLossThreads / 32;
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// Row i's loss, as the CPU reference: t = (1 - s) onehot(label) + s / C,
// loss = -(1 - s) logp[label] - (s / C) sum_j logp[j], logp = z - max - log(sum exp(z - max)).
// A label outside [0, classes) is never read through: that row's loss and gradient are NaN
// (as on the CPU), so the NaN guard and the epoch line show it.
__global__ void __launch_bounds__(kLossThreads) softmax_xent_kernel(int n, int classes, const float* logits,
                                                                    const int32_t* labels, float smoothing,
                                                                    float grad_scale, float* dlogits,
                                                                    double* loss_sum, double* correct) {
  __shared__ double warp_loss[kWarps];
  __shared__ double warp_correct[kWarps];
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int warp = static_cast<int>(threadIdx.x / 32);
  const float off = smoothing / static_cast<float>(classes);
  double my_loss = 0.0, my_correct = 0.0;
  for (int row = warp; row < n; row += kWarps) {
    const float* z = logits + int64_t{row} * classes;
    // Max and first argmax: lanes scan increasing j, strict > keeps the first.
    float best = -INFINITY;
    int best_j = -1;
    for (int j = lane; j < classes; j += 32) {
      const float v = z[j];
      if (best_j < 0 || v > best) {
        best = v;
        best_j = j;
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(kFull, best, o);
      const int oj = __shfl_xor_sync(kFull, best_j, o);
      const bool take = oj >= 0 && (best_j < 0 || ov > best || (ov == best && oj < best_j));
      if (take) {
        best = ov;
        best_j = oj;
      }
    }
    const float zmax = best;
    float sum_exp = 0.0f, sum_z = 0.0f;
    for (int j = lane; j < classes; j += 32) {
      const float d = z[j] - zmax;
      sum_exp += expf(d);
      sum_z += d;
    }
    sum_exp = warp_sum(sum_exp);
    sum_z = warp_sum(sum_z);
    const float log_sum = logf(sum_exp);
    const int label = labels[row];
    const bool bad_label = label < 0 || label >= classes;
    if (lane == 0 && bad_label) my_loss += __longlong_as_double(0x7ff8000000000000LL);  // NaN
    if (lane == 0 && !bad_label) {
      const double logp_label = double(z[label]) - double(zmax) - double(log_sum);
      const double sum_logp = double(sum_z) - double(classes) * double(log_sum);
      my_loss += -(1.0 - double(smoothing)) * logp_label - double(off) * sum_logp;
      if (best_j == label) my_correct += 1.0;
    }
    if (dlogits) {
      float* d = dlogits + int64_t{row} * classes;
      for (int j = lane; j < classes; j += 32) {
        const float p = expf(z[j] - zmax - log_sum);
        const float t = (j == label ? 1.0f - smoothing : 0.0f) + off;
        d[j] = bad_label ? __int_as_float(0x7fc00000) : (p - t) * grad_scale;
      }
    }
  }
  if (lane == 0) {
    warp_loss[warp] = my_loss;
    warp_correct[warp] = my_correct;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double l = 0.0, c = 0.0;
    for (int w = 0; w < kWarps; ++w) {
      l += warp_loss[w];
      c += warp_correct[w];
    }
    if (loss_sum) *loss_sum += l;
    if (correct) *correct += c;
  }
}

__global__ void __launch_bounds__(kLossThreads) mse_kernel(int64_t count, const float* pred, const float* target,
                                                           float grad_scale, float* dpred, double* loss_sum) {
  __shared__ double partial[kLossThreads];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += kLossThreads) {
    const float diff = pred[i] - target[i];
    acc += double(diff) * double(diff);
    if (dpred) dpred[i] = 2.0f * diff * grad_scale;
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int s = kLossThreads / 2; s > 0; s >>= 1) {  // fixed tree: deterministic
    if (static_cast<int>(threadIdx.x) < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0 && loss_sum) *loss_sum += partial[0];
}

}  // namespace

void softmax_cross_entropy(int n, int classes, const float* logits, const int32_t* labels, float smoothing,
                           float grad_scale, float* dlogits, double* loss_sum, double* correct, cudaStream_t stream) {
  GRAFT_ASSERT(n >= 0 && classes > 0, "bad softmax_cross_entropy shape");
  if (n == 0) return;
  softmax_xent_kernel<<<1, kLossThreads, 0, stream>>>(n, classes, logits, labels, smoothing, grad_scale, dlogits,
                                                      loss_sum, correct);
  GRAFT_CUDA_CHECK_LAUNCH();
}

void mse(int64_t count, const float* pred, const float* target, float grad_scale, float* dpred, double* loss_sum,
         cudaStream_t stream) {
  GRAFT_ASSERT(count >= 0, "bad mse count");
  if (count == 0) return;
  mse_kernel<<<1, kLossThreads, 0, stream>>>(count, pred, target, grad_scale, dpred, loss_sum);
  GRAFT_CUDA_CHECK_LAUNCH();
}

}  // namespace graft::cuda

// Batch normalisation on the CPU, channels last: x is `rows` rows of `c` channels (an NHWC
// activation has rows = n*h*w; a [n, c] one has rows = n). PyTorch's semantics:
//   batch statistics:   mean, biased variance over the rows; y = (x - mean) / sqrt(var + eps) * gamma + beta
//   running statistics: y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta
//   update (batch mode only): running = (1 - momentum) * running + momentum * batch, with
//   the UNBIASED variance var * rows / (rows - 1) for running_var.
// Statistics and gradient sums accumulate in double. `scratch` is 4*c doubles, owned by
// the caller (the layer passes its planned workspace, so a step allocates nothing).
// Backward overwrites dx, dgamma and dbeta; any of them may be null (not wanted).
#pragma once
#include <cstdint>

namespace graft::cpu {

inline constexpr int64_t kBatchNormScratchDoubles = 4;  // per channel

// mean[c], biased var[c] of x.
void batchnorm_batch_stats(int64_t rows, int c, const float* x, double* mean, double* var);

// Batch statistics. Running statistics are updated when running_mean is not null (then
// running_var must not be null either). Needs rows >= 2 when updating (the unbiased
// variance), which the layer checks with a message and the kernels refuse with the same error (CPU and CUDA).
void batchnorm_forward_batch(int64_t rows, int c, float eps, float momentum, const float* x, const float* gamma,
                             const float* beta, float* y, float* running_mean, float* running_var, double* scratch);
void batchnorm_forward_running(int64_t rows, int c, float eps, const float* x, const float* gamma,
                               const float* beta, const float* running_mean, const float* running_var, float* y);

// Full backward through the batch statistics (recomputed from x).
void batchnorm_backward_batch(int64_t rows, int c, float eps, const float* x, const float* dy, const float* gamma,
                              float* dx, float* dgamma, float* dbeta, double* scratch);
// Backward with the running statistics held constant (an affine map per channel). x is
// read only for dgamma and may be null when dgamma is.
void batchnorm_backward_running(int64_t rows, int c, float eps, const float* x, const float* dy, const float* gamma,
                                const float* running_mean, const float* running_var, float* dx, float* dgamma,
                                float* dbeta, double* scratch);

}  // namespace graft::cpu

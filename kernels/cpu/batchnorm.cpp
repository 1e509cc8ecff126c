// Batch normalisation on the CPU: plain loops, double accumulation per channel.
#include "kernels/cpu/batchnorm.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"

namespace graft::cpu {

void batchnorm_batch_stats(int64_t rows, int c, const float* x, double* mean, double* var) {
  GRAFT_ASSERT(rows >= 1 && c >= 1, "batchnorm over ", rows, " rows of ", c, " channels");
  for (int ch = 0; ch < c; ++ch) mean[ch] = var[ch] = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * c;
    for (int ch = 0; ch < c; ++ch) mean[ch] += double(row[ch]);
  }
  for (int ch = 0; ch < c; ++ch) mean[ch] /= double(rows);
  // Two passes: the variance from centred values, no cancellation.
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * c;
    for (int ch = 0; ch < c; ++ch) {
      const double d = double(row[ch]) - mean[ch];
      var[ch] += d * d;
    }
  }
  for (int ch = 0; ch < c; ++ch) var[ch] /= double(rows);
}

namespace {

// y = x * scale + shift per channel, scale and shift computed in double.
void affine(int64_t rows, int c, const float* x, const double* scale, const double* shift, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * c;
    float* out = y + r * c;
    for (int ch = 0; ch < c; ++ch) out[ch] = static_cast<float>(double(in[ch]) * scale[ch] + shift[ch]);
  }
}

}  // namespace

void batchnorm_forward_batch(int64_t rows, int c, float eps, float momentum, const float* x, const float* gamma,
                             const float* beta, float* y, float* running_mean, float* running_var, double* scratch) {
  double* mean = scratch;
  double* var = scratch + c;
  double* scale = scratch + 2 * c;
  double* shift = scratch + 3 * c;
  batchnorm_batch_stats(rows, c, x, mean, var);
  for (int ch = 0; ch < c; ++ch) {
    scale[ch] = double(gamma[ch]) / std::sqrt(var[ch] + double(eps));
    shift[ch] = double(beta[ch]) - mean[ch] * scale[ch];
  }
  affine(rows, c, x, scale, shift, y);
  if (running_mean) {
    GRAFT_ASSERT(running_var, "running_mean without running_var");
    // The unbiased variance divides by rows - 1: one value per channel has none (PyTorch:
    // "Expected more than 1 value per channel when training"). The CUDA kernel refuses alike.
    if (rows < 2)
      fail("batch norm in training needs more than 1 value per channel to update its running statistics (got ",
           rows, " row of ", c, " channels: batch x height x width must be at least 2)");
    const double m = momentum;
    const double unbias = double(rows) / double(rows - 1);
    for (int ch = 0; ch < c; ++ch) {
      running_mean[ch] = static_cast<float>((1.0 - m) * double(running_mean[ch]) + m * mean[ch]);
      running_var[ch] = static_cast<float>((1.0 - m) * double(running_var[ch]) + m * var[ch] * unbias);
    }
  }
}

void batchnorm_forward_running(int64_t rows, int c, float eps, const float* x, const float* gamma,
                               const float* beta, const float* running_mean, const float* running_var, float* y) {
  // Per-channel constants without scratch: recomputed per row would be wasteful, so the
  // loop runs channel-major over a row block.
  constexpr int kBlock = 256;
  double scale[kBlock], shift[kBlock];
  for (int c0 = 0; c0 < c; c0 += kBlock) {
    const int cb = std::min(kBlock, c - c0);
    for (int k = 0; k < cb; ++k) {
      const int ch = c0 + k;
      scale[k] = double(gamma[ch]) / std::sqrt(double(running_var[ch]) + double(eps));
      shift[k] = double(beta[ch]) - double(running_mean[ch]) * scale[k];
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float* in = x + r * c + c0;
      float* out = y + r * c + c0;
      for (int k = 0; k < cb; ++k) out[k] = static_cast<float>(double(in[k]) * scale[k] + shift[k]);
    }
  }
}

void batchnorm_backward_batch(int64_t rows, int c, float eps, const float* x, const float* dy, const float* gamma,
                              float* dx, float* dgamma, float* dbeta, double* scratch) {
  double* mean = scratch;
  double* invstd = scratch + c;  // holds the variance until converted
  double* sum_dy = scratch + 2 * c;
  double* sum_dy_xhat = scratch + 3 * c;
  batchnorm_batch_stats(rows, c, x, mean, invstd);
  for (int ch = 0; ch < c; ++ch) {
    invstd[ch] = 1.0 / std::sqrt(invstd[ch] + double(eps));
    sum_dy[ch] = sum_dy_xhat[ch] = 0.0;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * c;
    const float* g = dy + r * c;
    for (int ch = 0; ch < c; ++ch) {
      sum_dy[ch] += double(g[ch]);
      sum_dy_xhat[ch] += double(g[ch]) * (double(xr[ch]) - mean[ch]) * invstd[ch];
    }
  }
  if (dgamma)
    for (int ch = 0; ch < c; ++ch) dgamma[ch] = static_cast<float>(sum_dy_xhat[ch]);
  if (dbeta)
    for (int ch = 0; ch < c; ++ch) dbeta[ch] = static_cast<float>(sum_dy[ch]);
  if (!dx) return;
  // dx = gamma * invstd / M * (M * dy - sum(dy) - xhat * sum(dy * xhat))
  const double M = double(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * c;
    const float* g = dy + r * c;
    float* out = dx + r * c;
    for (int ch = 0; ch < c; ++ch) {
      const double xhat = (double(xr[ch]) - mean[ch]) * invstd[ch];
      out[ch] = static_cast<float>(double(gamma[ch]) * invstd[ch] *
                                   (double(g[ch]) - sum_dy[ch] / M - xhat * sum_dy_xhat[ch] / M));
    }
  }
}

void batchnorm_backward_running(int64_t rows, int c, float eps, const float* x, const float* dy, const float* gamma,
                                const float* running_mean, const float* running_var, float* dx, float* dgamma,
                                float* dbeta, double* scratch) {
  double* invstd = scratch;
  double* sum_dy = scratch + c;
  double* sum_dy_xhat = scratch + 2 * c;
  for (int ch = 0; ch < c; ++ch) {
    invstd[ch] = 1.0 / std::sqrt(double(running_var[ch]) + double(eps));
    sum_dy[ch] = sum_dy_xhat[ch] = 0.0;
  }
  if (dgamma || dbeta) {
    GRAFT_ASSERT(x || !dgamma, "dgamma needs the input");
    for (int64_t r = 0; r < rows; ++r) {
      const float* g = dy + r * c;
      for (int ch = 0; ch < c; ++ch) sum_dy[ch] += double(g[ch]);
      if (dgamma) {
        const float* xr = x + r * c;
        for (int ch = 0; ch < c; ++ch)
          sum_dy_xhat[ch] += double(g[ch]) * (double(xr[ch]) - double(running_mean[ch])) * invstd[ch];
      }
    }
    if (dgamma)
      for (int ch = 0; ch < c; ++ch) dgamma[ch] = static_cast<float>(sum_dy_xhat[ch]);
    if (dbeta)
      for (int ch = 0; ch < c; ++ch) dbeta[ch] = static_cast<float>(sum_dy[ch]);
  }
  if (!dx) return;
  for (int ch = 0; ch < c; ++ch) invstd[ch] *= double(gamma[ch]);  // now the per-channel slope
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = dy + r * c;
    float* out = dx + r * c;
    for (int ch = 0; ch < c; ++ch) out[ch] = static_cast<float>(double(g[ch]) * invstd[ch]);
  }
}

}  // namespace graft::cpu

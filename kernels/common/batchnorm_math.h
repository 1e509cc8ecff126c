// Per-element math of batch normalisation, shared by the CPU loops and the CUDA kernels:
// the statistics are per channel in double (see kernels/cpu/batchnorm.h).
#pragma once
#include "kernels/common/hd.h"

namespace graft::math {

// y = x * scale + shift with scale = gamma * invstd, shift = beta - mean * scale.
GRAFT_HD float bn_affine(float x, double scale, double shift) { return static_cast<float>(double(x) * scale + shift); }

// dx through the batch statistics: gamma * invstd * (dy - sum_dy / M - xhat * sum_dy_xhat / M).
GRAFT_HD float bn_backward_batch(float x, float dy, float gamma, double mean, double invstd, double sum_dy,
                                 double sum_dy_xhat, double rows) {
  const double xhat = (double(x) - mean) * invstd;
  return static_cast<float>(double(gamma) * invstd * (double(dy) - sum_dy / rows - xhat * sum_dy_xhat / rows));
}

}  // namespace graft::math

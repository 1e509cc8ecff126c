// Per-element optimizer updates with PyTorch's exact semantics (torch.optim, single-tensor
// path), shared by the CPU loop and the fused CUDA kernel.
//   SGD:   g += wd*p (L2); buf = first ? g : m*buf + (1-dampening)*g; g = nesterov ? g + m*buf : buf
//   Adam:  g += wd*p (L2);                 then the Adam moment update
//   AdamW: p *= 1 - lr*wd (decoupled);    then the Adam moment update
// Values that change per step (lr, bias corrections) come in a StepScalars the host writes
// before the step, so a captured step can be replayed.
#pragma once
#include <cmath>

#include "kernels/common/hd.h"

namespace graft::math {

struct SgdHyper {
  float momentum = 0.0f;
  float dampening = 0.0f;
  float weight_decay = 0.0f;
  bool nesterov = false;
};

struct AdamHyper {
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  bool decoupled = false;  // AdamW
  // 1 - beta as PyTorch computes it (in double, from the decimal the user gave, then
  // rounded): 1 - 0.999f in float is 0.00099998713, which PyTorch never uses.
  float one_minus_beta1 = 0.1f;
  float one_minus_beta2 = 0.001f;
};

struct StepScalars {
  float lr = 0.0f;
  float bias_correction1 = 1.0f;       // 1 - beta1^t
  float bias_correction2_sqrt = 1.0f;  // sqrt(1 - beta2^t)
  int first_step = 1;                  // SGD: momentum buffer starts as the gradient
};

GRAFT_HD void sgd_update(float& p, float g, float& buf, const SgdHyper& h, const StepScalars& s) {
  if (h.weight_decay != 0.0f) g = g + h.weight_decay * p;
  if (h.momentum != 0.0f) {
    buf = s.first_step ? g : h.momentum * buf + (1.0f - h.dampening) * g;
    g = h.nesterov ? g + h.momentum * buf : buf;
  }
  p = p - s.lr * g;
}

GRAFT_HD void adam_update(float& p, float g, float& m, float& v, const AdamHyper& h, const StepScalars& s) {
  if (h.weight_decay != 0.0f) {
    if (h.decoupled)
      p = p * (1.0f - s.lr * h.weight_decay);
    else
      g = g + h.weight_decay * p;
  }
  m = m * h.beta1 + h.one_minus_beta1 * g;
  v = v * h.beta2 + h.one_minus_beta2 * g * g;
  const float step_size = s.lr / s.bias_correction1;
  const float denom = sqrtf(v) / s.bias_correction2_sqrt + h.eps;
  p = p - step_size * (m / denom);
}

}  // namespace graft::math

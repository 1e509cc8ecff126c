// The Layer interface's defaults: parameter layouts (the internal one is PyTorch's), and
// the reason a random layer gives.
#include "runtime/layer.h"

#include <algorithm>

#include "kernels/ops.h"

namespace graft {

Ops& ExecContext::kernels() const { return ops ? *ops : cpu_ops(reference_kernels); }

std::string Layer::training_randomness() const {
  return draws_random_numbers() ? "(" + kind() + ") draws random numbers in training" : "";
}

void Layer::to_checkpoint_layout(size_t index, const float* internal, float* external) const {
  const auto n = param_specs().at(index).shape.numel();
  std::copy(internal, internal + n, external);
}

void Layer::from_checkpoint_layout(size_t index, const float* external, float* internal) const {
  const auto n = param_specs().at(index).shape.numel();
  std::copy(external, external + n, internal);
}

}  // namespace graft

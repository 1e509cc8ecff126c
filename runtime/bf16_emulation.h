// --precision bf16, as numerics: an Ops that runs another backend's kernels but hands every
// convolution and dense call operands rounded to bf16 (kernels/common/bf16.h, PyTorch's
// rounding), accumulating in fp32 as a bf16 tensor core does. Everything else (pooling,
// activations, batch norm, the loss, the optimizer on fp32 master weights) is untouched,
// which is what autocast to bf16 does to a network of these layers: ReLU and max pooling
// commute with rounding, so rounding at the convolution's input equals storing bf16
// activations. It is the reference the tensor-core kernels are checked against, and it runs
// on the CPU and on CUDA alike; it saves no time and no memory by itself.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/ops.h"
#include "runtime/forwarding_ops.h"
#include "runtime/memory_pool.h"

namespace graft {

class Bf16EmulationOps final : public ForwardingOps {
 public:
  // `base` does the work; the rounded copies live in two buffers from `pool` (base's memory).
  Bf16EmulationOps(Ops& base, MemoryPool& pool) : ForwardingOps(base), pool_(pool) {}

  // The largest operands the calls will see, in floats: `a` for x (forward, filter
  // gradient) or dy (data gradient), `b` for the weights or dy (filter gradient). Reserving
  // them before the first step keeps steps free of allocations.
  void reserve(int64_t a_floats, int64_t b_floats);
  size_t scratch_bytes() const { return a_.bytes() + b_.bytes(); }

  const char* name() const override { return "bf16 emulation"; }
  bool computes_bf16() const override { return true; }

  void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                      float* workspace) override;
  void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                            float* workspace) override;
  void conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw, float* dbias,
                              float* workspace) override;
  void dense_forward(int n, int in, int out, const float* x, const float* w, const float* bias, float* y) override;
  void dense_backward_data(int n, int in, int out, const float* dy, const float* w, float* dx) override;
  void dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw,
                              float* dbias) override;

 private:
  // x rounded into a_ (or b_), grown when a call needs more than was reserved.
  const float* rounded(PoolBuffer& into, int64_t count, const float* x);

  MemoryPool& pool_;
  PoolBuffer a_, b_;
};

}  // namespace graft

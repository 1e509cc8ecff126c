// --precision bf16's numerics over any backend: round the GEMM operands, then call it.
#include "runtime/bf16_emulation.h"

namespace graft {

void Bf16EmulationOps::reserve(int64_t a_floats, int64_t b_floats) {
  if (size_t(a_floats) * sizeof(float) > a_.bytes()) a_ = PoolBuffer(pool_, size_t(a_floats) * sizeof(float), "workspace");
  if (size_t(b_floats) * sizeof(float) > b_.bytes()) b_ = PoolBuffer(pool_, size_t(b_floats) * sizeof(float), "workspace");
}

const float* Bf16EmulationOps::rounded(PoolBuffer& into, int64_t count, const float* x) {
  if (size_t(count) * sizeof(float) > into.bytes()) {
    base_.synchronize();  // the old buffer may still be read by queued work
    into = PoolBuffer(pool_, size_t(count) * sizeof(float), "workspace");
  }
  base_.round_to_bf16(count, x, into.floats());
  return into.floats();
}

void Bf16EmulationOps::conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                                      float* y, float* workspace) {
  base_.conv2d_forward(g, rounded(a_, g.input_numel(), x), rounded(b_, g.weight_numel(), w), bias, y, workspace);
}

void Bf16EmulationOps::conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                            float* workspace) {
  base_.conv2d_backward_data(g, rounded(a_, g.output_numel(), dy), rounded(b_, g.weight_numel(), w), dx, workspace);
}

// The bias gradient is a plain sum of dy: autocast sums the bf16 dy too.
void Bf16EmulationOps::conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                              float* dbias, float* workspace) {
  base_.conv2d_backward_filter(g, rounded(a_, g.input_numel(), x), rounded(b_, g.output_numel(), dy), dw, dbias,
                               workspace);
}

void Bf16EmulationOps::dense_forward(int n, int in, int out, const float* x, const float* w, const float* bias,
                                     float* y) {
  base_.dense_forward(n, in, out, rounded(a_, int64_t{n} * in, x), rounded(b_, int64_t{out} * in, w), bias, y);
}

void Bf16EmulationOps::dense_backward_data(int n, int in, int out, const float* dy, const float* w, float* dx) {
  base_.dense_backward_data(n, in, out, rounded(a_, int64_t{n} * out, dy), rounded(b_, int64_t{out} * in, w), dx);
}

void Bf16EmulationOps::dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw,
                                              float* dbias) {
  base_.dense_backward_weights(n, in, out, rounded(a_, int64_t{n} * in, x), rounded(b_, int64_t{n} * out, dy), dw,
                               dbias);
}

}  // namespace graft

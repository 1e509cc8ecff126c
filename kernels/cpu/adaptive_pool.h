// Adaptive average pooling on the CPU, NHWC: [n, h, w, c] -> [n, out_h, out_w, c] with
// PyTorch's windows: output row i averages input rows [floor(i*h/out_h), ceil((i+1)*h/out_h)),
// the same for columns. Windows may overlap (out > in replicates). Backward overwrites dx.
#pragma once
#include <cstdint>

namespace graft::cpu {

struct AdaptivePoolGeometry {
  int n = 1, h = 1, w = 1, c = 1;
  int out_h = 1, out_w = 1;
  int64_t input_numel() const { return int64_t{n} * h * w * c; }
  int64_t output_numel() const { return int64_t{n} * out_h * out_w * c; }
};

// [start, end) of output index i of `out` over an input of `in`.
inline int adaptive_start(int i, int in, int out) { return static_cast<int>((int64_t{i} * in) / out); }
inline int adaptive_end(int i, int in, int out) {
  return static_cast<int>((int64_t{i + 1} * in + out - 1) / out);
}

void adaptive_avgpool2d_forward(const AdaptivePoolGeometry& g, const float* x, float* y);
void adaptive_avgpool2d_backward(const AdaptivePoolGeometry& g, const float* dy, float* dx);

}  // namespace graft::cpu

// Shapes of the spatial ops, shared by every backend. Activations are NHWC.
#pragma once
#include <cstdint>

namespace graft {

struct Conv2dGeometry {
  int n = 1, h = 1, w = 1, c_in = 1;  // input NHWC
  int c_out = 1, kh = 1, kw = 1;
  int stride = 1, pad = 0;
  int out_h() const { return (h + 2 * pad - kh) / stride + 1; }
  int out_w() const { return (w + 2 * pad - kw) / stride + 1; }
  // Weights are OHWI: [c_out][kh][kw][c_in], so one output pixel is a dot product of a
  // contiguous weight row with an im2col patch ordered (kh, kw, c_in).
  int64_t weight_numel() const { return int64_t{c_out} * kh * kw * c_in; }
  int64_t input_numel() const { return int64_t{n} * h * w * c_in; }
  int64_t output_numel() const { return int64_t{n} * out_h() * out_w() * c_out; }
};

struct Pool2dGeometry {
  int n = 1, h = 1, w = 1, c = 1;
  int kh = 2, kw = 2, stride = 2, pad = 0;
  int out_h() const { return (h + 2 * pad - kh) / stride + 1; }
  int out_w() const { return (w + 2 * pad - kw) / stride + 1; }
  int64_t input_numel() const { return int64_t{n} * h * w * c; }
  int64_t output_numel() const { return int64_t{n} * out_h() * out_w() * c; }
};

}  // namespace graft

// Per-pixel math of the input augmentation, shared by the CPU pipeline
// (runtime/augment.cpp) and the CUDA kernel (kernels/cuda/augment.cu): one output pixel of
// a Keras-style affine warp (rotation, shift, shear, zoom about the center, 'nearest' fill,
// bilinear sampling), with flips applied after the warp, then normalization. The source is
// the image already resized to the model's input size (uint8 RGB, H x W x 3).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/common/hd.h"

namespace graft::math {

// One example's transform. The output pixel (r, c), after the flips, samples the source at
// row m[0] r + m[1] c + m[2], column m[3] r + m[4] c + m[5]; affine == 0 is the identity.
struct WarpExample {
  double m[6] = {1, 0, 0, 0, 1, 0};
  int affine = 0;
  int flip_h = 0, flip_v = 0;
};

// out[c] = (x[src(c)] * scale - mean[c]) / std[c], src(c) = 2 - c when bgr.
struct WarpNorm {
  float scale = 1.0f / 255.0f;
  float mean[3] = {0, 0, 0};
  float std[3] = {1, 1, 1};
  int bgr = 0;
};

GRAFT_HD void warp_pixel(const uint8_t* src, int h, int w, const WarpExample& e, const WarpNorm& norm, int r, int c,
                         float* out) {
  float rgb[3];
  const int rr = e.flip_v ? h - 1 - r : r;
  const int cc = e.flip_h ? w - 1 - c : c;
  if (!e.affine) {
    const uint8_t* px = src + (std::size_t(rr) * std::size_t(w) + std::size_t(cc)) * 3;
    for (int ch = 0; ch < 3; ++ch) rgb[ch] = float(px[ch]);
  } else {
    const double max_r = double(h - 1), max_c = double(w - 1);
    double y = e.m[0] * double(rr) + e.m[1] * double(cc) + e.m[2];
    double x = e.m[3] * double(rr) + e.m[4] * double(cc) + e.m[5];
    y = y < 0.0 ? 0.0 : (y > max_r ? max_r : y);
    x = x < 0.0 ? 0.0 : (x > max_c ? max_c : x);
    const std::size_t y0 = std::size_t(y), x0 = std::size_t(x);
    const std::size_t y1 = y0 + 1 < std::size_t(h) ? y0 + 1 : std::size_t(h) - 1;
    const std::size_t x1 = x0 + 1 < std::size_t(w) ? x0 + 1 : std::size_t(w) - 1;
    const float fy = float(y - double(y0)), fx = float(x - double(x0));
    const std::size_t W = std::size_t(w);
    const uint8_t* p00 = src + (y0 * W + x0) * 3;
    const uint8_t* p01 = src + (y0 * W + x1) * 3;
    const uint8_t* p10 = src + (y1 * W + x0) * 3;
    const uint8_t* p11 = src + (y1 * W + x1) * 3;
    for (int ch = 0; ch < 3; ++ch) {
      const float top = float(p00[ch]) + fx * (float(p01[ch]) - float(p00[ch]));
      const float bottom = float(p10[ch]) + fx * (float(p11[ch]) - float(p10[ch]));
      rgb[ch] = top + fy * (bottom - top);
    }
  }
  for (int oc = 0; oc < 3; ++oc) out[oc] = (rgb[norm.bgr ? 2 - oc : oc] * norm.scale - norm.mean[oc]) / norm.std[oc];
}

}  // namespace graft::math

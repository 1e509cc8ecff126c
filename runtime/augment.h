// From a decoded RGB image to the model's input [H, W, 3] float (one NHWC sample):
// crop, resize, random affine warp, flip, normalize.
//
// The random transforms follow the two conventions users know:
//   - Keras ImageDataGenerator: rotation_range (degrees), width/height_shift_range (a
//     fraction of the size when < 1, pixels when >= 1), shear_range (degrees), zoom_range
//     (factors drawn in [1 - z, 1 + z] per axis; > 1 zooms out), horizontal/vertical flip,
//     'nearest' fill mode, bilinear interpolation; applied after the resize to the model's
//     size, about the image center, exactly as Keras composes them (rotation, shift,
//     shear, zoom; flip after the warp).
//   - torchvision RandomResizedCrop: a crop of scale in [0.08, 1] of the area and aspect
//     ratio in [3/4, 4/3] (log-uniform), ten tries then a center crop, resized to the
//     model's size.
// Resizing uses stb_image_resize (antialiased when shrinking). Without augmentation
// (validation, evaluation) an image is only resized and normalized.
//
// Every random draw is math::random_uniform(seed, epoch, example * kDrawsPerExample + k):
// an example's augmentation is a pure function of (seed, epoch, example index), whatever
// thread decodes it and in whatever order.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "kernels/common/warp_math.h"
#include "runtime/image_decode.h"

namespace graft {

// out[c] = (x[src(c)] * scale - mean[c]) / std[c], x in 0..255, src(c) = 2 - c when bgr.
struct Normalization {
  float scale = 1.0f / 255.0f;
  std::array<float, 3> mean{0.0f, 0.0f, 0.0f};
  std::array<float, 3> std{1.0f, 1.0f, 1.0f};
  bool bgr = false;  // output channels in B, G, R order

  // "unit": x / 255, in [0, 1].
  // "imagenet" (torchvision): (x / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225].
  // "caffe" (Keras VGG/ResNet50): BGR order, x - [103.939, 116.779, 123.68] on the 0-255 scale.
  // "tf" (Keras MobileNet/Inception): x / 127.5 - 1, in [-1, 1].
  // "raw": x, 0..255 as floats.
  // Any other name is an error listing these.
  static Normalization preset(const std::string& name);
  // The output value of channel `out_channel` for the RGB value `rgb`.
  float apply(int out_channel, const float rgb[3]) const {
    return (rgb[bgr ? 2 - out_channel : out_channel] * scale - mean[size_t(out_channel)]) / std[size_t(out_channel)];
  }
};

struct RandomResizedCrop {
  bool enabled = false;
  float scale_min = 0.08f, scale_max = 1.0f;             // fraction of the image area
  float ratio_min = 3.0f / 4.0f, ratio_max = 4.0f / 3.0f;  // width / height
};

struct AugmentConfig {
  Normalization normalize;  // applied always, augmented or not
  // Keras ImageDataGenerator transforms (0 / false: off).
  float rotation_range = 0.0f;      // degrees, angle uniform in [-r, r]
  float width_shift_range = 0.0f;   // < 1: fraction of the width; >= 1: pixels
  float height_shift_range = 0.0f;  // < 1: fraction of the height; >= 1: pixels
  float shear_range = 0.0f;         // degrees, shear angle uniform in [-s, s]
  float zoom_range = 0.0f;          // zoom factors uniform in [1 - z, 1 + z], per axis
  bool horizontal_flip = false;     // mirror left-right with probability 1/2
  bool vertical_flip = false;       // mirror top-bottom with probability 1/2
  // torchvision RandomResizedCrop, applied before the resize (instead of a plain resize).
  RandomResizedCrop random_resized_crop;

  bool any_random() const;
  // Throws graft::Error naming the field when a range is negative, zoom_range >= 1, or the
  // crop's scale/ratio bounds are out of order or out of range.
  void validate() const;
};

// Random draws per example; example e uses counters e * kDrawsPerExample + k.
inline constexpr uint64_t kDrawsPerExample = 64;

// The drawn parameters of one example's augmentation.
struct AugmentParams {
  // Crop of the source, in source pixels (the whole image without RandomResizedCrop).
  int crop_x = 0, crop_y = 0, crop_w = 0, crop_h = 0;
  // Keras affine, in model-input pixels.
  double theta = 0;         // radians
  double tx = 0, ty = 0;    // row shift, column shift (Keras: tx from height_shift_range)
  double shear = 0;         // radians
  double zx = 1, zy = 1;    // row zoom, column zoom
  bool flip_h = false, flip_v = false;

  bool has_affine() const { return theta != 0 || tx != 0 || ty != 0 || shear != 0 || zx != 1 || zy != 1; }
};

// The parameters for (seed, epoch, example) on a src_w x src_h image and an out_w x out_h
// model input. With augment == false: the whole image, identity, no flip.
AugmentParams draw_augment_params(const AugmentConfig& cfg, bool augment, int src_w, int src_h, int out_w,
                                  int out_h, uint64_t seed, int64_t epoch, int64_t example);

// Applies `p` and the normalization, writing out_h * out_w * 3 floats (HWC) to `out`.
void apply_augment(const RgbImage& src, const AugmentParams& p, const Normalization& norm, int out_w, int out_h,
                   float* out);

// The transform and normalization of `p` for the per-pixel warp (kernels/common/warp_math.h),
// as the CPU applies them and as the CUDA kernel (kernels/cuda/augment.h) takes them.
math::WarpExample warp_example(const AugmentParams& p, int out_h, int out_w);
math::WarpNorm warp_norm(const Normalization& norm);

// The part of apply_augment before the per-pixel warp: the crop resized into `resized`
// (out_h x out_w x 3 uint8), and the transform of the rest. cpu::augment_batch (or the CUDA
// kernel) on them gives apply_augment's output exactly.
math::WarpExample prepare_augment(const RgbImage& src, const AugmentParams& p, int out_w, int out_h, uint8_t* resized);

// draw_augment_params + apply_augment.
void augment_image(const RgbImage& src, const AugmentConfig& cfg, bool augment, uint64_t seed, int64_t epoch,
                   int64_t example, int out_w, int out_h, float* out);

}  // namespace graft

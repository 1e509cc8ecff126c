// Crop, resize, Keras-style affine warp, flip and normalization of one image.
#include "runtime/augment.h"

#include "kernels/cpu/augment.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/common/elementwise.h"
#include "base/error.h"

namespace graft {

Normalization Normalization::preset(const std::string& name) {
  Normalization n;
  if (name == "unit") return n;
  if (name == "imagenet") {
    n.mean = {0.485f, 0.456f, 0.406f};
    n.std = {0.229f, 0.224f, 0.225f};
    return n;
  }
  if (name == "caffe") {
    n.scale = 1.0f;
    n.bgr = true;
    n.mean = {103.939f, 116.779f, 123.68f};
    return n;
  }
  if (name == "tf") {
    n.scale = 1.0f / 127.5f;
    n.mean = {1.0f, 1.0f, 1.0f};
    return n;
  }
  if (name == "raw") {
    n.scale = 1.0f;
    return n;
  }
  fail("unknown normalization '", name, "': expected unit (x/255), imagenet ((x/255 - mean)/std), ",
       "caffe (BGR, x - mean on 0-255), tf (x/127.5 - 1) or raw (0-255)");
}

bool AugmentConfig::any_random() const {
  return rotation_range != 0 || width_shift_range != 0 || height_shift_range != 0 || shear_range != 0 ||
         zoom_range != 0 || horizontal_flip || vertical_flip || random_resized_crop.enabled;
}

void AugmentConfig::validate() const {
  auto non_negative = [](float v, const char* name) {
    if (!(v >= 0.0f) || !std::isfinite(v)) fail("augmentation: ", name, " must be a finite number >= 0, got ", v);
  };
  non_negative(rotation_range, "rotation_range");
  non_negative(width_shift_range, "width_shift_range");
  non_negative(height_shift_range, "height_shift_range");
  non_negative(shear_range, "shear_range");
  non_negative(zoom_range, "zoom_range");
  if (zoom_range >= 1.0f) fail("augmentation: zoom_range must be < 1 (factors in [1-z, 1+z]), got ", zoom_range);
  for (int c = 0; c < 3; ++c)
    if (!(normalize.std[size_t(c)] != 0.0f) || !std::isfinite(normalize.std[size_t(c)]))
      fail("normalization: std[", c, "] must be finite and non-zero, got ", normalize.std[size_t(c)]);
  const auto& r = random_resized_crop;
  if (r.enabled) {
    if (!(r.scale_min > 0.0f && r.scale_min <= r.scale_max && r.scale_max <= 1.0f))
      fail("random resized crop: scale must satisfy 0 < min <= max <= 1, got (", r.scale_min, ", ", r.scale_max, ")");
    if (!(r.ratio_min > 0.0f && r.ratio_min <= r.ratio_max && std::isfinite(r.ratio_max)))
      fail("random resized crop: ratio must satisfy 0 < min <= max, got (", r.ratio_min, ", ", r.ratio_max, ")");
  }
}

namespace {

enum Draw : uint64_t {
  kTheta = 0,
  kShiftRow = 1,
  kShiftCol = 2,
  kShear = 3,
  kZoomRow = 4,
  kZoomCol = 5,
  kFlipH = 6,
  kFlipV = 7,
  kCropFirst = 8,  // 10 tries x 4 draws: area, log ratio, row, column
};
static_assert(kCropFirst + 40 <= kDrawsPerExample);

struct Draws {
  uint64_t seed, epoch, base;
  double u(uint64_t k) const { return double(math::random_uniform(seed, epoch, base + k)); }
  double uniform(uint64_t k, double lo, double hi) const { return lo + (hi - lo) * u(k); }
  // Uniform integer in [0, n], inclusive.
  int randint(uint64_t k, int n) const { return std::min(n, int(std::floor(u(k) * double(n + 1)))); }
};

// torchvision RandomResizedCrop.get_params.
void draw_crop(const RandomResizedCrop& cfg, const Draws& d, int width, int height, AugmentParams& p) {
  const double area = double(width) * double(height);
  const double log_lo = std::log(double(cfg.ratio_min)), log_hi = std::log(double(cfg.ratio_max));
  for (uint64_t attempt = 0; attempt < 10; ++attempt) {
    const uint64_t k = kCropFirst + attempt * 4;
    const double target_area = area * d.uniform(k, cfg.scale_min, cfg.scale_max);
    const double aspect = std::exp(d.uniform(k + 1, log_lo, log_hi));
    const int w = int(std::lround(std::sqrt(target_area * aspect)));
    const int h = int(std::lround(std::sqrt(target_area / aspect)));
    if (0 < w && w <= width && 0 < h && h <= height) {
      p.crop_y = d.randint(k + 2, height - h);
      p.crop_x = d.randint(k + 3, width - w);
      p.crop_w = w;
      p.crop_h = h;
      return;
    }
  }
  // Fallback: a center crop at the nearest allowed aspect ratio.
  const double in_ratio = double(width) / double(height);
  int w = width, h = height;
  if (in_ratio < cfg.ratio_min) {
    h = std::clamp(int(std::lround(w / double(cfg.ratio_min))), 1, height);
  } else if (in_ratio > cfg.ratio_max) {
    w = std::clamp(int(std::lround(h * double(cfg.ratio_max))), 1, width);
  }
  p.crop_w = w;
  p.crop_h = h;
  p.crop_y = (height - h) / 2;
  p.crop_x = (width - w) / 2;
}

double shift_amount(float range, const Draws& d, uint64_t k, int size) {
  if (range == 0.0f) return 0.0;
  double s = d.uniform(k, -double(range), double(range));
  if (range < 1.0f) s *= double(size);
  return s;
}

constexpr double kPi = 3.14159265358979323846;

}  // namespace

AugmentParams draw_augment_params(const AugmentConfig& cfg, bool augment, int src_w, int src_h, int out_w,
                                  int out_h, uint64_t seed, int64_t epoch, int64_t example) {
  AugmentParams p;
  p.crop_w = src_w;
  p.crop_h = src_h;
  if (!augment) return p;
  const Draws d{seed, uint64_t(epoch), uint64_t(example) * kDrawsPerExample};
  if (cfg.random_resized_crop.enabled) draw_crop(cfg.random_resized_crop, d, src_w, src_h, p);
  if (cfg.rotation_range != 0)
    p.theta = d.uniform(kTheta, -double(cfg.rotation_range), double(cfg.rotation_range)) * kPi / 180.0;
  p.tx = shift_amount(cfg.height_shift_range, d, kShiftRow, out_h);
  p.ty = shift_amount(cfg.width_shift_range, d, kShiftCol, out_w);
  if (cfg.shear_range != 0)
    p.shear = d.uniform(kShear, -double(cfg.shear_range), double(cfg.shear_range)) * kPi / 180.0;
  if (cfg.zoom_range != 0) {
    p.zx = d.uniform(kZoomRow, 1.0 - double(cfg.zoom_range), 1.0 + double(cfg.zoom_range));
    p.zy = d.uniform(kZoomCol, 1.0 - double(cfg.zoom_range), 1.0 + double(cfg.zoom_range));
  }
  p.flip_h = cfg.horizontal_flip && d.u(kFlipH) < 0.5;
  p.flip_v = cfg.vertical_flip && d.u(kFlipV) < 0.5;
  return p;
}

namespace {

using Mat3 = std::array<std::array<double, 3>, 3>;

Mat3 matmul(const Mat3& a, const Mat3& b) {
  Mat3 c{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) c[size_t(i)][size_t(j)] += a[size_t(i)][size_t(k)] * b[size_t(k)][size_t(j)];
  return c;
}

// Keras apply_affine_transform: rotation @ shift @ shear @ zoom, about the center; maps an
// output (row, col) to the input (row, col) it samples.
Mat3 keras_matrix(const AugmentParams& p, int h, int w) {
  const double c = std::cos(p.theta), s = std::sin(p.theta);
  const Mat3 rotation{{{c, -s, 0}, {s, c, 0}, {0, 0, 1}}};
  const Mat3 shift{{{1, 0, p.tx}, {0, 1, p.ty}, {0, 0, 1}}};
  const Mat3 shear{{{1, -std::sin(p.shear), 0}, {0, std::cos(p.shear), 0}, {0, 0, 1}}};
  const Mat3 zoom{{{p.zx, 0, 0}, {0, p.zy, 0}, {0, 0, 1}}};
  const double o_r = double(h) / 2.0 - 0.5, o_c = double(w) / 2.0 - 0.5;
  const Mat3 offset{{{1, 0, o_r}, {0, 1, o_c}, {0, 0, 1}}};
  const Mat3 reset{{{1, 0, -o_r}, {0, 1, -o_c}, {0, 0, 1}}};
  return matmul(matmul(offset, matmul(matmul(matmul(rotation, shift), shear), zoom)), reset);
}

}  // namespace

void apply_augment(const RgbImage& src, const AugmentParams& p, const Normalization& norm, int out_w, int out_h,
                   float* out) {
  GRAFT_ASSERT(out_w >= 1 && out_h >= 1);
  std::vector<uint8_t> resized(size_t(out_w) * size_t(out_h) * 3);
  const math::WarpExample e = prepare_augment(src, p, out_w, out_h, resized.data());
  // The warp, flips and normalization per pixel: kernels/common/warp_math.h, shared with the
  // CUDA kernel that augments on the device.
  cpu::augment_batch(1, out_h, out_w, resized.data(), &e, warp_norm(norm), out);
}

math::WarpExample prepare_augment(const RgbImage& src, const AugmentParams& p, int out_w, int out_h, uint8_t* resized) {
  GRAFT_ASSERT(out_w >= 1 && out_h >= 1);
  resize_region(src, p.crop_x, p.crop_y, p.crop_w, p.crop_h, out_w, out_h, resized);
  return warp_example(p, out_h, out_w);
}

math::WarpExample warp_example(const AugmentParams& p, int out_h, int out_w) {
  math::WarpExample e;
  e.flip_h = p.flip_h;
  e.flip_v = p.flip_v;
  e.affine = p.has_affine();
  if (e.affine) {
    const Mat3 m = keras_matrix(p, out_h, out_w);
    for (int i = 0; i < 3; ++i) {
      e.m[i] = m[0][size_t(i)];
      e.m[3 + i] = m[1][size_t(i)];
    }
  }
  return e;
}

math::WarpNorm warp_norm(const Normalization& norm) {
  math::WarpNorm n;
  n.scale = norm.scale;
  for (int c = 0; c < 3; ++c) {
    n.mean[c] = norm.mean[size_t(c)];
    n.std[c] = norm.std[size_t(c)];
  }
  n.bgr = norm.bgr;
  return n;
}

void augment_image(const RgbImage& src, const AugmentConfig& cfg, bool augment, uint64_t seed, int64_t epoch,
                   int64_t example, int out_w, int out_h, float* out) {
  const AugmentParams p = draw_augment_params(cfg, augment, src.width, src.height, out_w, out_h, seed, epoch, example);
  apply_augment(src, p, cfg.normalize, out_w, out_h, out);
}

}  // namespace graft

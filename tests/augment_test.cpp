// Augmentation: normalization presets, determinism per (seed, epoch, example), exact flips
// and shifts, the Keras affine composition against an independent formula, crops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "runtime/augment.h"
#include "base/error.h"
#include "runtime/image_decode.h"
#include "tests/image_writing.h"
#include "tests/testing.h"

namespace graft {
namespace {

using graft::testing::random_image;
using graft::testing::random_int;
using graft::testing::rng;

std::vector<float> run(const RgbImage& src, const AugmentConfig& cfg, bool augment, uint64_t seed, int64_t epoch,
                       int64_t example, int w, int h) {
  std::vector<float> out(size_t(w) * size_t(h) * 3, std::numeric_limits<float>::quiet_NaN());
  augment_image(src, cfg, augment, seed, epoch, example, w, h, out.data());
  return out;
}

AugmentConfig heavy() {
  AugmentConfig a;
  a.rotation_range = 30;
  a.width_shift_range = 0.2f;
  a.height_shift_range = 0.2f;
  a.shear_range = 15;
  a.zoom_range = 0.3f;
  a.horizontal_flip = true;
  a.vertical_flip = true;
  a.random_resized_crop.enabled = true;
  return a;
}

TEST(Augment, NormalizationPresetsExactValues) {
  RgbImage px;
  px.width = px.height = 1;
  px.pixels = {uint8_t(random_int(0, 255)), uint8_t(random_int(0, 255)), uint8_t(random_int(0, 255))};
  const double r = px.pixels[0], g = px.pixels[1], b = px.pixels[2];
  // The formulas in double; float outputs agree to float rounding.
  auto expect_close = [](float got, double want) { EXPECT_NEAR(got, want, 1e-5 * std::max(1.0, std::abs(want))); };
  auto out = [&](const char* preset) {
    AugmentConfig cfg;
    cfg.normalize = Normalization::preset(preset);
    return run(px, cfg, false, 0, 0, 0, 1, 1);
  };
  auto unit = out("unit");
  expect_close(unit[0], r / 255.0);
  expect_close(unit[1], g / 255.0);
  expect_close(unit[2], b / 255.0);
  auto imagenet = out("imagenet");
  expect_close(imagenet[0], (r / 255.0 - 0.485) / 0.229);
  expect_close(imagenet[1], (g / 255.0 - 0.456) / 0.224);
  expect_close(imagenet[2], (b / 255.0 - 0.406) / 0.225);
  auto caffe = out("caffe");  // BGR order, 0-255 scale
  expect_close(caffe[0], b - 103.939);
  expect_close(caffe[1], g - 116.779);
  expect_close(caffe[2], r - 123.68);
  auto tf = out("tf");
  expect_close(tf[0], r / 127.5 - 1.0);
  expect_close(tf[2], b / 127.5 - 1.0);
  auto raw = out("raw");
  EXPECT_EQ(raw[1], float(g));
  // The end points.
  px.pixels = {0, 255, 255};
  unit = out("unit");
  EXPECT_EQ(unit[0], 0.0f);
  EXPECT_EQ(unit[1], 1.0f);
  tf = out("tf");
  EXPECT_EQ(tf[0], -1.0f);
  EXPECT_EQ(tf[1], 1.0f);
  try {
    Normalization::preset("bogus");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'bogus'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("imagenet"), std::string::npos) << e.what();
  }
}

TEST(Augment, EvaluationIsResizeAndNormalizeOnly) {
  const RgbImage src = random_image(random_int(1, 60), random_int(1, 60));
  const int w = random_int(1, 40), h = random_int(1, 40);
  AugmentConfig cfg = heavy();
  cfg.normalize = Normalization::preset("imagenet");
  const auto got = run(src, cfg, false, rng()(), 3, 17, w, h);
  const RgbImage resized = resize_image(src, w, h);
  for (size_t i = 0; i < got.size(); ++i) {
    const int c = int(i % 3);
    const float expected = (float(resized.pixels[i]) * cfg.normalize.scale - cfg.normalize.mean[size_t(c)]) /
                           cfg.normalize.std[size_t(c)];
    ASSERT_EQ(got[i], expected) << i;
  }
}

TEST(Augment, DeterministicPerSeedEpochExample) {
  const RgbImage src = random_image(random_int(20, 50), random_int(20, 50));
  const AugmentConfig cfg = heavy();
  const uint64_t seed = rng()();
  const auto a = run(src, cfg, true, seed, 2, 5, 24, 24);
  EXPECT_EQ(run(src, cfg, true, seed, 2, 5, 24, 24), a);
  EXPECT_NE(run(src, cfg, true, seed, 3, 5, 24, 24), a);
  EXPECT_NE(run(src, cfg, true, seed, 2, 6, 24, 24), a);
  EXPECT_NE(run(src, cfg, true, seed + 1, 2, 5, 24, 24), a);
  for (float v : a) ASSERT_TRUE(std::isfinite(v));
}

TEST(Augment, FlipMirrorsPixelsExactly) {
  const RgbImage src = random_image(random_int(1, 40), random_int(1, 40));
  const int w = random_int(1, 30), h = random_int(1, 30);
  const uint64_t seed = rng()();
  for (bool horizontal : {true, false}) {
    AugmentConfig cfg;
    cfg.horizontal_flip = horizontal;
    cfg.vertical_flip = !horizontal;
    const auto plain = run(src, cfg, false, seed, 0, 0, w, h);
    int flipped = 0, kept = 0;
    for (int64_t ex = 0; ex < 400; ++ex) {
      const AugmentParams p = draw_augment_params(cfg, true, src.width, src.height, w, h, seed, 1, ex);
      EXPECT_FALSE(p.has_affine());
      const bool flip = horizontal ? p.flip_h : p.flip_v;
      EXPECT_FALSE(horizontal ? p.flip_v : p.flip_h);
      (flip ? flipped : kept)++;
      if (ex >= 20) continue;
      const auto got = run(src, cfg, true, seed, 1, ex, w, h);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const int sy = flip && !horizontal ? h - 1 - y : y, sx = flip && horizontal ? w - 1 - x : x;
          for (int c = 0; c < 3; ++c)
            ASSERT_EQ(got[size_t((y * w + x) * 3 + c)], plain[size_t((sy * w + sx) * 3 + c)]);
        }
    }
    EXPECT_GT(flipped, 140);  // about half of 400
    EXPECT_GT(kept, 140);
  }
}

TEST(Augment, IntegerShiftMovesPixelsExactlyWithNearestFill) {
  const int w = random_int(4, 30), h = random_int(4, 30);
  const RgbImage src = random_image(w, h);
  AugmentParams p;
  p.crop_w = w;
  p.crop_h = h;
  p.tx = random_int(-3, 3);  // rows
  p.ty = random_int(1, 3);   // columns
  const Normalization raw = Normalization::preset("raw");
  std::vector<float> out(size_t(w * h * 3));
  apply_augment(src, p, raw, w, h, out.data());
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const int sy = std::clamp(y + int(p.tx), 0, h - 1), sx = std::clamp(x + int(p.ty), 0, w - 1);
      for (int c = 0; c < 3; ++c) ASSERT_EQ(out[size_t((y * w + x) * 3 + c)], float(src.at(sy, sx, c))) << y << "," << x;
    }
}

TEST(Augment, QuarterTurnRotatesAboutTheCenter) {
  const int n = random_int(3, 25);
  const RgbImage src = random_image(n, n);
  AugmentParams p;
  p.crop_w = p.crop_h = n;
  p.theta = 3.14159265358979323846 / 2;
  std::vector<float> out(size_t(n * n * 3));
  apply_augment(src, p, Normalization::preset("raw"), n, n, out.data());
  // Keras: the output at (r, c) samples the input at R (r - o, c - o) + o = (n - 1 - c, r).
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c)
      for (int ch = 0; ch < 3; ++ch)
        ASSERT_NEAR(out[size_t((r * n + c) * 3 + ch)], float(src.at(n - 1 - c, r, ch)), 1e-3) << r << "," << c;
}

// On an image that is linear in (row, col), bilinear sampling returns the linear function at
// the (clamped) sampling point, so the whole Keras composition can be checked against an
// independent formula: input = o + R (Sh Z (out - o) + t), o = the center.
TEST(Augment, AffineMatchesKerasComposition) {
  for (int trial = 0; trial < 20; ++trial) {
    const int w = random_int(4, 30), h = random_int(4, 30);
    RgbImage src;
    src.width = w;
    src.height = h;
    const double alpha[3] = {3, 4, 0}, beta[3] = {4, 0, 3};
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c) src.pixels.push_back(uint8_t(alpha[c] * y + beta[c] * x));
    const AugmentParams p =
        draw_augment_params(heavy(), true, w, h, w, h, rng()(), trial, random_int(0, 1000));
    AugmentParams q = p;  // no crop: the warp alone
    q.crop_x = q.crop_y = 0;
    q.crop_w = w;
    q.crop_h = h;
    std::vector<float> out(size_t(w * h * 3));
    apply_augment(src, q, Normalization::preset("raw"), w, h, out.data());
    const double or_ = h / 2.0 - 0.5, oc = w / 2.0 - 0.5;
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < w; ++c) {
        const double rr = (q.flip_v ? h - 1 - r : r) - or_, cc = (q.flip_h ? w - 1 - c : c) - oc;
        // Z, then Sh = [[1, -sin s], [0, cos s]], then + t, then R.
        const double zr = q.zx * rr, zc = q.zy * cc;
        const double sr = zr - std::sin(q.shear) * zc + q.tx, sc = std::cos(q.shear) * zc + q.ty;
        const double in_r = std::clamp(or_ + std::cos(q.theta) * sr - std::sin(q.theta) * sc, 0.0, h - 1.0);
        const double in_c = std::clamp(oc + std::sin(q.theta) * sr + std::cos(q.theta) * sc, 0.0, w - 1.0);
        for (int ch = 0; ch < 3; ++ch)
          ASSERT_NEAR(out[size_t((r * w + c) * 3 + ch)], alpha[ch] * in_r + beta[ch] * in_c, 2e-3)
              << "trial " << trial << " at " << r << "," << c;
      }
  }
}

TEST(Augment, RandomResizedCropStaysInsideAndIsUsed) {
  // Near-square, so few draws are rejected (a 4:1 image only accepts small crops).
  const int w = random_int(40, 80), h = std::clamp(w + random_int(-5, 5), 40, 80);
  const RgbImage src = random_image(w, h);
  AugmentConfig cfg;
  cfg.random_resized_crop.enabled = true;
  const uint64_t seed = rng()();
  double area = 0;
  for (int64_t ex = 0; ex < 300; ++ex) {
    const AugmentParams p = draw_augment_params(cfg, true, w, h, 16, 16, seed, 0, ex);
    ASSERT_GE(p.crop_x, 0);
    ASSERT_GE(p.crop_y, 0);
    ASSERT_GE(p.crop_w, 1);
    ASSERT_GE(p.crop_h, 1);
    ASSERT_LE(p.crop_x + p.crop_w, w);
    ASSERT_LE(p.crop_y + p.crop_h, h);
    const double fraction = double(p.crop_w) * p.crop_h / (double(w) * h);
    ASSERT_GT(fraction, 0.06);  // 0.08 up to rounding of the sides
    const double ratio = double(p.crop_w) / p.crop_h;
    ASSERT_GT(ratio, 0.75 * 0.85);
    ASSERT_LT(ratio, 4.0 / 3.0 * 1.15);
    area += fraction;
  }
  area /= 300;
  EXPECT_GT(area, 0.4);  // uniform in [0.08, 1], large crops rejected a little more often
  EXPECT_LT(area, 0.65);
  // The output is the crop, resized.
  const AugmentParams p = draw_augment_params(cfg, true, w, h, 12, 10, seed, 0, 7);
  std::vector<uint8_t> expected(12 * 10 * 3);
  resize_region(src, p.crop_x, p.crop_y, p.crop_w, p.crop_h, 12, 10, expected.data());
  const auto got = run(src, cfg, true, seed, 0, 7, 12, 10);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], float(expected[i]) * (1.0f / 255.0f)) << i;
}

TEST(Augment, ValidateNamesTheField) {
  AugmentConfig cfg;
  cfg.zoom_range = 1.5f;
  try {
    cfg.validate();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("zoom_range"), std::string::npos);
  }
  cfg = AugmentConfig{};
  cfg.rotation_range = -1;
  EXPECT_THROW(cfg.validate(), Error);
  cfg = AugmentConfig{};
  cfg.random_resized_crop.enabled = true;
  cfg.random_resized_crop.scale_min = 0.9f;
  cfg.random_resized_crop.scale_max = 0.5f;
  EXPECT_THROW(cfg.validate(), Error);
  EXPECT_NO_THROW(heavy().validate());
}

}  // namespace
}  // namespace graft

// Augmentation on the device (kernels/cuda/augment.h) against the CPU pipeline's
// apply_augment on the same uint8 images at the input size: random Keras transforms
// (rotation, shift, shear, zoom, flips) and every normalization preset, plain and augmented
// examples mixed in one batch. The two share the per-pixel math (kernels/common/warp_math.h);
// nvcc may fuse multiply-adds the host does not, hence a tolerance, not bit equality.
#include "gpu_testing.h"
#include "kernels/cuda/augment.h"
#include "runtime/augment.h"

namespace graft::testing {
namespace {

class AugmentGpu : public GpuTest {};

TEST_F(AugmentGpu, WarpFlipNormalizeMatchesTheCpuPipeline) {
  for (const char* preset : {"unit", "imagenet", "caffe", "tf"}) {
    SCOPED_TRACE(preset);
    const int n = random_int(1, 6), h = random_int(1, 40), w = random_int(1, 40);
    AugmentConfig cfg;
    cfg.normalize = Normalization::preset(preset);
    cfg.rotation_range = 30;
    cfg.width_shift_range = 0.2f;
    cfg.height_shift_range = 2;
    cfg.shear_range = 15;
    cfg.zoom_range = 0.25f;
    cfg.horizontal_flip = cfg.vertical_flip = true;

    std::vector<uint8_t> images(size_t(n) * size_t(h) * size_t(w) * 3);
    for (auto& v : images) v = uint8_t(random_int(0, 255));
    std::vector<math::WarpExample> examples;
    std::vector<float> want(images.size());
    const uint64_t seed = test_seed() % 100000;
    for (int e = 0; e < n; ++e) {
      RgbImage img;
      img.width = w;
      img.height = h;
      const size_t per = size_t(h) * size_t(w) * 3;
      img.pixels.assign(images.begin() + std::ptrdiff_t(per * size_t(e)), images.begin() + std::ptrdiff_t(per * size_t(e + 1)));
      const bool augment = e % 3 != 2;  // some plain examples in the batch
      const AugmentParams p = draw_augment_params(cfg, augment, w, h, w, h, seed, 1, e);
      apply_augment(img, p, cfg.normalize, w, h, want.data() + per * size_t(e));
      examples.push_back(warp_example(p, h, w));
    }

    DeviceArray<uint8_t> d_images(images.size());
    d_images.upload(images);
    DeviceArray<math::WarpExample> d_examples(examples.size());
    d_examples.upload(examples);
    DeviceArray<float> d_out = poisoned_device(want.size());
    cuda::augment_batch(n, h, w, d_images.get(), d_examples.get(), warp_norm(cfg.normalize), d_out.get(), nullptr);
    const std::vector<float> got = d_out.download();
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_TRUE(std::isfinite(got[i])) << "element " << i;
      worst = std::max(worst, std::abs(double(got[i]) - double(want[i])));
    }
    // One unit of 8-bit intensity after normalization is at least 1/255 / 0.229 ~ 0.017
    // (imagenet); fused multiply-adds move a bilinear sample by far less.
    EXPECT_LT(worst, 1e-3) << n << " images " << h << "x" << w;
  }
}

}  // namespace
}  // namespace graft::testing

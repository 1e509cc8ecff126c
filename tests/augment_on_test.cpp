// --augment-on device (raw batches, Ops::augment_batch in the step): an image folder hands out
// uint8 images at the input size with each example's warp, and augmenting them in the step
// gives exactly the floats the decode workers give (every transform, random-resized-crop,
// the decoded-image cache); training is then bit-identical; sources that cannot are named.
// On the CPU the step's augmentation runs on the CPU: the GPU half is tests/gpu/augment_test.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "kernels/cpu/augment.h"
#include "layers/zoo.h"
#include "runtime/image_folder.h"
#include "runtime/trainer.h"
#include "tests/image_writing.h"
#include "tests/testing.h"
#include "tests/training.h"

namespace graft {
namespace {

namespace fs = std::filesystem;
using testing::random_int;

// Three classes of random RGB images of assorted sizes, PNG (exact) and JPEG.
fs::path make_images(const testing::TempDir& dir, int per_class) {
  const fs::path root = dir.path / "images";
  testing::write_image_folder(root, {"a", "b", "c"}, per_class, 12, 48, /*jpeg=*/true);
  return root;
}

ImageFolderOptions augmenting(bool crop, const std::string& cache) {
  ImageFolderOptions o;
  o.height = 14;
  o.width = 18;
  o.augment.normalize = Normalization::preset("imagenet");
  o.augment.rotation_range = 25;
  o.augment.width_shift_range = 0.2f;
  o.augment.height_shift_range = 2;
  o.augment.shear_range = 10;
  o.augment.zoom_range = 0.3f;
  o.augment.horizontal_flip = o.augment.vertical_flip = true;
  o.augment.random_resized_crop.enabled = crop;
  o.decoded_cache = cache;
  o.threads = random_int(0, 3);
  return o;
}

TEST(AugmentOn, RawBatchesAugmentToTheWorkersFloatsExactly) {
  testing::TempDir dir;
  const fs::path root = make_images(dir, 5);
  for (const auto& [crop, cache] : {std::pair{false, std::string("off")}, std::pair{true, std::string("off")},
                                    std::pair{false, std::string("memory")}}) {
    SCOPED_TRACE(std::string(crop ? "random-resized-crop" : "keras transforms") + ", cache " + cache);
    const ImageFolderOptions o = augmenting(crop, cache);
    ImageFolderSource floats(root.string(), o), raw(root.string(), o);
    raw.set_raw_batches(true);
    const int64_t batch = 4, per = int64_t(o.height) * o.width * 3;
    for (int64_t epoch : {1, 2}) {  // epoch 2 reads the decoded cache
      floats.start_epoch(7, epoch, true, true);
      raw.start_epoch(7, epoch, true, true);
      std::vector<float> want(size_t(batch * per)), got(size_t(batch * per));
      std::vector<uint8_t> images(size_t(batch * per));
      std::vector<math::WarpExample> warps(static_cast<size_t>(batch));
      std::vector<int32_t> want_labels(static_cast<size_t>(batch)), got_labels(static_cast<size_t>(batch));
      int64_t seen = 0;
      while (const int64_t n = floats.next_batch(batch, want.data(), want_labels.data())) {
        ASSERT_EQ(raw.next_raw_batch(batch, images.data(), warps.data(), got_labels.data()), n);
        cpu::augment_batch(int(n), o.height, o.width, images.data(), warps.data(), raw.raw_normalization(), got.data());
        EXPECT_TRUE(std::equal(want.begin(), want.begin() + n * per, got.begin())) << "batch at " << seen;
        EXPECT_TRUE(std::equal(want_labels.begin(), want_labels.begin() + n, got_labels.begin()));
        seen += n;
      }
      EXPECT_EQ(seen, floats.size());
    }
  }
}

// Training on the CPU with the augmentation in the step: the same run to the bit.
TEST(AugmentOn, TrainingWithTheStepAugmentingIsBitIdentical) {
  testing::TempDir dir;
  const fs::path root = make_images(dir, 4);
  HostPool pool;
  const uint64_t seed = testing::test_seed();
  std::vector<std::vector<float>> finals;
  std::vector<double> losses;
  for (TrainOptions::AugmentOn where : {TrainOptions::AugmentOn::Cpu, TrainOptions::AugmentOn::Device}) {
    ImageFolderSource data(root.string(), augmenting(false, "memory"));
    auto m = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = data.sample_shape(),
                                   .num_classes = 3, .seed = seed},
                         pool);
    TrainOptions o;
    o.epochs = 2;
    o.batch = 5;
    o.seed = seed % 1000;
    o.augment = true;
    o.augment_on = where;
    std::ostringstream log;
    const auto reports = train(*m, data, nullptr, o, log);
    finals.push_back(testing::params(*m));
    losses.push_back(reports.back().train.loss_sum);
  }
  EXPECT_TRUE(finals[0] == finals[1]);
  EXPECT_EQ(losses[0], losses[1]);
}

TEST(AugmentOn, SourcesWithoutRawBatchesAreNamed) {
  HostPool pool;
  InMemorySource data(testing::random_dataset(8, 2));
  auto m = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1}, .num_classes = 2}, pool);
  TrainOptions o;
  o.batch = 4;
  o.augment_on = TrainOptions::AugmentOn::Device;
  std::ostringstream log;
  const std::string e = testing::error_of([&] { train(*m, data, nullptr, o, log); });
  EXPECT_NE(e.find("random has no raw image batches to augment on the device; use --augment-on cpu"),
            std::string::npos)
      << e;
  // Auto on the CPU keeps the workers' augmentation: no error.
  o.augment_on = TrainOptions::AugmentOn::Auto;
  EXPECT_EQ(testing::error_of([&] { train(*m, data, nullptr, o, log); }), "(no error)");
}

}  // namespace
}  // namespace graft

// The decoded-image cache (runtime/decoded_cache.h) and the image folder source that uses
// it: records round-trip, a file is reused only for the same listing, a torn record is
// decoded again, and — the point — batches with the cache are bit-identical to batches
// without it, augmented or not, epoch after epoch, while later epochs decode nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/decoded_cache.h"
#include "base/error.h"
#include "runtime/image_folder.h"
#include "tests/image_writing.h"
#include "tests/testing.h"

namespace graft {
namespace {

namespace fs = std::filesystem;
using testing::random_image;
using testing::random_int;
using testing::TempDir;
using testing::write_image;

// A folder of `per_class` PNG and JPEG images per class, of random sizes around the input.
std::string write_folder(const TempDir& dir, int classes, int per_class) {
  const fs::path root = dir.path / "data";
  for (int c = 0; c < classes; ++c)
    for (int i = 0; i < per_class; ++i)
      write_image(root / ("class" + std::to_string(c)) / ("img" + std::to_string(i) + (i % 2 ? ".jpg" : ".png")),
                  random_image(random_int(9, 40), random_int(9, 40)), /*jpeg_quality=*/90);
  return root.string();
}

TEST(DecodedCache, MemoryRecordsRoundTrip) {
  const int w = random_int(1, 30), h = random_int(1, 30), n = random_int(2, 9);
  DecodedImageCache cache(n, w, h);
  RgbImage out;
  EXPECT_FALSE(cache.load(0, out));
  std::vector<RgbImage> images;
  for (int i = 0; i < n; ++i) images.push_back(random_image(w, h));
  for (int i = 0; i < n; i += 2) cache.store(i, images[size_t(i)]);
  for (int i = 0; i < n; ++i) {
    const bool got = cache.load(i, out);
    EXPECT_EQ(got, i % 2 == 0) << i;
    if (got) {
      EXPECT_TRUE(out.pixels == images[size_t(i)].pixels && out.width == w && out.height == h) << i;
    }
  }
  EXPECT_EQ(cache.stored(), (n + 1) / 2);
  EXPECT_THROW(cache.store(0, random_image(w + 1, h)), Error);  // wrong size: an assertion, not a write
}

TEST(DecodedCache, FileIsReusedForTheSameKeyOnlyAndTornRecordsAreNotUsed) {
  TempDir dir;
  const std::string path = dir.file("cache.bin");
  const int w = random_int(2, 20), h = random_int(2, 20), n = random_int(3, 8);
  const uint64_t key = uint64_t(random_int(1, 1 << 30));
  std::vector<RgbImage> images;
  for (int i = 0; i < n; ++i) images.push_back(random_image(w, h));
  {
    DecodedImageCache cache(path, key, n, w, h);
    EXPECT_EQ(cache.reused_records(), 0);
    for (int i = 0; i < n; ++i) cache.store(i, images[size_t(i)]);
  }
  {
    DecodedImageCache again(path, key, n, w, h);
    EXPECT_EQ(again.reused_records(), n);
    RgbImage out;
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(again.load(i, out)) << i;
      EXPECT_TRUE(out.pixels == images[size_t(i)].pixels) << i;
    }
  }
  // Flip one pixel byte of a record in the file (a write torn by a crash): that record is a
  // miss, the others still load.
  const int victim = random_int(0, n - 1);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    const size_t record = DecodedImageCache::total_bytes(1, w, h);
    const std::streamoff at = std::streamoff(64 + size_t(victim) * record + 8 + size_t(random_int(0, w * h * 3 - 1)));
    f.seekg(at);
    char c = 0;
    f.read(&c, 1);
    c = char(c ^ 0x5a);
    f.seekp(at);
    f.write(&c, 1);
  }
  {
    DecodedImageCache torn(path, key, n, w, h);
    RgbImage out;
    for (int i = 0; i < n; ++i) EXPECT_EQ(torn.load(i, out), i != victim) << i;
  }
  // Another listing (key) or size: a fresh cache in place of the old file.
  DecodedImageCache other(path, key + 1, n, w, h);
  EXPECT_EQ(other.reused_records(), 0);
  RgbImage out;
  EXPECT_FALSE(other.load(0, out));
}

// Every batch of `epochs` epochs, as floats.
std::vector<std::vector<float>> epochs_of(ImageFolderSource& src, int epochs, bool augment, uint64_t seed) {
  std::vector<std::vector<float>> out;
  const int64_t batch = 3;
  const size_t per = size_t(src.sample_shape().numel());
  for (int e = 0; e < epochs; ++e) {
    src.start_epoch(seed, e, /*shuffle=*/true, augment);
    std::vector<float> images(per * size_t(batch));
    std::vector<int32_t> labels(static_cast<size_t>(batch));
    int64_t n;
    while ((n = src.next_batch(batch, images.data(), labels.data())) > 0) {
      out.emplace_back(images.begin(), images.begin() + std::ptrdiff_t(per * size_t(n)));
      for (int64_t i = 0; i < n; ++i) out.back().push_back(float(labels[size_t(i)]));
    }
  }
  return out;
}

TEST(DecodedCache, ImageFolderBatchesAreBitIdenticalWithAndWithoutTheCache) {
  TempDir dir;
  const std::string root = write_folder(dir, 3, random_int(3, 5));
  const uint64_t seed = testing::test_seed() % 1000;
  for (const bool augment : {false, true}) {
    SCOPED_TRACE(augment ? "augmented" : "plain");
    ImageFolderOptions o;
    o.height = random_int(8, 24);
    o.width = random_int(8, 24);
    o.threads = random_int(0, 3);
    o.augment.normalize = Normalization::preset("imagenet");
    o.augment.rotation_range = 25;
    o.augment.zoom_range = 0.2f;
    o.augment.shear_range = 10;
    o.augment.width_shift_range = 0.1f;
    o.augment.horizontal_flip = true;
    ImageFolderSource plain(root, o);
    ImageFolderOptions m = o;
    m.decoded_cache = "memory";
    ImageFolderSource cached(root, m);
    ASSERT_NE(cached.decoded_cache(), nullptr);
    const auto want = epochs_of(plain, 3, augment, seed), got = epochs_of(cached, 3, augment, seed);
    ASSERT_EQ(want.size(), got.size());
    for (size_t b = 0; b < want.size(); ++b) EXPECT_TRUE(want[b] == got[b]) << "batch " << b;
    // Epoch 0 decoded every image once; epochs 1 and 2 decoded none.
    EXPECT_EQ(cached.decoded_cache()->misses(), cached.size());
    EXPECT_EQ(cached.decoded_cache()->hits(), 2 * cached.size());
  }
}

TEST(DecodedCache, AFileCacheServesTheNextRunAndRandomResizedCropIsRefused) {
  TempDir dir;
  const std::string root = write_folder(dir, 2, 3);
  ImageFolderOptions o;
  o.height = o.width = 16;
  o.threads = 1;
  o.decoded_cache = dir.file("decoded.bin");
  std::vector<std::vector<float>> first;
  {
    ImageFolderSource run1(root, o);
    first = epochs_of(run1, 1, false, 5);
    EXPECT_EQ(run1.decoded_cache()->misses(), run1.size());
  }
  ImageFolderSource run2(root, o);
  EXPECT_EQ(run2.decoded_cache()->reused_records(), run2.size());
  EXPECT_TRUE(epochs_of(run2, 1, false, 5) == first);
  EXPECT_EQ(run2.decoded_cache()->hits(), run2.size());  // decoded nothing
  EXPECT_NE(run2.decoded_cache_note().find(std::to_string(run2.size()) + " already there"), std::string::npos)
      << run2.decoded_cache_note();

  // A changed file changes the key: the cache starts over.
  const fs::path some = fs::directory_iterator(fs::path(root) / "class0")->path();
  std::ofstream(some, std::ios::app | std::ios::binary) << "trailing bytes";  // decoders ignore them
  ImageFolderSource run3(root, o);
  EXPECT_EQ(run3.decoded_cache()->reused_records(), 0);

  ImageFolderOptions rrc = o;
  rrc.augment.random_resized_crop.enabled = true;
  try {
    ImageFolderSource bad(root, rrc);
    ADD_FAILURE() << "a decoded cache with random-resized-crop was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--random-resized-crop"), std::string::npos) << e.what();
  }
  rrc.decoded_cache = "auto";
  ImageFolderSource fallback(root, rrc);
  EXPECT_EQ(fallback.decoded_cache(), nullptr);
  EXPECT_NE(fallback.decoded_cache_note().find("off (random-resized-crop"), std::string::npos);
}

}  // namespace
}  // namespace graft

namespace graft {
namespace {

TEST(DecodedCache, ASinglePassDropsTheMemoryCacheAndKeepsAFile) {
  TempDir dir;
  const std::string root = write_folder(dir, 2, 3);
  ImageFolderOptions o;
  o.height = o.width = 12;
  o.threads = random_int(0, 2);
  ImageFolderSource plain(root, o);
  const auto want = epochs_of(plain, 2, true, 9);

  ImageFolderOptions m = o;
  m.decoded_cache = "memory";
  ImageFolderSource memory(root, m);
  memory.expect_single_pass();  // what the trainer says before a feature-cache build
  EXPECT_EQ(memory.decoded_cache(), nullptr);
  EXPECT_NE(memory.decoded_cache_note().find("dropped"), std::string::npos);
  EXPECT_TRUE(epochs_of(memory, 2, true, 9) == want);

  m.decoded_cache = dir.file("kept.bin");
  ImageFolderSource file(root, m);
  file.expect_single_pass();
  ASSERT_NE(file.decoded_cache(), nullptr);  // a file serves the next run
  EXPECT_TRUE(epochs_of(file, 2, true, 9) == want);
}

}  // namespace
}  // namespace graft

// Image decoding and the image folder BatchSource, on images the test writes itself with
// stb_image_write: formats, conversions, broken files, folder layout rules, determinism
// across thread counts, resume by skip, bad-image policies, the stratified split.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "runtime/augment.h"
#include "base/error.h"
#include "runtime/image_decode.h"
#include "runtime/image_folder.h"
#include "tests/image_writing.h"
#include "tests/testing.h"

namespace graft {
namespace {

namespace fs = std::filesystem;
using testing::error_of;
using testing::random_int;
using testing::random_pixels;
using testing::read_bytes;
using testing::rng;
using testing::TempDir;
using testing::write_image;

// A smooth image (JPEG-friendly): a gradient plus a random offset per channel.
std::vector<uint8_t> smooth_pixels(int w, int h) {
  std::vector<uint8_t> v(size_t(w) * size_t(h) * 3);
  const int off[3] = {random_int(0, 60), random_int(0, 60), random_int(0, 60)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        v[(size_t(y) * size_t(w) + size_t(x)) * 3 + size_t(c)] = uint8_t(off[c] + (x * 90) / w + (y * 90) / h);
  return v;
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// --- decoding ---

TEST(ImageDecode, PngBmpTgaKeepRgbExactly) {
  TempDir dir;
  const int w = random_int(1, 40), h = random_int(1, 40);
  const auto pixels = random_pixels(w, h, 3);
  for (const char* name : {"a.png", "b.bmp", "c.tga", "d.PNG"}) {
    write_image(dir.path / name, w, h, 3, pixels);
    const RgbImage img = decode_image_file((dir.path / name).string());
    EXPECT_EQ(img.width, w) << name;
    EXPECT_EQ(img.height, h) << name;
    EXPECT_EQ(img.pixels, pixels) << name;
  }
}

TEST(ImageDecode, GrayscaleAndRgbaBecomeRgb) {
  TempDir dir;
  const int w = random_int(2, 30), h = random_int(2, 30);
  const auto gray = random_pixels(w, h, 1);
  const auto rgba = random_pixels(w, h, 4);
  write_image(dir.path / "gray.png", w, h, 1, gray);
  write_image(dir.path / "rgba.png", w, h, 4, rgba);
  const RgbImage g = decode_image_file((dir.path / "gray.png").string());
  const RgbImage a = decode_image_file((dir.path / "rgba.png").string());
  ASSERT_EQ(g.pixels.size(), size_t(w * h * 3));
  ASSERT_EQ(a.pixels.size(), size_t(w * h * 3));
  for (size_t i = 0; i < size_t(w * h); ++i)
    for (size_t c = 0; c < 3; ++c) {
      ASSERT_EQ(g.pixels[i * 3 + c], gray[i]);
      ASSERT_EQ(a.pixels[i * 3 + c], rgba[i * 4 + c]);  // alpha dropped, not blended
    }
}

TEST(ImageDecode, JpegDecodesCloseToTheOriginal) {
  TempDir dir;
  const int w = 48, h = 32;
  const auto pixels = smooth_pixels(w, h);
  write_image(dir.path / "x.jpg", w, h, 3, pixels);
  const RgbImage img = decode_image_file((dir.path / "x.jpg").string());
  ASSERT_EQ(img.width, w);
  ASSERT_EQ(img.height, h);
  double err = 0;
  for (size_t i = 0; i < pixels.size(); ++i) err += std::abs(int(img.pixels[i]) - int(pixels[i]));
  EXPECT_LT(err / double(pixels.size()), 4.0);
}

TEST(ImageDecode, GifFirstFrame) {
  // A 1x1 GIF whose only palette entry in use is red.
  const std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0, 0, 0xFF, 0, 0, 0, 0, 0,
                                    0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0, 0x3B};
  const RgbImage img = decode_image_memory(gif.data(), gif.size(), "red.gif");
  ASSERT_EQ(img.width, 1);
  ASSERT_EQ(img.height, 1);
  EXPECT_EQ(img.pixels, (std::vector<uint8_t>{255, 0, 0}));
}

TEST(ImageDecode, MemoryMatchesFile) {
  TempDir dir;
  const int w = random_int(1, 20), h = random_int(1, 20);
  write_image(dir.path / "m.png", w, h, 3, random_pixels(w, h, 3));
  const auto bytes = read_bytes(dir.path / "m.png");
  EXPECT_EQ(decode_image_memory(bytes.data(), bytes.size(), "m").pixels,
            decode_image_file((dir.path / "m.png").string()).pixels);
}

TEST(ImageDecode, BrokenFilesNameThePathAndReason) {
  TempDir dir;
  const fs::path empty = dir.path / "empty.png";
  write_bytes(empty, {});
  EXPECT_NE(error_of([&] { decode_image_file(empty.string()); }).find(empty.string() + ": the file is empty"),
            std::string::npos);

  const fs::path garbage = dir.path / "garbage.jpg";
  std::vector<uint8_t> junk = random_pixels(200, 1, 1);
  junk[0] = 'x';  // never a valid magic number
  write_bytes(garbage, junk);
  std::string e = error_of([&] { decode_image_file(garbage.string()); });
  EXPECT_NE(e.find(garbage.string()), std::string::npos) << e;
  EXPECT_NE(e.find("not a readable image"), std::string::npos) << e;

  const fs::path missing = dir.path / "missing.png";
  e = error_of([&] { decode_image_file(missing.string()); });
  EXPECT_NE(e.find(missing.string() + ": cannot open"), std::string::npos) << e;

  // Truncated files of every format that can tell.
  const int w = 32, h = 24;
  for (const char* name : {"t.png", "t.jpg", "t.bmp"}) {
    const fs::path p = dir.path / name;
    write_image(p, w, h, 3, std::string(name) == "t.jpg" ? smooth_pixels(w, h) : random_pixels(w, h, 3));
    auto bytes = read_bytes(p);
    bytes.resize(bytes.size() * 2 / 3);
    write_bytes(p, bytes);
    e = error_of([&] { decode_image_file(p.string()); });
    EXPECT_NE(e.find(p.string()), std::string::npos) << e;
    EXPECT_TRUE(e.find("truncated") != std::string::npos || e.find("corrupt") != std::string::npos) << e;
  }
}

TEST(ImageDecode, OversizedHeaderRejectedBeforeDecoding) {
  TempDir dir;
  write_image(dir.path / "one.png", 1, 1, 3, {1, 2, 3});
  auto bytes = read_bytes(dir.path / "one.png");
  // IHDR width at offset 16, big-endian: claim 20000 x 1 (stb does not check CRCs).
  const uint32_t width = uint32_t(kMaxImageSide) + uint32_t(random_int(1, 5000));
  bytes[16] = uint8_t(width >> 24);
  bytes[17] = uint8_t(width >> 16);
  bytes[18] = uint8_t(width >> 8);
  bytes[19] = uint8_t(width);
  const std::string e = error_of([&] { decode_image_memory(bytes.data(), bytes.size(), "huge.png"); });
  EXPECT_NE(e.find("huge.png"), std::string::npos) << e;
  EXPECT_TRUE(e.find("16384") != std::string::npos || e.find("large") != std::string::npos) << e;
}

TEST(ImageDecode, OversizedJpegHuffmanTableRejected) {
  // stb_image 2.27 overflows its tables on a DHT segment declaring more than 256 codes.
  TempDir dir;
  write_image(dir.path / "h.jpg", 16, 16, 3, smooth_pixels(16, 16));
  auto bytes = read_bytes(dir.path / "h.jpg");
  size_t dht = 0;
  for (size_t i = 2; i + 1 < bytes.size(); ++i)
    if (bytes[i] == 0xFF && bytes[i + 1] == 0xC4) {
      dht = i;
      break;
    }
  ASSERT_GT(dht, 0u);
  for (size_t k = 0; k < 16; ++k) bytes[dht + 5 + k] = uint8_t(random_int(17, 255));  // counts of table 1
  const std::string e = error_of([&] { decode_image_memory(bytes.data(), bytes.size(), "dht.jpg"); });
  EXPECT_NE(e.find("dht.jpg: corrupt JPEG (a Huffman table declares"), std::string::npos) << e;
  // stb_image also reads a JPEG behind 0xFF fill bytes before its SOI marker (found by fuzz_image).
  bytes.insert(bytes.begin(), size_t(random_int(1, 9)), uint8_t(0xFF));
  const std::string filled = error_of([&] { decode_image_memory(bytes.data(), bytes.size(), "fill.jpg"); });
  EXPECT_NE(filled.find("fill.jpg: corrupt JPEG (a Huffman table declares"), std::string::npos) << filled;
}

TEST(ImageDecode, PngWithAnEmptyFirstIdatRejectedAndALaterOneAccepted) {
  // stb_image 2.27 memcpys 0 bytes to a null buffer on an empty first IDAT chunk (UB).
  TempDir dir;
  const int w = random_int(2, 20), h = random_int(2, 20);
  const auto pixels = random_pixels(w, h, 3);
  write_image(dir.path / "p.png", w, h, 3, pixels);
  const auto bytes = read_bytes(dir.path / "p.png");
  size_t idat = 0;  // the first IDAT chunk's length field
  for (size_t i = 8; i + 8 <= bytes.size(); i += 12 + (size_t(bytes[i]) << 24 | size_t(bytes[i + 1]) << 16 |
                                                           size_t(bytes[i + 2]) << 8 | size_t(bytes[i + 3])))
    if (std::equal(bytes.begin() + std::ptrdiff_t(i + 4), bytes.begin() + std::ptrdiff_t(i + 8), "IDAT")) {
      idat = i;
      break;
    }
  ASSERT_GT(idat, 0u);
  const std::vector<uint8_t> empty_idat{0, 0, 0, 0, 'I', 'D', 'A', 'T', 0x35, 0xAF, 0x06, 0x1E};  // with its CRC
  auto before = bytes;
  before.insert(before.begin() + std::ptrdiff_t(idat), empty_idat.begin(), empty_idat.end());
  const std::string e = error_of([&] { decode_image_memory(before.data(), before.size(), "empty.png"); });
  EXPECT_NE(e.find("empty.png: PNG whose first image-data (IDAT) chunk is empty"), std::string::npos) << e;

  // After a non-empty IDAT an empty one is harmless and the image decodes exactly.
  const size_t first_len = size_t(bytes[idat]) << 24 | size_t(bytes[idat + 1]) << 16 | size_t(bytes[idat + 2]) << 8 |
                           size_t(bytes[idat + 3]);
  auto after = bytes;
  after.insert(after.begin() + std::ptrdiff_t(idat + 12 + first_len), empty_idat.begin(), empty_idat.end());
  const RgbImage img = decode_image_memory(after.data(), after.size(), "later.png");
  EXPECT_EQ(img.pixels, pixels);
}

TEST(ImageDecode, ResizeKeepsConstantImagesConstant) {
  for (int trial = 0; trial < 5; ++trial) {
    RgbImage img;
    img.width = random_int(1, 50);
    img.height = random_int(1, 50);
    const uint8_t color[3] = {uint8_t(random_int(0, 255)), uint8_t(random_int(0, 255)), uint8_t(random_int(0, 255))};
    for (int i = 0; i < img.width * img.height; ++i) img.pixels.insert(img.pixels.end(), color, color + 3);
    const int ow = random_int(1, 60), oh = random_int(1, 60);
    const RgbImage out = resize_image(img, ow, oh);
    ASSERT_EQ(out.pixels.size(), size_t(ow * oh * 3));
    for (size_t i = 0; i < out.pixels.size(); ++i)
      ASSERT_NEAR(int(out.pixels[i]), int(color[i % 3]), 0) << img.width << "x" << img.height << " -> " << ow << "x" << oh;
  }
}

TEST(ImageDecode, ResizeReproducesALinearGradient) {
  // v(x) = a + b x; a symmetric normalized filter reproduces it at interior output pixels
  // sampled at (j + 0.5) * in / out - 0.5.
  for (auto [in_w, out_w] : {std::pair{64, 32}, std::pair{16, 48}, std::pair{60, 45}}) {
    RgbImage img;
    img.width = in_w;
    img.height = 4;
    const double a = 10, b = 200.0 / in_w;
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < in_w; ++x)
        for (int c = 0; c < 3; ++c) img.pixels.push_back(uint8_t(std::lround(a + b * x)));
    const RgbImage out = resize_image(img, out_w, 4);
    for (int j = 3; j < out_w - 3; ++j) {
      const double expected = a + b * ((j + 0.5) * in_w / out_w - 0.5);
      for (int y = 0; y < 4; ++y) ASSERT_NEAR(out.at(y, j, 1), expected, 1.01) << in_w << " -> " << out_w << " at " << j;
    }
  }
}

// --- the folder ---

struct Folder {
  TempDir dir;
  std::vector<std::string> good;  // every good image file
  fs::path root() const { return dir.path / "data"; }
};

// A folder with classes in non-sorted creation order, mixed formats and sizes, a hidden
// folder and file, a non-image file and a nested subfolder.
void make_folder(Folder& f, int per_class = 6, std::vector<std::string> classes = {"zebra", "ant", "cat"}) {
  const char* exts[] = {".png", ".bmp", ".jpg", ".tga", ".JPEG"};
  for (const auto& cls : classes) {
    for (int i = 0; i < per_class; ++i) {
      const int w = random_int(5, 40), h = random_int(5, 40);
      const fs::path p = f.root() / cls / (i == per_class - 1 ? "sub" : "") /
                         ("img" + std::to_string(i) + exts[i % 5]);
      write_image(p, w, h, 3, exts[i % 5][1] == 'j' || exts[i % 5][1] == 'J' ? smooth_pixels(w, h) : random_pixels(w, h, 3));
      f.good.push_back(p.string());
    }
    write_bytes(f.root() / cls / "notes.txt", {'h', 'i'});
    write_bytes(f.root() / cls / ".hidden.png", {1, 2, 3});
  }
  write_image(f.root() / ".thumbnails" / "x.png", 3, 3, 3, random_pixels(3, 3, 3));
}

TEST(ImageFolder, ListsSortedClassesAndFiles) {
  Folder f;
  make_folder(f, 6);
  const ImageFolderListing l = list_image_folder(f.root().string());
  EXPECT_EQ(l.class_names, (std::vector<std::string>{"ant", "cat", "zebra"}));
  ASSERT_EQ(l.files.size(), 18u);
  for (size_t i = 0; i < l.files.size(); ++i) {
    EXPECT_EQ(l.files[i].label, int32_t(i / 6));
    EXPECT_EQ(l.files[i].path.find("/."), std::string::npos) << l.files[i].path;
  }
  // Sorted by path within a class: img0 .. img4, then sub/img5.
  EXPECT_NE(l.files[0].path.find("ant/img0.png"), std::string::npos);
  EXPECT_NE(l.files[4].path.find("ant/img4.JPEG"), std::string::npos);
  EXPECT_NE(l.files[5].path.find("ant/sub/img5.png"), std::string::npos);
  ImageFolderOptions o;
  o.height = 8;
  o.width = 10;
  ImageFolderSource src(f.root().string(), o);
  EXPECT_EQ(src.size(), 18);
  EXPECT_EQ(src.sample_shape(), (Shape{8, 10, 3}));
  EXPECT_EQ(src.num_classes(), 3);
  EXPECT_EQ(src.labels()[7], 1);
  EXPECT_EQ(src.origin(), f.root().string());
}

TEST(ImageFolder, EmptyClassFolderIsAnErrorNamingIt) {
  Folder f;
  make_folder(f, 2, {"a", "b"});
  fs::create_directories(f.root() / "empty1");
  write_bytes(f.root() / "empty2" / "readme.txt", {'x'});
  const std::string e = error_of([&] { list_image_folder(f.root().string()); });
  EXPECT_NE(e.find(f.root().string()), std::string::npos) << e;
  EXPECT_NE(e.find("empty1, empty2"), std::string::npos) << e;
  EXPECT_NE(e.find("no images"), std::string::npos) << e;
}

TEST(ImageFolder, NoClassFoldersIsAnErrorNamingTheLayout) {
  TempDir dir;
  std::string e = error_of([&] { list_image_folder(dir.str()); });
  EXPECT_NE(e.find(dir.str() + ": no class folders"), std::string::npos) << e;
  EXPECT_NE(e.find("/cat/001.jpg"), std::string::npos) << e;
  write_image(dir.path / "loose.png", 2, 2, 3, random_pixels(2, 2, 3));
  e = error_of([&] { list_image_folder(dir.str()); });
  EXPECT_NE(e.find("holds 1 images directly"), std::string::npos) << e;
  e = error_of([&] { list_image_folder((dir.path / "nope").string()); });
  EXPECT_NE(e.find("nope: does not exist"), std::string::npos) << e;
}

TEST(ImageFolder, ForcedClassListLabelsAndRejectsUnknownFolders) {
  Folder f;
  make_folder(f, 2, {"cat", "dog"});
  // Validation data that lacks a class: labels follow the training list.
  const auto l = list_image_folder(f.root().string(), {"ant", "cat", "dog"});
  EXPECT_EQ(l.class_names, (std::vector<std::string>{"ant", "cat", "dog"}));
  ASSERT_EQ(l.files.size(), 4u);
  EXPECT_EQ(l.files[0].label, 1);
  EXPECT_EQ(l.files[3].label, 2);
  ImageFolderOptions o;
  o.class_names = {"cat"};
  const std::string e = error_of([&] { ImageFolderSource s(f.root().string(), o); });
  EXPECT_NE(e.find("class folder dog is not among the 1 classes"), std::string::npos) << e;
  EXPECT_NE(e.find(f.root().string()), std::string::npos) << e;
}

// Reads a whole epoch.
struct Epoch {
  std::vector<std::vector<float>> images;
  std::vector<std::vector<int32_t>> labels;
  bool operator==(const Epoch&) const = default;
};
Epoch read_epoch(BatchSource& s, int64_t batch, uint64_t seed, int64_t epoch, bool shuffle, bool augment,
                 int64_t skip = 0) {
  s.start_epoch(seed, epoch, shuffle, augment, skip);
  const auto shape = s.sample_shape();
  const size_t per = size_t(shape.numel());
  Epoch out;
  for (;;) {
    std::vector<float> images(per * size_t(batch), std::numeric_limits<float>::quiet_NaN());
    std::vector<int32_t> labels(size_t(batch), -1);
    const int64_t n = s.next_batch(batch, images.data(), labels.data());
    if (n == 0) break;
    images.resize(per * size_t(n));
    labels.resize(size_t(n));
    out.images.push_back(std::move(images));
    out.labels.push_back(std::move(labels));
  }
  return out;
}

AugmentConfig heavy_augmentation() {
  AugmentConfig a;
  a.normalize = Normalization::preset("imagenet");
  a.rotation_range = 20;
  a.width_shift_range = 0.1f;
  a.height_shift_range = 0.1f;
  a.shear_range = 10;
  a.zoom_range = 0.2f;
  a.horizontal_flip = true;
  a.random_resized_crop.enabled = true;
  return a;
}

TEST(ImageFolder, BatchesAreTheDecodedAugmentedImagesInOrder) {
  Folder f;
  make_folder(f, 4);
  ImageFolderOptions o;
  o.height = 12;
  o.width = 9;
  o.augment = heavy_augmentation();
  o.threads = 2;
  ImageFolderSource src(f.root().string(), o);
  const uint64_t seed = rng()();
  const Epoch e = read_epoch(src, 5, seed, 3, true, true);
  ASSERT_EQ(e.images.size(), 3u);  // 12 = 5 + 5 + 2
  EXPECT_EQ(e.labels[2].size(), 2u);
  const auto order = epoch_order(12, seed, 3, true);
  const size_t per = 12 * 9 * 3;
  std::vector<float> expected(per);
  for (size_t i = 0; i < 12; ++i) {
    const auto& file = src.listing().files[size_t(order[i])];
    augment_image(decode_image_file(file.path), o.augment, true, seed, 3, order[i], 9, 12, expected.data());
    const float* got = e.images[i / 5].data() + (i % 5) * per;
    ASSERT_TRUE(std::equal(expected.begin(), expected.end(), got)) << "example " << i;
    EXPECT_EQ(e.labels[i / 5][i % 5], file.label);
  }
}

TEST(ImageFolder, ThreadCountDoesNotChangeBatches) {
  Folder f;
  make_folder(f, 7);
  const uint64_t seed = rng()();
  std::vector<Epoch> results;
  for (int threads : {0, 1, 4}) {
    for (int prefetch : {1, 3}) {
      ImageFolderOptions o;
      o.height = 16;
      o.width = 16;
      o.augment = heavy_augmentation();
      o.threads = threads;
      o.prefetch_batches = prefetch;
      ImageFolderSource src(f.root().string(), o);
      results.push_back(read_epoch(src, 4, seed, 1, true, true));
      EXPECT_EQ(read_epoch(src, 4, seed, 1, true, true), results.back()) << "rereading, threads " << threads;
      if (threads == 4 && prefetch == 3) {
        EXPECT_NE(read_epoch(src, 4, seed, 2, true, true), results.back()) << "another epoch";
        EXPECT_NE(read_epoch(src, 4, seed, 1, true, false), results.back()) << "without augmentation";
      }
    }
  }
  for (size_t i = 1; i < results.size(); ++i) EXPECT_EQ(results[i], results[0]) << "configuration " << i;
}

TEST(ImageFolder, SkipGivesTheSameRemainingBatches) {
  Folder f;
  make_folder(f, 5);
  ImageFolderOptions o;
  o.height = 10;
  o.width = 10;
  o.augment = heavy_augmentation();
  o.threads = 3;
  ImageFolderSource src(f.root().string(), o);
  const uint64_t seed = rng()();
  const int64_t batch = 4;
  const Epoch full = read_epoch(src, batch, seed, 5, true, true);
  for (int64_t k : {int64_t(1), int64_t(2), int64_t(3)}) {
    const Epoch rest = read_epoch(src, batch, seed, 5, true, true, k * batch);
    ASSERT_EQ(rest.images.size() + size_t(k), full.images.size());
    for (size_t b = 0; b < rest.images.size(); ++b) {
      EXPECT_EQ(rest.images[b], full.images[b + size_t(k)]) << "skip " << k << " batch " << b;
      EXPECT_EQ(rest.labels[b], full.labels[b + size_t(k)]);
    }
  }
  // Reading part of an epoch, then restarting (joins the workers mid-epoch).
  src.start_epoch(seed, 5, true, true);
  std::vector<float> images(size_t(batch) * 300);
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  EXPECT_EQ(src.next_batch(batch, images.data(), labels.data()), batch);
  EXPECT_EQ(read_epoch(src, batch, seed, 5, true, true), full);
}

TEST(ImageFolder, BadImagesSkippedAndCountedBatchesStayFull) {
  Folder f;
  make_folder(f, 4, {"a", "b"});
  write_bytes(f.root() / "a" / "zz_empty.png", {});
  auto junk = random_pixels(300, 1, 1);
  junk[0] = 'x';
  write_bytes(f.root() / "b" / "zz_corrupt.jpg", junk);
  write_image(f.root() / "b" / "zz_truncated.png", 20, 20, 3, random_pixels(20, 20, 3));
  auto bytes = read_bytes(f.root() / "b" / "zz_truncated.png");
  bytes.resize(bytes.size() / 2);
  write_bytes(f.root() / "b" / "zz_truncated.png", bytes);

  ImageFolderOptions o;
  o.height = 6;
  o.width = 6;
  o.bad_images = BadImagePolicy::Skip;
  o.threads = 2;
  ImageFolderSource src(f.root().string(), o);
  ASSERT_EQ(src.size(), 11);
  ::testing::internal::CaptureStderr();
  const Epoch e = read_epoch(src, 3, 7, 0, true, false);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(src.skipped(), 3);
  ASSERT_EQ(e.images.size(), 3u);  // 8 good: 3 + 3 + 2
  EXPECT_EQ(e.labels[0].size(), 3u);
  EXPECT_EQ(e.labels[1].size(), 3u);
  EXPECT_EQ(e.labels[2].size(), 2u);
  for (const char* name : {"zz_empty.png", "zz_corrupt.jpg", "zz_truncated.png"})
    EXPECT_NE(err.find(name), std::string::npos) << err;
  // Reported once per source, counted every epoch.
  ::testing::internal::CaptureStderr();
  read_epoch(src, 3, 7, 1, true, false);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(src.skipped(), 3);

  // The same folder with the Fail policy: the error names the file.
  o.bad_images = BadImagePolicy::Fail;
  ImageFolderSource strict(f.root().string(), o);
  const std::string msg = error_of([&] { read_epoch(strict, 3, 7, 0, false, false); });
  EXPECT_NE(msg.find((f.root() / "a" / "zz_empty.png").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
}

TEST(ImageFolder, StratifiedSplitIsDeterministicAndDisjoint) {
  Folder f;
  make_folder(f, 2, {"a", "b", "c"});
  // Add plain files to make class sizes differ: a 2, b 10, c 5 images.
  for (int i = 0; i < 8; ++i) write_image(f.root() / "b" / ("x" + std::to_string(i) + ".png"), 2, 2, 3, random_pixels(2, 2, 3));
  for (int i = 0; i < 3; ++i) write_image(f.root() / "c" / ("x" + std::to_string(i) + ".bmp"), 2, 2, 3, random_pixels(2, 2, 3));
  const auto listing = list_image_folder(f.root().string());
  const uint64_t seed = rng()();
  const ListingSplit s1 = split_listing(listing, 0.2, seed);
  const ListingSplit s2 = split_listing(listing, 0.2, seed);
  auto paths = [](const ImageFolderListing& l) {
    std::vector<std::string> p;
    for (const auto& x : l.files) p.push_back(x.path);
    return p;
  };
  EXPECT_EQ(paths(s1.val), paths(s2.val));
  EXPECT_EQ(paths(s1.train), paths(s2.train));
  std::vector<int> val_per_class(3, 0);
  for (const auto& x : s1.val.files) ++val_per_class[size_t(x.label)];
  EXPECT_EQ(val_per_class, (std::vector<int>{1, 2, 1}));  // round(0.2 n), at least 1, never all
  const auto train_paths = paths(s1.train);
  std::set<std::string> all(train_paths.begin(), train_paths.end());
  for (const auto& p : paths(s1.val)) EXPECT_TRUE(all.insert(p).second) << p;
  EXPECT_EQ(all.size(), listing.files.size());
  EXPECT_EQ(s1.val.class_names, listing.class_names);
  // Different seeds pick different validation files (b has 45 possible pairs).
  bool differs = false;
  for (uint64_t k = 1; k < 6 && !differs; ++k) differs = paths(split_listing(listing, 0.2, seed + k).val) != paths(s1.val);
  EXPECT_TRUE(differs);
  EXPECT_NE(error_of([&] { split_listing(listing, 1.0, seed); }).find("between 0 and 1"), std::string::npos);

  ImageFolderOptions o;
  o.height = 4;
  o.width = 4;
  auto sources = ImageFolderSource::split(f.root().string(), 0.2, seed, o);
  EXPECT_EQ(sources.train->size(), 13);
  EXPECT_EQ(sources.val->size(), 4);
  EXPECT_EQ(sources.val->class_names(), listing.class_names);
  EXPECT_EQ(read_epoch(*sources.val, 10, seed, 0, false, false).labels.size(), 1u);
}

}  // namespace
}  // namespace graft

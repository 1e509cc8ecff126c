// DecodedImageCache: each image of an image folder decoded once and resized to the model's
// input (uint8 H x W x 3, before augmentation and normalization), so that later epochs read
// a record instead of decoding a JPEG. Exact: the pipeline (runtime/augment.h) resizes the
// whole image to the input size before its Keras-style warp, flips and normalization, and
// those start from the same bytes either way. Not valid with torchvision's
// RandomResizedCrop, which crops the original image (the caller refuses that combination).
//
// In memory, or in a file that a later run reuses: the file starts with a header naming the
// listing it was made from (key: paths, sizes, modification times, input size), and each
// record carries a CRC-32 of its pixels written before its "stored" mark, so a file from
// another listing is rebuilt and a record torn by a crash is decoded again, never used.
// store() and load() may run on several threads at once for different examples.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "runtime/image_decode.h"

namespace graft {

struct ImageFolderListing;

class DecodedImageCache {
 public:
  // In memory.
  DecodedImageCache(int64_t count, int width, int height);
  // In the file at `path`: an earlier run's file with the same key is reused, else the file
  // is replaced (atomically) by an empty one. Errors name the path.
  DecodedImageCache(const std::string& path, uint64_t key, int64_t count, int width, int height);
  ~DecodedImageCache();
  DecodedImageCache(const DecodedImageCache&) = delete;
  DecodedImageCache& operator=(const DecodedImageCache&) = delete;

  // Fills `out` (width x height) with the stored record; false when there is none or its
  // checksum does not match.
  bool load(int64_t example, RgbImage& out) const;
  // Stores an image already resized to width x height.
  void store(int64_t example, const RgbImage& resized);

  int64_t count() const { return count_; }
  int64_t stored() const;              // records present (and marked) now
  size_t bytes() const { return bytes_; }
  bool in_file() const { return !path_.empty(); }
  int64_t reused_records() const { return reused_; }  // found in the file when it was opened
  int64_t hits() const { return hits_.load(); }
  int64_t misses() const { return misses_.load(); }

  // Bytes of one record's pixels, and of the whole cache for `count` images.
  static size_t pixel_bytes(int width, int height) { return size_t(width) * size_t(height) * 3; }
  static size_t total_bytes(int64_t count, int width, int height);

 private:
  uint8_t* record(int64_t example) const;
  void check(int64_t example) const;

  int64_t count_;
  int width_, height_;
  size_t record_bytes_;
  size_t bytes_ = 0;
  std::string path_;
  uint8_t* base_ = nullptr;          // the records (after the header, in a file)
  void* map_ = nullptr;              // the whole mapping (file mode)
  size_t map_bytes_ = 0;
  std::unique_ptr<uint8_t, void (*)(void*)> memory_{nullptr, std::free};  // memory mode (calloc:
                                                                          // pages commit when stored)
  int64_t reused_ = 0;
  mutable std::atomic<int64_t> hits_{0}, misses_{0};
};

// The key of a listing at an input size: paths, labels, file sizes and modification times.
uint64_t decoded_cache_key(const ImageFolderListing& listing, int width, int height);

}  // namespace graft

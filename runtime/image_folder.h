// A folder of images, one subfolder per class (Keras flow_from_directory / torchvision
// ImageFolder layout), decoded on the fly by a pool of worker threads:
//
//   DIR/cat/001.jpg  DIR/cat/002.png  DIR/dog/a.jpg ...
//
// Class names are the subfolder names, sorted; labels are their positions. Entries whose
// name starts with '.' are ignored; images are collected recursively under each class
// folder (jpg jpeg png bmp gif tga, any case), in sorted path order. A class folder without
// images is an error, as is a folder without class folders.
//
// Determinism: an epoch's order is epoch_order(n, seed, epoch, shuffle) and each example's
// augmentation depends only on (seed, epoch, example index), so the same seed gives
// bit-identical batches whatever the thread count. Workers decode ahead of the consumer
// into a bounded ring of slots; batches are assembled in order.
//
// Bad images: with BadImagePolicy::Fail the batch that reaches one throws graft::Error
// naming the file and the reason; with Skip the file is reported on stderr (once per
// source), counted in skipped(), and the batch is filled with the next good examples of
// the order, so batches stay full. start_epoch's `skip` counts positions of the order,
// bad images included.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "runtime/augment.h"
#include "runtime/batch_source.h"
#include "runtime/decoded_cache.h"

namespace graft {

enum class BadImagePolicy { Skip, Fail };

struct ImageFile {
  std::string path;
  int32_t label = 0;
};

struct ImageFolderListing {
  std::string root;
  std::vector<std::string> class_names;
  std::vector<ImageFile> files;  // grouped by class in class order, sorted within a class
};

// Lists `dir`. With `class_names` given, labels index that list and every class folder of
// `dir` must be in it (an unknown folder is an error naming it; a class of the list with no
// folder is allowed: validation data may lack a class). Errors name the path and the
// expected layout.
ImageFolderListing list_image_folder(const std::string& dir, const std::vector<std::string>& class_names = {});

// Stratified deterministic split: within each class, the files are shuffled by `seed` and
// round(fraction * count) go to validation (at least one when the class has two or more
// files, never all of them). Both keep the listing's order. fraction must be in (0, 1).
struct ListingSplit {
  ImageFolderListing train, val;
};
ListingSplit split_listing(const ImageFolderListing& listing, double val_fraction, uint64_t seed);

struct ImageFolderOptions {
  int height = 224, width = 224;  // the model's input size
  AugmentConfig augment;          // used by epochs started with augment = true
  BadImagePolicy bad_images = BadImagePolicy::Fail;
  // Decode threads: -1 = min(4, hardware threads); 0 = decode on the caller's thread.
  int threads = -1;
  int prefetch_batches = 3;  // how many batches the workers may decode ahead
  // Force the class list (--val against training's classes); empty = the folder's own.
  std::vector<std::string> class_names;
  // Decoded-image cache (runtime/decoded_cache.h): "off"; "memory"; a file path (reused by
  // later runs over the same files); "auto": memory when it takes at most a quarter of the
  // physical memory and the augmentation allows it. Refused with random-resized-crop.
  std::string decoded_cache = "off";
};

// The options of a validation source beside a training one: a file cache gets its own file
// (PATH.val); the rest is the same.
ImageFolderOptions validation_options(const ImageFolderOptions& train);

class ImageFolderSource final : public BatchSource {
 public:
  // Lists `dir` (with options.class_names when given).
  ImageFolderSource(const std::string& dir, ImageFolderOptions options);
  // Over an existing listing (a split); `origin` names it in messages.
  ImageFolderSource(ImageFolderListing listing, ImageFolderOptions options, std::string origin);
  ~ImageFolderSource() override;
  ImageFolderSource(const ImageFolderSource&) = delete;
  ImageFolderSource& operator=(const ImageFolderSource&) = delete;

  // Train and validation sources over a stratified split of `dir` (see split_listing).
  struct Split {
    std::unique_ptr<ImageFolderSource> train, val;
  };
  static Split split(const std::string& dir, double val_fraction, uint64_t seed, const ImageFolderOptions& options);

  int64_t size() const override { return static_cast<int64_t>(listing_.files.size()); }
  Shape sample_shape() const override { return Shape{options_.height, options_.width, 3}; }
  const std::vector<std::string>& class_names() const override { return listing_.class_names; }
  std::string origin() const override { return origin_; }
  std::vector<int32_t> labels() const override;
  void start_epoch(uint64_t seed, int64_t epoch, bool shuffle, bool augment, int64_t skip = 0) override;
  int64_t next_batch(int64_t max, float* images, int32_t* labels) override;
  bool has_raw_batches() const override { return true; }
  void set_raw_batches(bool on) override;
  math::WarpNorm raw_normalization() const override { return warp_norm(options_.augment.normalize); }
  int64_t next_raw_batch(int64_t max, uint8_t* images, math::WarpExample* warps, int32_t* labels) override;
  int64_t skipped() const override { return skipped_; }
  int64_t position() const override { return consume_; }
  void expect_single_pass() override;

  const ImageFolderListing& listing() const { return listing_; }
  int threads() const { return threads_; }
  // The decoded-image cache, or null when off; and one line saying what was decided.
  const DecodedImageCache* decoded_cache() const { return cache_.get(); }
  const std::string& decoded_cache_note() const { return cache_note_; }

 private:
  struct Slot;
  void stop_workers();
  void start_workers(int64_t capacity);
  void worker_loop();
  // Decodes the example at `position` of the order into `slot` (never throws).
  void decode_into(int64_t position, Slot& slot) const;
  // Waits for the slot of consume_ (or decodes it inline), returns it.
  Slot& wait_for(int64_t position);
  void release(int64_t position);
  void open_cache();
  // next_batch and next_raw_batch: up to `max` good examples in order, each handed to `take`.
  template <class Take>
  int64_t next_examples(int64_t max, Take take);

  ImageFolderListing listing_;
  ImageFolderOptions options_;
  std::string origin_;
  int threads_ = 1;
  std::unique_ptr<DecodedImageCache> cache_;
  std::string cache_note_;

  // The epoch.
  bool started_ = false;
  uint64_t seed_ = 0;
  int64_t epoch_ = 0;
  bool augment_ = false;
  bool raw_ = false;  // workers keep uint8 at the input size and the warp (set_raw_batches)
  std::vector<int64_t> order_;
  int64_t skipped_ = 0;
  std::set<std::string> reported_;  // bad files already reported on stderr

  // The ring: position p lives in slots_[p % slots_.size()] while claim_ > p >= consume_.
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_cv_, ready_cv_;
  int64_t claim_ = 0;    // next position a worker takes
  int64_t consume_ = 0;  // next position the consumer reads
  bool stop_ = false;
};

}  // namespace graft

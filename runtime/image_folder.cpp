// Image folder listing, stratified split, and the threaded decode-ahead BatchSource.
#include "runtime/image_folder.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

#include <unistd.h>

#include "kernels/common/elementwise.h"
#include "base/error.h"

namespace graft {

namespace fs = std::filesystem;

namespace {

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

std::string join_names(const std::vector<std::string>& names, size_t limit = 20) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > limit) out += detail::concat(", ... (", names.size(), " in all)");
  return out;
}

std::string layout_hint(const std::string& dir) {
  return detail::concat("expected one subfolder per class holding its images, e.g. ", dir, "/cat/001.jpg and ", dir,
                        "/dog/001.jpg");
}

// The image files under a class folder, recursively, hidden entries skipped, sorted.
std::vector<std::string> list_class_files(const fs::path& class_dir) {
  std::vector<std::pair<std::string, std::string>> found;  // (relative path, full path)
  std::error_code ec;
  fs::recursive_directory_iterator it(class_dir, fs::directory_options::none, ec);
  if (ec) fail("image folder: cannot read ", class_dir.string(), " (", ec.message(), ")");
  for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
    if (ec) fail("image folder: cannot read ", class_dir.string(), " (", ec.message(), ")");
    const fs::directory_entry& e = *it;
    if (hidden(e.path())) {
      if (e.is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!e.is_regular_file(ec) || !has_image_extension(e.path())) continue;
    found.emplace_back(fs::relative(e.path(), class_dir, ec).generic_string(), e.path().string());
  }
  if (ec) fail("image folder: cannot read ", class_dir.string(), " (", ec.message(), ")");
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  out.reserve(found.size());
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

}  // namespace

ImageFolderListing list_image_folder(const std::string& dir, const std::vector<std::string>& class_names) {
  std::error_code ec;
  const fs::path root(dir);
  if (!fs::exists(root, ec)) fail("image folder ", dir, ": does not exist; ", layout_hint(dir));
  if (!fs::is_directory(root, ec)) fail("image folder ", dir, ": is not a folder; ", layout_hint(dir));

  std::vector<std::string> folders;
  int64_t loose_images = 0;
  fs::directory_iterator it(root, ec);
  if (ec) fail("image folder ", dir, ": cannot read (", ec.message(), ")");
  for (const fs::directory_iterator end; it != end; it.increment(ec)) {
    if (ec) fail("image folder ", dir, ": cannot read (", ec.message(), ")");
    if (hidden(it->path())) continue;
    if (it->is_directory(ec))
      folders.push_back(it->path().filename().string());
    else if (has_image_extension(it->path()))
      ++loose_images;
  }
  if (ec) fail("image folder ", dir, ": cannot read (", ec.message(), ")");
  std::sort(folders.begin(), folders.end());
  if (folders.empty()) {
    fail("image folder ", dir, ": no class folders",
         loose_images ? detail::concat(" (it holds ", loose_images, " images directly; move them into one folder per class)")
                      : std::string(),
         "; ", layout_hint(dir));
  }

  ImageFolderListing listing;
  listing.root = dir;
  std::map<std::string, int32_t> label_of;
  if (class_names.empty()) {
    listing.class_names = folders;
  } else {
    listing.class_names = class_names;
    for (size_t i = 0; i < class_names.size(); ++i) {
      if (class_names[i].empty()) fail("image folder ", dir, ": the given class list has an empty name at ", i);
      if (label_of.count(class_names[i]))
        fail("image folder ", dir, ": the given class list names '", class_names[i], "' twice");
      label_of[class_names[i]] = int32_t(i);
    }
    std::vector<std::string> unknown;
    for (const auto& f : folders)
      if (!label_of.count(f)) unknown.push_back(f);
    if (!unknown.empty())
      fail("image folder ", dir, ": class folder", unknown.size() > 1 ? "s " : " ", join_names(unknown),
           unknown.size() > 1 ? " are" : " is", " not among the ", class_names.size(),
           " classes the model was trained on (", join_names(class_names), ")");
  }
  for (size_t i = 0; i < listing.class_names.size(); ++i) label_of[listing.class_names[i]] = int32_t(i);

  std::vector<std::string> empty;
  // Files grouped by label, in class order.
  std::vector<std::vector<std::string>> by_label(listing.class_names.size());
  for (const auto& f : folders) {
    auto files = list_class_files(root / f);
    if (files.empty()) empty.push_back(f);
    by_label[size_t(label_of.at(f))] = std::move(files);
  }
  if (!empty.empty())
    fail("image folder ", dir, ": class folder", empty.size() > 1 ? "s " : " ", join_names(empty),
         empty.size() > 1 ? " have" : " has", " no images (", image_extensions_text(),
         "); a class without examples cannot be learned: add images or remove the folder");
  for (size_t label = 0; label < by_label.size(); ++label)
    for (auto& path : by_label[label]) listing.files.push_back({std::move(path), int32_t(label)});
  return listing;
}

ListingSplit split_listing(const ImageFolderListing& listing, double val_fraction, uint64_t seed) {
  if (!(val_fraction > 0.0 && val_fraction < 1.0))
    fail("validation split of ", listing.root, ": the fraction must be between 0 and 1 (exclusive), got ", val_fraction);
  std::vector<std::vector<size_t>> members(listing.class_names.size());
  for (size_t i = 0; i < listing.files.size(); ++i) members.at(size_t(listing.files[i].label)).push_back(i);
  std::vector<char> to_val(listing.files.size(), 0);
  for (size_t label = 0; label < members.size(); ++label) {
    auto& m = members[label];
    const size_t n = m.size();
    if (n < 2) continue;
    // Fisher-Yates with counter-based draws: a pure function of (seed, class, count).
    for (size_t i = n - 1; i > 0; --i) {
      const size_t j = size_t(math::random_bits(seed, 0x5b117ull + label, i) % (i + 1));
      std::swap(m[i], m[j]);
    }
    const size_t k = std::clamp<size_t>(size_t(std::llround(val_fraction * double(n))), 1, n - 1);
    for (size_t i = 0; i < k; ++i) to_val[m[i]] = 1;
  }
  ListingSplit out;
  out.train.root = out.val.root = listing.root;
  out.train.class_names = out.val.class_names = listing.class_names;
  for (size_t i = 0; i < listing.files.size(); ++i) (to_val[i] ? out.val : out.train).files.push_back(listing.files[i]);
  return out;
}

// --- the source ---

struct ImageFolderSource::Slot {
  int64_t position = -1;
  bool ready = false;
  std::vector<float> pixels;    // next_batch's floats
  std::vector<uint8_t> raw;     // raw batches: the resized crop, uint8
  math::WarpExample warp;       // raw batches: the rest of the augmentation
  int32_t label = 0;
  bool bad = false;           // unreadable image: error holds the reason
  std::string error;
  std::exception_ptr fatal;   // anything else (out of memory...): rethrown as is
};

ImageFolderSource::ImageFolderSource(const std::string& dir, ImageFolderOptions options)
    : ImageFolderSource(list_image_folder(dir, options.class_names), options, dir) {}

ImageFolderSource::ImageFolderSource(ImageFolderListing listing, ImageFolderOptions options, std::string origin)
    : listing_(std::move(listing)), options_(std::move(options)), origin_(std::move(origin)) {
  if (options_.height < 1 || options_.width < 1 || options_.height > kMaxImageSide || options_.width > kMaxImageSide)
    fail("image folder ", origin_, ": input size ", options_.height, "x", options_.width, " is out of range");
  if (options_.prefetch_batches < 1) fail("image folder ", origin_, ": prefetch_batches must be >= 1");
  options_.augment.validate();
  open_cache();
  if (options_.threads < 0) {
    const unsigned hw = std::thread::hardware_concurrency();
    threads_ = int(std::clamp(hw, 1u, 4u));
  } else {
    threads_ = options_.threads;
  }
}

ImageFolderSource::~ImageFolderSource() { stop_workers(); }

void ImageFolderSource::expect_single_pass() {
  if (!cache_ || cache_->in_file()) return;  // a file serves later runs: keep filling it
  stop_workers();  // no worker holds the cache after this
  cache_.reset();
  cache_note_ = "dropped (read once, for the feature cache)";
  std::fprintf(stderr, "decoded-image cache (%s): %s\n", origin_.c_str(), cache_note_.c_str());
}

void ImageFolderSource::open_cache() {
  const std::string& mode = options_.decoded_cache;
  const int w = options_.width, h = options_.height;
  if (mode.empty() || mode == "off") {
    cache_note_ = "off";
    return;
  }
  if (options_.augment.random_resized_crop.enabled) {
    if (mode == "auto") {
      cache_note_ = "off (random-resized-crop crops each original image, so decoded images cannot be reused)";
      return;
    }
    fail("--decoded-cache ", mode, ": not with --random-resized-crop, which crops each original image before "
         "resizing; use --decoded-cache off");
  }
  const size_t bytes = DecodedImageCache::total_bytes(size(), w, h);
  const std::string what = detail::concat(size(), " images at ", w, "x", h, ", ", bytes >> 20, " MiB");
  if (mode == "auto") {
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
    const size_t budget = pages > 0 && page > 0 ? size_t(pages) * size_t(page) / 4 : 0;
    if (bytes > budget) {
      cache_note_ = detail::concat("off (", what, " is more than a quarter of the memory; --decoded-cache FILE keeps it on disk)");
      return;
    }
  }
  if (mode == "auto" || mode == "memory") {
    try {
      cache_ = std::make_unique<DecodedImageCache>(size(), w, h);
    } catch (const std::bad_alloc&) {
      fail("--decoded-cache memory: ", what, " do not fit in memory; use --decoded-cache FILE or off");
    }
    cache_note_ = "memory (" + what + ")";
    return;
  }
  cache_ = std::make_unique<DecodedImageCache>(mode, decoded_cache_key(listing_, w, h), size(), w, h);
  cache_note_ = detail::concat("file ", mode, " (", what, "; ", cache_->reused_records(), " already there)");
}

ImageFolderSource::Split ImageFolderSource::split(const std::string& dir, double val_fraction, uint64_t seed,
                                                  const ImageFolderOptions& options) {
  ListingSplit s = split_listing(list_image_folder(dir, options.class_names), val_fraction, seed);
  if (s.val.files.empty())
    fail("image folder ", dir, ": a validation split of ", val_fraction,
         " leaves no validation images (every class has fewer than 2 images)");
  Split out;
  out.train = std::make_unique<ImageFolderSource>(std::move(s.train), options, dir + " (training split)");
  out.val = std::make_unique<ImageFolderSource>(std::move(s.val), validation_options(options),
                                                detail::concat(dir, " (validation split ", val_fraction, ")"));
  return out;
}

ImageFolderOptions validation_options(const ImageFolderOptions& train) {
  ImageFolderOptions v = train;
  const std::string& m = train.decoded_cache;
  if (!m.empty() && m != "off" && m != "memory" && m != "auto") v.decoded_cache = m + ".val";
  return v;
}

std::vector<int32_t> ImageFolderSource::labels() const {
  std::vector<int32_t> out;
  out.reserve(listing_.files.size());
  for (const auto& f : listing_.files) out.push_back(f.label);
  return out;
}

void ImageFolderSource::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  stop_ = false;
}

void ImageFolderSource::start_epoch(uint64_t seed, int64_t epoch, bool shuffle, bool augment, int64_t skip) {
  stop_workers();
  seed_ = seed;
  epoch_ = epoch;
  augment_ = augment;
  order_ = order_for_epoch(seed, epoch, shuffle);
  const int64_t first = std::clamp<int64_t>(skip, 0, int64_t(order_.size()));
  claim_ = consume_ = first;
  for (auto& s : slots_) {
    s->ready = false;
    s->position = -1;
  }
  skipped_ = 0;
  started_ = true;
}

void ImageFolderSource::start_workers(int64_t capacity) {
  if (int64_t(slots_.size()) != capacity) {
    slots_.clear();
    for (int64_t i = 0; i < capacity; ++i) slots_.push_back(std::make_unique<Slot>());
  }
  for (int i = 0; i < threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

void ImageFolderSource::worker_loop() {
  const int64_t end = int64_t(order_.size());
  const int64_t capacity = int64_t(slots_.size());
  for (;;) {
    int64_t p = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [&] { return stop_ || claim_ >= end || claim_ < consume_ + capacity; });
      if (stop_ || claim_ >= end) return;
      p = claim_++;
    }
    Slot& slot = *slots_[size_t(p % capacity)];
    decode_into(p, slot);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      slot.position = p;
      slot.ready = true;
    }
    ready_cv_.notify_all();
  }
}

void ImageFolderSource::decode_into(int64_t position, Slot& slot) const {
  const int64_t example = order_[size_t(position)];
  const ImageFile& file = listing_.files[size_t(example)];
  slot.label = file.label;
  slot.bad = false;
  slot.error.clear();
  slot.fatal = nullptr;
  try {
    RgbImage img;
    if (!cache_ || !cache_->load(example, img)) {
      img = decode_image_file(file.path);
      if (cache_) {  // the whole image at the input size: what augment_image resizes to first
        img = resize_image(img, options_.width, options_.height);
        cache_->store(example, img);
      }
    }
    const size_t per = size_t(options_.height) * size_t(options_.width) * 3;
    if (raw_) {
      slot.raw.resize(per);
      const AugmentParams p = draw_augment_params(options_.augment, augment_, img.width, img.height, options_.width,
                                                  options_.height, seed_, epoch_, example);
      slot.warp = prepare_augment(img, p, options_.width, options_.height, slot.raw.data());
    } else {
      slot.pixels.resize(per);
      augment_image(img, options_.augment, augment_, seed_, epoch_, example, options_.width, options_.height,
                    slot.pixels.data());
    }
  } catch (const Error& e) {
    slot.bad = true;
    slot.error = e.what();
  } catch (...) {
    slot.fatal = std::current_exception();
  }
}

ImageFolderSource::Slot& ImageFolderSource::wait_for(int64_t position) {
  if (threads_ == 0) {
    Slot& slot = *slots_[0];
    decode_into(position, slot);
    slot.position = position;
    slot.ready = true;
    return slot;
  }
  Slot& slot = *slots_[size_t(position % int64_t(slots_.size()))];
  std::unique_lock<std::mutex> lock(mutex_);
  ready_cv_.wait(lock, [&] { return slot.ready && slot.position == position; });
  return slot;
}

void ImageFolderSource::release(int64_t position) {
  Slot& slot = *slots_[size_t(position % int64_t(slots_.size()))];
  {
    std::lock_guard<std::mutex> lock(mutex_);
    slot.ready = false;
    consume_ = position + 1;
  }
  work_cv_.notify_all();
}

void ImageFolderSource::set_raw_batches(bool on) {
  stop_workers();  // decoded slots are of the old kind
  raw_ = on;
  started_ = false;
}

int64_t ImageFolderSource::next_batch(int64_t max, float* images, int32_t* labels) {
  GRAFT_ASSERT(!raw_, "next_batch on a source set to raw batches");
  const size_t per = size_t(options_.height) * size_t(options_.width) * 3;
  return next_examples(max, [&](int64_t n, Slot& slot) {
    if (images) std::memcpy(images + size_t(n) * per, slot.pixels.data(), per * sizeof(float));
    if (labels) labels[n] = slot.label;
  });
}

int64_t ImageFolderSource::next_raw_batch(int64_t max, uint8_t* images, math::WarpExample* warps, int32_t* labels) {
  GRAFT_ASSERT(raw_, "next_raw_batch before set_raw_batches(true)");
  const size_t per = size_t(options_.height) * size_t(options_.width) * 3;
  return next_examples(max, [&](int64_t n, Slot& slot) {
    std::memcpy(images + size_t(n) * per, slot.raw.data(), per);
    warps[n] = slot.warp;
    labels[n] = slot.label;
  });
}

template <class Take>
int64_t ImageFolderSource::next_examples(int64_t max, Take take) {
  if (!started_) fail("image folder ", origin_, ": next_batch before start_epoch");
  const int64_t end = int64_t(order_.size());
  if (max <= 0 || consume_ >= end) return 0;
  if (threads_ == 0) {
    if (slots_.empty()) slots_.push_back(std::make_unique<Slot>());
  } else if (workers_.empty()) {
    // The first batch of the epoch sizes the ring: prefetch_batches batches ahead, at least
    // two slots per thread, at most about 512 MiB of decoded images.
    const int64_t per_bytes = int64_t(options_.height) * options_.width * 3 * int64_t(sizeof(float));
    const int64_t min_slots = 2 * int64_t(threads_);
    int64_t capacity = std::max(min_slots, int64_t(options_.prefetch_batches) * max);
    capacity = std::min(capacity, std::max(min_slots, (int64_t(512) << 20) / per_bytes));
    capacity = std::min(capacity, std::max<int64_t>(1, end - consume_));
    start_workers(capacity);
  }
  int64_t n = 0;
  while (n < max && consume_ < end) {
    const int64_t p = consume_;
    Slot& slot = wait_for(p);
    if (slot.fatal) std::rethrow_exception(slot.fatal);
    if (slot.bad) {
      if (options_.bad_images == BadImagePolicy::Fail)
        fail(slot.error, " (in ", origin_, "; --bad-images skip skips and counts unreadable files)");
      ++skipped_;
      const std::string& path = listing_.files[size_t(order_[size_t(p)])].path;
      if (reported_.insert(path).second) std::fprintf(stderr, "graft: skipping %s\n", slot.error.c_str());
    } else {
      take(n, slot);
      ++n;
    }
    if (threads_ == 0)
      consume_ = p + 1;
    else
      release(p);
  }
  return n;
}

}  // namespace graft

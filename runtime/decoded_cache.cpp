#include "runtime/decoded_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <new>
#include <cstring>
#include <filesystem>

#include "base/error.h"
#include "runtime/image_folder.h"

namespace graft {

namespace {

// A record: [mark u32][crc32 u32][pixels]. The mark is written last (release order), so a
// reader that sees it sees the pixels; in a file torn by a crash the CRC catches the rest.
constexpr uint32_t kStored = 0x53544f52;  // "STOR"
constexpr size_t kRecordHeader = 8;

// The file: this header (64 bytes), then `count` records.
struct FileHeader {
  char magic[8];  // "GRAFTDC1"
  uint64_t key;
  int64_t count;
  int32_t width, height;
  uint64_t record_bytes;
  uint8_t reserved[24];
};
static_assert(sizeof(FileHeader) == 64);
constexpr char kMagic[8] = {'G', 'R', 'A', 'F', 'T', 'D', 'C', '1'};

uint32_t crc_of(const uint8_t* p, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {  // zlib takes uInt lengths
    const uInt chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    crc = crc32(crc, p, chunk);
    p += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

std::atomic_ref<uint32_t> mark_of(uint8_t* record) { return std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(record)); }

uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace

// Records are 8-byte aligned: the mark is read and written as an atomic.
static size_t record_size(int width, int height) { return (kRecordHeader + DecodedImageCache::pixel_bytes(width, height) + 7) & ~size_t(7); }

size_t DecodedImageCache::total_bytes(int64_t count, int width, int height) {
  return size_t(count) * record_size(width, height);
}

DecodedImageCache::DecodedImageCache(int64_t count, int width, int height)
    : count_(count), width_(width), height_(height), record_bytes_(record_size(width, height)) {
  GRAFT_ASSERT(count >= 0 && width > 0 && height > 0, "bad decoded-image cache size");
  bytes_ = total_bytes(count, width, height);
  memory_.reset(static_cast<uint8_t*>(std::calloc(bytes_ ? bytes_ : 1, 1)));  // zero marks: nothing stored
  if (!memory_) throw std::bad_alloc();
  base_ = memory_.get();
}

DecodedImageCache::DecodedImageCache(const std::string& path, uint64_t key, int64_t count, int width, int height)
    : count_(count), width_(width), height_(height), record_bytes_(record_size(width, height)),
      path_(path) {
  GRAFT_ASSERT(count >= 0 && width > 0 && height > 0, "bad decoded-image cache size");
  bytes_ = total_bytes(count, width, height);
  map_bytes_ = sizeof(FileHeader) + bytes_;
  FileHeader want{};
  std::memcpy(want.magic, kMagic, sizeof kMagic);
  want.key = key;
  want.count = count;
  want.width = width;
  want.height = height;
  want.record_bytes = record_bytes_;

  // Reuse the file when its header is ours and its size is right.
  bool reuse = false;
  {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      FileHeader have{};
      struct stat st {};
      reuse = ::fstat(fd, &st) == 0 && size_t(st.st_size) == map_bytes_ &&
              ::pread(fd, &have, sizeof have, 0) == ssize_t(sizeof have) && std::memcmp(&have, &want, sizeof have) == 0;
      ::close(fd);
    }
  }
  if (!reuse) {  // a fresh sparse file (zero marks), renamed over the old one
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("--decoded-cache ", path, ": cannot create ", tmp, " (", std::strerror(errno), ")");
    const bool ok = ::ftruncate(fd, off_t(map_bytes_)) == 0 && ::pwrite(fd, &want, sizeof want, 0) == ssize_t(sizeof want);
    const int err = errno;
    ::close(fd);
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
      std::remove(tmp.c_str());
      fail("--decoded-cache ", path, ": cannot write a ", map_bytes_, "-byte cache file (", std::strerror(ok ? errno : err),
           "); free disk space, give another path, or use --decoded-cache memory|off");
    }
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) fail("--decoded-cache ", path, ": cannot open (", std::strerror(errno), ")");
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int err = errno;
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail("--decoded-cache ", path, ": cannot map ", map_bytes_, " bytes (", std::strerror(err), ")");
  }
  base_ = static_cast<uint8_t*>(map_) + sizeof(FileHeader);
  if (reuse) reused_ = stored();
}

DecodedImageCache::~DecodedImageCache() {
  if (map_) ::munmap(map_, map_bytes_);  // MAP_SHARED: the page cache keeps what was stored
}

uint8_t* DecodedImageCache::record(int64_t example) const { return base_ + size_t(example) * record_bytes_; }

void DecodedImageCache::check(int64_t example) const {
  GRAFT_ASSERT(example >= 0 && example < count_, "decoded-image cache: example ", example, " of ", count_);
}

int64_t DecodedImageCache::stored() const {
  int64_t n = 0;
  for (int64_t e = 0; e < count_; ++e) n += mark_of(record(e)).load(std::memory_order_acquire) == kStored;
  return n;
}

bool DecodedImageCache::load(int64_t example, RgbImage& out) const {
  check(example);
  uint8_t* r = record(example);
  if (mark_of(r).load(std::memory_order_acquire) != kStored) {
    misses_.fetch_add(1);
    return false;
  }
  const size_t n = pixel_bytes(width_, height_);
  uint32_t crc = 0;
  std::memcpy(&crc, r + 4, sizeof crc);
  if (crc_of(r + kRecordHeader, n) != crc) {  // torn by a crash: decode it again
    misses_.fetch_add(1);
    return false;
  }
  out.width = width_;
  out.height = height_;
  out.pixels.assign(r + kRecordHeader, r + kRecordHeader + n);
  hits_.fetch_add(1);
  return true;
}

void DecodedImageCache::store(int64_t example, const RgbImage& resized) {
  check(example);
  GRAFT_ASSERT(resized.width == width_ && resized.height == height_, "decoded-image cache: a ", resized.width, "x",
               resized.height, " image in a ", width_, "x", height_, " cache");
  uint8_t* r = record(example);
  const size_t n = pixel_bytes(width_, height_);
  mark_of(r).store(0, std::memory_order_relaxed);
  std::memcpy(r + kRecordHeader, resized.pixels.data(), n);
  const uint32_t crc = crc_of(resized.pixels.data(), n);
  std::memcpy(r + 4, &crc, sizeof crc);
  mark_of(r).store(kStored, std::memory_order_release);
}

uint64_t decoded_cache_key(const ImageFolderListing& listing, int width, int height) {
  uint64_t h = 1469598103934665603ull;
  h = fnv1a(h, &width, sizeof width);
  h = fnv1a(h, &height, sizeof height);
  for (const ImageFile& f : listing.files) {
    h = fnv1a(h, f.path.data(), f.path.size() + 1);
    h = fnv1a(h, &f.label, sizeof f.label);
    struct stat st {};
    if (::stat(f.path.c_str(), &st) == 0) {
      const int64_t size = st.st_size, sec = st.st_mtim.tv_sec, nsec = st.st_mtim.tv_nsec;
      h = fnv1a(h, &size, sizeof size);
      h = fnv1a(h, &sec, sizeof sec);
      h = fnv1a(h, &nsec, sizeof nsec);
    }
  }
  return h;
}

}  // namespace graft

// The caching pool (size classes, the cache of freed blocks, statistics) and the host pool.
#include "runtime/memory_pool.h"

#include <cstdlib>
#include <new>

#include "base/error.h"

namespace graft {

namespace {
constexpr size_t kAlignment = 256;
constexpr size_t kPowerOfTwoFrom = size_t{1} << 20;
}  // namespace

size_t CachingPool::size_class(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= kPowerOfTwoFrom) return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  size_t c = kPowerOfTwoFrom;
  while (c < bytes) c <<= 1;
  return c;
}

void* CachingPool::allocate(size_t bytes, std::string_view tag) {
  std::lock_guard lock(mutex_);
  const size_t cls = size_class(bytes);
  void* ptr = nullptr;
  if (auto it = cached_.find(cls); it != cached_.end()) {
    ptr = it->second;
    cached_.erase(it);
  } else {
    ptr = system_allocate(cls, bytes, tag);
    stats_.bytes_reserved += cls;
    ++stats_.system_allocations;
  }
  live_.emplace(ptr, Block{cls, std::string(tag)});
  stats_.bytes_in_use += cls;
  if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
  size_t& t = stats_.in_use_by_tag[std::string(tag)];
  t += cls;
  size_t& tp = stats_.peak_by_tag[std::string(tag)];
  if (t > tp) tp = t;
  return ptr;
}

void CachingPool::release(void* ptr) {
  if (!ptr) return;
  std::lock_guard lock(mutex_);
  auto it = live_.find(ptr);
  GRAFT_ASSERT(it != live_.end(), "release of a pointer this ", device_name(device()), " pool does not own");
  stats_.bytes_in_use -= it->second.bytes;
  stats_.in_use_by_tag[it->second.tag] -= it->second.bytes;
  cached_.emplace(it->second.bytes, ptr);
  live_.erase(it);
}

PoolStats CachingPool::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void CachingPool::reset_peak() {
  std::lock_guard lock(mutex_);
  stats_.peak_bytes_in_use = stats_.bytes_in_use;
  stats_.peak_by_tag = stats_.in_use_by_tag;
}

void CachingPool::empty_cache_locked() {
  for (auto& [size, ptr] : cached_) {
    system_free(ptr);
    stats_.bytes_reserved -= size;
  }
  cached_.clear();
}

void CachingPool::free_all() {
  std::lock_guard lock(mutex_);
  empty_cache_locked();
  for (auto& [ptr, block] : live_) system_free(ptr);
  live_.clear();
}

void* HostPool::system_allocate(size_t cls, size_t bytes, std::string_view tag) {
  void* ptr = std::aligned_alloc(kAlignment, cls);
  if (!ptr)
    fail("out of host memory: asked for ", bytes, " bytes (", std::string(tag), ") with ",
         stats_locked().bytes_in_use, " bytes in use and ", stats_locked().bytes_reserved,
         " reserved; try a smaller --batch");
  return ptr;
}

void HostPool::system_free(void* ptr) { std::free(ptr); }

}  // namespace graft

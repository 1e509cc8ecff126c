// The caching host pool.
#include "runtime/memory_pool.h"

#include <cstdlib>
#include <new>

#include "runtime/error.h"

namespace graft {

namespace {
constexpr size_t kAlignment = 256;
constexpr size_t kPowerOfTwoFrom = size_t{1} << 20;
}  // namespace

size_t HostPool::size_class(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= kPowerOfTwoFrom) return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  size_t c = kPowerOfTwoFrom;
  while (c < bytes) c <<= 1;
  return c;
}

HostPool::~HostPool() {
  for (auto& [ptr, block] : live_) std::free(ptr);
  for (auto& [size, ptr] : cached_) std::free(ptr);
}

void* HostPool::allocate(size_t bytes, std::string_view tag) {
  std::lock_guard lock(mutex_);
  const size_t cls = size_class(bytes);
  void* ptr = nullptr;
  if (auto it = cached_.find(cls); it != cached_.end()) {
    ptr = it->second;
    cached_.erase(it);
  } else {
    ptr = std::aligned_alloc(kAlignment, cls);
    if (!ptr)
      fail("out of host memory: asked for ", bytes, " bytes (", std::string(tag), ") with ",
           stats_.bytes_in_use, " bytes in use and ", stats_.bytes_reserved,
           " reserved; try a smaller --batch");
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

void HostPool::release(void* ptr) {
  if (!ptr) return;
  std::lock_guard lock(mutex_);
  auto it = live_.find(ptr);
  GRAFT_ASSERT(it != live_.end(), "release of a pointer the host pool does not own");
  stats_.bytes_in_use -= it->second.bytes;
  stats_.in_use_by_tag[it->second.tag] -= it->second.bytes;
  cached_.emplace(it->second.bytes, ptr);
  live_.erase(it);
}

PoolStats HostPool::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void HostPool::reset_peak() {
  std::lock_guard lock(mutex_);
  stats_.peak_bytes_in_use = stats_.bytes_in_use;
  stats_.peak_by_tag = stats_.in_use_by_tag;
}

}  // namespace graft

#include "runtime/cuda/device_pool.h"

#include <cuda_runtime_api.h>

#include <sstream>

#include "runtime/cuda/cuda_check.h"
#include "runtime/error.h"

namespace graft::cuda {

DevicePool::DevicePool(size_t limit_bytes) : limit_bytes_(limit_bytes) {}

DevicePool::~DevicePool() {
  // Never throws: a destructor may run while an error unwinds.
  for (auto& [ptr, block] : live_) (void)cudaFree(ptr);
  for (auto& [size, ptr] : cached_) (void)cudaFree(ptr);
  (void)cudaGetLastError();
}

void DevicePool::empty_cache() {
  std::lock_guard lock(mutex_);
  empty_cache_locked();
}

void DevicePool::empty_cache_locked() {
  for (auto& [size, ptr] : cached_) {
    (void)cudaFree(ptr);
    stats_.bytes_reserved -= size;
  }
  cached_.clear();
  (void)cudaGetLastError();
}

void DevicePool::out_of_memory(size_t bytes, size_t cls, std::string_view tag, const char* why) const {
  size_t free_b = 0, total_b = 0;
  std::string device_mem = "unknown";
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
    device_mem = detail::concat(free_b, " of ", total_b, " bytes free on the device");
  (void)cudaGetLastError();
  std::ostringstream tags;
  for (const auto& [t, b] : stats_.in_use_by_tag)
    if (b) tags << " " << t << "=" << b;
  fail("out of device memory: asked for ", bytes, " bytes (size class ", cls, ", tag '", std::string(tag),
       "'): ", why, "; pool: ", stats_.bytes_in_use, " bytes in use, ", stats_.bytes_reserved, " reserved, peak ",
       stats_.peak_bytes_in_use, ", ", stats_.system_allocations, " cudaMalloc calls; in use by tag:",
       tags.str().empty() ? " none" : tags.str(), "; ", device_mem, "; try a smaller --batch");
}

void* DevicePool::allocate(size_t bytes, std::string_view tag) {
  std::lock_guard lock(mutex_);
  const size_t cls = size_class(bytes);
  void* ptr = nullptr;
  if (auto it = cached_.find(cls); it != cached_.end()) {
    ptr = it->second;
    cached_.erase(it);
  } else {
    if (limit_bytes_ && stats_.bytes_reserved + cls > limit_bytes_) empty_cache_locked();
    if (limit_bytes_ && stats_.bytes_reserved + cls > limit_bytes_)
      out_of_memory(bytes, cls, tag, detail::concat("the pool's limit is ", limit_bytes_, " bytes").c_str());
    cudaError_t e = cudaMalloc(&ptr, cls);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      empty_cache_locked();  // give the cache back and try once more
      e = cudaMalloc(&ptr, cls);
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      out_of_memory(bytes, cls, tag, detail::concat("cudaMalloc returned ", cudaGetErrorName(e)).c_str());
    }
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

void DevicePool::release(void* ptr) {
  if (!ptr) return;
  std::lock_guard lock(mutex_);
  auto it = live_.find(ptr);
  GRAFT_ASSERT(it != live_.end(), "release of a pointer the device pool does not own");
  stats_.bytes_in_use -= it->second.bytes;
  stats_.in_use_by_tag[it->second.tag] -= it->second.bytes;
  cached_.emplace(it->second.bytes, ptr);
  live_.erase(it);
}

PoolStats DevicePool::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void DevicePool::reset_peak() {
  std::lock_guard lock(mutex_);
  stats_.peak_bytes_in_use = stats_.bytes_in_use;
  stats_.peak_by_tag = stats_.in_use_by_tag;
}

}  // namespace graft::cuda

// DevicePool: the caching device allocator behind every dynamic device buffer (cuDNN
// workspaces, staging, the executor's arenas). Same interface and statistics as HostPool:
// freed blocks are cached by size class and reused, so a steady-state step makes no
// cudaMalloc. Single-stream semantics: a released block may be handed out again at once, so
// work on other streams that still reads it must be ordered by the caller.
// Out of memory: the cache is returned to the driver and the request retried once; if it
// still fails, graft::Error names the bytes asked, the pool's stats and the device's free
// memory, and advises a smaller --batch. Nothing here aborts.
#pragma once
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "runtime/memory_pool.h"

namespace graft::cuda {

class DevicePool final : public MemoryPool {
 public:
  // `limit_bytes` caps bytes reserved (0: no cap beyond the device's memory); a request that
  // would pass the cap is an out-of-memory error like a failed cudaMalloc (used by tests).
  explicit DevicePool(size_t limit_bytes = 0);
  ~DevicePool() override;
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;

  Device device() const override { return Device::CUDA; }
  void* allocate(size_t bytes, std::string_view tag) override;
  void release(void* ptr) override;
  PoolStats stats() const override;
  void reset_peak() override;

  // Returns every cached (free) block to the driver; blocks in use are untouched.
  void empty_cache();

  // Same size classes as HostPool: 256-byte granules, powers of two past 1 MiB.
  static size_t size_class(size_t bytes) { return HostPool::size_class(bytes); }

 private:
  struct Block {
    size_t bytes;
    std::string tag;
  };
  void empty_cache_locked();
  [[noreturn]] void out_of_memory(size_t bytes, size_t cls, std::string_view tag, const char* why) const;

  mutable std::mutex mutex_;
  size_t limit_bytes_ = 0;
  std::unordered_map<void*, Block> live_;
  std::multimap<size_t, void*> cached_;
  PoolStats stats_;
};

}  // namespace graft::cuda

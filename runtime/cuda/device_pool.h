// DevicePool: the caching device allocator behind every dynamic device buffer (cuDNN
// workspaces, staging, the executor's arenas). A CachingPool like HostPool (the same size
// classes, cache and statistics) over cudaMalloc, so a steady-state step makes no
// cudaMalloc. Single-stream semantics: a released block may be handed out again at once, so
// work on other streams that still reads it must be ordered by the caller.
// Out of memory: the cache is returned to the driver and the request retried once; if it
// still fails, graft::Error names the bytes asked, the pool's stats and the device's free
// memory, and advises a smaller --batch. Nothing here aborts. A growth while the compute
// stream records a CUDA graph is refused with graft::Error (base/cuda/capture.h).
#pragma once
#include <cstddef>
#include <string_view>

#include "runtime/memory_pool.h"

namespace graft::cuda {

class DevicePool final : public CachingPool {
 public:
  // `limit_bytes` caps bytes reserved (0: no cap beyond the device's memory); a request that
  // would pass the cap is an out-of-memory error like a failed cudaMalloc (used by tests).
  explicit DevicePool(size_t limit_bytes = 0);
  ~DevicePool() override;
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;

  Device device() const override { return Device::CUDA; }

  // Returns every cached (free) block to the driver; blocks in use are untouched.
  void empty_cache();

 private:
  void* system_allocate(size_t cls, size_t bytes, std::string_view tag) override;
  void system_free(void* ptr) override;
  [[noreturn]] void out_of_memory(size_t bytes, size_t cls, std::string_view tag, const char* why) const;

  size_t limit_bytes_ = 0;
};

}  // namespace graft::cuda

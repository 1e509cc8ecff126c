// The host's memory pool, and CachingPool, the size classes and statistics it shares with
// the CUDA backend's device pool. The interface both implement is base/memory_pool.h.
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/memory_pool.h"

namespace graft {

// The part HostPool and the CUDA backend's DevicePool share: size classes (256-byte
// granules, then powers of two past 1 MiB), a cache of freed blocks reused for requests of
// the same class, so a steady-state training step makes no system allocation, and the
// statistics. Each pool supplies only how a block comes from the system and goes back.
class CachingPool : public MemoryPool {
 public:
  void* allocate(size_t bytes, std::string_view tag) final;
  void release(void* ptr) final;
  PoolStats stats() const final;
  void reset_peak() final;

  // Rounds a request up to its size class.
  static size_t size_class(size_t bytes);

 protected:
  // A new block of `cls` bytes from the system; `bytes` and `tag` are the request, for the
  // error when there is none (a graft::Error naming them and stats_locked()). Called with
  // the pool's lock held.
  virtual void* system_allocate(size_t cls, size_t bytes, std::string_view tag) = 0;
  virtual void system_free(void* ptr) = 0;
  // Every cached (free) block back to the system; the lock must be held.
  void empty_cache_locked();
  // Every block back to the system: for the derived destructor (a base destructor cannot
  // reach system_free).
  void free_all();
  const PoolStats& stats_locked() const { return stats_; }
  std::mutex& mutex() const { return mutex_; }

 private:
  struct Block {
    size_t bytes;  // size class
    std::string tag;
  };
  mutable std::mutex mutex_;
  std::unordered_map<void*, Block> live_;
  std::multimap<size_t, void*> cached_;  // size class -> free block
  PoolStats stats_;
};

// The host's pool (aligned_alloc).
class HostPool final : public CachingPool {
 public:
  HostPool() = default;
  ~HostPool() override { free_all(); }
  HostPool(const HostPool&) = delete;
  HostPool& operator=(const HostPool&) = delete;

  Device device() const override { return Device::CPU; }

 private:
  void* system_allocate(size_t cls, size_t bytes, std::string_view tag) override;
  void system_free(void* ptr) override;
};

}  // namespace graft

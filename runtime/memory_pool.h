// MemoryPool: where every buffer of a training run comes from. The host pool here and the
// device pool of the CUDA backend share this interface, so the executor and the tests
// read the same statistics on both: bytes in use, bytes reserved from the system, the
// peak in use, how many system allocations were made, and bytes in use per tag
// ("parameters", "gradients", "optimizer", "activations", "workspace", ...).
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/tensor.h"

namespace graft {

struct PoolStats {
  size_t bytes_in_use = 0;
  size_t bytes_reserved = 0;
  size_t peak_bytes_in_use = 0;
  size_t system_allocations = 0;  // malloc / cudaMalloc calls made so far
  std::map<std::string, size_t> in_use_by_tag;
  std::map<std::string, size_t> peak_by_tag;

  size_t tag(const std::string& t) const {
    auto it = in_use_by_tag.find(t);
    return it == in_use_by_tag.end() ? 0 : it->second;
  }
};

class MemoryPool {
 public:
  virtual ~MemoryPool() = default;
  virtual Device device() const = 0;
  // Returns memory aligned to 256 bytes, or throws graft::Error naming the size and stats.
  virtual void* allocate(size_t bytes, std::string_view tag) = 0;
  virtual void release(void* ptr) = 0;
  virtual PoolStats stats() const = 0;
  virtual void reset_peak() = 0;
};

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

// One buffer from a pool, released when it goes out of scope.
class PoolBuffer {
 public:
  PoolBuffer() = default;
  PoolBuffer(MemoryPool& pool, size_t bytes, std::string_view tag)
      : pool_(&pool), ptr_(bytes ? pool.allocate(bytes, tag) : nullptr), bytes_(bytes) {}
  ~PoolBuffer() { reset(); }
  PoolBuffer(PoolBuffer&& o) noexcept : pool_(o.pool_), ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; o.bytes_ = 0; }
  PoolBuffer& operator=(PoolBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      pool_ = o.pool_; ptr_ = o.ptr_; bytes_ = o.bytes_;
      o.ptr_ = nullptr; o.bytes_ = 0;
    }
    return *this;
  }
  PoolBuffer(const PoolBuffer&) = delete;
  PoolBuffer& operator=(const PoolBuffer&) = delete;

  void reset() {
    if (ptr_) pool_->release(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  float* floats() const { return static_cast<float*>(ptr_); }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  MemoryPool* pool_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace graft

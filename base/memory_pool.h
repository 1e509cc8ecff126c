// MemoryPool: where every buffer of a training run comes from. The host pool
// (runtime/memory_pool.h) and the CUDA backend's device pool share this interface, so the
// executor, the kernels' workspaces and the tests read the same statistics on both: bytes in
// use, bytes reserved from the system, the peak in use, how many system allocations were
// made, and bytes in use per tag ("parameters", "gradients", "optimizer", "activations",
// "workspace", ...). PoolBuffer holds one buffer from any of them.
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "base/shape.h"

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

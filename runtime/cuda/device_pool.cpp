// DevicePool: cudaMalloc and cudaFree beneath the CachingPool, and the out-of-memory report.
#include "runtime/cuda/device_pool.h"

#include <cuda_runtime_api.h>

#include <sstream>

#include "kernels/cuda/ops_cuda.h"
#include "base/cuda/capture.h"
#include "base/cuda/cuda_check.h"
#include "base/error.h"

namespace graft::cuda {

DevicePool::DevicePool(size_t limit_bytes) : limit_bytes_(limit_bytes) {}

DevicePool::~DevicePool() {
  // Never throws: a destructor may run while an error unwinds.
  free_all();
  (void)cudaGetLastError();
}

void DevicePool::empty_cache() {
  std::lock_guard lock(mutex());
  empty_cache_locked();
}

void DevicePool::system_free(void* ptr) {
  (void)cudaFree(ptr);
  (void)cudaGetLastError();  // never throws: called from the destructor too
}

void DevicePool::out_of_memory(size_t bytes, size_t cls, std::string_view tag, const char* why) const {
  size_t free_b = 0, total_b = 0;
  std::string device_mem = "unknown";
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
    device_mem = detail::concat(free_b, " of ", total_b, " bytes free on the device");
  (void)cudaGetLastError();
  const PoolStats& stats = stats_locked();
  std::ostringstream tags;
  for (const auto& [t, b] : stats.in_use_by_tag)
    if (b) tags << " " << t << "=" << b;
  fail("out of device memory: asked for ", bytes, " bytes (size class ", cls, ", tag '", std::string(tag),
       "'): ", why, "; pool: ", stats.bytes_in_use, " bytes in use, ", stats.bytes_reserved, " reserved, peak ",
       stats.peak_bytes_in_use, ", ", stats.system_allocations, " cudaMalloc calls; in use by tag:",
       tags.str().empty() ? " none" : tags.str(), "; ", device_mem, "; try a smaller --batch");
}

// Past the limit or out of device memory, the cache goes back to the driver and the request
// is tried once more. Never while the compute stream records a step graph: cudaMalloc and
// cudaFree there are illegal, and the graph would keep a pointer the pool may hand out again.
void* DevicePool::system_allocate(size_t cls, size_t bytes, std::string_view tag) {
  if (stream_capturing(compute_stream()))
    fail("the device memory pool had to grow by ", cls, " bytes (a request of ", bytes, " bytes, tag '",
         std::string(tag), "') while a CUDA graph of the step was being recorded; a recorded graph cannot "
         "allocate. The eager step before the capture allocates everything a step needs: this request is new");
  if (limit_bytes_ && stats_locked().bytes_reserved + cls > limit_bytes_) empty_cache_locked();
  if (limit_bytes_ && stats_locked().bytes_reserved + cls > limit_bytes_)
    out_of_memory(bytes, cls, tag, detail::concat("the pool's limit is ", limit_bytes_, " bytes").c_str());
  void* ptr = nullptr;
  cudaError_t e = cudaMalloc(&ptr, cls);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    empty_cache_locked();
    e = cudaMalloc(&ptr, cls);
  }
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    out_of_memory(bytes, cls, tag, detail::concat("cudaMalloc returned ", cudaGetErrorName(e)).c_str());
  }
  return ptr;
}

}  // namespace graft::cuda

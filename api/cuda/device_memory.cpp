// Device memory with the CUDA backend: the caller's pointers are checked to be device
// memory, and copied on the caller's stream, so the copy starts after the caller's work on
// the batch and the call returns once it is done.
#include <cuda_runtime_api.h>

#include "api/device_memory.h"
#include "base/error.h"

namespace graft::api_detail {

namespace {

void check(cudaError_t status, const std::string& what, const char* call) {
  if (status != cudaSuccess) fail(what, ": ", call, " failed: ", cudaGetErrorString(status));
}

void require_device_pointer(const void* p, const std::string& what) {
  cudaPointerAttributes attributes{};
  const cudaError_t status = cudaPointerGetAttributes(&attributes, p);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();  // clear it: the caller's pointer, not a sticky device error
    fail(what, " was given as device memory, but CUDA does not know it (", cudaGetErrorString(status),
         "); pass a pointer from cudaMalloc, or Memory::Host for host memory");
  }
  if (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged)
    fail(what, " was given as device memory but is host memory; pass Memory::Host (GRAFT_MEMORY_HOST) for it");
}

}  // namespace

bool built_with_cuda() { return true; }

void device_to_host(void* dst, const void* src, size_t bytes, void* stream, const std::string& what) {
  require_device_pointer(src, what);
  const auto s = static_cast<cudaStream_t>(stream);
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), what, "cudaMemcpyAsync");
  check(cudaStreamSynchronize(s), what, "cudaStreamSynchronize");
}

void device_to_device(void* dst, const void* src, size_t bytes, void* stream, const std::string& what) {
  require_device_pointer(src, what);
  const auto s = static_cast<cudaStream_t>(stream);
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s), what, "cudaMemcpyAsync");
  check(cudaStreamSynchronize(s), what, "cudaStreamSynchronize");
}

void host_to_device(void* dst, const void* src, size_t bytes, void* stream, const std::string& what) {
  require_device_pointer(dst, what);
  const auto s = static_cast<cudaStream_t>(stream);
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), what, "cudaMemcpyAsync");
  check(cudaStreamSynchronize(s), what, "cudaStreamSynchronize");
}

}  // namespace graft::api_detail

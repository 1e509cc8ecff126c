#include "runtime/cuda/backend.h"

#include <cuda_runtime_api.h>

#include "kernels/cuda/ops_cuda.h"
#include "kernels/lib/ops_lib.h"
#include "runtime/backend_registry.h"
#include "base/cuda/cuda_check.h"
#include "runtime/cuda/device.h"
#include "runtime/cuda/device_pool.h"
#include "runtime/cuda/versions.h"

namespace graft {

namespace {

std::unique_ptr<MemoryPool> make_pool() { return std::make_unique<cuda::DevicePool>(); }

std::unique_ptr<Ops> make_ops(MemoryPool& pool, KernelChoice kernels, bool bf16) {
  if (pool.device() != Device::CUDA) fail("CUDA kernels need memory from a device pool");
  if (kernels == KernelChoice::Native) return std::make_unique<cuda::CudaOps>(pool);  // bf16: emulated by the caller
  lib::LibraryOptions options;
  options.deterministic = kernel_settings().deterministic;
  options.allow_tf32 = kernel_settings().allow_tf32 && !bf16;
  options.bf16 = bf16;
  return std::make_unique<lib::LibOps>(pool, options);
}

void* alloc_pinned(size_t bytes) {
  void* p = nullptr;
  if (bytes) GRAFT_CUDA_CHECK(cudaMallocHost(&p, bytes));
  return p;
}

void free_pinned(void* p) {
  if (p) (void)cudaFreeHost(p);
}

bool available(std::string* reason) { return cuda::device_available(reason); }

}  // namespace

void register_cuda_backend() {
  DeviceBackend b;
  b.available = available;
  b.summary = cuda::device_summary;
  b.versions = cuda::library_versions;
  b.check_supported = cuda::check_device_supported;
  b.make_pool = make_pool;
  b.make_ops = make_ops;
  b.alloc_pinned = alloc_pinned;
  b.free_pinned = free_pinned;
  set_cuda_backend(b);
}

}  // namespace graft

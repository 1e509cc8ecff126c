#include "runtime/backend_registry.h"

#include "base/error.h"

namespace graft {

namespace {
DeviceBackend g_cuda;
bool g_cuda_set = false;
KernelSettings g_settings;
}  // namespace

void set_cuda_backend(const DeviceBackend& backend) {
  g_cuda = backend;
  g_cuda_set = true;
}

void clear_cuda_backend() {
  g_cuda = DeviceBackend{};
  g_cuda_set = false;
}

const DeviceBackend* cuda_backend() { return g_cuda_set ? &g_cuda : nullptr; }

const DeviceBackend& require_cuda_backend() {
  if (!g_cuda_set) fail("the CUDA backend is not available in this program (built without CUDA, or not registered)");
  return g_cuda;
}

const KernelSettings& kernel_settings() { return g_settings; }
void set_kernel_settings(const KernelSettings& s) { g_settings = s; }
KernelChoice default_kernels() { return g_settings.kernels; }
void set_default_kernels(KernelChoice k) { g_settings.kernels = k; }

KernelChoice parse_kernel_choice(const std::string& text) {
  if (text == "native") return KernelChoice::Native;
  if (text == "library") return KernelChoice::Library;
  if (text == "auto") return KernelChoice::Auto;
  fail("--kernels '", text, "' is not one of: native, library, auto");
}

Ops& ops_for(MemoryPool& pool, bool reference, KernelChoice kernels, std::unique_ptr<Ops>& owner, bool bf16) {
  if (pool.device() == Device::CPU) return cpu_ops(reference);
  GRAFT_ASSERT(kernels != KernelChoice::Auto, "ops_for wants one implementation; the executor resolves auto");
  owner = require_cuda_backend().make_ops(pool, kernels, bf16);
  return *owner;
}

}  // namespace graft

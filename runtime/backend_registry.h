// The device backends graft_core can use without depending on them: graft_cuda fills a
// DeviceBackend (graft::register_cuda_backend(), runtime/cuda/backend.h) and the program
// calls it at start-up (tools/graft/main.cpp, under GRAFT_HAVE_CUDA). graft_core asks
// cuda_backend() and gets null when the build or the program has none.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "kernels/ops.h"
#include "runtime/memory_pool.h"

namespace graft {

struct DeviceBackend {
  // True when a device can be used; otherwise `reason` says why. Never throws.
  bool (*available)(std::string* reason) = nullptr;
  // One line about the device (name, capability, memory).
  std::string (*summary)() = nullptr;
  // The CUDA libraries' versions, at run time and at build time. Never throws.
  std::string (*versions)() = nullptr;
  // Throws graft::Error when this build cannot run on the device.
  void (*check_supported)() = nullptr;
  // The caching device pool every device buffer comes from.
  std::unique_ptr<MemoryPool> (*make_pool)() = nullptr;
  // The kernels over memory of `pool` (one stream); bf16: library kernels on bf16 operands.
  std::unique_ptr<Ops> (*make_ops)(MemoryPool& pool, KernelChoice kernels, bool bf16) = nullptr;
  // Page-locked host memory for staging batches (null-safe free).
  void* (*alloc_pinned)(size_t bytes) = nullptr;
  void (*free_pinned)(void* p) = nullptr;
};

void set_cuda_backend(const DeviceBackend& backend);
void clear_cuda_backend();  // back to none (tests that stand in a backend of their own)
// The registered CUDA backend, or null.
const DeviceBackend* cuda_backend();
// The CUDA backend, or graft::Error saying it is missing.
const DeviceBackend& require_cuda_backend();

// How kernels run, for every Ops made after it is set (the CLI's --kernels, --deterministic
// and --precision).
struct KernelSettings {
  KernelChoice kernels = KernelChoice::Library;  // executors that do not name one
  bool deterministic = false;  // library kernels: deterministic algorithms only
  bool allow_tf32 = false;     // library kernels: TF32 tensor cores (not exact fp32)
  bool bf16 = false;           // executors: bf16 operands for convolutions and dense layers (runtime/bf16_emulation.h)
};
const KernelSettings& kernel_settings();
void set_kernel_settings(const KernelSettings& s);
KernelChoice default_kernels();  // kernel_settings().kernels
void set_default_kernels(KernelChoice k);
KernelChoice parse_kernel_choice(const std::string& text);  // "native", "library", "auto"

// The Ops for memory of `pool`: the CPU ones (per `reference`) for a host pool, else a new
// device backend Ops (owned by `owner`). bf16 asks for kernels that compute on bf16
// operands; check Ops::computes_bf16() for whether it got them.
Ops& ops_for(MemoryPool& pool, bool reference, KernelChoice kernels, std::unique_ptr<Ops>& owner, bool bf16 = false);

}  // namespace graft
